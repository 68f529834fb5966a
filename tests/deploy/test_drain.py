"""Drain on one node (docs/deploy.md): SIGTERM fails readiness, answers the durable requests already
taken, sends every connection a ``reconnect`` hint spread over the drain window, then closes with 1001."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from tests.support.hub import WAIT, HubProcess

CLIENTS = 300
WINDOW_S = 2.0
BINS = 10
EVENTS = 40


def _event(i: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "kind": "deal",
        "account": "50123",
        "ts": 1_700_000_000_000 + i,
        "ticket": 1000 + i,
        "symbol": "EURUSD",
        "side": "buy",
        "entry": "in",
        "volume": 0.1,
        "price": 1.08,
    }


async def _open(url: str, token: str) -> ClientConnection:
    ws = await websockets.connect(url, ping_interval=None, open_timeout=WAIT, max_queue=None)
    json.loads(await ws.recv())  # welcome
    await ws.send(json.dumps({"type": "auth", "requestId": "a", "payload": {"token": token}}))
    reply = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    assert reply["type"] == "result", reply
    return ws


async def _until_closed(ws: ClientConnection) -> tuple[list[dict[str, Any]], int | None]:
    """Every message up to the hub's close, and the close code."""
    seen: list[dict[str, Any]] = []
    with contextlib.suppress(websockets.ConnectionClosed):
        while True:
            seen.append(json.loads(await asyncio.wait_for(ws.recv(), WAIT * 3)))
    rcvd = ws.protocol.close_rcvd
    return seen, (rcvd.code if rcvd else None)


def _ready(http: str) -> bool:
    try:
        with urllib.request.urlopen(http + "/readyz", timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def test_sigterm_spreads_reconnect_hints_over_the_window_and_answers_in_flight_requests(
    tmp_path: Path,
) -> None:
    hub = HubProcess(tmp_path / "data", env={"MTBRIDGE_DRAIN_WINDOW": str(WINDOW_S)}).start()
    try:
        tokens = [hub.token("ea", f"ea-{i}", accounts=[str(50000 + i)]) for i in range(CLIENTS)]
        ea_token = hub.token("ea", "ea-50123", accounts=["50123"])

        async def scenario() -> tuple[list[tuple[list[dict[str, Any]], int | None]], Any, bool]:
            sem = asyncio.Semaphore(50)

            async def one(tok: str) -> ClientConnection:
                async with sem:
                    return await _open(hub.url, tok)

            conns = await asyncio.gather(*(one(t) for t in tokens))
            ea = await _open(hub.url, ea_token)
            assert _ready(hub.http)
            # Durable requests in flight when the signal lands: each must be answered before the close.
            for i in range(EVENTS):
                await ea.send(json.dumps({"type": "trade.event", "requestId": f"e{i}", "payload": _event(i)}))
            hub.signal(signal.SIGTERM)
            ea_seen = await _until_closed(ea)
            ready_after = _ready(hub.http)
            results = await asyncio.gather(*(_until_closed(ws) for ws in conns))
            return results, ea_seen, ready_after

        results, (ea_msgs, ea_code), ready_after = asyncio.run(scenario())
        assert not ready_after, "a draining node must fail /readyz"
        assert hub.wait() in (0, -signal.SIGTERM)

        # Every in-flight trade event answered (stored), then the hint, then 1001.
        answered = {m["requestId"] for m in ea_msgs if m.get("type") == "result"}
        assert answered == {f"e{i}" for i in range(EVENTS)}
        assert ea_msgs[-1]["type"] == "reconnect" and ea_code == 1001

        window_ms = int(WINDOW_S * 1000)
        delays = []
        for msgs, code in results:
            assert code == 1001
            hints = [m for m in msgs if m["type"] == "reconnect"]
            assert len(hints) == 1 and hints[0]["payload"]["reason"] == "shutdown", msgs
            delays.append(int(hints[0]["payload"]["afterMs"]))
        assert len(delays) == CLIENTS
        assert all(0 < d <= window_ms for d in delays), (min(delays), max(delays))
        # Spread over the whole window: each tenth of it gets its share (expected 30; a bin below 10
        # has a probability under 1e-6 for uniform delays, and is certain for any fixed delay or for
        # a window used only in part).
        counts = [0] * BINS
        for d in delays:
            counts[min(BINS - 1, (d - 1) * BINS // window_ms)] += 1
        assert min(counts) >= 10, counts
        assert len(set(delays)) > CLIENTS // 2, "delays must be jittered, not a few fixed values"
    finally:
        hub.kill()
