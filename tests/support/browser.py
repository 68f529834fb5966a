"""Debian's Chromium for the browser tests, launched one way (the polling wait for synchronous
tests is :func:`tests.support.waits.wait_until`). Never a downloaded browser: the path and flags are
the dashboard benchmark's (`bridge/bench/dashboard.py`), so tests and benchmark drive the same
browser the same way."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from bridge.bench.dashboard import CHROMIUM, CHROMIUM_ARGS
from tests.support.waits import WAIT

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "WAIT_MS", "WAIT_S", "chromium", "require_chromium"]

#: Seconds a browser test waits for a condition (MTBRIDGE_TESTS_TIMEOUT_FACTOR scales it on slow hosts).
WAIT_S = WAIT * 3
#: The same in milliseconds, for Playwright's timeouts.
WAIT_MS = int(WAIT_S * 1000)


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
