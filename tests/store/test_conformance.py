"""The Store contract, run against memory, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from bridge.protocol.delivery import DeliveryStatus
from bridge.protocol.events import TradeEvent, parse_event
from bridge.protocol.signals import Signal, parse_signal
from bridge.store import (
    AppendRequest,
    EventFilter,
    EventWrite,
    InvalidCursor,
    SignalFilter,
    StatusUpdate,
    Store,
    StoreClosed,
)
from tests.support import factories
from tests.support.store import Clock, StoreFactory


def make_signal(
    clock: Clock, *, strategy: str = "alpha", accounts: list[str] | None = None, ttl: float = 30, **extra: Any
) -> Signal:
    obj = factories.signal(strategy, accounts, stops=False, ttl=ttl, **extra)
    if not obj["accounts"]:
        del obj["accounts"]
    return parse_signal(obj, clock.now)


def make_event(
    kind: str = "deal",
    *,
    account: str = "50123",
    ts: int = 1_700_000_000_000,
    signal_id: str | None = None,
    event_id: str | None = None,
    **extra: Any,
) -> TradeEvent:
    by_kind: dict[str, dict[str, Any]] = {
        "deal": {"ticket": 1, "symbol": "EURUSD", "side": "buy", "entry": "in", "volume": 0.1, "price": 1.08},
        "order": {"state": "placed", "ticket": 2, "symbol": "EURUSD"},
        "account": {"balance": 1000.0, "equity": 1001.0, "margin": 10.0, "freeMargin": 991.0},
    }
    fields = by_kind[kind]
    obj: dict[str, Any] = {
        "id": event_id or str(uuid.uuid4()),
        "kind": kind,
        "account": account,
        "ts": ts,
        **fields,
        **extra,
    }
    if signal_id is not None:
        obj["signalId"] = signal_id
    return parse_event(obj, 0)


class TestChannelLog:
    async def test_append_offsets_start_at_one_and_increase(self, store: Store) -> None:
        results = [await store.append("signals:a", None, {"n": n}) for n in range(5)]
        assert [r.offset for r in results] == [1, 2, 3, 4, 5]
        assert len({r.epoch for r in results}) == 1
        assert not any(r.duplicate for r in results)
        other = await store.append("signals:b", None, {"n": 0})
        assert other.offset == 1 and other.epoch != results[0].epoch

    async def test_append_duplicate_message_id_returns_original(self, store: Store) -> None:
        first = await store.append("c", "m-1", {"v": 1})
        await store.append("c", "m-2", {"v": 2})
        again = await store.append("c", "m-1", {"v": "changed"})
        assert again.duplicate and again.offset == first.offset and again.epoch == first.epoch
        entries = await store.read_since("c", 0, 100)
        assert [(e.offset, e.payload) for e in entries] == [(1, {"v": 1}), (2, {"v": 2})]
        # the same message id on another channel is a different message
        assert not (await store.append("d", "m-1", {"v": 3})).duplicate

    async def test_append_concurrent_offsets_have_no_holes(self, store: Store) -> None:
        async def one(n: int) -> tuple[str, int, int]:
            channel = f"ch{n % 3}"
            result = await store.append(channel, f"id-{n}", {"n": n}, None)
            return channel, result.offset, n

        results = await asyncio.gather(*(one(n) for n in range(600)))
        for channel in ("ch0", "ch1", "ch2"):
            offsets = sorted(offset for ch, offset, _ in results if ch == channel)
            assert offsets == list(range(1, 201))
            entries = await store.read_since(channel, 0, 1000)
            assert [e.offset for e in entries] == list(range(1, 201))
            by_offset = {offset: n for ch, offset, n in results if ch == channel}
            assert all(e.payload == {"n": by_offset[e.offset]} for e in entries)

    async def test_append_concurrent_duplicates_store_once(self, store: Store) -> None:
        results = await asyncio.gather(*(store.append("c", "same", {"k": i}) for i in range(20)))
        assert sum(not r.duplicate for r in results) == 1
        assert {r.offset for r in results} == {1}
        assert len(await store.read_since("c", 0, 100)) == 1

    async def test_append_rejects_non_json_payload(self, store: Store) -> None:
        with pytest.raises(TypeError):
            await store.append("c", None, {"bad": object()})
        assert (await store.append("c", None, {})).offset == 1

    async def test_read_since_respects_offset_and_limit(self, store: Store) -> None:
        for n in range(10):
            await store.append("c", None, {"n": n}, expires_at_ms=1000 + n)
        entries = await store.read_since("c", 4, 3)
        assert [(e.offset, e.payload["n"], e.expires_at_ms) for e in entries] == [
            (5, 4, 1004),
            (6, 5, 1005),
            (7, 6, 1006),
        ]
        assert await store.read_since("c", 10, 5) == []
        assert await store.read_since("missing", 0, 5) == []

    async def test_position_creates_channel_with_stable_epoch(self, store: Store) -> None:
        first = await store.position("new")
        assert (first.last_offset, first.first_available_offset) == (0, 1)
        again = await store.position("new")
        assert again.epoch == first.epoch
        appended = await store.append("new", None, {})
        assert appended.epoch == first.epoch and appended.offset == 1
        now = await store.position("new")
        assert (now.last_offset, now.first_available_offset, now.epoch) == (1, 1, first.epoch)
        assert now.can_recover(0, first.epoch) and now.can_recover(1, first.epoch)
        assert not now.can_recover(0, "other-epoch")

    async def test_tops_reads_many_channels_at_once(self, store: Store) -> None:
        a = await store.append("a", None, {})
        await store.append("a", None, {})
        b = await store.append("b", None, {})
        tops = await store.tops(["a", "b", "missing"])
        assert tops == {"a": (a.epoch, 2), "b": (b.epoch, 1)}
        assert await store.tops([]) == {}

    async def test_reset_channel_starts_a_new_epoch(self, store: Store) -> None:
        old = await store.append("c", "m", {})
        position = await store.reset_channel("c")
        assert position.epoch != old.epoch and position.last_offset == 0
        assert await store.read_since("c", 0, 10) == []
        fresh = await store.append("c", "m", {})
        assert (fresh.offset, fresh.epoch, fresh.duplicate) == (1, position.epoch, False)


class TestSignals:
    async def test_publish_signal_records_ledger_and_pending(self, store: Store, clock: Clock) -> None:
        signal = make_signal(clock, accounts=["1", "2"])
        appended = await store.publish_signal(signal)
        assert (appended.channel, appended.offset, appended.duplicate) == ("signals:alpha", 1, False)
        entries = await store.read_since("signals:alpha", 0, 10)
        assert entries[0].payload == signal.to_payload() and entries[0].expires_at_ms == signal.expires_at
        view = await store.get_signal(signal.id)
        assert view is not None
        assert (view.channel, view.offset, view.accounts) == ("signals:alpha", 1, ("1", "2"))
        assert view.payload == signal.to_payload()
        assert [(d.account, d.status) for d in view.deliveries] == [
            ("1", DeliveryStatus.PENDING),
            ("2", DeliveryStatus.PENDING),
        ]
        assert view.deliveries[0].times == {"pending": clock.ms}

    async def test_publish_signal_twice_changes_nothing(self, store: Store, clock: Clock) -> None:
        signal = make_signal(clock)
        first = await store.publish_signal(signal)
        again = await asyncio.gather(*(store.publish_signal(signal) for _ in range(5)))
        assert all(r.duplicate and r.offset == first.offset and r.epoch == first.epoch for r in again)
        moved = make_signal(clock, strategy="beta")
        moved = Signal(**{**{f: getattr(moved, f) for f in moved.__slots__}, "id": signal.id})  # type: ignore[arg-type]
        cross = await store.publish_signal(moved)
        assert (cross.channel, cross.offset, cross.duplicate) == ("signals:alpha", 1, True)
        assert len(await store.read_since("signals:alpha", 0, 10)) == 1
        assert await store.read_since("signals:beta", 0, 10) == []
        page = await store.list_signals(SignalFilter())
        assert [v.id for v in page.items] == [signal.id]

    async def test_append_many_is_each_call_in_order(self, store: Store, clock: Clock) -> None:
        first, second = make_signal(clock, accounts=["1"]), make_signal(clock, accounts=["2"])
        await store.publish_signal(first)
        results = await store.append_many(
            [
                AppendRequest("signals:alpha", {}, signal=second),
                AppendRequest("signals:alpha", {}, signal=first),  # already stored: duplicate
                AppendRequest("signals:alpha", {}, signal=second),  # earlier in this very call
                AppendRequest("notes:x", {"n": 1}, message_id="m1", expires_at_ms=5),
                AppendRequest("notes:x", {"n": 2}),
                AppendRequest("notes:x", {"n": 1}, message_id="m1"),
            ]
        )
        assert [(r.channel, r.offset, r.duplicate) for r in results] == [
            ("signals:alpha", 2, False),
            ("signals:alpha", 1, True),
            ("signals:alpha", 2, True),
            ("notes:x", 1, False),
            ("notes:x", 2, False),
            ("notes:x", 1, True),
        ]
        assert len({r.epoch for r in results[:3]}) == 1
        entries = await store.read_since("notes:x", 0, 10)
        assert [(e.offset, e.payload, e.expires_at_ms) for e in entries] == [
            (1, {"n": 1}, 5),
            (2, {"n": 2}, None),
        ]
        view = await store.get_signal(second.id)
        assert view is not None and view.offset == 2
        assert [(d.account, d.status) for d in view.deliveries] == [("2", DeliveryStatus.PENDING)]
        assert await store.append_many([]) == []
        with pytest.raises(ValueError):
            await store.append_many([AppendRequest("", {})])

    async def test_statuses_move_only_forward(self, store: Store, clock: Clock) -> None:
        signal = make_signal(clock, accounts=["1"])
        await store.publish_signal(signal)
        t = clock.ms
        steps = [
            (DeliveryStatus.DELIVERED, True),
            (DeliveryStatus.DELIVERED, False),
            (DeliveryStatus.PENDING, False),
            (DeliveryStatus.ACKED, True),
            (DeliveryStatus.EXECUTED, True),
            (DeliveryStatus.REJECTED, False),
            (DeliveryStatus.EXPIRED, False),
        ]
        for n, (status, expected) in enumerate(steps, 1):
            assert await store.update_statuses([StatusUpdate(signal.id, "1", status, t + n)]) == [expected]
        view = await store.get_signal(signal.id)
        assert view is not None
        (delivery,) = view.deliveries
        assert delivery.status is DeliveryStatus.EXECUTED
        assert delivery.times == {"pending": t, "delivered": t + 1, "acked": t + 4, "executed": t + 5}
        assert delivery.updated_at_ms == t + 5

    async def test_statuses_in_one_batch_apply_in_order(self, store: Store, clock: Clock) -> None:
        signal = make_signal(clock, accounts=[], groups=["vip"])
        await store.publish_signal(signal)
        t = clock.ms
        updates = [
            StatusUpdate(signal.id, "7", DeliveryStatus.DELIVERED, t + 1),
            StatusUpdate(signal.id, "7", DeliveryStatus.ACKED, t + 2),
            StatusUpdate(signal.id, "7", DeliveryStatus.DELIVERED, t + 3),
            StatusUpdate(signal.id, "7", DeliveryStatus.REJECTED, t + 4, detail="retcode 10016"),
            StatusUpdate(str(uuid.uuid4()), "7", DeliveryStatus.DELIVERED, t + 5),
        ]
        assert await store.update_statuses(updates) == [True, True, False, True, False]
        view = await store.get_signal(signal.id)
        assert view is not None
        (delivery,) = view.deliveries
        assert (delivery.account, delivery.status, delivery.detail) == (
            "7",
            DeliveryStatus.REJECTED,
            "retcode 10016",
        )
        assert delivery.times == {"delivered": t + 1, "acked": t + 2, "rejected": t + 4}

    async def test_concurrent_status_updates_are_consistent(self, store: Store, clock: Clock) -> None:
        signals = [make_signal(clock, accounts=["1", "2"]) for _ in range(20)]
        await asyncio.gather(*(store.publish_signal(s) for s in signals))
        statuses = [DeliveryStatus.DELIVERED, DeliveryStatus.ACKED, DeliveryStatus.EXECUTED]
        calls = [
            store.update_statuses([StatusUpdate(s.id, account, status, clock.ms + 1)])
            for status in statuses
            for s in signals
            for account in ("1", "2")
        ]
        results = await asyncio.gather(*calls)
        assert all(r == [True] for r in results)
        page = await store.list_signals(SignalFilter(status=DeliveryStatus.EXECUTED), limit=100)
        assert len(page.items) == 20
        assert all(d.status is DeliveryStatus.EXECUTED for v in page.items for d in v.deliveries)

    async def test_expire_signals_marks_waiting_deliveries(self, store: Store, clock: Clock) -> None:
        short = make_signal(clock, accounts=["1", "2", "3"], ttl=1)
        long = make_signal(clock, accounts=["1"], ttl=60)
        await store.publish_signal(short)
        await store.publish_signal(long)
        await store.update_statuses(
            [
                StatusUpdate(short.id, "2", DeliveryStatus.ACKED, clock.ms),
                StatusUpdate(short.id, "3", DeliveryStatus.EXECUTED, clock.ms),
            ]
        )
        assert await store.expire_signals(clock.ms + 500) == []
        expired = await store.expire_signals(clock.ms + 1000)
        assert sorted(expired) == [(short.id, "1"), (short.id, "2")]
        assert await store.expire_signals(clock.ms + 1000) == []
        view = await store.get_signal(short.id)
        assert view is not None
        assert [d.status for d in view.deliveries] == [
            DeliveryStatus.EXPIRED,
            DeliveryStatus.EXPIRED,
            DeliveryStatus.EXECUTED,
        ]
        # a late execution report still wins over the expiry
        assert await store.update_statuses(
            [StatusUpdate(short.id, "1", DeliveryStatus.EXECUTED, clock.ms)]
        ) == [True]

    async def test_list_signals_filters_and_paginates(self, store: Store, clock: Clock) -> None:
        published: list[Signal] = []
        for n in range(7):
            clock.now += 1
            signal = make_signal(
                clock, strategy="alpha" if n % 2 == 0 else "beta", accounts=[str(100 + n % 3)]
            )
            await store.publish_signal(signal)
            published.append(signal)
        newest_first = [s.id for s in reversed(published)]
        seen: list[str] = []
        cursor: str | None = None
        while True:
            page = await store.list_signals(SignalFilter(), cursor=cursor, limit=3)
            seen.extend(v.id for v in page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == newest_first
        alpha = await store.list_signals(SignalFilter(strategy="alpha"))
        assert [v.id for v in alpha.items] == [s.id for s in reversed(published) if s.strategy == "alpha"]
        by_account = await store.list_signals(SignalFilter(account="101"))
        assert [v.id for v in by_account.items] == [published[4].id, published[1].id]
        window = await store.list_signals(
            SignalFilter(since_ms=published[2].created_at, until_ms=published[4].created_at)
        )
        assert [v.id for v in window.items] == [published[3].id, published[2].id]
        with pytest.raises(InvalidCursor):
            await store.list_signals(SignalFilter(), cursor="not-a-cursor")
        assert await store.get_signal(str(uuid.uuid4())) is None


class TestEvents:
    async def test_insert_events_is_idempotent(self, store: Store) -> None:
        first, second = make_event(), make_event("order")
        assert await store.insert_events([first, second, first]) == [True, True, False]
        assert await store.insert_events([second, make_event(event_id=first.id)]) == [False, False]
        third = make_event()
        assert await store.insert_events([third, first, third]) == [True, False, False]  # new and old mixed
        page = await store.list_events(EventFilter())
        assert [e.id for e in page.items] == [third.id, second.id, first.id]
        assert page.items[2].payload == first.to_payload()

    async def test_insert_events_concurrently_stores_each_once(self, store: Store) -> None:
        events = [make_event(account=str(1000 + n % 4)) for n in range(300)]
        calls = [store.insert_events(events[n : n + 7]) for n in range(0, 300, 7)]
        calls += [store.insert_events(events[n : n + 11]) for n in range(0, 300, 11)]
        results = await asyncio.gather(*calls)
        assert sum(flag for result in results for flag in result) == 300
        stored = [e async for e in store.iter_events(EventFilter(), batch_size=64)]
        assert sorted(e.id for e in stored) == sorted(e.id for e in events)
        seqs = [e.seq for e in stored]
        assert seqs == sorted(seqs) and len(set(seqs)) == 300

    async def test_record_events_stores_appends_and_moves_status_once(
        self, store: Store, clock: Clock
    ) -> None:
        signal = make_signal(clock, accounts=["1"])
        await store.publish_signal(signal)
        channel = "account:1:events"
        deal = make_event(account="1", signal_id=signal.id)
        order = make_event("order", account="1")
        executed = StatusUpdate(signal.id, "1", DeliveryStatus.EXECUTED, clock.ms + 5)
        first = await store.record_events(
            [
                EventWrite(deal, channel, executed),
                EventWrite(order, channel),
                EventWrite(deal, channel, executed),
            ]
        )
        assert [(r.new, r.appended.offset, r.appended.duplicate, r.status_moved) for r in first] == [
            (True, 1, False, True),
            (True, 2, False, False),
            (False, 1, True, False),
        ]
        assert first[0].appended.epoch == (await store.position(channel)).epoch
        again = await store.record_events([EventWrite(order, channel), EventWrite(deal, channel, executed)])
        assert [(r.new, r.appended.offset, r.appended.duplicate, r.status_moved) for r in again] == [
            (False, 2, True, False),
            (False, 1, True, False),
        ]
        entries = await store.read_since(channel, 0, 10)
        assert [(e.offset, e.payload) for e in entries] == [(1, deal.to_payload()), (2, order.to_payload())]
        assert [e.id for e in (await store.list_events(EventFilter())).items] == [order.id, deal.id]
        view = await store.get_signal(signal.id)
        assert view is not None and view.deliveries[0].status is DeliveryStatus.EXECUTED
        # an event stored without its channel entry (an older hub crashed between two commits) gets it now
        orphan = make_event(account="1")
        assert await store.insert_events([orphan]) == [True]
        healed = await store.record_events([EventWrite(orphan, channel)])
        assert not healed[0].new and healed[0].appended.offset == 3 and not healed[0].appended.duplicate

    async def test_message_id_on_channel_before_its_event_or_signal_is_a_duplicate(
        self, store: Store, clock: Clock
    ) -> None:
        """A plain append that took the id of an event or signal not stored yet: the event is new but not
        appended again, the signal is a duplicate and not recorded, alone or among other calls (SQL: the
        writer's shortcuts fail and the batch is re-run with every id looked up)."""
        channel = "account:1:events"
        signal, alone = make_signal(clock, accounts=["1"]), make_signal(clock, accounts=["1"])
        event, single = make_event(account="1", signal_id=signal.id), make_event(account="1")
        for name, message_id in ((channel, event.id), (signal.channel, signal.id), (channel, single.id)):
            await store.append(name, message_id, {"early": True})
        await store.append(alone.channel, alone.id, {"early": True})
        others = [make_event(account="1") for _ in range(4)]
        executed = StatusUpdate(signal.id, "1", DeliveryStatus.EXECUTED, clock.ms)
        results: list[Any] = await asyncio.gather(
            store.record_events([EventWrite(others[0], channel)]),
            store.record_events([EventWrite(event, channel, executed)]),
            store.publish_signal(signal),
            *(store.record_events([EventWrite(e, channel)]) for e in others[1:]),
        )
        record = results[1][0]
        assert record.new and record.appended.duplicate and record.appended.offset == 1
        assert not record.status_moved  # the signal it executes was never recorded
        assert (results[2].offset, results[2].duplicate) == (1, True)
        assert [r[0].appended.offset for r in (results[0], *results[3:])] == [3, 4, 5, 6]
        (solo,) = await store.record_events([EventWrite(single, channel)])
        assert solo.new and (solo.appended.offset, solo.appended.duplicate) == (2, True)
        (published,) = await store.append_many([AppendRequest(alone.channel, {}, signal=alone)])
        assert (published.offset, published.duplicate) == (2, True)
        assert await store.get_signal(signal.id) is None and await store.get_signal(alone.id) is None
        entries = await store.read_since(channel, 0, 10)
        assert [e.offset for e in entries] == [1, 2, 3, 4, 5, 6]
        assert [e.payload.get("id") for e in entries[2:]] == [e.id for e in others]
        stored = {e.id for e in (await store.list_events(EventFilter())).items}
        assert stored == {event.id, single.id, *(e.id for e in others)}

    async def test_record_events_concurrently_keeps_offsets_gap_free(
        self, store: Store, clock: Clock
    ) -> None:
        signals = [make_signal(clock, accounts=[str(n % 3)]) for n in range(60)]
        await asyncio.gather(*(store.publish_signal(s) for s in signals))
        events = [make_event(account=str(n % 3), signal_id=signals[n].id) for n in range(60)]

        async def one(n: int) -> Any:
            e = events[n]
            status = StatusUpdate(e.signal_id or "", e.account, DeliveryStatus.EXECUTED, clock.ms)
            write = EventWrite(e, f"account:{e.account}:events", status)
            acked = StatusUpdate(e.signal_id or "", e.account, DeliveryStatus.ACKED, clock.ms)
            (await store.update_statuses([acked]))  # interleaved with the records of other events
            return await store.record_events([write, write])

        results = await asyncio.gather(*(one(n) for n in range(60)), *(one(n) for n in range(0, 60, 2)))
        assert sum(r[0].new for r in results) == 60
        assert all(not r[1].new and r[1].appended.offset == r[0].appended.offset for r in results)
        assert sum(r[0].status_moved for r in results) == 60
        for account in ("0", "1", "2"):
            entries = await store.read_since(f"account:{account}:events", 0, 100)
            assert [e.offset for e in entries] == list(range(1, 21))
            assert sorted(e.payload["id"] for e in entries) == sorted(
                e.id for e in events if e.account == account
            )
        for s in signals:
            view = await store.get_signal(s.id)
            assert view is not None and view.deliveries[0].status is DeliveryStatus.EXECUTED

    async def test_list_events_filters_and_paginates(self, store: Store) -> None:
        signal_id = str(uuid.uuid4())
        events = [
            make_event("deal", account="1", ts=1000, signal_id=signal_id),
            make_event("order", account="1", ts=2000),
            make_event("deal", account="2", ts=3000),
            make_event("order", account="2", ts=4000, signal_id=signal_id),
            make_event("deal", account="1", ts=5000),
        ]
        for e in events:
            await store.insert_events([e])

        async def ids(filters: EventFilter) -> list[str]:
            return [e.id for e in (await store.list_events(filters)).items]

        assert await ids(EventFilter(account="1")) == [events[4].id, events[1].id, events[0].id]
        assert await ids(EventFilter(kind="order")) == [events[3].id, events[1].id]
        assert await ids(EventFilter(signal_id=signal_id)) == [events[3].id, events[0].id]
        assert await ids(EventFilter(since_ms=2000, until_ms=4000)) == [events[2].id, events[1].id]
        pages: list[list[str]] = []
        cursor: str | None = None
        while True:
            page = await store.list_events(EventFilter(), cursor=cursor, limit=2)
            pages.append([e.id for e in page.items])
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert pages == [[events[4].id, events[3].id], [events[2].id, events[1].id], [events[0].id]]
        exported = [e.id async for e in store.iter_events(EventFilter(account="2"), batch_size=1)]
        assert exported == [events[2].id, events[3].id]

    async def test_account_event_updates_snapshot_when_newer(self, store: Store) -> None:
        newer = make_event("account", account="9", ts=2000, equity=1500.0)
        older = make_event("account", account="9", ts=1000, equity=900.0)
        await store.insert_events([newer])
        await store.insert_events([older])
        account = await store.get_account("9")
        assert account is not None
        assert account.snapshot is not None and account.snapshot["equity"] == 1500.0
        assert account.snapshot_ts_ms == 2000


class TestAccountsAndRevocations:
    async def test_touch_accounts_never_moves_back(self, store: Store) -> None:
        await store.touch_accounts(["2", "1"], 5000)
        await store.touch_accounts(["1"], 4000)
        await store.touch_accounts(["1"], 6000)
        accounts = await store.list_accounts()
        assert [(a.login, a.last_seen_ms) for a in accounts] == [("1", 6000), ("2", 5000)]
        assert await store.get_account("3") is None
        await store.insert_events([make_event("account", account="2", ts=7000)])
        two = await store.get_account("2")
        assert two is not None and two.last_seen_ms == 5000 and two.snapshot_ts_ms == 7000

    async def test_revocations_persist_until_expiry(self, store: Store) -> None:
        await store.revoke("jti", "token-1", revoked_at_ms=100, expires_at_ms=1000, reason="leaked")
        await store.revoke("sub", "ea-1", revoked_at_ms=100, expires_at_ms=5000)
        await store.revoke("jti", "token-1", revoked_at_ms=200, expires_at_ms=2000)
        active = await store.list_revocations(1500)
        assert [(r.kind, r.value, r.revoked_at_ms, r.reason) for r in active] == [
            ("jti", "token-1", 200, None),
            ("sub", "ea-1", 100, None),
        ]
        assert [r.value for r in await store.list_revocations(2000)] == ["ea-1"]
        with pytest.raises(ValueError, match="kind"):
            await store.revoke("iss", "x", revoked_at_ms=1, expires_at_ms=2)  # type: ignore[arg-type]


class TestRetention:
    async def test_retention_trims_old_rows_and_keeps_offsets(self, store: Store, clock: Clock) -> None:
        old_signal = make_signal(clock, accounts=["1"])
        await store.publish_signal(old_signal)
        for n in range(4):
            await store.append("c", f"m{n}", {"n": n})
        await store.insert_events([make_event() for _ in range(5)])
        await store.revoke("jti", "old", revoked_at_ms=clock.ms, expires_at_ms=clock.ms + 10)
        cutoff = clock.ms + 1
        clock.now += 10
        new_signal = make_signal(clock, accounts=["1"])
        await store.publish_signal(new_signal)
        await store.append("c", "m4", {"n": 4})
        recent = make_event()
        await store.insert_events([recent])

        result = await store.apply_retention(cutoff, batch_size=2)
        assert (result.log_entries, result.signals, result.deliveries, result.events, result.revocations) == (
            5,
            1,
            1,
            5,
            1,
        )
        position = await store.position("c")
        assert (position.last_offset, position.first_available_offset) == (5, 5)
        assert not position.can_recover(2, position.epoch) and position.can_recover(4, position.epoch)
        assert [e.offset for e in await store.read_since("c", 0, 10)] == [5]
        assert (await store.append("c", None, {})).offset == 6
        assert await store.get_signal(old_signal.id) is None
        assert await store.get_signal(new_signal.id) is not None
        assert [e.id for e in (await store.list_events(EventFilter())).items] == [recent.id]
        assert await store.list_revocations(0) == []
        empty = await store.apply_retention(cutoff)
        assert (empty.log_entries, empty.signals, empty.events) == (0, 0, 0)


class TestLifecycle:
    async def test_closed_store_refuses_calls(self, make_store: StoreFactory) -> None:
        store = await make_store()
        await store.close()
        await store.close()
        with pytest.raises(StoreClosed):
            await store.append("c", None, {})
        with pytest.raises(StoreClosed):
            await store.read_since("c", 0, 1)

    async def test_store_satisfies_protocol(self, store: Store) -> None:
        assert isinstance(store, Store)
