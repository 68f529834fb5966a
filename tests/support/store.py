"""For the store tests (tests/store): a settable clock injected into stores and the type of the
``make_store`` fixture (tests/store/conftest.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bridge.store import Store

__all__ = ["Clock", "StoreFactory"]

StoreFactory = Callable[[], Awaitable[Store]]


class Clock:
    """A settable clock (unix seconds) injected into stores."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    @property
    def ms(self) -> int:
        return int(self.now * 1000)
