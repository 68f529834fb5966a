"""Group commit: the SQL store's write queue, its batching loop and the one retry rule of a failed batch.

Every write of :class:`~bridge.store.sql.SQLStore` is an operation (:mod:`bridge.store.ops`) queued
here and run by one task. A batch (up to :data:`MAX_BATCH_OPS` operations / :data:`MAX_BATCH_ITEMS`
rows) runs in one transaction; each caller awaits its operation's future, which is resolved only after
COMMIT returned, so the cost of a commit (one fsync) is shared by the whole batch.

A failed batch is re-run one operation per transaction when
:func:`~bridge.store.exceptions.may_be_one_item` says so (not for a retryable failure: the database
is away, every caller is answered ``unavailable`` and retries; appends with a message id, events,
signals and status changes are idempotent), so one bad operation cannot fail its neighbours. Those
re-runs are "careful": they look up every message id, including the ones the fast path skips as unable
to match (:class:`~bridge.store.logwriter.LogWriter`), whose wrong guess shows as such a failure.

Not here: what a transaction runs (:class:`~bridge.store.executor.Executor`) and where it runs (the
SQLite writer thread in :mod:`bridge.store.sqlite`, the PostgreSQL writer thread in
:mod:`bridge.store.postgres`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import sqlalchemy as sa

from bridge.store.exceptions import StoreClosed, StoreError, may_be_one_item
from bridge.store.ops import Op
from bridge.store.outage import OutageLog
from bridge.store.translate import wrap_exceptions

__all__ = ["MAX_BATCH_ITEMS", "MAX_BATCH_OPS", "MAX_QUEUE", "Writer"]

logger = logging.getLogger("mtbridge.store")

#: Most calls committed in one transaction.
MAX_BATCH_OPS = 2000
#: Most rows (appends + events + status changes) committed in one transaction.
MAX_BATCH_ITEMS = 5000
#: Queued calls beyond which callers wait for room (backpressure).
MAX_QUEUE = 100_000

#: Runs a function in one write transaction, returning once COMMIT has returned.
Transaction = Callable[[Callable[[sa.Connection], None]], Awaitable[None]]
#: Runs a batch of operations on a connection, setting each one's result; ``careful`` turns the
#: fast path's shortcuts off.
Execute = Callable[[sa.Connection, Sequence[Op], bool], None]


class Writer:
    """The write queue and the task that drains it: create inside the running loop, ``await close()``."""

    def __init__(self, transaction: Transaction, execute: Execute, outage: OutageLog) -> None:
        self._transaction = transaction
        self._execute = execute
        self._outage = outage
        self._queue: asyncio.Queue[Op | None] = asyncio.Queue(MAX_QUEUE)
        self._task = asyncio.create_task(self._run(), name="mtbridge-store-writer")

    async def submit(self, op: Op) -> None:
        """Queue ``op`` and return once its batch committed (its ``result`` is then set), or raise."""
        future = op.future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(op)
        except asyncio.QueueFull:
            await self._queue.put(op)
        await future

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        await self._queue.put(None)
        await self._task

    async def _run(self) -> None:
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

    async def _commit(self, batch: list[Op], careful: bool = False) -> None:
        """Run ``batch`` in one transaction and resolve its futures; on failure, re-run it one operation
        per transaction and ``careful`` if :func:`~bridge.store.exceptions.may_be_one_item` says so."""
        try:
            rows = sum(op.rows for op in batch)
            with wrap_exceptions("write", self._outage, rows):
                await self._transaction(lambda conn: self._execute(conn, batch, careful))
        except Exception as error:
            # Even a lone operation is re-run once, carefully: the fast path's shortcuts may be what
            # failed. A careful run is one operation and is never re-run.
            if not careful and may_be_one_item(error):
                for op in batch:  # isolate the offending operation
                    await self._commit([op], careful=True)
                return
            if isinstance(error, StoreError) and not error.retryable:
                logger.error("store write failed", exc_info=error, extra={"action": "write_failed"})
            for op in batch:
                if not op.future.done():
                    op.future.set_exception(error)
            return
        for op in batch:
            if not op.future.done():
                op.future.set_result(None)
