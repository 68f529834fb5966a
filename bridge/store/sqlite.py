"""SQLite set-up of the SQL store: the writer (:class:`SQLiteWriter`, one thread with the sqlite3 driver)
and the read-only reader pool (:func:`sqlite_reader`, aiosqlite).

Durability: WAL journal, ``synchronous=FULL`` by default: each COMMIT fsyncs the WAL, so an acknowledged
write survives a process kill *and* a power loss or OS crash. ``NORMAL`` (configurable) survives a process
kill but may lose the last commits on power loss. Checkpoints run every :data:`SQLITE_WAL_AUTOCHECKPOINT`
WAL pages. Writes use ``BEGIN IMMEDIATE`` so that another process writing the same file waits
(``busy_timeout``) instead of failing half-way. Reads use a separate pool of read-only connections, which
WAL lets run alongside the writer. Use a file path, not ``:memory:``.

Not here: what a transaction runs (:mod:`bridge.store.executor`) and when (:mod:`bridge.store.writer`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_MS",
    "SQLITE_SYNCHRONOUS",
    "SQLITE_WAL_AUTOCHECKPOINT",
    "SQLiteWriter",
    "sqlite_path",
    "sqlite_reader",
]

T = TypeVar("T")

DEFAULT_BUSY_TIMEOUT_MS = 10_000
#: WAL pages after which a commit checkpoints (SQLite's default: 1000). Hot pages (index leaves, channel rows)
#: are rewritten by many commits; checkpointing less often copies each of them once instead of many times,
#: which cut the writer's CPU per signal chain by ~10 % in ``mtbridge bench store``. The WAL grows to about
#: this many pages (40 MB at 4 KiB) between checkpoints; durability is unchanged (every COMMIT still fsyncs).
SQLITE_WAL_AUTOCHECKPOINT: Final = 10_000
#: The values ``PRAGMA synchronous`` accepts.
SQLITE_SYNCHRONOUS: Final = ("OFF", "NORMAL", "FULL", "EXTRA")


def sqlite_path(url: sa.URL) -> str:
    """The database file of ``url``; SQLite needs one (WAL and a separate reader pool need a file)."""
    if url.database in (None, "", ":memory:"):
        raise ValueError("SQLite store needs a file path (WAL and a separate reader pool need a file)")
    return str(url.database)


class SQLiteWriter:
    """Write transactions on one dedicated thread with the sqlite3 driver: one thread hand-off per batch
    instead of one per statement (what aiosqlite would cost)."""

    def __init__(self, url: sa.URL, *, synchronous: str, busy_timeout_ms: int) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mtbridge-store-writer")
        self.engine = _write_engine(url, synchronous, busy_timeout_ms)

    @property
    def sync_engine(self) -> sa.Engine:
        """The engine whose events (connect, begin, commit) show what the writer does."""
        return self.engine

    async def run(self, fn: Callable[[sa.Connection], T]) -> T:
        """Run ``fn`` in one write transaction and return its result once COMMIT has returned."""
        writer = self.engine

        def in_thread() -> T:
            with writer.begin() as conn:
                return fn(conn)

        return await asyncio.get_running_loop().run_in_executor(self.executor, in_thread)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self.executor, self.engine.dispose)
        self.executor.shutdown(wait=True)


def _write_engine(url: sa.URL, synchronous: str, busy: int) -> sa.Engine:
    url = url.set(drivername="sqlite+pysqlite", database=sqlite_path(url))
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


def sqlite_reader(url: sa.URL, *, busy_timeout_ms: int, pool_size: int) -> AsyncEngine:
    """The read-only pool (aiosqlite): WAL lets its connections read while the writer writes."""
    busy = busy_timeout_ms
    sqlite_path(url)
    reader = create_async_engine(url, pool_size=pool_size, max_overflow=0)

    @event.listens_for(reader.sync_engine, "connect")
    def _reader_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy)}")
        cursor.execute("PRAGMA query_only=1")
        cursor.close()

    return reader
