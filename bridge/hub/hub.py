"""The hub: one process's connections and channels on one asyncio loop, and the wiring of its parts.

Nothing here touches sockets: connections reach the network through their ``Sink`` (``websocket.py``).
This module holds the registries (connections, channels, subjects, addresses), the hub's lifecycle
(start, drain, stop), a connection's arrival and departure, replies, and the channel registry. Each
concern has its own module, which takes the hub through a small Protocol and never imports this one:

- ``commands.py``: an inbound message, its handler (auth, refresh, heartbeat, subscribe, unsubscribe,
  publish) and the durable publish batch (where a publication is committed to the store);
- ``admission.py``: token checks, cluster admission, binding a token, revocation;
- ``recovery.py``: a durable subscription's replay; ``repair.py``: ordering and gap repair of what
  the broker delivers;
- ``fanout.py``: handing publications to the broker, fan-out to local queues, the flush;
- ``housekeeping.py``: the timer pass (auth deadlines, pings, token expiry, sweeps);
- ``connection.py``: a connection's states and queue; ``channel.py``: a channel's subscriber index.

The parts' public methods are bound onto the hub as attributes (``hub.receive``, ``hub.fanout``...),
so a call through the hub costs no extra function layer on the hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from bridge.auth.revocation import Revocation, RevocationList
from bridge.auth.tokens import Claims, Verifier
from bridge.broker.base import Broker
from bridge.broker.memory import MemoryBroker
from bridge.hub.admission import Admission, auth_result
from bridge.hub.batch import IterationBatch
from bridge.hub.channel import Channel, frame_for
from bridge.hub.commands import Commands, Handler
from bridge.hub.connection import Connection, Sink
from bridge.hub.errors import HubError
from bridge.hub.fanout import Fanout
from bridge.hub.housekeeping import Housekeeping
from bridge.hub.limits import HubLimits
from bridge.hub.metrics import HubMetrics, Tally
from bridge.hub.ports import DurableLog, Prepared, PublishHook
from bridge.hub.ratelimit import TokenBucket
from bridge.hub.repair import Repair
from bridge.protocol import codes
from bridge.protocol.channels import DEFAULT_POLICIES, ChannelError, NamespacePolicy, check_channel
from bridge.protocol.envelope import Encoding
from bridge.protocol.targeting import Targets

__all__ = ["Channel", "Handler", "Hub", "HubError"]

logger = logging.getLogger("mtbridge.hub")


class Hub:
    """Owns every connection and channel of this process."""

    def __init__(
        self,
        verifier: Verifier,
        *,
        limits: HubLimits | None = None,
        log: DurableLog | None = None,
        policies: dict[str, NamespacePolicy] | None = None,
        clock: Callable[[], float] = time.time,
        revocations: RevocationList | None = None,
        persist_revocation: Callable[[Revocation], Awaitable[None]] | None = None,
        broker: Broker | None = None,
        node_id: str = "",
        origin: str = "",
    ) -> None:
        self.verifier = verifier
        self.limits = limits or HubLimits()
        self.log = log
        self.policies = policies or dict(DEFAULT_POLICIES)
        self.clock = clock
        self.revocations = revocations or RevocationList()
        self.persist_revocation = persist_revocation
        self.broker: Broker = broker or MemoryBroker()
        #: This node's id in a cluster ("" for a single hub) and its instance id (unique per process).
        self.node_id = node_id
        self.origin = origin
        self.metrics = HubMetrics(node_id)
        self._public_limits = self.limits.public()
        self.tally = Tally()
        self.epoch = uuid.uuid4().hex[:12]  # epoch of ephemeral channels: changes with every hub start
        self.connections: dict[str, Connection] = {}
        self.channels: dict[str, Channel] = {}
        self.by_subject: dict[str, set[Connection]] = {}
        self.by_ip: dict[str, int] = {}
        self.publish_hooks: dict[str, PublishHook] = {}
        self.on_connection_change: list[Callable[[Connection, bool], None]] = []
        # -- cluster admission (S2, bridge/cluster) --
        #: An async check after the token and the local per-subject cap: the cap across the nodes of
        #: a cluster. It returns None to admit or the close code to refuse with. None (one hub):
        #: authentication stays synchronous, exactly as before.
        self.admission: Callable[[Connection, Claims], Awaitable[codes.Disconnect | None]] | None = None
        # -- end cluster admission --
        self.after_publish: list[Callable[[str, int, Prepared], None]] = []
        self.on_replayed: list[Callable[[Connection, str, list[dict[str, Any]]], None]] = []
        self.latency_samples: list[float] = []
        self._housekeeping: asyncio.Task[None] | None = None
        self.accepting = True
        self._draining: asyncio.Task[None] | None = None

        # -- the parts, and their public methods bound onto the hub --
        self.outbound = fan = Fanout(self.channels, self.broker, self.tally, self.epoch, origin)
        self.dirty = fan.dirty
        self.mark_dirty = fan.mark_dirty
        self.flush_soon = fan.flush_soon
        self._flush = fan.flush
        self.fanout = fan.fanout
        self.distribute = fan.distribute
        self.publish_ephemeral = fan.publish_ephemeral
        self.publish_internal = fan.publish_internal
        #: Receives every publication from the broker: ordering and gap repair (bridge/hub/repair.py).
        self.repair = Repair(self, origin)
        self.auth = auth = Admission(self)
        self.authenticate = auth.authenticate
        self.authenticate_then = auth.authenticate_then
        self.revoke = auth.revoke
        self.apply_revocation = auth.apply_revocation
        self.commands = commands = Commands(self, auth)
        self.handlers = commands.handlers
        self.register = commands.register
        self.receive = commands.receive
        self.admit = commands.admit
        self.settle = commands.settle
        self.fail = commands.fail
        self.publish = commands.publish
        self.subscribe_on_behalf = commands.subscribe_on_behalf
        self.unsubscribe_on_behalf = commands.unsubscribe_on_behalf
        #: Request batches (the hub's and its extensions'): answered before connections are closed at stop.
        self.batches: list[IterationBatch[Any]] = [commands.publishes]
        self.housekeeper = keeper = Housekeeping(self, auth.pending)
        self.housekeep = keeper.housekeep
        self.sync_metrics = keeper.sync_metrics

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self.outbound.loop = asyncio.get_running_loop()
        await self.broker.start(self.repair.receive, self.repair.resync)
        for warning in self.limits.warnings():
            logger.warning("limits: %s", warning)
        self._housekeeping = asyncio.create_task(self.housekeeper.run(), name="mtbridge-housekeeping")

    def begin_drain(self) -> asyncio.Task[None]:
        """Start a graceful shutdown (SIGTERM; idempotent): refuse new connections at once (``/readyz``
        fails from here on), let the durable requests already taken commit and be answered, then tell
        every connection when to come back and close it with 1001 (:meth:`going_away`)."""
        self.accepting = False
        if self._draining is None:
            self._draining = asyncio.get_running_loop().create_task(self._drain(), name="mtbridge-drain")
        return self._draining

    async def _drain(self) -> None:
        await self._drain_batches(self.limits.close_timeout)
        for conn in list(self.connections.values()):
            self.going_away(conn)

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Drain (see :meth:`begin_drain`), wait for the connections to close, then stop."""
        await self.begin_drain()
        deadline = self.clock() + drain_timeout
        while self.connections and self.clock() < deadline:  # noqa: ASYNC110 - bounded drain poll
            await asyncio.sleep(0.05)
        await self._drain_batches(drain_timeout)
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
            self._housekeeping = None
        await self.repair.stop()
        await self.broker.close()

    async def _drain_batches(self, seconds: float) -> None:
        """Let requests already taken finish, so that their answers go out before the close."""
        try:
            async with asyncio.timeout(seconds):
                for batch in self.batches:
                    await batch.drain()
        except TimeoutError:
            logger.warning("stop: requests still in flight after %.1f s", seconds)

    def going_away(self, conn: Connection) -> None:
        """Graceful shutdown of one connection: a ``reconnect`` hint, then close 1001 after everything
        queued. ``afterMs`` is uniform over ``(0, drain_window]`` so that the clients of a stopping node
        land on the others spread over the window, not all in the same second."""
        self.accepting = False
        if conn.closing:
            return
        window_ms = int(self.limits.drain_window * 1000)
        after = 1 + secrets.randbelow(window_ms) if window_ms > 0 else 0
        self.send_event(conn, {"type": "reconnect", "payload": {"afterMs": after, "reason": "shutdown"}})
        self.close(conn, codes.GOING_AWAY)

    # -- connections ----------------------------------------------------------------------------

    def ip_allowed(self, ip: str) -> bool:
        cap = self.limits.max_connections_per_ip
        return cap is None or self.by_ip.get(ip, 0) < cap

    def connect(self, sink: Sink, encoding: Encoding, ip: str) -> Connection:
        now = self.clock()
        conn = Connection(self, "c-" + secrets.token_hex(8), sink, encoding, ip, now)
        self.connections[conn.id] = conn
        self.by_ip[ip] = self.by_ip.get(ip, 0) + 1
        if self.limits.rate_per_second is not None:
            conn.bucket = TokenBucket(self.limits.rate_per_second, self.limits.rate_burst, now)
        self.metrics.connections_total.inc()
        self.metrics.connections.labels("anonymous").inc()
        return conn

    def welcome(self, conn: Connection) -> None:
        payload: dict[str, Any] = {
            "connectionId": conn.id,
            "protocol": "mtbridge.v1",
            "encoding": conn.encoding.value,
            "authenticated": conn.authenticated,
            "limits": self._public_limits,
        }
        if conn.claims is not None:
            payload.update(auth_result(conn.claims))
        self.send_event(conn, {"type": "welcome", "payload": payload})

    def disconnected(self, conn: Connection) -> None:
        """Remove every trace of a closed connection (it becomes CLOSED). Idempotent."""
        if self.connections.pop(conn.id, None) is None:
            return
        conn.peer_closed()  # nothing more is queued for it; the callbacks below still see its queue
        for name in list(conn.subscriptions) + list(conn.recovering):
            self.drop_subscription(conn, name)
        left = self.by_ip.get(conn.ip, 1) - 1
        if left > 0:
            self.by_ip[conn.ip] = left
        else:
            self.by_ip.pop(conn.ip, None)
        role = conn.role.value if conn.role else "anonymous"
        self.metrics.connections.labels(role).dec()
        self.metrics.connection_age.observe(max(0.0, self.clock() - conn.connected_at))
        if conn.claims is not None:
            peers = self.by_subject.get(conn.claims.sub)
            if peers is not None:
                peers.discard(conn)
                if not peers:
                    del self.by_subject[conn.claims.sub]
            for callback in self.on_connection_change:
                callback(conn, False)
        conn.end()

    def slow_consumer(self, conn: Connection) -> None:
        self.metrics.slow_closes.inc()
        self.close(conn, codes.SLOW_CONSUMER, flush=False)

    def close(self, conn: Connection, disconnect: codes.Disconnect, *, flush: bool = True) -> None:
        if conn.closing:
            return
        self.metrics.disconnects.labels(str(disconnect.code)).inc()
        logger.info("closing %s: %d %s", conn.id, disconnect.code, disconnect.reason)
        conn.close(disconnect, flush=flush)

    # -- replies --------------------------------------------------------------------------------

    def send_event(self, conn: Connection, message: dict[str, Any]) -> None:
        if conn.closing:
            return
        conn.send(frame_for(message, conn.encoding))

    def reply(
        self, conn: Connection, request_id: str | None, payload: dict[str, Any], channel: str | None = None
    ) -> None:
        message: dict[str, Any] = {"type": "result"}
        if request_id is not None:
            message["requestId"] = request_id
        if channel is not None:
            message["channel"] = channel
        message["payload"] = payload
        self.send_event(conn, message)

    def reply_error(
        self, conn: Connection, request_id: str | None, code: codes.Error, message: str, **extra: Any
    ) -> None:
        spec = codes.ERRORS[code]
        payload: dict[str, Any] = {"code": spec.code, "message": message[:200], "retryable": spec.retryable}
        payload.update(extra)
        out: dict[str, Any] = {"type": "error"}
        if request_id is not None:
            out["requestId"] = request_id
        out["payload"] = payload
        self.metrics.errors.labels(spec.code).inc()
        self.send_event(conn, out)

    # -- channels -------------------------------------------------------------------------------

    def policy_for(self, name: str) -> NamespacePolicy:
        """The channel's namespace policy (``bridge/protocol/channels.py`` decides), or a HubError."""
        try:
            return check_channel(name, self.policies)
        except ChannelError as exc:
            raise HubError(exc.code, f"bad channel {name[:64]!r}") from exc

    def open_channel(self, name: str, policy: NamespacePolicy) -> Channel:
        """The channel's local registry entry, created (and watched on the broker) on first use."""
        ch = self.channels.get(name)
        if ch is None:
            ch = self.channels[name] = Channel(name, policy)
            ch.watched = self.broker.watch(name)
        return ch

    _channel = open_channel  # the name tests and the targeted bench use

    def delete_channel(self, name: str) -> None:
        """The channel's last local subscriber left: nothing of it stays, here or in the broker."""
        if self.channels.pop(name, None) is not None:
            self.broker.unwatch(name)
            self.repair.closed(name)

    def drop_subscription(self, conn: Connection, name: str) -> None:
        """Remove ``conn``'s subscription to ``name`` (the caller tells the client why)."""
        conn.subscriptions.discard(name)
        conn.recovering.discard(name)
        ch = self.channels.get(name)
        if ch is None:
            return
        ch.discard(conn)
        ch.recovering.pop(conn, None)
        ch.floors.pop(conn, None)
        if ch.empty:
            # Nothing stays behind: durable history lives in the store, and ephemeral channels
            # keep their sequence only while someone listens.
            self.delete_channel(name)

    def listen_internal(self, name: str, handler: Callable[[dict[str, Any]], None]) -> None:
        """Receive the hub's own notices on ``name`` from every node (``publish_internal``); such a
        channel is no client channel and is never stored."""
        self.repair.internal[name] = handler
        self.broker.watch(name)

    # -- queries --------------------------------------------------------------------------------

    def reached(self, name: str, targets: Targets | None) -> Iterable[Connection]:
        """The live local subscribers of ``name`` a publication for ``targets`` reached (the
        channel's index, not a scan); none when nobody here subscribes."""
        ch = self.channels.get(name)
        return ch.reached(targets) if ch is not None else ()

    def connections_of(self, sub: str) -> list[Connection]:
        """The live local connections of subject ``sub`` (a copy: safe to send while iterating)."""
        return list(self.by_subject.get(sub, ()))

    def describe(self, conns: Iterable[Connection] | None = None) -> list[dict[str, Any]]:
        now = self.clock()
        out = []
        for c in conns if conns is not None else self.connections.values():
            claims = c.claims
            out.append(
                {
                    "id": c.id,
                    "sub": claims.sub if claims else None,
                    "role": claims.role.value if claims else None,
                    "accounts": sorted(claims.accounts) if claims else [],
                    "ip": c.ip,
                    "encoding": c.encoding.value,
                    "ageSeconds": round(now - c.connected_at, 3),
                    "queueBytes": c.queued_bytes + c.sink.buffered(),
                    "subscriptions": sorted(c.subscriptions),
                    "messagesIn": c.msgs_in,
                    "messagesOut": c.msgs_out,
                    "node": self.node_id,
                }
            )
        return out
