"""For the market-data tests: the recorded exchange fixtures (tests/fixtures/exchanges) and a sink
that records every publication of an adapter, which tests wait on instead of sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.waits import WAIT

__all__ = ["FIXTURES", "RECORDED", "RecordingSink", "require_fixtures"]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "exchanges"
RECORDED = FIXTURES / "recorded"
TIMEOUT = WAIT * 3


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


def require_fixtures() -> None:
    if not FIXTURES.is_dir():
        pytest.fail(
            f"exchange fixtures not found at {FIXTURES}"
            " (the repository keeps them under tests/fixtures/exchanges)"
        )
