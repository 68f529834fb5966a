"""The simulated EA over the in-process FakeHub: ack, execute once, persist, resend the outbox."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.client import FakeHub, FakeToken, MockTransport
from bridge.simulator import SimulatedEA, event_uuid, load_state, state_path
from tests.support.factories import signal
from tests.support.waits import WAIT as TIMEOUT
from tests.support.waits import until


def sig(n: int, action: str = "open", **over: Any) -> dict[str, Any]:
    if action != "open":  # ... leaves a field out
        over = {"side": ..., "orderType": ..., "volume": ..., **over}
    return signal(sid=str(uuid.UUID(int=n, version=4)), stops=False, action=action, **over)


@pytest.fixture
def hub() -> FakeHub:
    return FakeHub({"ea": FakeToken("ea-50123", "ea", frozenset({"50123"})), "eng": FakeToken("e", "engine")})


@pytest.fixture
async def transport(hub: FakeHub) -> AsyncIterator[MockTransport]:
    t = MockTransport(hub)
    yield t
    await t.aclose()


async def publish(hub: FakeHub, body: dict[str, Any]) -> None:
    from bridge.protocol.signals import parse_signal

    canonical = parse_signal(body, time.time()).to_payload()
    await hub.publish("signals:alpha", canonical, canonical["id"])


def make_ea(transport: MockTransport, tmp_path: Path, **kw: Any) -> SimulatedEA:
    kw.setdefault("from_start", True)
    kw.setdefault("snapshot_interval", None)
    kw.setdefault("client_options", {"backoff_initial": 0.01, "backoff_max": 0.05})
    return SimulatedEA(
        "ws://fake/ws",
        "ea",
        "50123",
        ["alpha"],
        tmp_path,
        transport=transport,
        **kw,
    )


async def test_ea_acks_executes_and_reports(hub: FakeHub, transport: MockTransport, tmp_path: Path) -> None:
    await publish(hub, sig(1))
    ea = make_ea(transport, tmp_path)
    await ea.start()
    try:
        await until(lambda: len(hub.events) == 3)
        await publish(hub, sig(2, "close"))
        await until(lambda: len(hub.events) == 6)
        await asyncio.wait_for(ea.drain(), TIMEOUT)  # every result processed, not only recorded
    finally:
        await ea.stop()
    assert hub.acks == [(sig(1)["id"], "50123"), (sig(2)["id"], "50123")]
    kinds = [(e["kind"], e.get("state", e.get("entry"))) for e in hub.events.values()]
    assert kinds == [("deal", "in"), ("position", "opened"), ("order", "filled")] * 1 + [
        ("deal", "out"),
        ("position", "closed"),
        ("order", "filled"),
    ]
    assert all(e["signalId"] in (sig(1)["id"], sig(2)["id"]) for e in hub.events.values())
    state = load_state(state_path(tmp_path, "50123"), "50123")
    assert state.outbox == [] and state.offset("signals:alpha")[0] == 2
    assert state.signals == {sig(1)["id"]: "executed", sig(2)["id"]: "executed"}


async def test_ea_restart_never_executes_twice(
    hub: FakeHub, transport: MockTransport, tmp_path: Path
) -> None:
    await publish(hub, sig(1))
    ea = make_ea(transport, tmp_path)
    await ea.start()
    await until(lambda: len(hub.events) == 3)
    await ea.stop()
    # The hub replays from 0 (as if the offset had been lost) and the same signal is published again.
    state_file = state_path(tmp_path, "50123")
    state = load_state(state_file, "50123")
    state.offsets.clear()
    from bridge.simulator import save_state

    save_state(state_file, state)
    ea2 = make_ea(transport, tmp_path)
    await ea2.start()
    try:
        await until(lambda: len(hub.acks) == 2)
        await asyncio.sleep(0.1)  # absence has no event to wait on: an execution would follow the ack
    finally:
        await ea2.stop()
    assert len(hub.events) == 3, "the signal was acknowledged again but not executed again"
    assert len(load_state(state_file, "50123").account.positions) == 1


async def test_ea_outbox_survives_restart(hub: FakeHub, transport: MockTransport, tmp_path: Path) -> None:
    hub.ignore_types.add("trade.event")  # the hub never confirms: events stay in the outbox
    await publish(hub, sig(1))
    ea = make_ea(transport, tmp_path, client_options={"request_timeout": 0.2, "backoff_initial": 0.01})
    await ea.start()
    state_file = state_path(tmp_path, "50123")
    await until(lambda: len(load_state(state_file, "50123").outbox) == 3)
    await ea.stop()
    hub.ignore_types.clear()
    ea2 = make_ea(transport, tmp_path)
    await ea2.start()
    try:
        await asyncio.wait_for(ea2.drain(), TIMEOUT)
    finally:
        await ea2.stop()
    assert len(hub.events) == 3
    assert load_state(state_file, "50123").outbox == []


async def test_ea_pause_rejects_and_resume_executes(
    hub: FakeHub, transport: MockTransport, tmp_path: Path
) -> None:
    ea = make_ea(transport, tmp_path)
    await ea.start()
    try:
        await hub.publish(
            "account:50123:control", {"command": "pause", "scope": "strategy", "strategy": "alpha"}
        )
        await until(lambda: ea.state.paused_strategies == ["alpha"])
        await publish(hub, sig(1))
        await until(lambda: len(hub.events) == 1)
        rejected = next(iter(hub.events.values()))
        assert (rejected["state"], rejected["message"]) == ("rejected", "paused")
        assert rejected["id"] == event_uuid(f"50123|order-rejected|{sig(1)['id']}")
        await hub.publish(
            "account:50123:control", {"command": "resume", "scope": "strategy", "strategy": "alpha"}
        )
        await until(lambda: ea.state.paused_strategies == [])
        await publish(hub, sig(2))
        await until(lambda: len(hub.events) == 4)
    finally:
        await ea.stop()


async def test_ea_ignores_signals_for_other_accounts(
    hub: FakeHub, transport: MockTransport, tmp_path: Path
) -> None:
    ea = make_ea(transport, tmp_path)
    await ea.start()
    try:
        await hub.publish("signals:alpha", {**sig(1), "accounts": ["777"], "expiresAt": 4_000_000_000_000})
        await publish(hub, sig(2))
        await until(lambda: len(hub.events) == 3)
    finally:
        await ea.stop()
    assert hub.acks == [(sig(2)["id"], "50123")]


async def test_ea_sends_snapshots(hub: FakeHub, transport: MockTransport, tmp_path: Path) -> None:
    ea = make_ea(transport, tmp_path, snapshot_interval=0.05)
    await ea.start()
    try:
        await until(lambda: any(e["kind"] == "account" for e in hub.events.values()))
    finally:
        await ea.stop()
