"""Gap repair (bridge/hub/repair.py, bridge/hub/sequence.py): whatever Redis does to a durable
channel's publications — loses, repeats or reorders them — a node delivers each offset exactly once,
in order, reading what is missing from the store."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.auth.tokens import Verifier
from bridge.broker.base import Publication
from bridge.hub.hub import Hub
from bridge.hub.sequence import Check, Cursor, Verdict, check, classify
from bridge.protocol.channels import DEFAULT_POLICIES
from bridge.store.memory import MemoryStore
from tests.support.fakes import SECRET

NAME = "account:1:events"


def test_classify_decides_each_case() -> None:
    cursor: Cursor[Any] = Cursor()
    assert classify(cursor, "e", 5) is Verdict.PASS  # position not read yet
    cursor.epoch, cursor.last = "e", 4
    assert classify(cursor, "e", 5) is Verdict.DELIVER
    assert classify(cursor, "e", 4) is Verdict.DUPLICATE
    assert classify(cursor, "e", 7) is Verdict.GAP
    assert classify(cursor, "other", 5) is Verdict.RESET
    cursor.filling = True
    assert classify(cursor, "e", 5) is Verdict.HOLD
    assert classify(cursor, "e", 3) is Verdict.DUPLICATE


def test_check_waits_one_round_unless_redis_lost_messages() -> None:
    cursor: Cursor[Any] = Cursor(epoch="e", last=4)
    assert check(cursor, "e", 4, lost=False) is Check.OK
    assert check(cursor, "e", 6, lost=False) is Check.WATCH  # maybe in flight
    assert check(cursor, "e", 7, lost=False) is Check.FILL  # still behind: fill
    cursor.last = 7
    assert check(cursor, "e", 9, lost=True) is Check.FILL  # Redis lost some: fill now
    assert check(cursor, "x", 7, lost=False) is Check.RESET


async def _hub_with_history(n: int) -> tuple[Hub, MemoryStore, str, list[tuple[int, dict[str, Any]]]]:
    store = MemoryStore()
    await store.start()
    hub = Hub(Verifier(["HS256"], secret=SECRET), log=store, origin="me")
    got: list[tuple[int, dict[str, Any]]] = []

    def fanout(name: str, offset: int, payload: dict[str, Any], targets: Any = None) -> int:
        got.append((offset, payload))
        return 1

    hub.fanout = fanout  # type: ignore[method-assign]
    hub._channel(NAME, DEFAULT_POLICIES["account"])
    pos = await store.position(NAME)
    hub.repair.opened(NAME, pos.epoch, pos.last_offset)
    for i in range(n):
        await store.append(NAME, f"m{i}", {"i": i + 1})
    return hub, store, pos.epoch, got


async def _settle(hub: Hub) -> None:
    for _ in range(1000):
        cursor = hub.repair.cursors.get(NAME)
        if cursor is not None and not cursor.filling and not hub.repair._tasks:
            return
        await asyncio.sleep(0)
    raise AssertionError("fills did not finish")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 40),
    ops=st.lists(st.tuples(st.integers(0, 39), st.sampled_from(["send", "twice", "drop"])), max_size=80),
    settle_every=st.integers(1, 10),
)
def test_any_loss_repeat_or_reorder_ends_exactly_once_in_order(
    n: int, ops: list[tuple[int, str]], settle_every: int
) -> None:
    async def run() -> None:
        hub, _store, epoch, got = await _hub_with_history(n)
        for k, (index, what) in enumerate(ops):
            offset = index % n + 1
            pub = Publication(NAME, epoch, offset, {"i": offset}, None, True, time.time(), "other")
            if what != "drop":
                hub.repair.receive(pub)
            if what == "twice":
                hub.repair.receive(pub)
            if k % settle_every == 0:
                await _settle(hub)
        await _settle(hub)
        # A lost last publication is found by the check (Redis known to have lost messages).
        hub.repair.resync(True)
        await _settle(hub)
        assert [o for o, _ in got] == list(range(1, n + 1))
        assert [p["i"] for _, p in got] == list(range(1, n + 1))

    asyncio.run(run())


async def test_a_fill_holds_what_arrives_meanwhile() -> None:
    hub, _store, epoch, got = await _hub_with_history(5)

    def pub(offset: int) -> Publication:
        return Publication(NAME, epoch, offset, {"i": offset}, None, True, time.time(), "other")

    hub.repair.receive(pub(3))  # a gap: the fill starts
    hub.repair.receive(pub(4))  # held behind the fill
    hub.repair.receive(pub(1))  # held too: it continues the sequence, so only 2 is read from the store
    await _settle(hub)
    hub.repair.receive(pub(5))
    hub.repair.receive(pub(5))
    assert [o for o, _ in got] == [1, 2, 3, 4, 5]
    m = hub.metrics.cluster
    assert m.gap_filled._value.get() == 1
    assert m.duplicates._value.get() == 1


async def test_an_epoch_change_unsubscribes_the_channel() -> None:
    hub, _store, _epoch, got = await _hub_with_history(1)
    hub.repair.receive(Publication(NAME, "new-epoch", 1, {}, None, True, time.time(), "other"))
    assert NAME not in hub.repair.cursors
    assert hub.metrics.cluster.epoch_resets._value.get() == 1
    assert got == []
