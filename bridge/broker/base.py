"""The broker interface: how a publication reaches every hub node's local fan-out.

Contract (what the hub relies on):

- ``publish`` hands one :class:`Publication` to every node's ``deliver`` callback, this node's
  included (this node's synchronously, inside the call: local subscribers never wait for Redis).
- Per channel, publications reach each node in the order ``publish`` was called on one node.
- At most once per node, and maybe not at all: durable channels are repaired by offset from the
  store (``bridge.hub.repair``); ephemeral channels are lossy by definition.
- A node receives a channel only while it ``watch``-es it (the hub watches every channel it has a
  local subscriber on, and unwatches it when the last one leaves).
- ``resync(lost)`` is called when the broker may have lost publications (its connection to the
  other nodes dropped, or came back): the hub then compares every durable channel with the store.
- The caller serialises nothing: payloads are JSON-able dicts; the broker encodes if it must.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.protocol.targeting import Targets

__all__ = ["Broker", "Deliver", "Publication", "Resync"]


@dataclass(slots=True)
class Publication:
    """One publication on its way to every node's subscribers."""

    channel: str
    #: Durable: the channel's epoch in the store. Ephemeral: the publishing node's epoch (each node
    #: numbers the ephemeral publications it delivers itself, see docs/protocol.md).
    epoch: str
    #: Durable: the store's offset. Ephemeral: 0 (numbered on delivery by each node).
    offset: int
    payload: dict[str, Any]
    targets: Targets | None
    durable: bool
    #: Wall-clock seconds when the publishing node handed it over (after the commit, if durable):
    #: the start of the commit-to-remote-delivery lag.
    at: float
    #: The publishing node's instance id ("" in a single process).
    origin: str = ""


Deliver = Callable[[Publication], None]
Resync = Callable[[bool], None]


class Broker(Protocol):
    #: False while the broker cannot reach the other nodes (the node serves its own subscribers).
    healthy: bool

    async def start(self, deliver: Deliver, resync: Resync) -> None:
        """Begin delivering publications (from this node and others) to ``deliver``."""
        ...

    def publish(self, pub: Publication) -> None:
        """Deliver locally now and hand to every other node; never blocks the caller."""
        ...

    def watch(self, channel: str) -> asyncio.Future[None] | None:
        """Start receiving ``channel`` from other nodes; the future (if any) completes once
        publications made from now on are sure to arrive."""
        ...

    def unwatch(self, channel: str) -> None:
        """Stop receiving ``channel`` (nothing stays subscribed for it)."""
        ...

    async def close(self) -> None: ...
