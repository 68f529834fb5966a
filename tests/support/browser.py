"""Debian's Chromium for the browser tests, launched one way, and a polling wait for synchronous
(Playwright) tests. Never a downloaded browser: the path and flags are the dashboard benchmark's
(`bridge/bench/dashboard.py`), so tests and benchmark drive the same browser the same way."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from bridge.bench.dashboard import CHROMIUM, CHROMIUM_ARGS

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "WAIT_S", "chromium", "require_chromium", "wait_until"]

#: Seconds a browser test waits for a condition (MTBRIDGE_TESTS_TIMEOUT_FACTOR scales it on slow hosts).
WAIT_S = 30.0 * float(os.environ.get("MTBRIDGE_TESTS_TIMEOUT_FACTOR", "1"))


def require_chromium() -> None:
    """Skip without Debian's chromium, or fail when the services are required (CI installs it)."""
    if not CHROMIUM.exists():
        reason = "Debian's chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("BRIDGE_REQUIRE_SERVICES"):
            pytest.fail(reason)
        pytest.skip(reason)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Playwright's sync API), closed on every exit path."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def wait_until(cond: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    """Poll ``cond`` until it returns something true, and return that (no duration is asserted)."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
