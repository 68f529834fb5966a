"""The in-process broker: one hub node, delivery is a direct call (no copy, no encoding)."""

from __future__ import annotations

from typing import Any

from bridge.broker.base import Deliver
from bridge.hub.ports import Targets

__all__ = ["MemoryBroker"]


class MemoryBroker:
    def __init__(self) -> None:
        self._deliver: Deliver | None = None

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver

    def publish(self, channel: str, offset: int, payload: dict[str, Any], targets: Targets | None) -> None:
        if self._deliver is None:
            raise RuntimeError("broker not started")
        self._deliver(channel, offset, payload, targets)

    async def close(self) -> None:
        self._deliver = None
