"""The small interfaces the hub depends on, so that storage and scale-out plug in without
touching the core. Durable types are the store's own (``bridge.store.base``).

``DurableLog`` is where a publication becomes durable, seen from the hub (implemented in
``bridge/store/``); ``Prepared`` is a publication after its namespace's hook. Not here: the broker's
interface (``bridge/broker/base.py``), the socket side (``connection.Sink``), and what each part of
the hub needs from the hub itself (the ``Host`` protocol at the top of each part's module)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.protocol.signals import Signal
from bridge.protocol.targeting import Targets
from bridge.store.base import Appended, AppendRequest, Position, Stored

__all__ = ["DurableLog", "Prepared", "PublishHook"]


class DurableLog(Protocol):
    """Offsets and history of durable channels (a subset of ``bridge.store.base.Store``).

    Contract: writes return only after COMMIT; offsets per channel start at 1 and grow by 1 with
    no hole, in call order; a ``message_id`` already stored returns its original offset with
    ``duplicate=True``. The hub relies on appends issued in order completing in offset order.
    """

    async def append(
        self, channel: str, message_id: str | None, payload: dict[str, Any], expires_at_ms: int | None = None
    ) -> Appended: ...

    async def publish_signal(self, signal: Signal) -> Appended: ...

    async def append_many(self, requests: Sequence[AppendRequest]) -> list[Appended]: ...

    async def read_since(self, channel: str, after_offset: int, limit: int) -> list[Stored]: ...

    async def position(self, channel: str) -> Position: ...

    async def tops(self, channels: Sequence[str]) -> dict[str, tuple[str, int]]: ...


@dataclass(frozen=True, slots=True)
class Prepared:
    """A publication after its namespace's hook checked it."""

    payload: dict[str, Any]
    message_id: str | None = None
    expires_at_ms: int | None = None
    targets: Targets | None = None
    signal: Signal | None = None


#: Checks a publication on its namespace (sync: it runs inside ``Hub.receive``, before batching);
#: raises ``HubError`` to refuse it.
PublishHook = Callable[[Any, str, dict[str, Any]], Prepared]
