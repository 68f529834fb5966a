"""Waiting on a condition, never on a clock: the suite's one timeout scale and its polling waits.

Every wait polls a condition until it holds or a generous deadline passes; no test asserts a
duration. ``MTBRIDGE_TESTS_TIMEOUT_FACTOR`` scales every deadline on slow hosts (CI under load).
What does not live here: waiting on a browser page (Playwright's own ``wait_for_function``) and a
client's wait for a matching message (:meth:`tests.support.hub.Client.until`).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["FACTOR", "WAIT", "eventually", "until", "wait_until"]

T = TypeVar("T")

#: Multiplies every deadline (MTBRIDGE_TESTS_TIMEOUT_FACTOR, 1 by default).
FACTOR = float(os.environ.get("MTBRIDGE_TESTS_TIMEOUT_FACTOR", "1"))
#: Seconds a test waits for a condition by default: 10 s is 100x what any of them needs on a laptop.
WAIT = 10.0 * FACTOR


def wait_until(
    cond: Callable[[], Any], what: str = "a condition", timeout: float = WAIT, interval: float = 0.05
) -> Any:
    """Poll ``cond`` (synchronous tests) until it returns something true, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


async def until(
    predicate: Callable[[], Any], what: str = "a condition", timeout: float = WAIT * 3, interval: float = 0.02
) -> Any:
    """Poll ``predicate`` (plain or async) until it returns something true, and return that; the
    condition usually depends on another task or process, so the loop yields between polls."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    timeout: float = WAIT * 2,
    interval: float = 0.1,
) -> T:
    """Poll ``probe`` until ``accept`` says yes, and return the value; fails with the last value seen,
    which tells more than a bare timeout (a REST view that is one status behind, say)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached; last value: {value!r}")
        await asyncio.sleep(interval)
