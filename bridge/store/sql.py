"""SQLAlchemy 2 async implementation of :class:`~bridge.store.base.Store` for SQLite and PostgreSQL.

Group commit: every write goes through one writer task that drains a queue. A batch (up to
:data:`MAX_BATCH_OPS` calls / :data:`MAX_BATCH_ITEMS` rows) runs in one transaction; each caller awaits its
own future, which is resolved only after COMMIT returned. Consecutive calls of the same kind are executed as
one ``executemany`` per statement, so the cost of a commit (one fsync) is shared by the whole batch.

Durability choices:

- **SQLite**: WAL journal, ``synchronous=FULL`` by default: each COMMIT fsyncs the WAL, so an acknowledged
  write survives a process kill *and* a power loss or OS crash. ``NORMAL`` (configurable) survives a process
  kill but may lose the last commits on power loss. Checkpoints run every :data:`SQLITE_WAL_AUTOCHECKPOINT`
  WAL pages. Writes use ``BEGIN IMMEDIATE`` so that another process
  writing the same file waits (``busy_timeout``) instead of failing half-way. Reads use a separate pool of
  read-only connections, which WAL lets run alongside the writer. Use a file path, not ``:memory:``.
- **PostgreSQL** (asyncpg): the server's ``synchronous_commit`` (on by default) makes COMMIT durable. Channel
  rows are locked (``SELECT ... FOR UPDATE``) while offsets are allocated, so even two hub processes sharing a
  database cannot allocate the same offset.

A batch that fails with a non-retryable error is re-run one call per transaction, so one bad call cannot fail
its neighbours; those re-runs are "careful": they look up every message id, including the ones the fast path
skips as unable to match (:class:`_LogWriter`), whose wrong guess shows as such a failure. A retryable
failure (connection lost, database locked) fails the whole batch with
:class:`~bridge.store.exceptions.StoreUnavailable`, and callers retry (appends with a message id, events,
signals and status changes are idempotent).

Size (about 1,400 lines, over the 600-line rule): the queue, the SQLite writer thread, the PostgreSQL
writer thread and the log writer still share this module. Issue 19 splits them (typed operations, one
retry rule, each writer apart); until then the writers' shared batching code is why they stay together.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bridge.protocol.events import DeliveryStatus, TradeEvent, can_transition
from bridge.protocol.signals import Signal
from bridge.store import queries as q
from bridge.store.base import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
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
)
from bridge.store.exceptions import (
    InvalidCursor,
    MigrationError,
    StoreClosed,
    StoreConflict,
    StoreError,
    StoreUnavailable,
    is_unavailable,
)
from bridge.store.outage import OutageLog, describe
from bridge.store.schema import STATUS_COLUMNS

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_MS",
    "DEFAULT_POOL_SIZE",
    "MAX_BATCH_ITEMS",
    "MAX_BATCH_OPS",
    "MAX_QUEUE",
    "SQLITE_WAL_AUTOCHECKPOINT",
    "SQLStore",
    "normalize_url",
    "wrap_exceptions",
]

logger = logging.getLogger("mtbridge.store")

T = TypeVar("T")

#: Most calls committed in one transaction.
MAX_BATCH_OPS = 2000
#: Most rows (appends + events + status changes) committed in one transaction.
MAX_BATCH_ITEMS = 5000
#: Queued calls beyond which callers wait for room (backpressure).
MAX_QUEUE = 100_000
#: PostgreSQL advisory lock key that serialises migrations of several hub nodes ("mtbr" in ASCII).
MIGRATION_LOCK = 0x6D746272
#: Channel names per statement of ``tops`` (a cluster node's periodic gap check): one IN list of
#: at most this many bound parameters, far under PostgreSQL's 65,535 and SQLite's 32,766.
TOPS_CHUNK = 5_000
#: Rows per ``IN (...)`` list, below SQLite's and asyncpg's bind-parameter limits.
IN_CHUNK: Final = 900
#: Rows per array or jsonb parameter on PostgreSQL (neither has a bind-parameter limit).
PG_ARRAY_CHUNK: Final = 10_000
DEFAULT_BUSY_TIMEOUT_MS = 10_000
#: WAL pages after which a commit checkpoints (SQLite's default: 1000). Hot pages (index leaves, channel rows)
#: are rewritten by many commits; checkpointing less often copies each of them once instead of many times,
#: which cut the writer's CPU per signal chain by ~10 % in ``mtbridge bench store``. The WAL grows to about
#: this many pages (40 MB at 4 KiB) between checkpoints; durability is unchanged (every COMMIT still fsyncs).
SQLITE_WAL_AUTOCHECKPOINT: Final = 10_000
DEFAULT_POOL_SIZE = 4
#: Planner settings of the PostgreSQL writer's connection. Every statement it runs reaches rows by key
#: (ids, (signal id, account), channel names) for one batch, so a sequential scan, or a hash or merge
#: join over a whole table, is never the right plan. The planner picks them all the same while a table
#: is young and growing fast: its statistics lag behind (autovacuum analyses at most once a minute), and
#: a table it believes small looks cheaper to scan than to probe a few hundred times. Measured under
#: ``mtbridge bench signals`` on a fresh database: the status UPDATE (a hash join over a sequential scan
#: of signal_deliveries) took 4.35 ms per batch and the delivery lookup 3.06 ms; with these settings
#: 3.42 and 0.96 ms. Signals/s rose 17 % and 18 % in two alternating pairs; in six more, four gained
#: 17-52 % and two lost 5-10 % (a noisy host; docs/benchmarks.md). A statement with no usable index
#: still scans: these settings only price the alternatives out.
PG_WRITER_SETTINGS: Final = {"enable_seqscan": "off", "enable_hashjoin": "off", "enable_mergejoin": "off"}
_SQLITE_SYNCHRONOUS: Final = ("OFF", "NORMAL", "FULL", "EXTRA")


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


@contextlib.contextmanager
def wrap_exceptions(operation: str, outage: OutageLog | None = None, rows: int = 1) -> Iterator[None]:
    """Translate driver errors into :mod:`bridge.store.exceptions` at the store boundary.

    :func:`~bridge.store.exceptions.is_unavailable` decides what is retryable (``StoreUnavailable``);
    ``outage``, when given, hears of every retryable failure (``rows`` requests refused) and of every
    success, and logs the outage in a handful of lines instead of one per request."""
    try:
        with _translate(operation):
            yield
    except StoreUnavailable as error:
        if outage is not None:
            outage.failed(error, rows)
        raise
    if outage is not None:
        outage.succeeded()


@contextlib.contextmanager
def _translate(operation: str) -> Iterator[None]:
    try:
        yield
    except StoreError:
        raise
    except exc.IntegrityError as error:
        raise StoreConflict(f"{operation}: constraint violated", operation=operation) from error
    except Exception as error:
        if is_unavailable(error):
            raise StoreUnavailable(
                f"{operation}: database unavailable ({describe(error)})", operation=operation
            ) from error
        if isinstance(error, exc.OperationalError | exc.InterfaceError):
            text = str(error.orig).lower() if error.orig is not None else ""
            if "no such table" in text or "no such column" in text:
                message = f"{operation}: schema missing, run migrations"
                raise StoreError(message, operation=operation) from error
            raise StoreUnavailable(f"{operation}: database unavailable", operation=operation) from error
        if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
            raise StoreUnavailable(f"{operation}: connection lost", operation=operation) from error
        if isinstance(error, exc.TimeoutError | sqlite3.OperationalError):
            raise StoreUnavailable(f"{operation}: no connection available", operation=operation) from error
        if isinstance(error, exc.SQLAlchemyError):
            raise StoreError(f"{operation}: database error", operation=operation) from error
        raise


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _loads(text: str) -> Any:
    return orjson.loads(text)


def _new_epoch() -> str:
    return secrets.token_hex(8)


def _chunks(items: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _parse_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 19:
        raise InvalidCursor("invalid cursor", operation="paginate")
    return int(cursor)


def _limit(limit: int) -> int:
    return max(1, min(limit, MAX_PAGE_SIZE))


@dataclass(slots=True)
class _AppendRequest:
    channel: str
    message_id: str | None
    payload: str
    expires_at_ms: int | None
    signal: Signal | None


@dataclass(slots=True)
class _EventRequest:
    event: TradeEvent
    payload: str
    channel: str | None  # record_events: where to append it; insert_events: None
    status: StatusUpdate | None


@dataclass(slots=True)
class _Op:
    kind: str  # "append" | "appends" | "events" | "record" | "status" | "call"
    data: Any
    size: int
    future: asyncio.Future[Any]


_Call = Callable[[sa.Connection], Any]


class _LogWriter:
    """Channel-log writes of one segment: channel rows locked, signal and message ids looked up once each,
    offsets allocated in call order, one INSERT per table at the end.

    Which (channel, message id) pairs are looked up: those of plain appends; of events, only those of events
    already stored (``stored``), since record_events writes an event and its log entry in one transaction,
    so a new event id has no log entry; of signals, none, since publish_signal writes the signal and its log
    entry together and a signal already in the ledger is a duplicate before its message id matters. Those
    two shortcuts can only be wrong for a log entry written by something else with that id (a plain append,
    or a retention that trimmed the event but not its entry); its INSERT then violates the (channel,
    message_id) unique index, and the batch is re-run ``careful``: every pair looked up, as the contract
    says."""

    def __init__(
        self,
        store: SQLStore,
        conn: sa.Connection,
        appends: Sequence[_AppendRequest],
        events: Sequence[_EventRequest],
        stored: set[str],
        careful: bool,
    ) -> None:
        self.store, self.conn, self.now = store, conn, store._now_ms()
        self.careful = careful
        dialect = store.dialect
        names = sorted({r.channel for r in appends} | {e.channel for e in events if e.channel is not None})
        self.state = store._lock_channels(conn, names) if names else {}
        self.before = {name: value[1] for name, value in self.state.items()}
        self.known_signals: dict[str, tuple[str, int]] = {}
        signal_ids = [r.signal.id for r in appends if r.signal is not None]
        for chunk in _chunks(signal_ids):
            sql = q.member(q.SELECT_SIGNAL_IDS, len(chunk), dialect)
            for signal_id, channel, offset in conn.exec_driver_sql(
                sql, q.member_params(chunk, dialect)
            ).all():
                self.known_signals[signal_id] = (channel, offset)
        self.known_messages: dict[tuple[str, str], int] = {}
        wanted = {
            (r.channel, r.message_id)
            for r in appends
            if r.message_id is not None and (careful or r.signal is None)
        }
        wanted.update(
            (e.channel, e.event.id)
            for e in events
            if e.channel is not None and (careful or e.event.id in stored)
        )
        pairs = sorted(wanted)
        if dialect == "postgresql":
            for chunk in _chunks(pairs, PG_ARRAY_CHUNK):
                params = (_json_rows(chunk),)
                for channel, message_id, offset in conn.exec_driver_sql(q.SELECT_LOG_PAIRS_PG, params).all():
                    self.known_messages[(channel, message_id)] = offset
        elif pairs:
            on = sorted({c for c, _ in pairs})
            for chunk in _chunks(sorted({m for _, m in pairs})):
                sql = q.select_log_messages(len(on), len(chunk))
                for channel, message_id, offset in conn.exec_driver_sql(sql, (*on, *chunk)).all():
                    self.known_messages[(channel, message_id)] = offset
        self.log_rows: list[tuple[Any, ...]] = []
        self.signal_rows: list[tuple[Any, ...]] = []
        self.delivery_rows: list[tuple[Any, ...]] = []
        self.duplicates_on: set[str] = set()

    def append(self, request: _AppendRequest) -> Appended | tuple[str, int]:
        """Allocate the next offset, or return (channel, original offset) for a duplicate."""
        signal = request.signal
        if signal is not None and signal.id in self.known_signals:
            original = self.known_signals[signal.id]
            self.duplicates_on.add(original[0])
            return original
        result = self.append_entry(
            request.channel, request.message_id, request.payload, request.expires_at_ms
        )
        if signal is not None and isinstance(result, Appended):
            offset = result.offset
            self.known_signals[signal.id] = (request.channel, offset)
            self.signal_rows.append(  # q.SIGNAL_COLUMNS
                (
                    signal.id,
                    signal.strategy,
                    request.channel,
                    offset,
                    _dumps(list(signal.accounts)),
                    _dumps(list(signal.groups)),
                    request.payload,
                    signal.created_at,
                    signal.expires_at,
                )
            )
            self.delivery_rows.extend(  # q.DELIVERY_COLUMNS
                (signal.id, account, "pending", self.now, self.now) for account in signal.accounts
            )
        return result

    def append_entry(
        self, channel: str, message_id: str | None, payload: str, expires_at_ms: int | None
    ) -> Appended | tuple[str, int]:
        """:meth:`append` without a signal (what an event needs), so no request object is built per event."""
        if message_id is not None:
            known = self.known_messages.get((channel, message_id))
            if known is not None:
                self.duplicates_on.add(channel)
                return (channel, known)
        channel_state = self.state[channel]
        channel_state[1] += 1
        offset: int = channel_state[1]
        self.log_rows.append((channel, offset, message_id, payload, expires_at_ms, self.now))  # q.LOG_COLUMNS
        if message_id is not None:
            self.known_messages[(channel, message_id)] = offset
        return Appended(channel, offset, channel_state[0], False)

    def flush(self) -> None:
        """Write the rows; load the epochs of channels that only duplicates point to.

        PostgreSQL: every row in one statement (``q.WRITE_LOG_PG``). A row that collides with one
        written by another process (a unique index) fails it; the careful re-run, which writes
        table by table, settles it."""
        conn, sql, store = self.conn, self.store._sql, self.store
        moved = [(v[1], n) for n, v in self.state.items() if v[1] != self.before.get(n)]
        if store.dialect == "postgresql" and not self.careful:
            if self.log_rows or self.signal_rows or self.delivery_rows:
                params = (
                    _json_rows(self.log_rows),
                    _json_rows(moved),
                    _json_rows(self.signal_rows),
                    _json_rows(self.delivery_rows),
                )
                conn.exec_driver_sql(q.WRITE_LOG_PG, params)
        else:
            dialect = store.dialect
            if self.log_rows:
                conn.exec_driver_sql(sql[q.INSERT_LOG], self.log_rows)
                _write_rows(conn, dialect, sql[q.UPDATE_CHANNEL_OFFSET], q.UPDATE_CHANNEL_OFFSETS_PG, moved)
            if self.signal_rows:
                conn.exec_driver_sql(sql[q.INSERT_SIGNAL], self.signal_rows)
            if self.delivery_rows:
                _write_rows(conn, dialect, sql[q.INSERT_PENDING], q.INSERT_PENDING_PG, self.delivery_rows)
        other = sorted(self.duplicates_on - set(self.state))
        if other:
            self.state.update(self.store._lock_channels(conn, other))

    def resolve(self, result: Appended | tuple[str, int]) -> Appended:
        if isinstance(result, Appended):
            return result
        return Appended(result[0], result[1], self.state[result[0]][0], True)


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (it comes with uvicorn[standard] on Linux and macOS).

    uvicorn hands its loop factory to ``asyncio.Runner`` without setting a policy, so a plain
    ``asyncio.new_event_loop()`` here would be the pure-Python selector loop. Measured through the
    writer on an idle hub, 300 batches of 10 ``SELECT 1`` alternating, three times: 144-182 us
    per statement with uvloop against 219-259 us, and 117-147 against 184-206 us of CPU.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class _PgWriter:
    """PostgreSQL writes on a thread of their own with its own event loop.

    A write transaction is a handful of round trips (lock the channels, look up ids, insert, update,
    COMMIT). On the hub's loop each round trip waits for a whole loop iteration, which under load is
    every connection's input, so the writer, not the database, set the pace. Here the writer's loop
    has nothing else to do between round trips. Measured in alternating runs (`mtbridge bench
    ingest`, PostgreSQL): 20,877 and 21,013 events/s with this thread, 15,118 and 14,869 without;
    signals at 2,000/s: p99 83 ms with it, 97 ms without.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.loop = _new_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="mtbridge-store-writer", daemon=True
        )
        self.thread.start()

    async def run(self, fn: Callable[[sa.Connection], T]) -> T:
        async def transaction() -> T:
            async with self.engine.begin() as conn:
                return await conn.run_sync(fn)

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(transaction(), self.loop))

    async def close(self) -> None:
        try:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.engine.dispose(), self.loop))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            await asyncio.to_thread(self.thread.join)
            self.loop.close()


class SQLStore:
    """The SQL store: create, ``await start()`` (or ``async with``), ``await migrate()``, ``await close()``.

    Writes run as one synchronous function per batch transaction: on SQLite in a dedicated writer thread
    with the sqlite3 driver (one thread hand-off per batch instead of one per statement), on PostgreSQL
    through ``AsyncConnection.run_sync`` over asyncpg. Reads use the async engine (aiosqlite / asyncpg).

    Args:
        url: ``sqlite+aiosqlite:///path/to/file.db`` or ``postgresql+asyncpg://user@host/db`` (the driver is
            added when missing).
        schema: PostgreSQL schema to use (created by :meth:`migrate` if missing); ignored for SQLite.
        sqlite_synchronous: SQLite ``PRAGMA synchronous`` for the writer (see the module docstring).
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
        if sqlite_synchronous.upper() not in _SQLITE_SYNCHRONOUS:
            raise ValueError(f"sqlite_synchronous must be one of {_SQLITE_SYNCHRONOUS}")
        self.schema = schema
        self._clock = clock
        self._synchronous = sqlite_synchronous.upper()
        self._busy_timeout_ms = busy_timeout_ms
        self._pool_size = pool_size
        self._engine: AsyncEngine | None = None  # reads
        self._sqlite_writer: sa.Engine | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pg_writer: _PgWriter | None = None
        self._queue: asyncio.Queue[_Op | None] = asyncio.Queue(MAX_QUEUE)
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self.outage = OutageLog(logger)
        self._sql = {
            sql: q.positional(sql, self.dialect)
            for sql in (
                q.INSERT_LOG,
                q.INSERT_SIGNAL,
                q.INSERT_PENDING,
                q.INSERT_EVENTS,
                q.UPDATE_CHANNEL_OFFSET,
            )
        }

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
        if self.dialect == "sqlite":
            self._engine = self._sqlite_reader()
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mtbridge-store-writer")
            self._sqlite_writer = self._sqlite_write_engine()
        else:
            self._engine = self._postgres_engine(self._pool_size)
            self._pg_writer = _PgWriter(self._postgres_engine(1, settings=PG_WRITER_SETTINGS))
        self._writer = asyncio.create_task(self._run_writer(), name="mtbridge-store-writer")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            await self._queue.put(None)
            try:
                await self._writer
            finally:
                self._writer = None
        if self._engine is not None:
            await self._engine.dispose()
        if self._pg_writer is not None:
            await self._pg_writer.close()
        if self._executor is not None:
            writer = self._sqlite_writer
            if writer is not None:
                await asyncio.get_running_loop().run_in_executor(self._executor, writer.dispose)
            self._executor.shutdown(wait=True)

    def _sqlite_path(self) -> str:
        if self.url.database in (None, "", ":memory:"):
            raise ValueError("SQLite store needs a file path (WAL and a separate reader pool need a file)")
        return str(self.url.database)

    def _sqlite_write_engine(self) -> sa.Engine:
        busy, synchronous = self._busy_timeout_ms, self._synchronous
        url = self.url.set(drivername="sqlite+pysqlite", database=self._sqlite_path())
        writer = sa.create_engine(
            url,
            poolclass=sa.pool.SingletonThreadPool,
            connect_args={"check_same_thread": False},
        )

        @event.listens_for(writer, "connect")
        def _writer_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we emit BEGIN IMMEDIATE ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute(f"PRAGMA busy_timeout={int(busy)}")
            cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT}")
            cursor.close()

        @event.listens_for(writer, "begin")
        def _writer_begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return writer

    def _sqlite_reader(self) -> AsyncEngine:
        busy = self._busy_timeout_ms
        self._sqlite_path()
        reader = create_async_engine(self.url, pool_size=self._pool_size, max_overflow=0)

        @event.listens_for(reader.sync_engine, "connect")
        def _reader_connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={int(busy)}")
            cursor.execute("PRAGMA query_only=1")
            cursor.close()

        return reader

    def _postgres_engine(self, pool_size: int, settings: Mapping[str, str] | None = None) -> AsyncEngine:
        # asyncpg prepares every statement; after five runs PostgreSQL may switch to a generic plan made
        # when the tables were small, e.g. a sequential scan of signal_deliveries for `signal_id =
        # ANY($1)` that then costs 50-80 ms per batch once the table has grown. Custom plans are made
        # with the real parameters and current table sizes. Planning is paid on every run: about 1 ms
        # for the writer's largest statement (the log CTE) under signals load, a handful of statements
        # per batch.
        server_settings = {"plan_cache_mode": "force_custom_plan", **(settings or {})}
        if self.schema is not None:
            server_settings["search_path"] = self.schema
        connect_args: dict[str, Any] = {"server_settings": server_settings}
        return create_async_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=2,
            pool_pre_ping=True,
            connect_args=connect_args,
        )

    def _reader(self) -> AsyncEngine:
        if self._closed or self._engine is None:
            raise StoreClosed("store is closed" if self._closed else "store is not started")
        return self._engine

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _run_write(self, fn: Callable[[sa.Connection], T]) -> T:
        """Run ``fn`` in one write transaction and return its result once COMMIT has returned."""
        if self._sqlite_writer is not None and self._executor is not None:
            writer = self._sqlite_writer

            def in_thread() -> T:
                with writer.begin() as conn:
                    return fn(conn)

            return await asyncio.get_running_loop().run_in_executor(self._executor, in_thread)
        if self._pg_writer is None:
            raise StoreClosed("store is not started")
        return await self._pg_writer.run(fn)

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

    # --- the writer ---

    async def _submit(self, kind: str, data: Any, size: int = 1) -> Any:
        self._reader()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        op = _Op(kind, data, size, future)
        try:
            self._queue.put_nowait(op)
        except asyncio.QueueFull:
            await self._queue.put(op)
        return await future

    async def _run_writer(self) -> None:
        stop = False
        while not stop:
            op = await self._queue.get()
            if op is None:
                break
            # Let callers that are ready to run (e.g. woken by the previous commit) queue their writes.
            await asyncio.sleep(0)
            batch, size = [op], op.size
            while len(batch) < MAX_BATCH_OPS and size < MAX_BATCH_ITEMS:
                try:
                    nxt = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
                size += nxt.size
            try:
                await self._commit(batch)
            except asyncio.CancelledError:
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(StoreClosed("store closed during write"))
                raise

    async def _commit(self, batch: list[_Op], careful: bool = False) -> None:
        """Run ``batch`` in one transaction and resolve its futures. A non-retryable failure re-runs every
        call in a transaction of its own and ``careful`` (see :class:`_LogWriter`), so that one bad call
        cannot fail its neighbours and a shortcut of the fast path cannot fail a call."""
        try:
            rows = sum(len(op.data) if isinstance(op.data, list | tuple) else 1 for op in batch)
            with wrap_exceptions("write", self.outage, rows):
                results = await self._run_write(lambda conn: self._execute(conn, batch, careful))
        except StoreError as error:
            if not careful and not error.retryable:
                for op in batch:  # isolate the offending call
                    await self._commit([op], careful=True)
                return
            if not error.retryable:
                logger.error("store write failed", exc_info=error, extra={"action": "write_failed"})
            for op in batch:
                if not op.future.done():
                    op.future.set_exception(error)
            return
        except Exception as error:
            for op in batch:
                if not op.future.done():
                    op.future.set_exception(error)
            return
        for op, result in zip(batch, results, strict=True):
            if not op.future.done():
                op.future.set_result(result)

    def _execute(self, conn: sa.Connection, batch: list[_Op], careful: bool) -> list[Any]:
        """Run a batch: ``call`` ops one by one, everything between two calls as one segment."""
        results: list[Any] = []
        start = 0
        while start < len(batch):
            if batch[start].kind == "call":
                results.append(batch[start].data(conn))
                start += 1
                continue
            end = start
            while end < len(batch) and batch[end].kind != "call":
                end += 1
            results.extend(self._execute_segment(conn, batch[start:end], careful))
            start = end
        return results

    def _execute_segment(self, conn: sa.Connection, ops: list[_Op], careful: bool) -> list[Any]:
        """Appends, events and status changes of many calls with one statement per table.

        Offsets are allocated and event ids deduplicated in queue order; the status changes of the
        segment (``status`` calls, and those of newly recorded events) are applied afterwards, in
        queue order, so they see the signals published in the same segment.
        """
        appends: list[_AppendRequest] = []
        event_reqs: list[_EventRequest] = []
        for op in ops:
            if op.kind == "append":
                appends.append(op.data)
            elif op.kind == "appends":
                appends.extend(op.data)
            elif op.kind in ("events", "record"):
                event_reqs.extend(op.data)
        now = self._now_ms()
        # The events go in first; the ids that were already stored come back (see _insert_events_first).
        seen = self._insert_events_first(conn, event_reqs, now) if event_reqs else set()
        log = _LogWriter(self, conn, appends, event_reqs, seen, careful) if appends or event_reqs else None

        snapshots: dict[str, dict[str, Any]] = {}
        statuses: list[StatusUpdate] = []
        # Per op: its provisional result, and where its status changes start in ``statuses``.
        staged: list[tuple[Any, int]] = []
        for op in ops:
            first_status = len(statuses)
            if op.kind == "append":
                assert log is not None
                staged.append((log.append(op.data), first_status))
            elif op.kind == "appends":
                assert log is not None
                staged.append(([log.append(r) for r in op.data], first_status))
            elif op.kind == "status":
                statuses.extend(op.data)
                staged.append((None, first_status))
            else:
                assert log is not None
                out: list[Any] = []
                for req in op.data:
                    new = req.event.id not in seen
                    if new:
                        seen.add(req.event.id)
                        if req.event.kind == "account":
                            _keep_snapshot(snapshots, req)
                    if req.channel is None:
                        out.append(new)
                        continue
                    appended = log.append_entry(req.channel, req.event.id, req.payload, None)
                    if new and req.status is not None:
                        statuses.append(req.status)
                    out.append((new, appended, new and req.status is not None))
                staged.append((out, first_status))

        if snapshots:
            conn.execute(q.upsert_snapshot(self.dialect), list(snapshots.values()))
        if log is not None:
            log.flush()
        moved = self._apply_statuses(conn, statuses) if statuses else []

        results: list[Any] = []
        for op, (value, first_status) in zip(ops, staged, strict=True):
            if op.kind == "append":
                assert log is not None
                results.append(log.resolve(value))
            elif op.kind == "appends":
                assert log is not None
                results.append([log.resolve(v) for v in value])
            elif op.kind == "status":
                results.append(moved[first_status : first_status + len(op.data)])
            elif op.kind == "events":
                results.append(value)
            else:
                assert log is not None
                records: list[EventRecord] = []
                index = first_status
                for new, appended, has_status in value:
                    status_moved = False
                    if has_status:
                        status_moved = moved[index]
                        index += 1
                    records.append(EventRecord(new, log.resolve(appended), status_moved))
                results.append(records)
        return results

    def _insert_events_first(
        self, conn: sa.Connection, requests: Sequence[_EventRequest], now: int
    ) -> set[str]:
        """Store the first request of every event id (``ON CONFLICT DO NOTHING`` skips ids already stored)
        and return the ids that were stored before.

        PostgreSQL: one statement over the rows that returns the ids it inserted; the others were
        there (an id inserted meanwhile by another process is waited for, then skipped). It replaced a
        lookup followed by COPY: one round trip less per batch, and round trips set the writer's pace.
        SQLite: when every row went in, which is the rule, no lookup at all; otherwise the ids at or
        below the highest seq before the INSERT are the old ones (seq is the rowid, so new rows are above
        it, and BEGIN IMMEDIATE keeps other writers out)."""
        rows: list[tuple[Any, ...]] = []
        ids: set[str] = set()
        for req in requests:
            if req.event.id not in ids:
                ids.add(req.event.id)
                rows.append(_event_row(req, now))
        if self.dialect == "postgresql":
            inserted = conn.exec_driver_sql(q.INSERT_EVENTS_PG, (_json_rows(rows),))
            return ids.difference(row[0] for row in inserted)
        last = conn.exec_driver_sql(q.SELECT_LAST_EVENT_SEQ).scalar()
        if conn.exec_driver_sql(self._sql[q.INSERT_EVENTS], rows).rowcount == len(rows) or last is None:
            return set()
        stored: set[str] = set()
        for chunk in _chunks(sorted(ids)):
            sql = q.member(q.SELECT_EVENT_IDS_UP_TO, len(chunk), "sqlite")
            stored.update(row[0] for row in conn.exec_driver_sql(sql, (*chunk, last)).all())
        return stored

    # --- channel log ---

    def _lock_channels(self, conn: sa.Connection, names: Sequence[str]) -> dict[str, list[Any]]:
        """Load (creating as needed) channel rows; on PostgreSQL they stay locked until COMMIT."""
        state: dict[str, list[Any]] = {}
        self._select_channels(conn, names, state)
        missing = [name for name in names if name not in state]
        if missing:
            now = self._now_ms()
            conn.execute(
                q.insert_channel(self.dialect),
                [{"name": n, "epoch": _new_epoch(), "last_offset": 0, "created_at_ms": now} for n in missing],
            )
            self._select_channels(conn, missing, state)
        return state

    def _select_channels(
        self, conn: sa.Connection, names: Sequence[str], state: dict[str, list[Any]]
    ) -> None:
        """Load channel rows into ``state`` (name -> [epoch, last offset]), locked on PostgreSQL."""
        dialect = self.dialect
        lock = " FOR UPDATE" if dialect == "postgresql" else ""
        for chunk in _chunks(names, PG_ARRAY_CHUNK if lock else IN_CHUNK):
            sql = q.member(q.SELECT_CHANNELS, len(chunk), dialect) + lock
            for name, epoch, last_offset in conn.exec_driver_sql(sql, q.member_params(chunk, dialect)).all():
                state[name] = [epoch, last_offset]

    async def append(
        self,
        channel: str,
        message_id: str | None,
        payload: dict[str, Any],
        expires_at_ms: int | None = None,
    ) -> Appended:
        check_append(channel, message_id)
        request = _AppendRequest(channel, message_id, _dumps(payload), expires_at_ms, None)
        result: Appended = await self._submit("append", request)
        return result

    async def publish_signal(self, signal: Signal) -> Appended:
        request = _AppendRequest(
            signal.channel, signal.id, _dumps(signal.to_payload()), signal.expires_at, signal
        )
        result: Appended = await self._submit("append", request)
        return result

    async def append_many(self, requests: Sequence[AppendRequest]) -> list[Appended]:
        if not requests:
            return []
        batch: list[_AppendRequest] = []
        for r in requests:
            signal = r.signal
            if signal is not None:
                batch.append(
                    _AppendRequest(
                        signal.channel,
                        signal.id,
                        _dumps(r.payload or signal.to_payload()),
                        signal.expires_at,
                        signal,
                    )
                )
            else:
                check_append(r.channel, r.message_id)
                batch.append(
                    _AppendRequest(r.channel, r.message_id, _dumps(r.payload), r.expires_at_ms, None)
                )
        result: list[Appended] = await self._submit("appends", batch, size=len(batch))
        return result

    async def read_since(self, channel: str, after_offset: int, limit: int) -> list[Stored]:
        reader = self._reader()
        with wrap_exceptions("read_since", self.outage):
            async with reader.connect() as conn:
                rows = await conn.execute(q.read_since(channel, after_offset, max(1, limit)))
                return [Stored(r.log_offset, _loads(r.payload), r.expires_at_ms) for r in rows]

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
            self._lock_channels(conn, [channel])
            created = self._read_position(conn, channel)
            assert created is not None
            return created

        result: Position = await self._submit("call", create)
        return result

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
            self._lock_channels(conn, [channel])
            conn.execute(q.delete_log(channel))
            conn.execute(q.reset_channel(channel, _new_epoch()))
            position = self._read_position(conn, channel)
            assert position is not None
            return position

        result: Position = await self._submit("call", reset)
        return result

    # --- trade events ---

    async def insert_events(self, events: Sequence[TradeEvent]) -> list[bool]:
        if not events:
            return []
        rows = [_EventRequest(e, _dumps(e.to_payload()), None, None) for e in events]
        result: list[bool] = await self._submit("events", rows, size=len(rows))
        return result

    async def record_events(self, writes: Sequence[EventWrite]) -> list[EventRecord]:
        if not writes:
            return []
        requests = []
        for w in writes:
            check_append(w.channel, w.event.id)
            payload = w.payload if w.payload is not None else w.event.to_payload()
            requests.append(_EventRequest(w.event, _dumps(payload), w.channel, w.status))
        result: list[EventRecord] = await self._submit("record", requests, size=2 * len(requests))
        return result

    async def list_events(
        self,
        filters: EventFilter,
        *,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> Page[StoredEvent]:
        before = _parse_cursor(cursor)
        size = _limit(limit)
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
            StoredEvent(
                r.seq, r.id, r.kind, r.account, r.signal_id, r.ts, r.received_at_ms, _loads(r.payload)
            )
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
        size = _limit(limit)
        stmt = q.list_signals(
            strategy=filters.strategy,
            account=filters.account,
            status=filters.status.value if filters.status is not None else None,
            since_ms=filters.since_ms,
            until_ms=filters.until_ms,
            before_seq=_parse_cursor(cursor),
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
        for chunk in _chunks(list(by_signal)):
            for d in await conn.execute(q.select_deliveries(chunk)):
                by_signal[d.signal_id].append(_delivery_from_row(d))
        return [
            SignalView(
                id=row.id,
                strategy=row.strategy,
                channel=row.channel,
                offset=row.log_offset,
                accounts=tuple(_loads(row.accounts)),
                groups=tuple(_loads(row.groups)),
                payload=_loads(row.payload),
                created_at_ms=row.created_at_ms,
                expires_at_ms=row.expires_at_ms,
                deliveries=tuple(by_signal[row.id]),
            )
            for row in rows
        ]

    async def update_statuses(self, updates: Sequence[StatusUpdate]) -> list[bool]:
        if not updates:
            return []
        result: list[bool] = await self._submit("status", list(updates), size=len(updates))
        return result

    def _apply_statuses(self, conn: sa.Connection, updates: Sequence[StatusUpdate]) -> list[bool]:
        """Apply transitions in order; unknown signals are ignored (False)."""
        signal_ids = sorted({u.signal_id for u in updates})
        known: set[str] = set()
        states: dict[tuple[str, str], DeliveryStatus] = {}
        dialect = self.dialect
        size = PG_ARRAY_CHUNK if dialect == "postgresql" else IN_CHUNK
        for chunk in _chunks(signal_ids, size):
            sql = q.member(q.SELECT_DELIVERY_STATES, len(chunk), dialect)
            for signal_id, account, status in conn.exec_driver_sql(
                sql, q.member_params(chunk, dialect)
            ).all():
                known.add(signal_id)
                states[(signal_id, account)] = _STATUSES[status]
        # Signals without any delivery row yet (group targets): ask the ledger.
        for chunk in _chunks([i for i in signal_ids if i not in known], size):
            sql = q.member(q.SELECT_SIGNAL_IDS, len(chunk), dialect)
            known.update(row[0] for row in conn.exec_driver_sql(sql, q.member_params(chunk, dialect)).all())
        flags = [u.signal_id in known for u in updates]
        valid = [u for u, ok in zip(updates, flags, strict=True) if ok]
        applied = iter(_apply_transitions(conn, self.dialect, valid, states))
        return [ok and next(applied) for ok in flags]

    async def expire_signals(self, now_ms: int, limit: int = 1000) -> list[tuple[str, str]]:
        def expire(conn: sa.Connection) -> list[tuple[str, str]]:
            rows = (conn.execute(q.select_expirable(now_ms, max(1, limit)))).all()
            states = {(r.signal_id, r.account): DeliveryStatus(r.status) for r in rows}
            updates = [StatusUpdate(r.signal_id, r.account, DeliveryStatus.EXPIRED, now_ms) for r in rows]
            flags = _apply_transitions(conn, self.dialect, updates, states)
            return [(u.signal_id, u.account) for u, ok in zip(updates, flags, strict=True) if ok]

        result: list[tuple[str, str]] = await self._submit("call", expire)
        return result

    # --- accounts and revocations ---

    async def touch_accounts(self, logins: Sequence[str], seen_ms: int) -> None:
        if not logins:
            return
        rows = [{"login": login, "last_seen_ms": seen_ms} for login in sorted(set(logins))]

        def touch(conn: sa.Connection) -> None:
            conn.execute(q.touch_account(self.dialect), rows)

        await self._submit("call", touch, size=len(rows))

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

        await self._submit("call", revoke)

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
        while (n := await self._submit("call", trim_log)) > 0:
            log_entries += n
            if n < batch:
                break
        while True:
            count, removed = await self._submit("call", trim_signals)
            signals, deliveries = signals + count, deliveries + removed
            if count < batch:
                break
        while (n := await self._submit("call", trim_events)) > 0:
            events += n
            if n < batch:
                break
        revoked = await self._submit("call", purge)
        return RetentionResult(log_entries, signals, deliveries, events, revoked)


def _event_row(req: _EventRequest, now: int) -> tuple[Any, ...]:
    """A new trade event, as q.EVENT_COLUMNS."""
    e = req.event
    return (e.id, e.kind, e.account, e.signal_id, e.ts, now, req.payload)


def _keep_snapshot(snapshots: dict[str, dict[str, Any]], req: _EventRequest) -> None:
    """Keep the newest ``account`` snapshot per login of a batch."""
    e = req.event
    current = snapshots.get(e.account)
    if current is None or current["snapshot_ts_ms"] < e.ts:
        snapshots[e.account] = {"login": e.account, "snapshot": req.payload, "snapshot_ts_ms": e.ts}


#: DeliveryStatus by its value (cheaper than calling the enum), and the plain value of each (cheaper than
#: the ``value`` property).
_STATUSES: Final = {status.value: status for status in DeliveryStatus}
_STATUS_VALUES: Final = {status: status.value for status in DeliveryStatus}
#: The column of each slot of a change in _apply_transitions (slots 0 and 1: status and its time).
_CHANGE_COLUMNS: Final = ("status", "updated_at_ms", "detail", *STATUS_COLUMNS.values())
_CHANGE_WIDTH: Final = len(_CHANGE_COLUMNS)
_TIME_SLOT: Final = {name: 3 + n for n, name in enumerate(STATUS_COLUMNS)}


def _delivery_row(
    signal_id: str,
    account: str,
    status: DeliveryStatus,
    at_ms: int,
    detail: str | None,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "signal_id": signal_id,
        "account": account,
        "status": status.value,
        "updated_at_ms": at_ms,
        "detail": detail,
    }
    reached = status.value
    for name, column in STATUS_COLUMNS.items():
        row[column] = at_ms if name == reached else None
    return row


def _delivery_from_row(row: Any) -> Delivery:
    times = {
        name: getattr(row, column)
        for name, column in STATUS_COLUMNS.items()
        if getattr(row, column) is not None
    }
    return Delivery(row.account, DeliveryStatus(row.status), row.updated_at_ms, times, row.detail)


def _account_from_row(row: Any) -> Account:
    snapshot = _loads(row.snapshot) if row.snapshot is not None else None
    return Account(row.login, row.last_seen_ms, snapshot, row.snapshot_ts_ms)


def _apply_transitions(
    conn: sa.Connection,
    dialect: str,
    updates: Sequence[StatusUpdate],
    states: dict[tuple[str, str], DeliveryStatus],
) -> list[bool]:
    """Decide each transition against ``states`` (updated in place) and write the outcome per delivery:
    one insert for new rows, one guarded update for existing ones, so several steps in a batch collapse.
    Updates are grouped by the columns they set (see :func:`~bridge.store.queries.update_delivery`)."""
    inserts: dict[tuple[str, str], dict[str, Any]] = {}
    # Per existing delivery: [status, at, detail, time of each status in STATUS_COLUMNS order..., mask of the
    # slots set from 2 on]. Statuses are StrEnum members: they index the str-keyed maps directly.
    changes: dict[tuple[str, str], list[Any]] = {}
    original = dict(states)
    flags: list[bool] = []
    for update in updates:
        key = (update.signal_id, update.account)
        status = update.status
        if not can_transition(states.get(key), status):
            flags.append(False)
            continue
        flags.append(True)
        states[key] = status
        if key not in original:
            row = inserts.get(key) or _delivery_row(
                update.signal_id, update.account, status, update.at_ms, None
            )
            row.update(
                {"status": status.value, "updated_at_ms": update.at_ms, STATUS_COLUMNS[status]: update.at_ms}
            )
            if update.detail is not None:
                row["detail"] = update.detail[:256]
            inserts[key] = row
            continue
        change = changes.get(key)
        if change is None:
            change = changes[key] = [None] * _CHANGE_WIDTH + [0]
        slot = _TIME_SLOT[status]
        change[0] = _STATUS_VALUES[status]
        change[1] = change[slot] = update.at_ms
        change[-1] |= 1 << slot
        if update.detail is not None:
            change[2] = update.detail[:256]
            change[-1] |= 1 << 2
    if inserts:
        conn.execute(q.insert_delivery(dialect), list(inserts.values()))
    if dialect == "postgresql":
        # One statement for every shape: an unset column is NULL and keeps its value (times and the
        # detail are only ever set, never cleared). Round trips, not rows, set the writer's pace here.
        if changes:
            every = [
                (*change[:_CHANGE_WIDTH], key[0], key[1], _STATUS_VALUES[original[key]])
                for key, change in changes.items()
            ]
            conn.exec_driver_sql(q.update_deliveries_pg(_CHANGE_COLUMNS[2:]), (_json_rows(every),))
        return flags
    by_shape: dict[int, list[tuple[Any, ...]]] = {}
    for key, change in changes.items():
        rows = by_shape.get(change[-1])
        if rows is None:
            rows = by_shape[change[-1]] = []
        values = [change[0], change[1]]
        values.extend(change[i] for i in _slots(change[-1]))
        values.extend((key[0], key[1], _STATUS_VALUES[original[key]]))
        rows.append(tuple(values))
    for mask, rows in by_shape.items():
        columns = tuple(_CHANGE_COLUMNS[i] for i in _slots(mask))
        conn.exec_driver_sql(q.update_delivery(columns, dialect), rows)
    return flags


def _write_rows(
    conn: sa.Connection, dialect: str, sql: str, pg_rows_sql: str, rows: list[tuple[Any, ...]]
) -> None:
    """Run a write once per row: ``executemany`` of ``sql`` on SQLite (rows cost microseconds in-process),
    one statement over all the rows (``pg_rows_sql``, :func:`~bridge.store.queries.json_rows`) on
    PostgreSQL, where asyncpg's executemany makes the server execute the statement once per row."""
    if not rows:
        return
    if dialect == "postgresql":
        conn.exec_driver_sql(pg_rows_sql, (_json_rows(rows),))
    else:
        conn.exec_driver_sql(sql, rows)


def _json_rows(rows: Sequence[Sequence[Any]]) -> str:
    """Rows as the jsonb parameter of a PostgreSQL statement over :func:`~bridge.store.queries.json_rows`."""
    return orjson.dumps(rows).decode()


@functools.cache
def _slots(mask: int) -> tuple[int, ...]:
    """The slots of a change in _apply_transitions whose bit is set in ``mask``."""
    return tuple(i for i in range(2, _CHANGE_WIDTH) if mask >> i & 1)
