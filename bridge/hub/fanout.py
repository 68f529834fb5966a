"""Fan-out and flush: from a publication to the subscribers' queues, and from the queues to the sockets.

A publication leaves this node through :meth:`Fanout.distribute` (durable, after its commit) or
:meth:`Fanout.publish_ephemeral`: both hand it to the broker, which delivers it to every node's
``Repair.receive`` (this node's at once). Repair then calls :meth:`Fanout.fanout`, which builds the
frame once per encoding and hands the same ``bytes`` to every reached subscriber's
:meth:`Connection.send <bridge.hub.connection.Connection.send>` (which appends it to the queue and
marks the connection dirty). One :meth:`Fanout.flush` per loop iteration then writes each dirty
connection once (``Connection.flush`` -> ``Sink.write``, the socket in ``websocket.py``).

Not here: who may publish (``commands.py``), the store (``ports.DurableLog``), ordering and gap
repair (``repair.py``), which subscribers a targeted publication reaches (``channel.py``), the
queue's bounds and backpressure (``connection.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from bridge.broker.base import Broker, Publication
from bridge.hub.channel import Channel
from bridge.hub.connection import Connection
from bridge.hub.metrics import Tally
from bridge.protocol.envelope import Encoding, encode_json, encode_msgpack
from bridge.protocol.framing import OP_BINARY, OP_TEXT, data_frame
from bridge.protocol.targeting import Targets

__all__ = ["Fanout"]


class Fanout:
    """The write side of one hub: the dirty list, its flush, and the publications' way out."""

    __slots__ = ("_flush_scheduled", "broker", "channels", "dirty", "epoch", "loop", "origin", "tally")

    def __init__(
        self, channels: dict[str, Channel], broker: Broker, tally: Tally, epoch: str, origin: str
    ) -> None:
        self.channels = channels
        self.broker = broker
        self.tally = tally
        self.epoch = epoch
        self.origin = origin
        #: Set by ``Hub.start``; before it (tests driving a hub by hand) the running loop is used.
        self.loop: asyncio.AbstractEventLoop | None = None
        #: Connections with frames to write at the end of this loop iteration (shared with them).
        self.dirty: list[Connection] = []
        self._flush_scheduled = False

    # -- flush ----------------------------------------------------------------------------------

    def mark_dirty(self, conn: Connection) -> None:
        """``conn`` has frames queued: write them at the end of this loop iteration."""
        self.dirty.append(conn)
        self.flush_soon()

    def flush_soon(self) -> None:
        """Schedule the flush if a connection is dirty and none is scheduled yet."""
        if self.dirty and not self._flush_scheduled:
            self._flush_scheduled = True
            (self.loop or asyncio.get_running_loop()).call_soon(self.flush)

    def flush(self) -> None:
        """One write per dirty connection (``Connection.flush``): everything queued this iteration.
        A connection already flushed since it was filed (a burst past half its queue) writes
        nothing: ``flush`` of an empty queue returns at once."""
        self._flush_scheduled = False
        dirty = self.dirty
        if not dirty:
            return
        batch = dirty.copy()  # the list is shared with the connections: cleared, never replaced
        dirty.clear()
        for conn in batch:
            conn.flush()

    # -- the way out: the broker -----------------------------------------------------------------

    def distribute(
        self, name: str, epoch: str, offset: int, payload: dict[str, Any], targets: Targets | None
    ) -> None:
        """Hand a committed durable publication to the broker: every node's subscribers get it
        (this node's at once). The one way out for what the store appended, whoever appended it."""
        pub = Publication(name, epoch, offset, payload, targets, True, time.time(), self.origin)
        self.broker.publish(pub)

    def publish_internal(self, name: str, payload: dict[str, Any]) -> None:
        """A notice to every node's ``listen_internal`` handler for ``name`` (this node's at once)."""
        self.broker.publish(Publication(name, self.epoch, 0, payload, None, False, time.time(), self.origin))

    def publish_ephemeral(self, name: str, payload: dict[str, Any], targets: Targets | None = None) -> int:
        """Publish on an ephemeral channel (no store) to every node; the hub's own ``system:`` feeds
        and market data use this. Returns this node's offset of it (0 when nobody here listens):
        each node numbers the ephemeral publications it delivers (docs/protocol.md)."""
        pub = Publication(name, self.epoch, 0, payload, targets, False, time.time(), self.origin)
        self.broker.publish(pub)
        ch = self.channels.get(name)
        return ch.seq if ch is not None else 0

    # -- the way in: local subscribers -----------------------------------------------------------

    def fanout(self, name: str, offset: int, payload: dict[str, Any], targets: Targets | None = None) -> int:
        """Deliver one publication to every local subscriber; returns how many received it."""
        ch = self.channels.get(name)
        if ch is None:
            return 0
        message = {"type": "message", "channel": name, "offset": offset, "payload": payload}
        for waiting in ch.recovering.values():
            waiting.append((offset, payload, targets))
        floors = ch.floors
        skip = {c for c, (floor, _) in floors.items() if offset <= floor} if floors else None
        lossy = ch.policy.lossy
        key = name if ch.policy.coalesce else None
        delivered = 0
        json_subs: Iterable[Connection] = ch.json_subs
        msgpack_subs: Iterable[Connection] = ch.msgpack_subs
        if targets is not None:
            reached = ch.targeted(targets)
            if ch.msgpack_subs:
                json_subs = [c for c in reached if c.encoding is Encoding.JSON]
                msgpack_subs = [c for c in reached if c.encoding is not Encoding.JSON]
            else:
                json_subs, msgpack_subs = reached, ()
        dirty = self.dirty
        for subs, op, encoder in (
            (json_subs, OP_TEXT, encode_json),
            (msgpack_subs, OP_BINARY, encode_msgpack),
        ):
            if subs:
                # One frame per encoding: the same bytes object is queued for every subscriber.
                frame = data_frame(encoder(message), op)
                delivered += Connection.send_many(subs, frame, lossy, key, skip, dirty)
        self.flush_soon()
        self.tally.messages_out += delivered
        return delivered
