"""The soak's actors (issue 3, issue 15): an engine that publishes a planned stream of signals and
EAs that acknowledge, report trade events and disconnect at random, each over raw WebSocket sessions
that move to the next hub on every reconnect; and the check of what the store holds afterwards.

The soak itself (hub kills, the assertions on what every EA received) is tests/ledger/test_soak.py;
tests/cluster/test_data_path.py reuses the actors on a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from tests.support.factories import request, signal
from tests.support.hub import WAIT, HubProcess
from tests.support.rest import Rest
from tests.support.waits import eventually, until

N_SIGNALS = 5_000
#: The cluster run is smaller: three hubs and the test share two cores (the suite's 30-minute budget).
N_SIGNALS_CLUSTER = 3_000
ACCOUNTS = ("61001", "61002", "61003")
STRATEGY = "soak"
CHANNEL = f"signals:{STRATEGY}"
WINDOW = 200  # publishes in flight
REPUBLISH = 100  # answered publishes sent again after each hub restart
EA_IN_FLIGHT = 200  # requests in flight per EA connection (the hub allows 1,024)
NS = uuid.UUID("6f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f")
RUN_TIMEOUT = 240.0  # an upper bound for a stuck run, never a performance assertion
RETRYABLE = {"rate_limited", "unavailable", "internal"}


class Lost(Exception):
    """The connection went away before the answer came."""


LOST: dict[str, Any] = {"type": "lost"}  # handed to requests left open by a lost session


class Refused(Exception):
    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(payload.get("code"))
        self.payload = payload


class Peer:
    """One WebSocket session: requests resolved by ``requestId``, messages handed over in order."""

    def __init__(self, ws: ClientConnection, on_message: Callable[[dict[str, Any]], None]) -> None:
        self.ws = ws
        self.on_message = on_message
        self.futures: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.rid = 0
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, token: str, on_message: Callable[[dict[str, Any]], None]) -> Peer:
        ws = await websockets.connect(url, ping_interval=None, open_timeout=WAIT, max_queue=None)
        welcome = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert welcome["type"] == "welcome", welcome
        peer = cls(ws, on_message)
        try:
            await peer.request("auth", payload={"token": token})
        except BaseException:
            await peer.abort()
            raise
        return peer

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                rid = msg.get("requestId")
                fut = self.futures.pop(rid, None) if rid is not None else None
                if fut is not None:
                    if not fut.done():
                        fut.set_result(msg)
                elif msg["type"] == "message":
                    self.on_message(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            for fut in self.futures.values():
                if not fut.done():
                    fut.set_result(LOST)
            self.futures.clear()

    @property
    def alive(self) -> bool:
        return not self.reader.done()

    async def request(self, mtype: str, channel: str | None = None, payload: Any = None) -> dict[str, Any]:
        """The result's payload; ``Lost`` if the session ends first; ``Refused`` on an error."""
        while True:
            if not self.alive:
                raise Lost()
            self.rid += 1
            rid = f"r{self.rid}"
            env = request(mtype, rid, channel, payload)
            fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self.futures[rid] = fut
            try:
                await self.ws.send(json.dumps(env))
            except websockets.ConnectionClosed as exc:
                self.futures.pop(rid, None)
                raise Lost() from exc
            try:
                msg = await asyncio.wait_for(fut, WAIT * 6)
            except TimeoutError as exc:
                raise Lost() from exc  # a hung hub: treat as gone, resend on the next session
            finally:
                self.futures.pop(rid, None)
            if msg is LOST:
                raise Lost()
            if msg["type"] == "result":
                result: dict[str, Any] = msg["payload"]
                return result
            err = msg["payload"]
            if err.get("code") == "rate_limited":
                await asyncio.sleep(err.get("retryAfterMs", 100) / 1000)  # the wait the hub asked for
                continue
            raise Refused(err)

    async def abort(self) -> None:
        """Drop the TCP connection without a closing handshake (as a crashed terminal would)."""
        self.ws.transport.abort()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(self.reader, WAIT)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), WAIT)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(self.reader, WAIT)


async def open_peer(
    urls: list[str], first: int, token: str, on_message: Callable[[dict[str, Any]], None], rng: random.Random
) -> Peer:
    """Connect to ``urls[first]``, moving on to the next node after each failure (one node: retrying
    while the hub is down or restarting)."""
    deadline = time.monotonic() + RUN_TIMEOUT
    attempt = first
    while True:
        try:
            return await Peer.open(urls[attempt % len(urls)], token, on_message)
        except (OSError, Lost, TimeoutError, websockets.InvalidHandshake, websockets.ConnectionClosed):
            if time.monotonic() > deadline:
                raise
            attempt += 1
            await asyncio.sleep(0.1 + rng.random() * 0.4)  # a client's reconnect backoff, jittered


def plan(n: int = N_SIGNALS) -> list[dict[str, Any]]:
    """``n`` signals: every third to one account, then two, then all three (rotating)."""
    created = int(time.time() * 1000)
    out = []
    for i in range(n):
        k = i % 3
        r = (i // 3) % 3
        targets = [ACCOUNTS[(r + j) % 3] for j in range(k + 1)]
        sid = str(uuid.uuid5(NS, f"signal/{i}"))
        side = "buy" if i % 2 else "sell"
        out.append(
            signal(
                STRATEGY, targets, sid=sid, stops=False, side=side, volume=0.01, magic=i, createdAt=created
            )
        )
    return out


@dataclass
class Engine:
    urls: list[str]
    token: str
    signals: list[dict[str, Any]]
    rng: random.Random
    offsets: dict[str, int] = field(default_factory=dict)
    sessions: int = 0
    duplicates: int = 0
    failures: list[Any] = field(default_factory=list)

    @property
    def confirmed(self) -> int:
        return len(self.offsets)

    async def run(self) -> None:
        while len(self.offsets) < len(self.signals):
            peer = await open_peer(self.urls, self.sessions, self.token, lambda m: None, self.rng)
            self.sessions += 1
            try:
                if self.sessions > 1:
                    # After a crash, some answered publishes again: idempotency must come from the
                    # database, not from memory. Same offset, duplicate: true.
                    again = [s for s in self.signals if s["id"] in self.offsets][-REPUBLISH:]
                    await asyncio.gather(*(self._publish(peer, s, expect_duplicate=True) for s in again))
                # A sliding window: up to WINDOW publishes in flight, so a kill lands mid-window.
                window = asyncio.Semaphore(WINDOW)
                tasks: list[asyncio.Task[None]] = []
                for sig in [s for s in self.signals if s["id"] not in self.offsets]:
                    await window.acquire()
                    if not peer.alive:
                        window.release()
                        break
                    task = asyncio.create_task(self._publish(peer, sig))
                    task.add_done_callback(lambda _t, w=window: w.release())
                    tasks.append(task)
                await asyncio.gather(*tasks)
            finally:
                await peer.close()

    async def _publish(self, peer: Peer, sig: dict[str, Any], expect_duplicate: bool = False) -> None:
        try:
            result = await peer.request("publish", CHANNEL, sig)
        except Lost:
            return  # republished, same id, on the next session
        except Refused as exc:
            if exc.payload.get("code") not in RETRYABLE:
                self.failures.append((sig["id"], exc.payload))
            return
        if result["duplicate"]:
            self.duplicates += 1
        elif expect_duplicate:
            self.failures.append((sig["id"], "published twice", result))
        previous = self.offsets.setdefault(sig["id"], result["offset"])
        if previous != result["offset"]:
            self.failures.append((sig["id"], "offset changed", previous, result["offset"]))


@dataclass
class EA:
    urls: list[str]  # each session starts on the next node (one node: always the same)
    token: str
    account: str
    rng: random.Random
    last_offset: int = 0
    epoch: str | None = None
    received: list[tuple[int, str]] = field(default_factory=list)
    outbox: dict[str, dict[str, Any]] = field(default_factory=dict)
    confirmed_events: set[str] = field(default_factory=set)
    violations: list[Any] = field(default_factory=list)
    sessions: int = 0
    disconnects: int = 0
    peer: Peer | None = None
    stop: bool = False

    def event_for(self, offset: int, payload: dict[str, Any]) -> dict[str, Any]:
        sid = payload["id"]
        return {
            "id": str(uuid.uuid5(NS, f"event/{sid}/{self.account}")),
            "kind": "deal",
            "account": self.account,
            "ts": payload["createdAt"],
            "signalId": sid,
            "ticket": offset,
            "symbol": payload["symbol"],
            "side": payload["side"],
            "entry": "in",
            "volume": payload["volume"],
            "price": 1.1,
        }

    async def run(self, done: Callable[[], bool]) -> None:
        while not (self.stop and done()):
            await self._session(done)

    async def _session(self, done: Callable[[], bool]) -> None:
        sem = asyncio.Semaphore(EA_IN_FLIGHT)
        tasks: set[asyncio.Task[None]] = set()

        def spawn(coro: Any) -> None:
            task = asyncio.create_task(coro)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        def on_message(msg: dict[str, Any]) -> None:
            if msg.get("channel") != CHANNEL:
                return
            offset, payload = msg["offset"], msg["payload"]
            if offset <= self.last_offset:
                seen = any(sid == payload["id"] for _, sid in self.received)
                self.violations.append(
                    ("duplicate" if seen else "out of order", offset, self.last_offset, self.sessions)
                )
                return
            if self.account not in payload.get("accounts", []):
                self.violations.append(("not targeted here", offset, payload.get("accounts")))
            self.last_offset = offset
            self.received.append((offset, payload["id"]))
            event = self.event_for(offset, payload)
            self.outbox[event["id"]] = event  # "persisted" with the offset, as the EA does
            spawn(self._ack(peer_ref[0], sem, payload["id"]))
            spawn(self._report(peer_ref[0], sem, event))

        peer_ref: list[Peer] = []
        peer = await open_peer(self.urls, self.sessions, self.token, on_message, self.rng)
        peer_ref.append(peer)
        self.peer = peer
        self.sessions += 1
        try:
            for event in list(self.outbox.values()):
                spawn(self._report(peer, sem, event))
            sub: dict[str, Any] = {"since": self.last_offset}
            if self.epoch is not None:
                sub["epoch"] = self.epoch
            try:
                result = await peer.request("subscribe", CHANNEL, sub)
            except Lost:
                return
            if result.get("recovered") is not True:
                self.violations.append(("not recovered", result))
            self.epoch = result["epoch"]
            await until(
                lambda: not peer.alive or (self.stop and done() and not self.outbox),
                "this session to end or the soak to finish",
                timeout=RUN_TIMEOUT,
                interval=0.05,
            )
        finally:
            self.peer = None
            await peer.close()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _ack(self, peer: Peer, sem: asyncio.Semaphore, signal_id: str) -> None:
        async with sem:
            with contextlib.suppress(Lost):
                try:
                    res = await peer.request("signal.ack", payload={"signalId": signal_id})
                except Refused as exc:
                    self.violations.append(("ack refused", signal_id, exc.payload))
                    return
                if res["status"] not in ("acked", "executed"):
                    self.violations.append(("ack status", signal_id, res))

    async def _report(self, peer: Peer, sem: asyncio.Semaphore, event: dict[str, Any]) -> None:
        async with sem:
            try:
                res = await peer.request("trade.event", payload=event)
            except Lost:
                return  # stays in the outbox; resent after the reconnect
            except Refused as exc:
                if exc.payload.get("code") not in RETRYABLE:
                    self.violations.append(("event refused", event["id"], exc.payload))
                return
            if res["id"] != event["id"]:
                self.violations.append(("event result id", event["id"], res))
                return
            self.confirmed_events.add(event["id"])
            self.outbox.pop(event["id"], None)

    async def chaos(self, until: Callable[[], bool]) -> None:
        """Disconnect at random: an abrupt TCP drop or a clean close, every 0.3-2.5 s."""
        while not until():
            await asyncio.sleep(0.3 + self.rng.random() * 2.2)  # the chaos under test: when to drop
            peer = self.peer
            if peer is None or not peer.alive or until():
                continue
            self.disconnects += 1
            if self.rng.random() < 0.5:
                await peer.abort()
            else:
                await peer.close()


async def verify_store(hub: HubProcess, signals: list[dict[str, Any]], engine: Engine, eas: list[EA]) -> None:
    admin = hub.token("admin", "soak-check")
    async with Rest(hub.http, admin) as rest:
        # Each trade event exactly once; every event the hub acknowledged is there.
        events = await rest.all_pages("/api/v1/events", limit=1000)
        counts = Counter(e["id"] for e in events)
        assert [i for i, n in counts.items() if n > 1] == []
        expected_events = {
            ea.event_for(0, s)["id"] for ea in eas for s in signals if ea.account in s["accounts"]
        }
        assert set(counts) == expected_events
        confirmed = set().union(*(ea.confirmed_events for ea in eas))
        assert confirmed == expected_events
        r = await rest.get("/api/v1/events.csv")
        assert r.status_code == 200
        csv_counts = Counter(row["id"] for row in csv.DictReader(io.StringIO(r.text)))
        assert csv_counts == counts

        # Each signal once, at the offset the engine was told; every target executed.
        stored = await rest.all_pages("/api/v1/signals", limit=1000, strategy=STRATEGY)
        assert Counter(s["id"] for s in stored) == Counter(engine.offsets.keys())
        assert {s["id"]: s["offset"] for s in stored} == engine.offsets

        def not_executed(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
            by_id = {s["id"]: s for s in signals}
            bad = []
            for row in rows:
                statuses = {d["account"]: d["status"] for d in row["deliveries"]}
                for account in by_id[row["id"]]["accounts"]:
                    if statuses.get(account) != "executed":
                        bad.append((row["id"], account, statuses.get(account, "missing")))
            return bad

        async def missing() -> tuple[int, list[tuple[str, str, str]]]:
            bad = not_executed(await rest.all_pages("/api/v1/signals", limit=1000, strategy=STRATEGY))
            return len(bad), bad[:10]

        await eventually(missing, lambda found: found[0] == 0, WAIT * 3)
