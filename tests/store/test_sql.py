"""SQL-specific behaviour: durability across reopen, group commit, migrations, error translation."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event

from bridge.protocol.delivery import DeliveryStatus
from bridge.protocol.events import parse_event
from bridge.protocol.signals import parse_signal
from bridge.store import (
    EventFilter,
    SignalFilter,
    SQLStore,
    StatusUpdate,
    StoreError,
    StoreUnavailable,
    open_store,
)
from bridge.store import queries as q
from bridge.store.schema import metadata
from bridge.store.sql import normalize_url
from bridge.store.sqlite import SQLITE_WAL_AUTOCHECKPOINT, sqlite_path
from tests.support import factories
from tests.support.store import Clock

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    """(url, schema) of an empty database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", None
    schema: str = request.getfixturevalue("pg_schema")
    return PG_URL, schema


def new_store(sql_url: tuple[str, str | None], clock: Clock | None = None) -> SQLStore:
    url, schema = sql_url
    return SQLStore(url, schema=schema, clock=clock or Clock())


def signal(strategy: str, account: str) -> Any:
    obj = factories.signal(strategy, [account], stops=False, side="sell", volume=1, ttl=60)
    return parse_signal(obj, Clock().now)


def deal(account: str) -> Any:
    obj = {
        "id": str(uuid.uuid4()),
        "kind": "deal",
        "account": account,
        "ts": 1,
        "ticket": 5,
        "symbol": "X",
        "side": "buy",
        "entry": "in",
        "volume": 1,
        "price": 1,
    }
    return parse_event(obj, 0)


async def test_every_awaited_write_survives_reopen(sql_url: tuple[str, str | None]) -> None:
    store = new_store(sql_url)
    await store.start()
    await store.migrate()
    signals = [signal(f"s{n % 4}", str(n % 5)) for n in range(200)]
    events = [deal(str(n % 5)) for n in range(500)]
    try:
        published, appended, inserted = await asyncio.gather(
            asyncio.gather(*(store.publish_signal(s) for s in signals)),
            asyncio.gather(*(store.append("account:1:x", f"m{n}", {"n": n}) for n in range(300))),
            asyncio.gather(*(store.insert_events(events[n : n + 10]) for n in range(0, 500, 10))),
        )
        moved = await asyncio.gather(
            *(
                store.update_statuses([StatusUpdate(s.id, s.accounts[0], DeliveryStatus.ACKED, 5)])
                for s in signals
            )
        )
    finally:
        await store.close()
    assert all(m == [True] for m in moved)
    assert all(flag for flags in inserted for flag in flags)

    reopened = new_store(sql_url)
    await reopened.start()
    try:
        for s, result in zip(signals, published, strict=True):
            view = await reopened.get_signal(s.id)
            assert view is not None and (view.channel, view.offset) == (result.channel, result.offset)
            assert [d.status for d in view.deliveries] == [DeliveryStatus.ACKED]
        for strategy in ("s0", "s1", "s2", "s3"):
            entries = await reopened.read_since(f"signals:{strategy}", 0, 1000)
            assert [e.offset for e in entries] == list(range(1, 51))
        log = await reopened.read_since("account:1:x", 0, 1000)
        assert {e.offset: e.payload for e in log} == {r.offset: {"n": n} for n, r in enumerate(appended)}
        stored = [e.id async for e in reopened.iter_events(EventFilter())]
        assert sorted(stored) == sorted(e.id for e in events)
        assert len((await reopened.list_signals(SignalFilter(), limit=1000)).items) == 200
    finally:
        await reopened.close()


async def test_concurrent_writes_share_transactions(sql_url: tuple[str, str | None]) -> None:
    store = new_store(sql_url)
    await store.start()
    await store.migrate()
    commits = 0
    assert store._transactions is not None
    writer = store._transactions.sync_engine

    @event.listens_for(writer, "commit")
    def count(_conn: Any) -> None:
        nonlocal commits
        commits += 1

    try:
        results = await asyncio.gather(*(store.append("c", None, {"n": n}) for n in range(500)))
    finally:
        await store.close()
    assert sorted(r.offset for r in results) == list(range(1, 501))
    assert 1 <= commits < 250


async def test_failing_call_does_not_fail_its_batch(sql_url: tuple[str, str | None]) -> None:
    store = new_store(sql_url)
    await store.start()
    await store.migrate()

    def broken(conn: sa.Connection) -> None:
        conn.execute(sa.text("SELECT * FROM no_such_table"))

    try:
        results = await asyncio.gather(
            *(store.append("c", f"m{n}", {}) for n in range(20)),
            store._call(broken),
            *(store.append("c", f"m{n}", {}) for n in range(20, 40)),
            return_exceptions=True,
        )
        assert isinstance(results[20], StoreError) and not results[20].retryable
        offsets = [r.offset for r in results if not isinstance(r, BaseException)]
        assert sorted(offsets) == list(range(1, 41))
        assert [e.offset for e in await store.read_since("c", 0, 100)] == list(range(1, 41))
    finally:
        await store.close()


async def test_migrations_from_empty_match_the_schema(sql_url: tuple[str, str | None]) -> None:
    store = new_store(sql_url)
    await store.start()
    try:
        await store.migrate()
        await store.migrate()  # idempotent
        async with store._reader().connect() as conn:
            version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar()

            def diff(sync_conn: sa.Connection) -> list[Any]:
                context = MigrationContext.configure(sync_conn)
                return list(compare_metadata(context, metadata))

            differences = await conn.run_sync(diff)
        assert version == "0002"
        assert differences == []
    finally:
        await store.close()


async def test_sqlite_runs_in_wal_with_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        await store.append("c", None, {})
        assert isinstance(store, SQLStore)
        synchronous = await store._run_write(lambda c: c.exec_driver_sql("PRAGMA synchronous").scalar())
        assert synchronous == 2  # FULL
        checkpoint = await store._run_write(lambda c: c.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar())
        assert checkpoint == SQLITE_WAL_AUTOCHECKPOINT
    finally:
        await store.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_unmigrated_database_is_a_store_error(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    await store.start()
    try:
        with pytest.raises(StoreError) as info:
            await store.read_since("c", 0, 1)
        assert not isinstance(info.value, StoreUnavailable)
        with pytest.raises(StoreError):
            await store.append("c", None, {})
    finally:
        await store.close()


async def test_unreachable_database_is_retryable() -> None:
    store = SQLStore("postgresql+asyncpg://postgres@127.0.0.1:1/test")
    await store.start()
    try:
        with pytest.raises(StoreUnavailable) as info:
            await store.read_since("c", 0, 1)
        assert info.value.retryable
        with pytest.raises(StoreUnavailable):
            await store.append("c", None, {})
    finally:
        await store.close()


async def test_append_rejects_oversized_names(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with pytest.raises(ValueError, match="channel"):
            await store.append("c" * 201, None, {})
        with pytest.raises(ValueError, match="message_id"):
            await store.append("c", "m" * 65, {})
    finally:
        await store.close()


def test_normalize_url_picks_async_drivers() -> None:
    assert normalize_url("sqlite:///a.db").drivername == "sqlite+aiosqlite"
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+asyncpg"
    assert normalize_url("postgresql+asyncpg://u@h/db").drivername == "postgresql+asyncpg"
    with pytest.raises(ValueError, match="unsupported"):
        normalize_url("mysql://u@h/db")
    with pytest.raises(ValueError, match="file path"):
        sqlite_path(normalize_url("sqlite:///:memory:"))


def test_update_delivery_sets_only_the_named_columns() -> None:
    """update_delivery's parameters are status, time, the named columns in order, then the row's key."""

    sqlite = q.update_delivery(("detail", "acked_at_ms"), "sqlite")
    assert sqlite == (
        "UPDATE signal_deliveries SET status = ?, updated_at_ms = ?, detail = ?, acked_at_ms = ? "
        "WHERE signal_id = ? AND account = ? AND status = ?"
    )
    assert q.update_delivery(("executed_at_ms",), "postgresql") == (
        "UPDATE signal_deliveries SET status = $1, updated_at_ms = $2, executed_at_ms = $3 "
        "WHERE signal_id = $4 AND account = $5 AND status = $6"
    )


async def test_status_steps_of_one_batch_keep_every_time(sql_url: tuple[str, str | None]) -> None:
    """Steps of one delivery collapsed into one UPDATE keep each status's time and the last detail, and
    leave the times of earlier batches alone (PostgreSQL: one statement over column arrays)."""
    clock = Clock()
    store = new_store(sql_url, clock)
    await store.start()
    try:
        await store.migrate()
        s = signal("alpha", "1")
        await store.publish_signal(s)
        moved = await asyncio.gather(
            store.update_statuses([StatusUpdate(s.id, "1", DeliveryStatus.DELIVERED, 10)]),
            store.update_statuses([StatusUpdate(s.id, "1", DeliveryStatus.ACKED, 20, "seen")]),
            store.update_statuses([StatusUpdate(s.id, "1", DeliveryStatus.DELIVERED, 30)]),
        )
        assert list(moved) == [[True], [True], [False]]
        await store.update_statuses([StatusUpdate(s.id, "1", DeliveryStatus.REJECTED, 40, "x" * 300)])
        view = await store.get_signal(s.id)
        assert view is not None
        (delivery,) = view.deliveries
        assert delivery.status is DeliveryStatus.REJECTED and delivery.updated_at_ms == 40
        assert delivery.times == {"pending": clock.ms, "delivered": 10, "acked": 20, "rejected": 40}
        assert delivery.detail == "x" * 256
    finally:
        await store.close()


async def test_a_later_step_without_detail_keeps_the_detail(sql_url: tuple[str, str | None]) -> None:
    """A step that sets no detail, batched with one that does, leaves the earlier detail and times
    alone (PostgreSQL writes both in one statement, where an unset column keeps its value)."""
    store = new_store(sql_url)
    await store.start()
    try:
        await store.migrate()
        a, b = signal("alpha", "1"), signal("alpha", "2")
        await store.publish_signal(a)
        await store.publish_signal(b)
        await store.update_statuses([StatusUpdate(a.id, "1", DeliveryStatus.ACKED, 10, "seen")])
        moved = await store.update_statuses(
            [
                StatusUpdate(a.id, "1", DeliveryStatus.EXECUTED, 20),
                StatusUpdate(b.id, "2", DeliveryStatus.REJECTED, 30, "no money"),
            ]
        )
        assert moved == [True, True]
        view_a, view_b = await store.get_signal(a.id), await store.get_signal(b.id)
        assert view_a is not None and view_b is not None
        (da,), (db,) = view_a.deliveries, view_b.deliveries
        assert (da.status, da.detail, da.updated_at_ms) == (DeliveryStatus.EXECUTED, "seen", 20)
        assert {k: v for k, v in da.times.items() if k != "pending"} == {"acked": 10, "executed": 20}
        assert (db.status, db.detail) == (DeliveryStatus.REJECTED, "no money")
        assert {k: v for k, v in db.times.items() if k != "pending"} == {"rejected": 30}
    finally:
        await store.close()


async def test_one_batch_moves_many_deliveries_in_several_shapes(sql_url: tuple[str, str | None]) -> None:
    """A batch of status changes of many deliveries, grouped by the columns they set, each applied once;
    a stale one (its delivery moved on meanwhile) changes nothing. Channel offsets of several channels
    move in the same batch."""
    store = new_store(sql_url)
    await store.start()
    try:
        await store.migrate()
        published = [signal(f"s{n % 3}", str(n)) for n in range(30)]
        await asyncio.gather(*(store.publish_signal(s) for s in published))
        first = [
            StatusUpdate(s.id, str(n), DeliveryStatus.DELIVERED, 100 + n) for n, s in enumerate(published)
        ]
        assert await store.update_statuses(first) == [True] * 30
        second: list[StatusUpdate] = []
        for n, s in enumerate(published):
            if n % 3 == 0:
                second.append(StatusUpdate(s.id, str(n), DeliveryStatus.ACKED, 200 + n))
            elif n % 3 == 1:
                second.append(StatusUpdate(s.id, str(n), DeliveryStatus.REJECTED, 300 + n, f"retcode {n}"))
            else:
                second += [
                    StatusUpdate(s.id, str(n), DeliveryStatus.ACKED, 200 + n),
                    StatusUpdate(s.id, str(n), DeliveryStatus.EXECUTED, 400 + n),
                    StatusUpdate(s.id, str(n), DeliveryStatus.DELIVERED, 500 + n),  # a step back: refused
                ]
        moved = await store.update_statuses(second)
        assert moved == [u.status is not DeliveryStatus.DELIVERED for u in second]
        for n, s in enumerate(published):
            view = await store.get_signal(s.id)
            assert view is not None
            (delivery,) = view.deliveries
            times = {k: v for k, v in delivery.times.items() if k != "pending"}
            if n % 3 == 0:
                assert (delivery.status, delivery.detail) == (DeliveryStatus.ACKED, None)
                assert times == {"delivered": 100 + n, "acked": 200 + n}
            elif n % 3 == 1:
                assert (delivery.status, delivery.detail) == (DeliveryStatus.REJECTED, f"retcode {n}")
                assert times == {"delivered": 100 + n, "rejected": 300 + n}
            else:
                assert delivery.status is DeliveryStatus.EXECUTED and delivery.updated_at_ms == 400 + n
                assert times == {"delivered": 100 + n, "acked": 200 + n, "executed": 400 + n}
        for strategy, count in (("s0", 10), ("s1", 10), ("s2", 10)):
            assert (await store.position(f"signals:{strategy}")).last_offset == count
    finally:
        await store.close()


async def test_postgres_writer_probes_by_key_on_a_young_table(pg_schema: str) -> None:
    """The writer's status UPDATE and delivery lookup reach rows through the primary key even while the
    table is young, where the default planner picks a sequential scan (and a hash join) over it."""
    store = SQLStore(PG_URL, schema=pg_schema, clock=Clock())
    await store.start()
    try:
        await store.migrate()
        published = [signal("young", str(n % 5)) for n in range(400)]
        await asyncio.gather(*(store.publish_signal(s) for s in published))
        ids = [s.id for s in published[:300]]
        accounts = [str(n % 5) for n in range(300)]
        update = q.update_deliveries_pg(("delivered_at_ms",))
        rows = [("delivered", 1, 1, i, a, "pending") for i, a in zip(ids, accounts, strict=True)]
        params = (orjson.dumps(rows).decode(),)
        lookup = q.member(q.SELECT_DELIVERY_STATES, len(ids), "postgresql")

        def plans(conn: sa.Connection) -> list[str]:
            texts = []
            for sql, args in ((update, params), (lookup, q.member_params(ids, "postgresql"))):
                rows = conn.exec_driver_sql(f"EXPLAIN {sql}", args).all()
                texts.append("\n".join(row[0] for row in rows))
            return texts

        update_plan, lookup_plan = await store._run_write(plans)
        for plan in (update_plan, lookup_plan):
            assert "Seq Scan on signal_deliveries" not in plan, plan
            assert "Hash Join" not in plan, plan
        conds = [line for line in update_plan.splitlines() if "Index Cond" in line]
        assert any("signal_id" in line and "account" in line for line in conds), update_plan
        lookup_conds = [line for line in lookup_plan.splitlines() if "Index Cond" in line]
        assert any("signal_id" in line for line in lookup_conds), lookup_plan
    finally:
        await store.close()
