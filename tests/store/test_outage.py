"""A database outage seen from outside (issue 16, item 8), on a PostgreSQL cluster of the test's
own that it stops, restarts as a standby refusing connections (SQLSTATE 57P03, asyncpg's
``CannotConnectNowError``, what a starting server answers) and promotes.

An EA keeps sending trade events through it all. Every durable request the hub cannot commit is
answered ``unavailable`` (retryable), never ``internal``; resending them ends with every event
stored exactly once; REST reads answer 503 meanwhile; and the hub's log tells the outage in
fewer than 50 lines.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.support import factories
from tests.support.hub import WAIT, HubProcess
from tests.support.pg import PgCluster
from tests.support.waits import until

ACCOUNT = "50123"
IN_FLIGHT = 8
MAX_OUTAGE_LOG_LINES = 50


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    c = PgCluster()
    try:
        c.start()
        yield c
    finally:
        c.destroy()


class Sender:
    """An EA that keeps IN_FLIGHT trade events in flight and resends those answered `unavailable`."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.committed: set[str] = set()
        self.duplicates = 0
        self.answers: Counter[str] = Counter()
        self.unexpected: list[dict[str, Any]] = []
        self.pending: dict[str, dict[str, Any]] = {}
        self.history: list[tuple[str, str, Any, str]] = []  # (event id, answer, payload, phase)
        self.phase = "warm"
        self.retry: list[dict[str, Any]] = []
        self.produce = True
        self._rid = 0
        self._room = asyncio.Semaphore(IN_FLIGHT)

    async def _send(self, event: dict[str, Any]) -> None:
        await self._room.acquire()
        self._rid += 1
        rid = f"e{self._rid}"
        self.pending[rid] = event
        await self.ws.send(json.dumps({"type": "trade.event", "requestId": rid, "payload": event}))

    async def run_writer(self) -> None:
        while True:
            if self.retry:
                await self._send(self.retry.pop())
            elif self.produce:
                await self._send(
                    {"id": str(uuid.uuid4()), "kind": "account", "account": ACCOUNT,
                     "ts": int(time.time() * 1000), "balance": 1000.0, "equity": 1000.0,
                     "margin": 0.0, "freeMargin": 1000.0}
                )  # fmt: skip
            else:
                await asyncio.sleep(0.01)  # idle poll: nothing to send until an answer asks for a retry

    async def run_reader(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            event = self.pending.pop(msg.get("requestId", ""), None)
            if event is None:
                continue  # a broadcast, not an answer
            self._room.release()
            self.history.append((event["id"], msg["type"], msg["payload"], self.phase))
            if msg["type"] == "result":
                self.answers["result"] += 1
                self.duplicates += msg["payload"]["duplicate"]
                self.committed.add(event["id"])
                continue
            code = msg["payload"]["code"]
            self.answers[code] += 1
            if code == "unavailable":
                assert msg["payload"]["retryable"] is True
                await asyncio.sleep(0.02)  # the client's backoff before resending
                self.retry.append(event)
            else:
                self.unexpected.append(msg)


def _lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines()


async def test_outage_answers_unavailable_and_logs_a_handful_of_lines(
    tmp_path: Path, cluster: PgCluster
) -> None:
    hub = HubProcess(tmp_path / "hub", env={"MTBRIDGE_DATABASE_URL": cluster.url}).start()
    tasks: list[asyncio.Task[None]] = []
    try:
        ws = await websockets.connect(hub.url, ping_interval=None, open_timeout=WAIT)
        assert json.loads(await ws.recv())["type"] == "welcome"
        token = hub.token("ea", "ea-1", accounts=[ACCOUNT])
        await ws.send(json.dumps({"type": "auth", "requestId": "a", "payload": {"token": token}}))
        assert json.loads(await ws.recv())["type"] == "result"
        sender = Sender(ws)
        tasks = [asyncio.create_task(sender.run_reader()), asyncio.create_task(sender.run_writer())]
        rest = httpx.AsyncClient(
            base_url=hub.http, headers={"Authorization": f"Bearer {hub.token('admin', 'op')}"}, timeout=WAIT
        )

        await until(
            lambda: len(sender.committed) >= 50, "events committed before the outage", timeout=WAIT * 6
        )
        log_before = len(_lines(hub.log))

        # 1. The server shuts down (57P01 admin_shutdown), then refuses connections.
        sender.phase = "stopping"
        await asyncio.to_thread(cluster.stop, "fast")
        sender.phase = "stopped"
        seen = sender.answers["unavailable"]
        await until(
            lambda: sender.answers["unavailable"] >= seen + 30,
            "`unavailable` while stopped",
            timeout=WAIT * 6,
        )
        r = await rest.get("/api/v1/events", params={"account": ACCOUNT})
        assert r.status_code == 503, r.text
        assert r.json()["detail"]["code"] == "unavailable" and r.headers["retry-after"] == "1"
        r = await rest.get("/api/v1/events.csv", params={"account": ACCOUNT})
        assert r.status_code == 503, r.text  # the CSV's status too, not a 200 cut off
        signal = factories.signal("alpha", [ACCOUNT], stops=False, ttl=60)
        r = await rest.post("/api/v1/signals", json=signal)  # a durable publish over REST
        assert r.status_code == 503 and r.json()["detail"]["code"] == "unavailable", r.text

        # 2. The server is up but refuses connections with 57P03 (CannotConnectNowError).
        sender.phase = "standby-starting"
        await asyncio.to_thread(cluster.start_standby)
        sender.phase = "standby"
        seen = sender.answers["unavailable"]
        await until(
            lambda: sender.answers["unavailable"] >= seen + 30,
            "`unavailable` while starting",
            timeout=WAIT * 6,
        )

        # 3. It accepts writes again.
        sender.phase = "promoting"
        await asyncio.to_thread(cluster.promote)
        sender.phase = "promoted"
        done = len(sender.committed)
        await until(
            lambda: len(sender.committed) >= done + 50, "events committed after the outage", timeout=WAIT * 6
        )
        sender.produce = False
        await until(lambda: not sender.pending and not sender.retry, "every event answered", timeout=WAIT * 6)
        log_after = _lines(hub.log)

        assert sender.unexpected == [], sender.unexpected[:5]
        assert sender.answers["internal"] == 0
        assert sender.answers["unavailable"] >= 60

        # Exactly once: every event committed is stored once, the resends were not duplicates
        # (an unavailable write did not commit).
        stored: list[str] = []
        cursor: str | None = None
        while True:
            params = {"account": ACCOUNT, "limit": "1000", **({"cursor": cursor} if cursor else {})}
            page = (await rest.get("/api/v1/events", params=params)).json()
            stored += [e["id"] for e in page["items"]]
            cursor = page["nextCursor"]
            if cursor is None:
                break
        await rest.aclose()
        missing = sender.committed - set(stored)
        assert not missing, [h for h in sender.history if h[0] in missing]
        assert len(stored) == len(set(stored)) == len(sender.committed)
        assert set(stored) == sender.committed

        outage = log_after[log_before:]
        text = "\n".join(outage)
        assert len(outage) < MAX_OUTAGE_LOG_LINES, text[-6000:]
        assert "database unavailable:" in text, text[-3000:]
        assert "database available again after" in text, text[-3000:]
        assert "CannotConnectNowError" in text, text[-3000:]  # the 57P03 phase was reached
        assert "Traceback" not in text, text[-6000:]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        hub.stop()
