"""Stopping background tasks: the one rule every component's ``stop``/``close`` follows.

Cleanup must finish on every exit path (nothing left in any registry, queue or Redis subscription),
so a stop cancels each task, waits until each has really finished (a task that is only cancelled
still runs its ``finally`` later, possibly after the resources it uses are closed), and never
lets a task's own failure escape into the cleanup that follows. A task that had already died of an
error was reported by its owner when it died (a lost exchange connection is a warning there, not
a traceback here), so it is logged here at debug level only, and the stop goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

__all__ = ["cancel_and_wait"]

logger = logging.getLogger("mtbridge")


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any] | None]) -> None:
    """Cancel ``tasks`` (None entries and the calling task itself are skipped) and wait for all."""
    current = asyncio.current_task()
    live = [t for t in tasks if t is not None and t is not current]
    for task in live:
        task.cancel()
    for task, outcome in zip(live, await asyncio.gather(*live, return_exceptions=True), strict=True):
        if isinstance(outcome, Exception):
            logger.debug("background task %s had failed", task.get_name(), exc_info=outcome)
