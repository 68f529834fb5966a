"""Rate-limited logging of a database outage: a handful of lines, not one per refused request.

Before, one 9-second PostgreSQL restart wrote about 30,000 log lines (10,500 warnings, most with a
traceback): every request of every failed batch was logged. Now an outage writes:

1. ``database unavailable: <cause>``, at its first failure;
2. ``database still unavailable after N s: ...``, at most every :data:`REMIND_EVERY` seconds;
3. ``database available again after N s: ...``, at the first success, with how many operations and
   rows (requests) were refused meanwhile, and the distinct causes seen (at most :data:`MAX_CAUSES`).

The hub answers every refused request ``unavailable`` (retryable) and counts it in
``mtbridge_errors_total{code="unavailable"}``; the log only tells the story.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["MAX_CAUSES", "REMIND_EVERY", "OutageLog", "describe"]

#: Seconds between two "still unavailable" lines of one outage.
REMIND_EVERY = 30.0
#: Distinct causes remembered per outage (a flapping server shows a few: shutdown, refused, starting up).
MAX_CAUSES = 5


def describe(error: BaseException) -> str:
    """The innermost cause of ``error`` in one line: its type and first line, no traceback."""
    seen = 0
    while seen < 8:
        nxt = error.__cause__ or getattr(error, "orig", None)
        if not isinstance(nxt, BaseException) or nxt is error:
            break
        error, seen = nxt, seen + 1
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__


class OutageLog:
    """Tracks one database's availability; :meth:`failed` and :meth:`succeeded` are cheap and may
    be called from any thread that the store writes from (the GIL keeps the counters coherent, and
    a lost increment only skews a log line)."""

    def __init__(
        self, logger: logging.Logger, *, clock: Callable[[], float] = time.monotonic, name: str = "database"
    ) -> None:
        self._logger = logger
        self._clock = clock
        self._name = name
        self.since: float | None = None
        self._reminded = 0.0
        self.operations = 0
        self.rows = 0
        self.causes: list[str] = []
        self.outages = 0

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, error: BaseException, rows: int = 1) -> None:
        """A retryable failure of one operation that carried ``rows`` requests."""
        now = self._clock()
        cause = describe(error)
        self.operations += 1
        self.rows += rows
        if cause not in self.causes and len(self.causes) < MAX_CAUSES:
            self.causes.append(cause)
        if self.since is None:
            self.since = self._reminded = now
            self.outages += 1
            self._logger.warning(
                "%s unavailable: %s; requests are answered `unavailable` (retryable) until it is back",
                self._name,
                cause,
            )
        elif now - self._reminded >= REMIND_EVERY:
            self._reminded = now
            self._logger.warning(
                "%s still unavailable after %.0f s: %d operations (%d requests) refused so far; now: %s",
                self._name,
                now - self.since,
                self.operations,
                self.rows,
                cause,
            )

    def succeeded(self) -> None:
        """An operation succeeded: ends the outage, if there was one."""
        if self.since is None:
            return
        elapsed = self._clock() - self.since
        self._logger.warning(
            "%s available again after %.1f s: %d operations (%d requests) were refused meanwhile; causes: %s",
            self._name,
            elapsed,
            self.operations,
            self.rows,
            "; ".join(self.causes),
        )
        self.since = None
        self.operations = self.rows = 0
        self.causes = []
