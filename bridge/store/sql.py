"""The SQL store (:class:`SQLStore`, SQLAlchemy 2 async, on SQLite or PostgreSQL): its lifecycle,
migrations, every read, and the public write API, which builds typed operations and hands them to the
writer.

Where the rest lives:

- :mod:`bridge.store.ops`: the write operations (one class per kind) and their results;
- :mod:`bridge.store.writer`: group commit (the queue, the batching loop, the one retry rule);
- :mod:`bridge.store.executor`: a batch of operations as statements, and delivery status changes;
- :mod:`bridge.store.logwriter`: channel rows and offset allocation;
- :mod:`bridge.store.sqlite` and :mod:`bridge.store.postgres`: each database's engines and writer thread,
  with its durability choices;
- :mod:`bridge.store.translate`: driver errors into :mod:`bridge.store.exceptions`;
- :mod:`bridge.store.queries` and :mod:`bridge.store.params`: the statements and their parameters.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

import bridge.store.queries as q
from bridge.protocol.delivery import DeliveryStatus
from bridge.protocol.events import TradeEvent
from bridge.protocol.signals import Signal
from bridge.store.base import (
    DEFAULT_PAGE_SIZE,
    Account,
    Appended,
    AppendRequest,
    Delivery,
    EventFilter,
    EventRecord,
    EventWrite,
    Page,
    Position,
    RetentionResult,
    Revocation,
    RevocationKind,
    SignalFilter,
    SignalView,
    StatusUpdate,
    Stored,
    StoredEvent,
    check_append,
    page_limit,
    parse_cursor,
)
from bridge.store.exceptions import MigrationError, StoreClosed, StoreUnavailable
from bridge.store.executor import Executor, apply_transitions
from bridge.store.logwriter import lock_channels, new_epoch
from bridge.store.ops import Append, AppendRow, Appends, Call, EventRow, Events, Record, Status
from bridge.store.outage import OutageLog
from bridge.store.params import chunks, dumps, loads
from bridge.store.postgres import MIGRATION_LOCK, PostgresWriter, postgres_engine
from bridge.store.schema import STATUS_COLUMNS
from bridge.store.sqlite import DEFAULT_BUSY_TIMEOUT_MS, SQLITE_SYNCHRONOUS, SQLiteWriter, sqlite_reader
from bridge.store.translate import wrap_exceptions
from bridge.store.writer import Writer

__all__ = ["DEFAULT_POOL_SIZE", "TOPS_CHUNK", "SQLStore", "normalize_url"]

logger = logging.getLogger("mtbridge.store")

T = TypeVar("T")

#: Channel names per statement of ``tops`` (a cluster node's periodic gap check): one IN list of
#: at most this many bound parameters, far under PostgreSQL's 65,535 and SQLite's 32,766.
TOPS_CHUNK = 5_000
#: Reader connections (the writer has its own).
DEFAULT_POOL_SIZE = 4


def normalize_url(url: str) -> sa.URL:
    """Use the async driver when the URL names another (``sqlite://`` -> aiosqlite, ``postgresql://`` ->
    asyncpg)."""
    parsed = sa.make_url(url)
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend == "sqlite" and driver != "aiosqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend == "postgresql" and driver != "asyncpg":
        return parsed.set(drivername="postgresql+asyncpg")
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database backend: {backend}")
    return parsed


class SQLStore:
    """The SQL store: create, ``await start()`` (or ``async with``), ``await migrate()``, ``await close()``.

    Writes run as one synchronous function per batch transaction: on SQLite in a dedicated writer thread
    with the sqlite3 driver (one thread hand-off per batch instead of one per statement), on PostgreSQL
    through ``AsyncConnection.run_sync`` over asyncpg. Reads use the async engine (aiosqlite / asyncpg).

    Args:
        url: ``sqlite+aiosqlite:///path/to/file.db`` or ``postgresql+asyncpg://user@host/db`` (the driver is
            added when missing).
        schema: PostgreSQL schema to use (created by :meth:`migrate` if missing); ignored for SQLite.
        sqlite_synchronous: SQLite ``PRAGMA synchronous`` for the writer (see :mod:`bridge.store.sqlite`).
        clock: unix seconds; injected so tests control retention and timestamps.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        sqlite_synchronous: str = "FULL",
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        pool_size: int = DEFAULT_POOL_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = normalize_url(url)
        self.dialect = self.url.get_backend_name()
        if sqlite_synchronous.upper() not in SQLITE_SYNCHRONOUS:
            raise ValueError(f"sqlite_synchronous must be one of {SQLITE_SYNCHRONOUS}")
        self.schema = schema
        self._clock = clock
        self._synchronous = sqlite_synchronous.upper()
        self._busy_timeout_ms = busy_timeout_ms
        self._pool_size = pool_size
        self._engine: AsyncEngine | None = None  # reads
        self._transactions: SQLiteWriter | PostgresWriter | None = None  # writes
        self._writer: Writer | None = None
        self._executor = Executor(self.dialect, self._now_ms)
        self._closed = False
        self.outage = OutageLog(logger)

    # --- lifecycle ---

    async def __aenter__(self) -> SQLStore:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        if self._closed:
            raise StoreClosed("store is closed")
        if self._writer is not None:
            return
        transactions: SQLiteWriter | PostgresWriter
        if self.dialect == "sqlite":
            busy = self._busy_timeout_ms
            self._engine = sqlite_reader(self.url, busy_timeout_ms=busy, pool_size=self._pool_size)
            transactions = SQLiteWriter(self.url, synchronous=self._synchronous, busy_timeout_ms=busy)
        else:
            self._engine = postgres_engine(self.url, schema=self.schema, pool_size=self._pool_size)
            transactions = PostgresWriter(self.url, schema=self.schema)
        self._transactions = transactions
        self._writer = Writer(transactions.run, self._executor.run, self.outage)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            try:
                await self._writer.close()
            finally:
                self._writer = None
        if self._engine is not None:
            await self._engine.dispose()
        if self._transactions is not None:
            await self._transactions.close()

    def _reader(self) -> AsyncEngine:
        if self._closed or self._engine is None:
            raise StoreClosed("store is closed" if self._closed else "store is not started")
        return self._engine

    def _writes(self) -> Writer:
        if self._closed or self._writer is None:
            raise StoreClosed("store is closed" if self._closed else "store is not started")
        return self._writer

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _run_write(self, fn: Callable[[sa.Connection], T]) -> T:
        """Run ``fn`` in one write transaction, outside the queue (migrations), once COMMIT has returned."""
        if self._transactions is None:
            raise StoreClosed("store is not started")
        return await self._transactions.run(fn)

    async def _call(self, fn: Callable[[sa.Connection], T], size: int = 1) -> T:
        """Run ``fn`` in the transaction of the writer's next batch (see :class:`~bridge.store.ops.Call`)."""
        op = Call(fn, size)
        await self._writes().submit(op)
        return op.result

    async def migrate(self) -> None:
        from alembic import command
        from alembic.config import Config

        self._reader()
        package = Path(str(resources.files("bridge.store")))
        config = Config(str(package / "alembic.ini"))
        config.set_main_option("script_location", str(package / "migrations"))
        schema = self.schema if self.dialect == "postgresql" else None

        def upgrade(connection: sa.Connection) -> None:
            if self.dialect == "postgresql":
                # Cluster nodes starting together on a fresh database: one migrates, the others
                # wait for its commit and then find the schema at head (held until COMMIT).
                connection.execute(sa.text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            if schema is not None:
                connection.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

        try:
            with wrap_exceptions("migrate", self.outage):
                await self._run_write(upgrade)
        except StoreUnavailable:
            raise
        except Exception as error:
            raise MigrationError(f"migration failed: {error}", operation="migrate") from error

    # --- channel log ---

    async def append(
        self,
        channel: str,
        message_id: str | None,
        payload: dict[str, Any],
        expires_at_ms: int | None = None,
    ) -> Appended:
        check_append(channel, message_id)
        op = Append(AppendRow(channel, message_id, dumps(payload), expires_at_ms, None))
        await self._writes().submit(op)
        return op.result

    async def publish_signal(self, signal: Signal) -> Appended:
        op = Append(
            AppendRow(signal.channel, signal.id, dumps(signal.to_payload()), signal.expires_at, signal)
        )
        await self._writes().submit(op)
        return op.result

    async def append_many(self, requests: Sequence[AppendRequest]) -> list[Appended]:
        if not requests:
            return []
        batch: list[AppendRow] = []
        for r in requests:
            signal = r.signal
            if signal is not None:
                batch.append(
                    AppendRow(
                        signal.channel,
                        signal.id,
                        dumps(r.payload or signal.to_payload()),
                        signal.expires_at,
                        signal,
                    )
                )
            else:
                check_append(r.channel, r.message_id)
                batch.append(AppendRow(r.channel, r.message_id, dumps(r.payload), r.expires_at_ms, None))
        op = Appends(batch)
        await self._writes().submit(op)
        return op.result

    async def read_since(self, channel: str, after_offset: int, limit: int) -> list[Stored]:
        reader = self._reader()
        with wrap_exceptions("read_since", self.outage):
            async with reader.connect() as conn:
                rows = await conn.execute(q.read_since(channel, after_offset, max(1, limit)))
                return [Stored(r.log_offset, loads(r.payload), r.expires_at_ms) for r in rows]

    def _read_position(self, conn: sa.Connection, channel: str) -> Position | None:
        row = conn.execute(q.select_channel(channel)).first()
        if row is None:
            return None
        first = conn.execute(q.min_offset(channel)).scalar()
        return Position(row.last_offset, row.epoch, first if first is not None else row.last_offset + 1)

    async def position(self, channel: str) -> Position:
        reader = self._reader()
        with wrap_exceptions("position", self.outage):
            async with reader.connect() as conn:
                found = await conn.run_sync(self._read_position, channel)
        if found is not None:
            return found

        def create(conn: sa.Connection) -> Position:
            lock_channels(conn, self.dialect, [channel], self._now_ms)
            created = self._read_position(conn, channel)
            assert created is not None
            return created

        return await self._call(create)

    async def tops(self, channels: Sequence[str]) -> dict[str, tuple[str, int]]:
        """One read on the reader pool; chunked at TOPS_CHUNK names to keep the IN list bounded."""
        out: dict[str, tuple[str, int]] = {}
        names = list(channels)
        if not names:
            return out
        reader = self._reader()
        with wrap_exceptions("tops"):
            async with reader.connect() as conn:
                for i in range(0, len(names), TOPS_CHUNK):
                    rows = await conn.execute(q.select_tops(names[i : i + TOPS_CHUNK]))
                    out.update({r.name: (r.epoch, r.last_offset) for r in rows})
        return out

    async def reset_channel(self, channel: str) -> Position:
        def reset(conn: sa.Connection) -> Position:
            lock_channels(conn, self.dialect, [channel], self._now_ms)
            conn.execute(q.delete_log(channel))
            conn.execute(q.reset_channel(channel, new_epoch()))
            position = self._read_position(conn, channel)
            assert position is not None
            return position

        return await self._call(reset)

    # --- trade events ---

    async def insert_events(self, events: Sequence[TradeEvent]) -> list[bool]:
        if not events:
            return []
        op = Events([EventRow(e, dumps(e.to_payload()), None, None) for e in events])
        await self._writes().submit(op)
        return op.result

    async def record_events(self, writes: Sequence[EventWrite]) -> list[EventRecord]:
        if not writes:
            return []
        requests: list[EventRow] = []
        for w in writes:
            check_append(w.channel, w.event.id)
            payload = w.payload if w.payload is not None else w.event.to_payload()
            requests.append(EventRow(w.event, dumps(payload), w.channel, w.status))
        op = Record(requests)
        await self._writes().submit(op)
        return op.result

    async def list_events(
        self,
        filters: EventFilter,
        *,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> Page[StoredEvent]:
        before = parse_cursor(cursor)
        size = page_limit(limit)
        items = await self._select_events(
            filters, before_seq=before, after_seq=None, newest_first=True, limit=size + 1
        )
        more = len(items) > size
        items = items[:size]
        return Page(items, str(items[-1].seq) if more and items else None)

    async def iter_events(
        self, filters: EventFilter, *, batch_size: int = 1000
    ) -> AsyncIterator[StoredEvent]:
        after: int | None = None
        while True:
            items = await self._select_events(
                filters, before_seq=None, after_seq=after, newest_first=False, limit=max(1, batch_size)
            )
            for item in items:
                yield item
            if len(items) < batch_size:
                return
            after = items[-1].seq

    async def _select_events(
        self,
        filters: EventFilter,
        *,
        before_seq: int | None,
        after_seq: int | None,
        newest_first: bool,
        limit: int,
    ) -> list[StoredEvent]:
        reader = self._reader()
        stmt = q.list_events(
            account=filters.account,
            kind=filters.kind,
            signal_id=filters.signal_id,
            since_ms=filters.since_ms,
            until_ms=filters.until_ms,
            before_seq=before_seq,
            after_seq=after_seq,
            newest_first=newest_first,
            limit=limit,
        )
        with wrap_exceptions("list_events", self.outage):
            async with reader.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        return [
            StoredEvent(r.seq, r.id, r.kind, r.account, r.signal_id, r.ts, r.received_at_ms, loads(r.payload))
            for r in rows
        ]

    # --- signals ledger ---

    async def get_signal(self, signal_id: str) -> SignalView | None:
        reader = self._reader()
        with wrap_exceptions("get_signal", self.outage):
            async with reader.connect() as conn:
                row = (await conn.execute(q.select_signal(signal_id))).first()
                if row is None:
                    return None
                views = await self._with_deliveries(conn, [row])
        return views[0]

    async def list_signals(
        self,
        filters: SignalFilter,
        *,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> Page[SignalView]:
        reader = self._reader()
        size = page_limit(limit)
        stmt = q.list_signals(
            strategy=filters.strategy,
            account=filters.account,
            status=filters.status.value if filters.status is not None else None,
            since_ms=filters.since_ms,
            until_ms=filters.until_ms,
            before_seq=parse_cursor(cursor),
            limit=size + 1,
        )
        with wrap_exceptions("list_signals", self.outage):
            async with reader.connect() as conn:
                rows = (await conn.execute(stmt)).all()
                more = len(rows) > size
                rows = rows[:size]
                views = await self._with_deliveries(conn, rows)
        return Page(views, str(rows[-1].seq) if more and rows else None)

    async def _with_deliveries(self, conn: AsyncConnection, rows: Sequence[Any]) -> list[SignalView]:
        by_signal: dict[str, list[Delivery]] = {row.id: [] for row in rows}
        for chunk in chunks(list(by_signal)):
            for d in await conn.execute(q.select_deliveries(chunk)):
                by_signal[d.signal_id].append(_delivery_from_row(d))
        return [
            SignalView(
                id=row.id,
                strategy=row.strategy,
                channel=row.channel,
                offset=row.log_offset,
                accounts=tuple(loads(row.accounts)),
                groups=tuple(loads(row.groups)),
                payload=loads(row.payload),
                created_at_ms=row.created_at_ms,
                expires_at_ms=row.expires_at_ms,
                deliveries=tuple(by_signal[row.id]),
            )
            for row in rows
        ]

    async def update_statuses(self, updates: Sequence[StatusUpdate]) -> list[bool]:
        if not updates:
            return []
        op = Status(list(updates))
        await self._writes().submit(op)
        return op.result

    async def expire_signals(self, now_ms: int, limit: int = 1000) -> list[tuple[str, str]]:
        def expire(conn: sa.Connection) -> list[tuple[str, str]]:
            rows = (conn.execute(q.select_expirable(now_ms, max(1, limit)))).all()
            states = {(r.signal_id, r.account): DeliveryStatus(r.status) for r in rows}
            updates = [StatusUpdate(r.signal_id, r.account, DeliveryStatus.EXPIRED, now_ms) for r in rows]
            flags = apply_transitions(conn, self.dialect, updates, states)
            return [(u.signal_id, u.account) for u, ok in zip(updates, flags, strict=True) if ok]

        return await self._call(expire)

    # --- accounts and revocations ---

    async def touch_accounts(self, logins: Sequence[str], seen_ms: int) -> None:
        if not logins:
            return
        rows = [{"login": login, "last_seen_ms": seen_ms} for login in sorted(set(logins))]

        def touch(conn: sa.Connection) -> None:
            conn.execute(q.touch_account(self.dialect), rows)

        await self._call(touch, size=len(rows))

    async def get_account(self, login: str) -> Account | None:
        reader = self._reader()
        with wrap_exceptions("get_account", self.outage):
            async with reader.connect() as conn:
                row = (await conn.execute(q.select_account(login))).first()
        return _account_from_row(row) if row is not None else None

    async def list_accounts(self) -> list[Account]:
        reader = self._reader()
        with wrap_exceptions("list_accounts", self.outage):
            async with reader.connect() as conn:
                rows = (await conn.execute(q.list_accounts())).all()
        return [_account_from_row(row) for row in rows]

    async def revoke(
        self,
        kind: RevocationKind,
        value: str,
        *,
        revoked_at_ms: int,
        expires_at_ms: int,
        reason: str | None = None,
    ) -> None:
        if kind not in ("jti", "sub"):
            raise ValueError("kind must be 'jti' or 'sub'")
        row = {
            "kind": kind,
            "value": value,
            "revoked_at_ms": revoked_at_ms,
            "expires_at_ms": expires_at_ms,
            "reason": reason,
        }

        def revoke(conn: sa.Connection) -> None:
            conn.execute(q.upsert_revocation(self.dialect), [row])

        await self._call(revoke)

    async def list_revocations(self, now_ms: int) -> list[Revocation]:
        reader = self._reader()
        with wrap_exceptions("list_revocations", self.outage):
            async with reader.connect() as conn:
                rows = (await conn.execute(q.list_revocations(now_ms))).all()
        return [Revocation(r.kind, r.value, r.revoked_at_ms, r.expires_at_ms, r.reason) for r in rows]

    # --- retention ---

    async def apply_retention(self, older_than_ms: int, *, batch_size: int = 1000) -> RetentionResult:
        batch = max(1, batch_size)

        def trim_log(conn: sa.Connection) -> int:
            keys = [(r.channel, r.log_offset) for r in conn.execute(q.select_old_log(older_than_ms, batch))]
            if keys:
                conn.execute(q.delete_log_keys(keys))
            return len(keys)

        def trim_signals(conn: sa.Connection) -> tuple[int, int]:
            ids = [r.id for r in conn.execute(q.select_old_signals(older_than_ms, batch))]
            if not ids:
                return 0, 0
            deliveries = (conn.execute(q.delete_deliveries_of(ids))).rowcount
            conn.execute(q.delete_signals(ids))
            return len(ids), deliveries

        def trim_events(conn: sa.Connection) -> int:
            seqs = [r.seq for r in conn.execute(q.select_old_events(older_than_ms, batch))]
            if seqs:
                conn.execute(q.delete_events(seqs))
            return len(seqs)

        def purge(conn: sa.Connection) -> int:
            return int((conn.execute(q.purge_revocations(self._now_ms()))).rowcount)

        log_entries = signals = deliveries = events = 0
        while (n := await self._call(trim_log)) > 0:
            log_entries += n
            if n < batch:
                break
        while True:
            count, removed = await self._call(trim_signals)
            signals, deliveries = signals + count, deliveries + removed
            if count < batch:
                break
        while (n := await self._call(trim_events)) > 0:
            events += n
            if n < batch:
                break
        revoked = await self._call(purge)
        return RetentionResult(log_entries, signals, deliveries, events, revoked)


def _delivery_from_row(row: Any) -> Delivery:
    times = {
        name: getattr(row, column)
        for name, column in STATUS_COLUMNS.items()
        if getattr(row, column) is not None
    }
    return Delivery(row.account, DeliveryStatus(row.status), row.updated_at_ms, times, row.detail)


def _account_from_row(row: Any) -> Account:
    snapshot = loads(row.snapshot) if row.snapshot is not None else None
    return Account(row.login, row.last_seen_ms, snapshot, row.snapshot_ts_ms)
