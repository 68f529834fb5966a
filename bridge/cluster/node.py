"""The control plane of one hub process: :class:`LocalCluster` (one hub, no Redis: today's behaviour)
and :class:`RedisCluster` (a node of a cluster sharing PostgreSQL and Redis).

Both offer the same small surface to the REST API and to ``Services``:

- ``connections()``, ``close_connection(id)``, ``online_accounts()``: the connection list, closing
  and "EA online", for every node;
- ``control_changed()``: tell every node that the operator-control log moved;
- ``led(name, factory)``, ``leads(name)``, ``health_task(sampler)``, ``health_history()``: work that
  exactly one node does;
- ``admit(conn, claims)`` (the hub's admission hook): the per-subject cap across the cluster.
- ``subscriptions``: a :class:`~bridge.cluster.subscriptions.SubscriptionRouter`, REST-managed
  subscriptions of a connection on whichever node holds it (bus ops ``subscribe``, ``unsubscribe``).

The cluster node rides on the hub's and ledger's existing extension points (connection callbacks,
the revocation persister, the ledger's control log) and on three components: :class:`Presence`,
:class:`ControlBus` and :class:`PgLeadership`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bridge.auth.revocation import Revocation
from bridge.auth.tokens import Claims
from bridge.cluster.control import ControlBus
from bridge.cluster.health import ClusterHealth
from bridge.cluster.leader import Factory, LocalLeadership, PgLeadership, asyncpg_dsn
from bridge.cluster.metrics import ClusterCollector
from bridge.cluster.model import BusMessage, Keys, new_instance, node_of, online_accounts
from bridge.cluster.presence import HEARTBEAT_INTERVAL, Presence
from bridge.cluster.subscriptions import SubscriptionRouter
from bridge.hub.connection import Connection
from bridge.hub.hub import Hub
from bridge.protocol import codes
from bridge.protocol.channels import Role
from bridge.tasks import cancel_and_wait

__all__ = ["MARKETDATA", "SWEEPS", "LocalCluster", "RedisCluster"]

logger = logging.getLogger("mtbridge.cluster")

#: Leadership names: the sweeps (retention, signal expiry, the cluster health sample) and the
#: market-data adapters configured in the hub. Separate locks, so two nodes may share the work.
SWEEPS = "sweeps"
MARKETDATA = "marketdata"
#: Seconds between rewrites of the presence entries whose counters changed (messages in/out,
#: subscriptions): the connection list of another node is at most this old for those fields.
PRESENCE_REFRESH = 5.0
#: Seconds between reads of the operator-control log (the fallback when a bus message is lost).
CONTROL_POLL = 2.0
CONTROL_CHANNEL = "control:state"
#: The control plane's Redis client: seconds to connect, seconds for one command's round trip, and
#: immediate retries of a command whose connection failed (a Redis restart leaves every pooled
#: connection stale once).
REDIS_CONNECT_TIMEOUT = 2.0
REDIS_COMMAND_TIMEOUT = 5.0
REDIS_RETRIES = 2
#: Seconds added to a stale claim's remaining liveness before claiming again (Redis expires keys
#: within a millisecond of their TTL; the margin covers a busy event loop).
STALE_MARGIN = 0.1


#: A command on one connection: ``(connection, body) -> answer``, run on the node that holds it.
ConnectionCommand = Callable[[Connection, dict[str, Any]], dict[str, Any]]


def _entry(hub: Hub, node: str, conn: Connection) -> dict[str, Any]:
    entry = hub.describe([conn])[0]
    entry["node"] = node
    entry["connectedAt"] = int(conn.connected_at * 1000)
    return entry


class LocalCluster:
    """A single hub: everything is local and this node leads everything."""

    def __init__(self, services: Any) -> None:
        self.services = services
        self.hub: Hub = services.hub
        self.node_id: str = services.node_id
        self.leadership = LocalLeadership()
        self._connection_ops: dict[str, ConnectionCommand] = {"close": self._close}
        self.subscriptions = SubscriptionRouter(self.hub)  # REST-managed, bridge/cluster/subscriptions.py

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def leads(self, name: str) -> bool:
        return True

    def led(self, name: str, factory: Factory) -> asyncio.Task[None]:
        return self.leadership.led(name, factory)

    def health_task(self, sampler: Any) -> asyncio.Task[None]:
        return asyncio.create_task(sampler.run(), name="mtbridge-health")

    def health_history(self) -> list[dict[str, Any]]:
        return list(self.services.health.history)

    def health_latest(self) -> dict[str, Any]:
        history = self.services.health.history
        return dict(history[-1]) if history else self.services.health.sample()  # type: ignore[no-any-return]

    async def connections(self) -> list[dict[str, Any]]:
        return [{**entry, "node": self.node_id} for entry in self.hub.describe()]

    # -- commands addressed to one connection, wherever it is connected -------------------------

    def on_connection_command(self, op: str, handler: ConnectionCommand) -> None:
        """Register ``op``: ``handler(conn, body)`` runs on the node holding the connection and its
        result (a JSON object) is the answer. The seam for every per-connection operation an
        operator or the REST API starts on any node (closing; later REST-managed subscriptions)."""
        self._connection_ops[op] = handler

    def _run_local(self, conn_id: str, op: str, body: dict[str, Any]) -> dict[str, Any] | None:
        conn = self.hub.connections.get(conn_id)
        if conn is None or conn.closing:
            return None
        return self._connection_ops[op](conn, body)

    async def to_connection(self, conn_id: str, op: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Run command ``op`` on connection ``conn_id``; its answer with the ``node`` that ran it, or
        None when no node holds that connection."""
        result = self._run_local(conn_id, op, body)
        return None if result is None else {**result, "node": self.node_id}

    def _close(self, conn: Connection, body: dict[str, Any]) -> dict[str, Any]:
        self.hub.close(conn, codes.OPERATOR_CLOSED)
        return {"closed": conn.id}

    async def close_connection(self, conn_id: str) -> dict[str, Any] | None:
        """Close a connection with 4006 on whichever node holds it."""
        return await self.to_connection(conn_id, "close", {})

    async def online_accounts(self) -> set[str]:
        return set(self.services.ledger.online)

    async def control_changed(self) -> None:
        return None

    def status(self) -> dict[str, Any]:
        return {"node": self.node_id, "clustered": False, "nodes": [self.node_id], "leads": ["*"]}


class RedisCluster(LocalCluster):
    """One node of a cluster: presence and claims in Redis, commands on the bus, leadership in
    PostgreSQL."""

    def __init__(self, services: Any, redis_url: str, keys: Keys | None = None) -> None:
        super().__init__(services)
        # A client (and pool) of the control plane's own: its commands are idempotent (a claim by the
        # same connection is the same claim; deleting, releasing and overwriting again change
        # nothing; every bus command may arrive twice), so a command that meets a connection Redis
        # closed (a restart) is retried at once on a fresh one instead of failing a REST call or
        # refusing an EA. The data path keeps its own client without transparent retries.
        redis = aioredis.Redis.from_url(
            redis_url,
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT,
            socket_timeout=REDIS_COMMAND_TIMEOUT,
            retry=Retry(NoBackoff(), REDIS_RETRIES),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            health_check_interval=10,
        )
        self.redis = redis
        self.ledger = services.ledger
        self.store = services.store
        self.keys = keys or Keys()
        self.instance = new_instance(self.node_id)
        self.presence = Presence(redis, self.instance, self.keys)
        self.bus = ControlBus(redis, self.instance, self.keys)
        self.pg = PgLeadership(asyncpg_dsn(services.settings.db_url))
        self.cap: int | None = self.hub.limits.max_connections_per_subject
        self.health = ClusterHealth(
            self.hub, self.node_id, self.presence, lambda: self.live, lambda: self.pg.leads(SWEEPS)
        )
        self.live: list[str] = [self.instance]
        self.redis_ok = True
        self.lapses = 0
        self.fenced = 0
        self.admissions: dict[str, int] = {}
        self._claimed: dict[str, str] = {}  # connection id -> subject it claims
        self._dirty: dict[str, Connection | None] = {}  # presence writes waiting (None: remove)
        self._written: dict[str, tuple[int, int, int]] = {}  # what each entry held when written
        self._flushing: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._control_offset = 0
        self._control_lock = asyncio.Lock()

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        hub = self.hub
        try:
            await self.presence.heartbeat()
        except (RedisError, OSError) as exc:
            # Serve anyway: the heartbeat loop writes presence and claims once Redis answers.
            logger.warning("cluster: Redis unreachable at start (%s); serving local connections", exc)
            self.redis_ok = False
        await self.bus.start()
        self.bus.on("revoke", self._on_revoke)
        self.bus.on("control", self._on_control)
        for op in self._connection_ops:  # registered before the bus existed
            self.bus.on(op, self._connection_command)
        self.subscriptions = SubscriptionRouter(hub, self.presence, self.bus, self.instance)
        self.subscriptions.install()  # ops "subscribe" and "unsubscribe"
        self.bus.on_reconnect.append(self._caught_up)
        await self.pg.start()
        self.pg.want(SWEEPS)
        hub.on_connection_change.append(self._on_connection_change)
        hub.metrics.registry.register(ClusterCollector(self))
        hub.admission = self.admit  # type: ignore[attr-defined]
        self.ledger.leads = lambda: self.pg.leads(SWEEPS)
        persist = hub.persist_revocation

        async def persist_and_announce(rev: Revocation) -> None:
            if persist is not None:
                await persist(rev)
            await self._announce_revocation(rev)

        hub.persist_revocation = persist_and_announce
        await self._follow_control(rebuild=True)
        self._tasks.append(asyncio.create_task(self._heartbeat(), name="mtbridge-presence"))
        self._tasks.append(asyncio.create_task(self._control_poll(), name="mtbridge-control-poll"))
        logger.info("cluster: node %s joined as %s", self.node_id, self.instance)

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        if self._flushing is not None:
            with contextlib.suppress(Exception):
                await self._flushing
        await self.pg.stop()
        await self.bus.close()
        try:
            await self.presence.leave()
        except (RedisError, OSError) as exc:
            logger.warning("cluster: could not remove this node's presence (%s); it expires by itself", exc)
        await self.redis.aclose()
        self._claimed.clear()
        self._dirty.clear()
        self._written.clear()

    # -- leadership -----------------------------------------------------------------------------

    def leads(self, name: str) -> bool:
        return self.pg.leads(name)

    def led(self, name: str, factory: Factory) -> asyncio.Task[None]:
        return self.pg.led(name, factory)

    def health_task(self, sampler: Any) -> asyncio.Task[None]:
        return asyncio.create_task(self.health.run(sampler), name="mtbridge-health")

    def health_history(self) -> list[dict[str, Any]]:
        return list(self.health.history)

    def health_latest(self) -> dict[str, Any]:
        return self.health.latest(self.services.health)

    # -- presence -------------------------------------------------------------------------------

    def _on_connection_change(self, conn: Connection, up: bool) -> None:
        self._dirty[conn.id] = conn if up else None
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Write the presence changes of one loop iteration in one round trip each way."""
        await asyncio.sleep(0)
        try:
            while self._dirty:
                dirty, self._dirty = self._dirty, {}
                puts = []
                gone = []
                for conn_id, conn in dirty.items():
                    if conn is not None and not conn.closing:
                        puts.append(_entry(self.hub, self.node_id, conn))
                        self._written[conn_id] = (conn.msgs_in, conn.msgs_out, len(conn.subscriptions))
                    else:
                        gone.append(conn_id)
                        self._written.pop(conn_id, None)
                try:
                    await self.presence.put(puts)
                    await self.presence.drop(gone)
                    for conn_id in gone:
                        sub = self._claimed.pop(conn_id, None)
                        if sub is not None:
                            await self.presence.release(sub, conn_id)
                except (RedisError, OSError) as exc:
                    # The next good heartbeat rewrites all of this instance's presence and claims
                    # (_reassert), which drops what could not be removed now.
                    logger.warning("cluster: presence update failed (%s)", exc)
                    self.redis_ok = False
                    for conn_id in gone:
                        self._claimed.pop(conn_id, None)
        finally:
            self._flushing = None

    async def _heartbeat(self) -> None:
        last_refresh = self.hub.clock()
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL)
            try:
                kept = await self.presence.heartbeat()
                if not kept:
                    self.lapses += 1
                    logger.warning("cluster: this node was taken for dead; asserting its claims again")
                    await self._reassert()
                elif not self.redis_ok:
                    await self._reassert()
                self.live = await self.presence.live_instances()
                now = self.hub.clock()
                if now - last_refresh >= PRESENCE_REFRESH:
                    last_refresh = now
                    await self._refresh()
                if not self.redis_ok:
                    logger.info("cluster: Redis is back")
                self.redis_ok = True
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self.redis_ok:
                    logger.warning("cluster: Redis unreachable (%s); serving local connections", exc)
                self.redis_ok = False
            except Exception:
                logger.exception("cluster heartbeat failed")

    async def _refresh(self) -> None:
        """Rewrite the presence entries whose counters or subscriptions changed."""
        changed = []
        for conn_id, conn in list(self.hub.connections.items()):
            if conn.claims is None or conn.closing:
                continue
            mark = (conn.msgs_in, conn.msgs_out, len(conn.subscriptions))
            if self._written.get(conn_id) != mark:
                self._written[conn_id] = mark
                changed.append(_entry(self.hub, self.node_id, conn))
        await self.presence.put(changed)

    async def _reassert(self) -> None:
        """After Redis lost this instance or some of its writes (an outage, or an emptied Redis):
        drop whatever this instance had in Redis (entries and claims of connections that left during
        the outage would otherwise linger and count against the cap), then write every presence entry
        again and claim again for every connection, oldest first. A connection whose claim is now held
        by another node's connection is closed: two EAs of one subject must not both run."""
        await self.presence.reap(self.instance)
        await self.presence.heartbeat()
        conns = [c for c in self.hub.connections.values() if c.claims is not None and not c.closing]
        self._written = {c.id: (c.msgs_in, c.msgs_out, len(c.subscriptions)) for c in conns}
        await self.presence.put([_entry(self.hub, self.node_id, c) for c in conns])
        for conn_id, sub in sorted(self._claimed.items(), key=lambda kv: self._age_key(kv[0])):
            conn = self.hub.connections.get(conn_id)
            if conn is None or conn.closing or self.cap is None:
                self._claimed.pop(conn_id, None)
                continue
            if not await self.presence.claim(sub, conn_id, self.cap):
                logger.warning("cluster: %s lost its claim on its subject; closing it", conn_id)
                self._claimed.pop(conn_id, None)
                self.fenced += 1
                self.hub.close(conn, codes.TOO_MANY_CONNECTIONS)

    def _age_key(self, conn_id: str) -> float:
        conn = self.hub.connections.get(conn_id)
        return conn.connected_at if conn is not None else 0.0

    async def connections(self) -> list[dict[str, Any]]:
        local = await super().connections()
        now_ms = int(self.hub.clock() * 1000)
        remote = []
        for entry in await self.presence.entries():
            if entry.get("node") == self.node_id and entry.get("id") in self.hub.connections:
                continue
            at = entry.get("connectedAt")
            if isinstance(at, int):
                entry["ageSeconds"] = round(max(0, now_ms - at) / 1000, 3)
            remote.append(entry)
        return local + remote

    async def online_accounts(self) -> set[str]:
        try:
            entries = await self.presence.entries()
        except (RedisError, OSError):
            return set(self.ledger.online)
        return online_accounts(entries) | set(self.ledger.online)

    # -- the per-subject cap --------------------------------------------------------------------

    def claims_held(self) -> int:
        return len(self._claimed)

    async def admit(self, conn: Connection, claims: Claims) -> codes.Disconnect | None:
        """The hub's admission hook: claim a slot of the subject across the cluster (within about
        ALIVE_TTL + 0.1 s when the subject is at its cap: see below).

        When Redis is unreachable, EAs are refused (4008: reconnect with backoff) rather than risk
        a second EA of one account executing every signal again; other roles fall back to the
        local check the hub already made."""
        if self.cap is None:
            return None
        outcome = await self._admit(conn, claims, self.cap)
        self.admissions[outcome[0]] = self.admissions.get(outcome[0], 0) + 1
        return outcome[1]

    async def _admit(self, conn: Connection, claims: Claims, cap: int) -> tuple[str, codes.Disconnect | None]:
        waited = False
        try:
            ok, left = await self.presence.try_claim(claims.sub, conn.id, cap)
            if not ok and not conn.closing:
                waited = True
                # Wait out the blocking claims' current liveness (at most ALIVE_TTL) and try once more:
                # a node that died a moment ago (its EA is reconnecting here) has expired by then and
                # the EA gets in within 5 s instead of a 4007 and a 30 s back-off; a live node has
                # beaten meanwhile and the second connection is refused as before.
                await asyncio.sleep(left + STALE_MARGIN)
                ok, _ = await self.presence.try_claim(claims.sub, conn.id, cap)
        except (RedisError, OSError) as exc:
            if claims.role is Role.EA:
                logger.warning("cluster: cannot check the subject cap (%s); refusing an EA", exc)
                return "unavailable", codes.INTERNAL_ERROR
            return "unchecked", None
        if not ok:
            if conn.closing:
                return "left", codes.NORMAL
            return "refused", codes.TOO_MANY_CONNECTIONS
        if conn.closing:  # it left while we asked
            with contextlib.suppress(RedisError, OSError):
                await self.presence.release(claims.sub, conn.id)
            return "left", codes.NORMAL
        self._claimed[conn.id] = claims.sub
        return ("admitted_after_wait" if waited else "admitted"), None

    # -- commands -------------------------------------------------------------------------------

    async def _announce_revocation(self, rev: Revocation) -> None:
        body = {
            "kind": rev.kind,
            "value": rev.value,
            "revokedAt": rev.revoked_at,
            "expiresAt": rev.expires_at,
        }
        try:
            await self.bus.send("revoke", body)
        except (RedisError, OSError) as exc:
            logger.warning("cluster: revocation not announced (%s); nodes read it from the store", exc)

    def _on_revoke(self, msg: BusMessage) -> dict[str, Any]:
        b = msg.body
        kind, value, at, until = b.get("kind"), b.get("value"), b.get("revokedAt"), b.get("expiresAt")
        if (
            kind not in ("jti", "sub")
            or not isinstance(value, str)
            or not 0 < len(value) <= 128
            or not isinstance(at, int | float)
            or not isinstance(until, int | float)
        ):
            raise ValueError("malformed revocation")
        assert isinstance(kind, str)
        closed = self.hub.apply_revocation(Revocation(kind, value, float(at), float(until)))
        return {"closed": closed}

    async def control_changed(self) -> None:
        try:
            await self.bus.send("control", {})
        except (RedisError, OSError) as exc:
            logger.warning("cluster: control change not announced (%s); nodes poll the store", exc)

    async def _on_control(self, msg: BusMessage) -> None:
        await self._follow_control()

    async def _control_poll(self) -> None:
        while True:
            await asyncio.sleep(CONTROL_POLL)
            try:
                await self._follow_control()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("cluster: reading the control log failed")

    async def _follow_control(self, rebuild: bool = False) -> None:
        """Apply the operator-control log in log order from where this node stopped (from the start
        when ``rebuild``), so every node converges on the same paused set whatever the bus lost."""
        async with self._control_lock:
            ledger = self.ledger
            if rebuild:
                self._control_offset = 0
                ledger.paused_accounts.clear()
                ledger.paused_strategies.clear()
            while True:
                page = await self.store.read_since(CONTROL_CHANNEL, self._control_offset, 1000)
                if not page:
                    return
                for item in page:
                    self._control_offset = item.offset
                    ledger._apply_control(item.payload)

    async def _caught_up(self) -> None:
        """After the bus reconnected: what it may have lost is in the store."""
        await self._follow_control()
        await self.ledger._load_revocations()

    def on_connection_command(self, op: str, handler: ConnectionCommand) -> None:
        super().on_connection_command(op, handler)
        self.bus.on(op, self._connection_command)

    def _connection_command(self, msg: BusMessage) -> dict[str, Any]:
        conn_id = msg.body.get("conn")
        body = msg.body.get("body")
        if not isinstance(conn_id, str) or not 0 < len(conn_id) <= 64 or not isinstance(body, dict):
            raise ValueError(f"malformed {msg.op}")
        result = self._run_local(conn_id, msg.op, body)
        return {"found": False} if result is None else {"found": True, "result": result}

    async def to_connection(self, conn_id: str, op: str, body: dict[str, Any]) -> dict[str, Any] | None:
        local = await super().to_connection(conn_id, op, body)
        if local is not None:
            return local
        instance = await self.presence.locate(conn_id)
        if instance is None or instance == self.instance:
            return None
        reply = await self.bus.request(instance, op, {"conn": conn_id, "body": body})
        result = reply.get("result")
        if not reply.get("found") or not isinstance(result, dict):
            return None
        return {**result, "node": node_of(instance)}

    def status(self) -> dict[str, Any]:
        return {
            "node": self.node_id,
            "clustered": True,
            "instance": self.instance,
            "nodes": sorted(node_of(i) for i in self.live),
            "redis": self.redis_ok,
            "bus": self.bus.up,
            "leads": self.pg.held(),
        }
