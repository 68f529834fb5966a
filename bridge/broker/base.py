"""The broker interface: how a publication reaches every hub node's local fan-out.

Contract (what the hub relies on):

- ``publish`` hands one publication (channel, offset, payload, targets) to every node's
  ``deliver`` callback, this node's included.
- Per channel, publications are delivered in the order ``publish`` was called on one node.
- At most once per node: a lost message is recovered by offset from the store on durable
  channels (subscribers resubscribe with ``since``); ephemeral channels are lossy by definition.
- The caller serialises nothing: payloads are JSON-able dicts; the broker encodes if it must.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from bridge.hub.ports import Targets

__all__ = ["Broker", "Deliver"]

Deliver = Callable[[str, int, dict[str, Any], Targets | None], object]


class Broker(Protocol):
    async def start(self, deliver: Deliver) -> None:
        """Begin delivering publications (from this node and others) to ``deliver``."""
        ...

    def publish(self, channel: str, offset: int, payload: dict[str, Any], targets: Targets | None) -> None:
        """Hand a publication to every node; never blocks the caller."""
        ...

    async def close(self) -> None: ...
