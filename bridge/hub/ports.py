"""The small interfaces the hub depends on, so that storage and scale-out plug in without
touching the core."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Appended", "DurableLog", "LogPosition", "PublishHook", "Prepared", "Stored", "Targets"]


@dataclass(frozen=True, slots=True)
class Appended:
    offset: int
    epoch: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Stored:
    offset: int
    payload: dict[str, Any]
    expires_at_ms: int | None


@dataclass(frozen=True, slots=True)
class LogPosition:
    last_offset: int
    epoch: str
    first_available_offset: int


class DurableLog(Protocol):
    """Offsets and history of durable channels.

    Contract: ``append`` returns only after the entry is committed; offsets per channel start at 1
    and grow by 1 with no hole; appends issued in order complete in offset order; a ``message_id``
    already stored on the channel returns its original offset with ``duplicate=True``.
    """

    async def append(
        self, channel: str, message_id: str | None, payload: dict[str, Any], expires_at_ms: int | None
    ) -> Appended: ...

    async def read_since(self, channel: str, after_offset: int, limit: int) -> list[Stored]: ...

    async def position(self, channel: str) -> LogPosition: ...


@dataclass(frozen=True, slots=True)
class Targets:
    """Which EA connections a publication is for (signals name accounts and/or groups)."""

    accounts: frozenset[str]
    groups: frozenset[str]

    def accepts(self, accounts: frozenset[str], groups: frozenset[str]) -> bool:
        return bool(self.accounts & accounts or self.groups & groups) or "*" in accounts


@dataclass(frozen=True, slots=True)
class Prepared:
    """A publication after its namespace's hook checked it."""

    payload: dict[str, Any]
    message_id: str | None = None
    expires_at_ms: int | None = None
    targets: Targets | None = None


PublishHook = Callable[[Any, str, dict[str, Any]], Awaitable[Prepared]]
