"""One client connection as the hub sees it: identity, subscriptions and the outbound queue.

The queue is where backpressure lives. Frames arrive already built (one ``bytes`` object shared by
every subscriber of a broadcast) and are appended to ``out``; the hub's flusher writes each dirty
connection's frames with one ``write`` per loop iteration. While the socket keeps up, that is all.
When the transport says it is full (``pause_writing``), frames go to a *backlog* instead, bounded
in bytes and in messages, where lossy frames are coalesced by key or the oldest dropped, and a
lossless frame that does not fit closes the connection as a slow consumer (it recovers by offset).

The I/O side is behind :class:`Sink`, so tests can drive a connection without sockets.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from bridge.auth.tokens import Claims
from bridge.hub.ratelimit import TokenBucket
from bridge.protocol import codes
from bridge.protocol.channels import Role
from bridge.protocol.envelope import Encoding

if TYPE_CHECKING:
    from bridge.hub.hub import Hub

__all__ = ["Connection", "Sink"]


class Sink(Protocol):
    """What the hub needs from the socket side."""

    def write(self, data: bytes) -> None: ...

    def buffered(self) -> int: ...

    def ping_frame(self) -> bytes: ...

    def close_frame(self, code: int, reason: str) -> bytes:
        """Record that we are closing and return the close frame to send."""
        ...

    def finish(self, flush: bool) -> None:
        """Close the TCP connection after the close frame (aborting if the peer does not follow)."""
        ...


class _Entry:
    __slots__ = ("frame", "key", "lossy")

    def __init__(self, frame: bytes, lossy: bool, key: str | None) -> None:
        self.frame = frame
        self.lossy = lossy
        self.key = key


class Connection:
    __slots__ = (
        "__weakref__",
        "backlog",
        "backlog_bytes",
        "bad_messages",
        "bucket",
        "claims",
        "closing",
        "coalesce",
        "connected_at",
        "dirty",
        "drain_waiter",
        "encoding",
        "hub",
        "id",
        "in_flight",
        "ip",
        "last_seen",
        "max_queue",
        "msgs_in",
        "msgs_out",
        "out",
        "out_bytes",
        "paused",
        "pong_deadline",
        "rate_strikes",
        "recovering",
        "sink",
        "subscriptions",
        "tasks",
        "token_warned",
    )

    def __init__(self, hub: Hub, conn_id: str, sink: Sink, encoding: Encoding, ip: str, now: float) -> None:
        self.hub = hub
        self.id = conn_id
        self.sink = sink
        self.encoding = encoding
        self.ip = ip
        self.connected_at = now
        self.last_seen = now
        self.max_queue = hub.limits.max_queue_bytes
        self.claims: Claims | None = None
        self.subscriptions: set[str] = set()
        self.recovering: set[str] = set()
        self.out: list[bytes] = []
        self.out_bytes = 0
        self.dirty = False
        self.paused = False
        self.closing = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self.backlog: deque[_Entry] | None = None
        self.backlog_bytes = 0
        self.coalesce: dict[str, _Entry] | None = None
        self.bucket: TokenBucket | None = None
        self.rate_strikes = 0
        self.bad_messages = 0
        self.pong_deadline: float | None = None
        self.token_warned = False
        self.in_flight = 0
        self.tasks: set[asyncio.Task[Any]] | None = None
        self.msgs_in = 0
        self.msgs_out = 0

    # -- identity -------------------------------------------------------------------------------

    @property
    def role(self) -> Role | None:
        return self.claims.role if self.claims else None

    @property
    def authenticated(self) -> bool:
        return self.claims is not None

    # -- outbound -------------------------------------------------------------------------------

    @property
    def queued_bytes(self) -> int:
        return self.out_bytes + self.backlog_bytes

    def send(self, frame: bytes, lossy: bool = False, key: str | None = None) -> None:
        """Queue a frame for the next flush (the fan-out loop inlines the fast path of this)."""
        if self.closing:
            return
        if self.out_bytes + len(frame) > self.max_queue // 2 and not self.paused:
            self.flush()  # a burst larger than the queue goes to the socket now
        if self.paused:
            self.send_backlogged(frame, lossy, key)
            return
        self.out.append(frame)
        self.out_bytes += len(frame)
        if not self.dirty:
            self.dirty = True
            self.hub.mark_dirty(self)

    def send_backlogged(self, frame: bytes, lossy: bool, key: str | None) -> None:
        """The slow path: the socket is full or the queue is long; bound it, drop or coalesce."""
        if self.closing:
            return
        limits = self.hub.limits
        if self.backlog is None:
            self.backlog = deque()
            self.coalesce = {}
        assert self.coalesce is not None
        # Frames already sitting in `out` move to the backlog so order is kept.
        if self.out:
            for f in self.out:
                self.backlog.append(_Entry(f, False, None))
            self.backlog_bytes += self.out_bytes
            self.out = []
            self.out_bytes = 0
        size = len(frame)
        if lossy and key is not None:
            old = self.coalesce.get(key)
            if old is not None:
                # The subscriber is behind: keep only the latest value for this key.
                self.backlog_bytes += size - len(old.frame)
                old.frame = frame
                self.hub.metrics.drops.labels("coalesced").inc()
                self._schedule()
                return
        max_bytes = self.max_queue
        max_msgs = limits.max_queue_messages
        buffered = self.sink.buffered()
        if buffered + self.backlog_bytes + size > max_bytes or len(self.backlog) + 1 > max_msgs:
            if not lossy:
                self.hub.slow_consumer(self)
                return
            if not self._drop_oldest_lossy(size, buffered, max_bytes, max_msgs) and key is None:
                self.hub.metrics.drops.labels("queue_full").inc()
                return
            # With a key, the latest value is kept even past the bound: at most one entry per key
            # (channel), and a subscriber that catches up must end on the newest value.
        entry = _Entry(frame, lossy, key)
        self.backlog.append(entry)
        self.backlog_bytes += size
        if lossy and key is not None:
            self.coalesce[key] = entry
        self._schedule()

    def _drop_oldest_lossy(self, size: int, buffered: int, max_bytes: int, max_msgs: int) -> bool:
        assert self.backlog is not None and self.coalesce is not None
        kept: deque[_Entry] = deque()
        dropped = 0
        while self.backlog and (
            buffered + self.backlog_bytes + size > max_bytes or len(self.backlog) + len(kept) + 1 > max_msgs
        ):
            entry = self.backlog.popleft()
            if entry.lossy:
                self.backlog_bytes -= len(entry.frame)
                if entry.key is not None and self.coalesce.get(entry.key) is entry:
                    del self.coalesce[entry.key]
                dropped += 1
            else:
                kept.append(entry)
        kept.extend(self.backlog)
        self.backlog = kept
        if dropped:
            self.hub.metrics.drops.labels("oldest").inc(dropped)
        return buffered + self.backlog_bytes + size <= max_bytes and len(self.backlog) + 1 <= max_msgs

    def _schedule(self) -> None:
        if not self.paused and not self.dirty:
            self.dirty = True
            self.hub.mark_dirty(self)

    def flush(self) -> None:
        """Write everything ready as one write. Called by the hub once per loop iteration."""
        self.dirty = False
        if self.paused or (self.closing and not self.out and not self.backlog):
            return
        if self.backlog:
            frames = [e.frame for e in self.backlog]
            frames.extend(self.out)
            self.backlog.clear()
            self.coalesce = None
            self.backlog = None
            size = self.backlog_bytes + self.out_bytes
            self.backlog_bytes = 0
        else:
            frames = self.out
            size = self.out_bytes
        self.out = []
        self.out_bytes = 0
        if not frames:
            return
        self.msgs_out += len(frames)
        self.hub.tally.bytes_out += size
        self.sink.write(frames[0] if len(frames) == 1 else b"".join(frames))

    def pause_writing(self) -> None:
        self.paused = True

    async def writable(self) -> None:
        """Wait until the socket takes data again (or the connection ends): flow control for
        long replays, so a recovering client is never closed as a slow consumer by its own replay."""
        while self.paused and not self.closing:
            if self.drain_waiter is None:
                self.drain_waiter = asyncio.get_running_loop().create_future()
            await self.drain_waiter

    def _wake_drain(self) -> None:
        waiter, self.drain_waiter = self.drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def resume_writing(self) -> None:
        self.paused = False
        self._wake_drain()
        if (self.out or self.backlog) and not self.dirty:
            self.dirty = True
            self.hub.mark_dirty(self)

    def close(self, disconnect: codes.Disconnect, *, flush: bool = True) -> None:
        """Send a close frame (after the queue, or instead of it) and end the connection."""
        if self.closing:
            return
        self.closing = True
        if not flush:
            self.out = []
            self.out_bytes = 0
            self.backlog = None
            self.coalesce = None
            self.backlog_bytes = 0
        frame = self.sink.close_frame(disconnect.code, disconnect.reason)
        self.out.append(frame)
        self.out_bytes += len(frame)
        self.paused = False  # the close frame goes out now; the transport buffers it
        self.flush()
        self._wake_drain()
        self.sink.finish(flush)
