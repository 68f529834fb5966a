"""Shared helpers: the exchange fixtures folder beside the repo and a recording sink."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "exchanges"
RECORDED = FIXTURES / "recorded"
TIMEOUT = 30.0 * float(os.environ.get("MTBRIDGE_TESTS_TIMEOUT_FACTOR", "1"))


class RecordingSink:
    """Keeps every publication in order; tests wait on it instead of sleeping."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, object], str | None]] = []
        self._changed = asyncio.Event()

    async def publish(self, channel: str, payload: dict[str, object], key: str | None) -> None:
        self.messages.append((channel, payload, key))
        self._changed.set()

    def on(self, channel: str) -> list[dict[str, object]]:
        return [p for c, p, _ in self.messages if c == channel]

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


async def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Poll a condition that depends on another task (no duration is asserted)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def require_fixtures() -> None:
    if not FIXTURES.is_dir():
        pytest.fail(
            f"exchange fixtures not found at {FIXTURES}"
            " (the repository keeps them under tests/fixtures/exchanges)"
        )
