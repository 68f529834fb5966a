"""The in-process broker: one hub node, delivery is a direct call (no copy, no encoding)."""

from __future__ import annotations

import asyncio

from bridge.broker.base import Deliver, Publication, Resync

__all__ = ["MemoryBroker"]


class MemoryBroker:
    healthy = True

    def __init__(self) -> None:
        self._deliver: Deliver | None = None
        self._closed = False

    async def start(self, deliver: Deliver, resync: Resync) -> None:
        self._deliver = deliver

    def publish(self, pub: Publication) -> None:
        if self._deliver is None:
            if self._closed:
                return  # the hub stopped: its subscribers are gone (e.g. a status flushed at stop)
            raise RuntimeError("broker not started")
        self._deliver(pub)

    def watch(self, channel: str) -> asyncio.Future[None] | None:
        return None  # every publication is already here

    def unwatch(self, channel: str) -> None:
        pass

    async def close(self) -> None:
        self._deliver = None
        self._closed = True
