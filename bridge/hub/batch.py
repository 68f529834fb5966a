"""Requests of one event-loop iteration, handled together.

A durable request (a publish, an ack, a trade event) costs the store one transaction whichever way it
is submitted, but costs the hub a task, a future and a coroutine chain when each request gets its own.
Under load, many requests arrive in one iteration (every readable socket is read before any task
runs), so the hub collects them here and hands them to the store as one operation: one task and one
future per iteration instead of one per request. Measured on the ingest benchmark (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["IterationBatch"]

logger = logging.getLogger("mtbridge.hub")

T = TypeVar("T")


class IterationBatch(Generic[T]):
    """Collects items until the loop gets to run ready callbacks, then calls ``handle(items)`` once.

    Each batch runs in its own task, so a batch still waiting for its commit does not hold back the
    next one; the store keeps their order (its writer is FIFO), and so do the tasks' wake-ups.
    ``handle`` must answer every item itself, including on failure: an exception it lets through is
    logged, and its items are then left unanswered.
    """

    def __init__(self, handle: Callable[[list[T]], Awaitable[None]], name: str) -> None:
        self._handle = handle
        self._name = name
        self._items: list[T] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, item: T) -> None:
        self._items.append(item)
        if len(self._items) == 1:
            task = asyncio.get_running_loop().create_task(self._run(), name=self._name)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def running(self) -> int:
        """Batches taken and not finished yet."""
        return len(self._tasks)

    async def _run(self) -> None:
        items, self._items = self._items, []
        try:
            await self._handle(items)
        except Exception:
            logger.exception("%s: a batch of %d failed", self._name, len(items))

    async def drain(self) -> None:
        """Wait until every batch taken so far (and any started meanwhile) has finished."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
