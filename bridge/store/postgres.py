"""PostgreSQL set-up of the SQL store: the engines (:func:`postgres_engine`, asyncpg) and the writer
(:class:`PostgresWriter`, a thread with an event loop of its own).

Durability: the server's ``synchronous_commit`` (on by default) makes COMMIT durable. Channel rows are
locked (``SELECT ... FOR UPDATE``, :func:`~bridge.store.logwriter.lock_channels`) while offsets are
allocated, so even two hub processes sharing a database cannot allocate the same offset.

Not here: what a transaction runs (:mod:`bridge.store.executor`) and when (:mod:`bridge.store.writer`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["MIGRATION_LOCK", "PG_WRITER_SETTINGS", "PostgresWriter", "postgres_engine"]

T = TypeVar("T")

#: PostgreSQL advisory lock key that serialises migrations of several hub nodes ("mtbr" in ASCII).
MIGRATION_LOCK = 0x6D746272
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


def postgres_engine(
    url: sa.URL, *, schema: str | None, pool_size: int, settings: Mapping[str, str] | None = None
) -> AsyncEngine:
    """An asyncpg engine whose connections use ``schema`` and the planner ``settings``."""
    # asyncpg prepares every statement; after five runs PostgreSQL may switch to a generic plan made
    # when the tables were small, e.g. a sequential scan of signal_deliveries for `signal_id =
    # ANY($1)` that then costs 50-80 ms per batch once the table has grown. Custom plans are made
    # with the real parameters and current table sizes. Planning is paid on every run: about 1 ms
    # for the writer's largest statement (the log CTE) under signals load, a handful of statements
    # per batch.
    server_settings = {"plan_cache_mode": "force_custom_plan", **(settings or {})}
    if schema is not None:
        server_settings["search_path"] = schema
    connect_args: dict[str, Any] = {"server_settings": server_settings}
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=2,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


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


class PostgresWriter:
    """PostgreSQL writes on a thread of their own with its own event loop.

    A write transaction is a handful of round trips (lock the channels, look up ids, insert, update,
    COMMIT). On the hub's loop each round trip waits for a whole loop iteration, which under load is
    every connection's input, so the writer, not the database, set the pace. Here the writer's loop
    has nothing else to do between round trips. Measured in alternating runs (`mtbridge bench
    ingest`, PostgreSQL): 20,877 and 21,013 events/s with this thread, 15,118 and 14,869 without;
    signals at 2,000/s: p99 83 ms with it, 97 ms without.
    """

    def __init__(self, url: sa.URL, *, schema: str | None) -> None:
        self.engine = postgres_engine(url, schema=schema, pool_size=1, settings=PG_WRITER_SETTINGS)
        self.loop = _new_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="mtbridge-store-writer", daemon=True
        )
        self.thread.start()

    @property
    def sync_engine(self) -> sa.Engine:
        """The engine whose events (connect, begin, commit) show what the writer does."""
        return self.engine.sync_engine

    async def run(self, fn: Callable[[sa.Connection], T]) -> T:
        """Run ``fn`` in one write transaction and return its result once COMMIT has returned."""

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
