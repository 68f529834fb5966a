"""One client connection as the hub sees it: its state machine, identity, subscriptions and the
outbound queue. Every change of a connection's state or queue is a method here; the hub, the
fan-out and the WebSocket shell call these and never write the fields themselves.

States (:class:`ConnState`, forward only): CONNECTED (socket open, no token) -> AUTHENTICATED
(a token is bound: :meth:`Connection.authenticate`) -> CLOSING (our close frame is queued or the peer
closed: nothing more is sent) -> CLOSED (the hub forgot it: :meth:`Connection.end`). Orthogonal to
it, the write state: writable, or paused while the transport's buffer is full
(:meth:`Connection.pause_writing` / :meth:`Connection.resume_writing`).

The queue is where backpressure lives. Frames arrive already built (one ``bytes`` object shared by
every subscriber of a broadcast) and are appended to ``out``; the hub's flusher writes each dirty
connection's frames with one ``write`` per loop iteration. While the socket keeps up, that is all.
When the transport says it is full (``pause_writing``), frames go to a *backlog* instead, bounded
in bytes and in messages, where lossy frames are coalesced by key or the oldest dropped, and a
lossless frame that does not fit closes the connection as a slow consumer (it recovers by offset).

Not here: what a connection may subscribe to or publish (``commands.py``), which connections a
publication reaches (``channel.py``, ``fanout.py``), timers (``housekeeping.py``). The I/O side is
behind :class:`Sink`, so tests can drive a connection without sockets; what a connection needs from
its hub is :class:`Owner`, so this module imports no hub.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Callable, Container, Iterable
from typing import Any, Protocol

from bridge.auth.tokens import Claims
from bridge.hub.limits import HubLimits
from bridge.hub.metrics import HubMetrics, Tally
from bridge.hub.ratelimit import TokenBucket
from bridge.protocol import codes
from bridge.protocol.channels import Role
from bridge.protocol.envelope import Encoding

__all__ = ["ConnState", "Connection", "Owner", "Sink"]


class ConnState(enum.IntEnum):
    """Where a connection is in its life; it only moves forward (the order is the numbers)."""

    CONNECTED = 0
    AUTHENTICATED = 1
    CLOSING = 2
    CLOSED = 3


# The state is kept as a plain int (``Connection._state``): the fan-out compares it once per
# subscriber, and CPython compares exact ints faster than an IntEnum (about 3 ns against 11 ns).
_CONNECTED = int(ConnState.CONNECTED)
_AUTHENTICATED = int(ConnState.AUTHENTICATED)
_CLOSING = int(ConnState.CLOSING)
_CLOSED = int(ConnState.CLOSED)


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


class Owner(Protocol):
    """What a connection needs from its hub: limits, counters, the flusher and the slow-consumer close."""

    limits: HubLimits
    metrics: HubMetrics
    tally: Tally

    clock: Callable[[], float]

    #: Connections with frames to write at the end of this loop iteration (never replaced: cleared).
    dirty: list[Connection]

    def mark_dirty(self, conn: Connection) -> None: ...

    def flush_soon(self) -> None: ...

    def slow_consumer(self, conn: Connection) -> None: ...


class _Entry:
    __slots__ = ("frame", "key", "lossy")

    def __init__(self, frame: bytes, lossy: bool, key: str | None) -> None:
        self.frame = frame
        self.lossy = lossy
        self.key = key


class Connection:
    __slots__ = (
        "__weakref__",
        "_backlog",
        "_burst",
        "_claims",
        "_coalesce",
        "_dirty",
        "_drain_waiter",
        "_paused",
        "_state",
        "_token_warned",
        "backlog_bytes",
        "bad_messages",
        "bucket",
        "connected_at",
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
        "pong_deadline",
        "rate_strikes",
        "recovering",
        "sink",
        "subscriptions",
        "tasks",
    )

    def __init__(
        self,
        hub: Owner,
        conn_id: str,
        sink: Sink,
        encoding: Encoding,
        ip: str,
        now: float,
        *,
        max_queue: int | None = None,
    ) -> None:
        self.hub = hub
        self.id = conn_id
        self.sink = sink
        self.encoding = encoding
        self.ip = ip
        self.connected_at = now
        self.last_seen = now
        self.max_queue = hub.limits.max_queue_bytes if max_queue is None else max_queue
        #: Queued bytes past which a send writes to the socket at once: half the queue bound.
        self._burst = self.max_queue >> 1
        self._state = _CONNECTED
        self._claims: Claims | None = None
        self.subscriptions: set[str] = set()
        self.recovering: set[str] = set()
        #: Read-only outside this class (the queue changes only through the methods below).
        self.out: list[bytes] = []
        self.out_bytes = 0
        self._dirty = False
        self._paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._backlog: deque[_Entry] | None = None
        self.backlog_bytes = 0
        self._coalesce: dict[str, _Entry] | None = None
        self.bucket: TokenBucket | None = None
        self.rate_strikes = 0
        self.bad_messages = 0
        self.pong_deadline: float | None = None
        self._token_warned = False
        self.in_flight = 0
        self.tasks: set[asyncio.Task[Any]] | None = None
        self.msgs_in = 0
        self.msgs_out = 0

    # -- state ----------------------------------------------------------------------------------

    @property
    def state(self) -> ConnState:
        return ConnState(self._state)

    @property
    def claims(self) -> Claims | None:
        return self._claims

    @claims.setter
    def claims(self, claims: Claims) -> None:
        """Tests and benches file a token directly: the same transition as :meth:`authenticate`."""
        self.authenticate(claims)

    def authenticate(self, claims: Claims) -> None:
        """CONNECTED -> AUTHENTICATED: bind the token's claims (a no-op on the state once closing)."""
        self._claims = claims
        if self._state < _AUTHENTICATED:
            self._state = _AUTHENTICATED

    def refresh(self, claims: Claims) -> None:
        """``auth.refresh``: the new token's claims replace the old, and its expiry warning re-arms."""
        self._claims = claims
        self._token_warned = False

    def warn_expiry(self) -> bool:
        """True once per token: the caller sends the ``token_expiring`` warning."""
        if self._token_warned:
            return False
        self._token_warned = True
        return True

    @property
    def closing(self) -> bool:
        """Closing or closed: nothing more is queued for it."""
        return self._state >= _CLOSING

    @property
    def paused(self) -> bool:
        """The write state: True while the transport's buffer is full."""
        return self._paused

    @property
    def role(self) -> Role | None:
        return self._claims.role if self._claims else None

    @property
    def authenticated(self) -> bool:
        return self._claims is not None

    def heard(self, now: float) -> None:
        """The peer sent something: it is alive, and any ping we sent is answered."""
        self.last_seen = now
        self.pong_deadline = None

    def ping(self, deadline: float) -> None:
        """Send a ping that must be answered (any data counts) by ``deadline``."""
        self.pong_deadline = deadline
        self.send(self.sink.ping_frame())

    def peer_closed(self) -> None:
        """-> CLOSING without a close frame of ours: the peer closed (websockets queued the reply),
        the socket failed the connection, or the transport is gone (``Hub.disconnected``, before
        :meth:`end`); stop sending anything else."""
        if self._state < _CLOSING:
            self._state = _CLOSING

    def end(self) -> None:
        """-> CLOSED: the hub forgot the connection. Drop the queue and wake a replay waiting for
        the socket (it sees the connection closed). Idempotent."""
        self._state = _CLOSED
        self.out = []
        self.out_bytes = 0
        self._backlog = None
        self._coalesce = None
        self._wake_drain()

    # -- outbound -------------------------------------------------------------------------------

    @property
    def queued_bytes(self) -> int:
        return self.out_bytes + self.backlog_bytes

    @property
    def has_queued(self) -> bool:
        return bool(self.out or self._backlog)

    def send(self, frame: bytes, lossy: bool = False, key: str | None = None) -> None:
        """Queue a frame for the next flush (an event, a reply, a replayed message)."""
        hub = self.hub
        Connection.send_many((self,), frame, lossy, key, None, hub.dirty)
        hub.flush_soon()

    @staticmethod
    def send_many(
        conns: Iterable[Connection],
        frame: bytes,
        lossy: bool,
        key: str | None,
        skip: Container[Connection] | None,
        dirty: list[Connection],
    ) -> int:
        """Queue one frame for each of ``conns`` but those in ``skip``; the one way a frame enters a
        queue. Connections that become dirty are appended to ``dirty`` (the hub's flush list); the
        caller then makes sure a flush is scheduled (``Owner.flush_soon``). Returns how many were
        not skipped. Fan-out calls this once per encoding with the frame built once: no call and no
        allocation per subscriber, which is why the loop is here rather than around :meth:`send`."""
        size = len(frame)
        delivered = 0
        for c in conns:
            if skip is not None and c in skip:
                continue
            delivered += 1
            if c._state >= _CLOSING:
                continue
            if c._paused:
                c._send_backlogged(frame, lossy, key)
                continue
            if c.out_bytes + size > c._burst:
                # Frames ready in one loop iteration are written together, but never more than half
                # the queue bound at once: a burst goes to the socket now, not to the limit, and the
                # other half absorbs a pause.
                c.flush()
                if c._paused:
                    c._send_backlogged(frame, lossy, key)
                    continue
            c.out.append(frame)
            c.out_bytes += size
            if not c._dirty:
                c._dirty = True
                dirty.append(c)
        return delivered

    def _send_backlogged(self, frame: bytes, lossy: bool, key: str | None) -> None:
        """The slow path: the socket is full or the queue is long; bound it, drop or coalesce."""
        if self._state >= _CLOSING:
            return
        limits = self.hub.limits
        if self._backlog is None:
            self._backlog = deque()
            self._coalesce = {}
        assert self._coalesce is not None
        # Frames already sitting in `out` move to the backlog so order is kept.
        if self.out:
            for f in self.out:
                self._backlog.append(_Entry(f, False, None))
            self.backlog_bytes += self.out_bytes
            self.out = []
            self.out_bytes = 0
        size = len(frame)
        if lossy and key is not None:
            old = self._coalesce.get(key)
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
        if buffered + self.backlog_bytes + size > max_bytes or len(self._backlog) + 1 > max_msgs:
            if not lossy:
                self.hub.slow_consumer(self)
                return
            if not self._drop_oldest_lossy(size, buffered, max_bytes, max_msgs) and key is None:
                self.hub.metrics.drops.labels("queue_full").inc()
                return
            # With a key, the latest value is kept even past the bound: at most one entry per key
            # (channel), and a subscriber that catches up must end on the newest value.
        entry = _Entry(frame, lossy, key)
        self._backlog.append(entry)
        self.backlog_bytes += size
        if lossy and key is not None:
            self._coalesce[key] = entry
        self._schedule()

    def _drop_oldest_lossy(self, size: int, buffered: int, max_bytes: int, max_msgs: int) -> bool:
        assert self._backlog is not None and self._coalesce is not None
        kept: deque[_Entry] = deque()
        dropped = 0
        while self._backlog and (
            buffered + self.backlog_bytes + size > max_bytes or len(self._backlog) + len(kept) + 1 > max_msgs
        ):
            entry = self._backlog.popleft()
            if entry.lossy:
                self.backlog_bytes -= len(entry.frame)
                if entry.key is not None and self._coalesce.get(entry.key) is entry:
                    del self._coalesce[entry.key]
                dropped += 1
            else:
                kept.append(entry)
        kept.extend(self._backlog)
        self._backlog = kept
        if dropped:
            self.hub.metrics.drops.labels("oldest").inc(dropped)
        return buffered + self.backlog_bytes + size <= max_bytes and len(self._backlog) + 1 <= max_msgs

    def _schedule(self) -> None:
        if not self._paused and not self._dirty:
            self._dirty = True
            self.hub.mark_dirty(self)

    def flush(self) -> None:
        """Write everything ready as one write. Called by the hub once per loop iteration."""
        self._dirty = False
        if self._paused or (self._state >= _CLOSING and not self.out and not self._backlog):
            return
        if self._backlog:
            frames = [e.frame for e in self._backlog]
            frames.extend(self.out)
            self._backlog.clear()
            self._coalesce = None
            self._backlog = None
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

    def write_in_order(self, data: bytes) -> None:
        """Bytes the socket layer produced itself (a pong, a close reply) go out behind the frames
        already queued, so the peer sees them in order; written now unless the socket is full."""
        self.out.append(data)
        self.out_bytes += len(data)
        self.flush()

    def flush_before_close(self) -> None:
        """The transport is about to close: hand it everything queued, full or not (it buffers)."""
        if self.out or self._backlog:
            self._paused = False
            self.flush()

    def pause_writing(self) -> None:
        """Writable -> paused: the transport's buffer is full; frames go to the bounded backlog."""
        self._paused = True

    async def writable(self) -> None:
        """Wait until the socket takes data again (or the connection ends): flow control for
        long replays, so a recovering client is never closed as a slow consumer by its own replay."""
        while self._paused and self._state < _CLOSING:
            if self._drain_waiter is None:
                self._drain_waiter = asyncio.get_running_loop().create_future()
            await self._drain_waiter

    def _wake_drain(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def resume_writing(self) -> None:
        """Paused -> writable: write what waited at the next flush."""
        self._paused = False
        self._wake_drain()
        if (self.out or self._backlog) and not self._dirty:
            self._dirty = True
            self.hub.mark_dirty(self)

    def close(self, disconnect: codes.Disconnect, *, flush: bool = True) -> None:
        """-> CLOSING: send a close frame (after the queue, or instead of it) and end the connection."""
        if self._state >= _CLOSING:
            return
        self._state = _CLOSING
        if not flush:
            self.out = []
            self.out_bytes = 0
            self._backlog = None
            self._coalesce = None
            self.backlog_bytes = 0
        frame = self.sink.close_frame(disconnect.code, disconnect.reason)
        self.out.append(frame)
        self.out_bytes += len(frame)
        self._paused = False  # the close frame goes out now; the transport buffers it
        self.flush()
        self._wake_drain()
        self.sink.finish(flush)
