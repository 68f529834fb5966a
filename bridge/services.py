"""Wiring: the one place a hub process is assembled from its :class:`~bridge.config.Settings`.

What lives here: the settings turned into a token verifier (:func:`build_verifier`), the store
(through :func:`bridge.store.open_store`, the one store factory), the broker, the hub, the ledger,
the cluster control plane and the health sampler, started and stopped together (:class:`Services`).
The API's lifespan (:mod:`bridge.api.app`), the CLI and the tests all go through here.

What does not: HTTP routes and their errors (:mod:`bridge.api`, which imports this module, never
the other way round), the uvicorn server (:mod:`bridge.server`), and what each part does once
started (the hub in :mod:`bridge.hub`, the ledger in :mod:`bridge.ledger`, ...).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from bridge.auth.tokens import Verifier, load_or_create_secret
from bridge.broker.base import Broker
from bridge.broker.redis import RedisBroker
from bridge.cluster import SWEEPS, LocalCluster, start_cluster
from bridge.config import Settings
from bridge.hub.hub import Hub
from bridge.ledger.service import Ledger
from bridge.store import SQLStore, Store, open_store
from bridge.tasks import cancel_and_wait

if TYPE_CHECKING:
    from bridge.marketdata.local import HubLocalSink

__all__ = ["HealthSampler", "Services", "build_verifier"]

logger = logging.getLogger("mtbridge")

HEALTH_INTERVAL = 1.0
HEALTH_HISTORY = 300
RETENTION_INTERVAL = 3600.0
#: The shared Redis client's socket timeouts (seconds): connecting, and one command's round trip.
#: Short, so that a dead Redis is noticed within seconds and the node reports itself degraded.
REDIS_CONNECT_TIMEOUT = 2.0
REDIS_COMMAND_TIMEOUT = 5.0
#: How long a starting node waits for its Redis subscriber connection before it starts degraded.
REDIS_START_WAIT = 5.0


def build_verifier(settings: Settings) -> tuple[Verifier, bytes | None]:
    """The verifier the settings describe, and the HMAC secret when there is one."""
    algs = settings.jwt_algorithms
    common: dict[str, Any] = {
        "audience": settings.jwt_audience,
        "issuer": settings.jwt_issuer,
        "leeway": settings.jwt_leeway,
    }
    if settings.hmac:
        secret, created = load_or_create_secret(settings.secret_path)
        if created:
            logger.warning("generated a new HS256 signing secret at %s (mode 0600)", settings.secret_path)
        return Verifier(algs, secret=secret, **common), secret
    if settings.jwt_jwks_file is not None:
        return Verifier.from_jwks(algs, settings.jwt_jwks_file.read_text(), **common), None
    if settings.jwt_public_key_file is not None:
        return Verifier.from_pem(algs, settings.jwt_public_key_file.read_bytes(), **common), None
    raise ValueError("RS*/ES* algorithms need jwt_public_key_file or jwt_jwks_file")


class HealthSampler:
    """Samples the hub once a second for dashboards: rates, drops and latency percentiles."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.history: deque[dict[str, Any]] = deque(maxlen=HEALTH_HISTORY)
        self._last: tuple[float, float, float] | None = None

    def _total(self, counter: Any) -> float:
        return float(sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total")))

    def sample(self) -> dict[str, Any]:
        hub = self.hub
        hub.sync_metrics()
        m = hub.metrics
        now = hub.clock()
        msgs_in = self._total(m.messages_in)
        msgs_out = self._total(m.messages_out)
        rate_in = rate_out = 0.0
        if self._last is not None:
            t0, in0, out0 = self._last
            dt = max(now - t0, 1e-6)
            rate_in, rate_out = (msgs_in - in0) / dt, (msgs_out - out0) / dt
        self._last = (now, msgs_in, msgs_out)
        samples = sorted(hub.latency_samples)
        hub.latency_samples = []
        by_role: dict[str, int] = {}
        for conn in hub.connections.values():
            role = conn.role.value if conn.role else "anonymous"
            by_role[role] = by_role.get(role, 0) + 1
        snap = {
            "ts": int(now * 1000),
            "connections": len(hub.connections),
            "byRole": by_role,
            "messagesInPerSec": round(rate_in, 1),
            "messagesOutPerSec": round(rate_out, 1),
            "drops": self._total(m.drops),
            "slowConsumerCloses": self._total(m.slow_closes),
            "latencyP50Ms": round(_pct(samples, 0.50) * 1000, 3),
            "latencyP99Ms": round(_pct(samples, 0.99) * 1000, 3),
        }
        self.history.append(snap)
        return snap

    async def run(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_INTERVAL)
            try:
                self.hub.publish_ephemeral("system:health", self.sample())
            except Exception:
                logger.exception("health sample failed")


def _pct(samples: list[float], q: float) -> float:
    if not samples:
        return 0.0
    return samples[min(len(samples) - 1, int(q * len(samples)))]


@dataclass
class Services:
    settings: Settings
    hub: Hub
    hmac_secret: bytes | None
    store: Store
    ledger: Ledger
    health: HealthSampler
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    marketdata_sink: HubLocalSink | None = None
    #: This process's node id (``--node-id``, default ``<hostname>-<pid>``).
    node_id: str = ""
    #: The node's shared Redis client (a connection pool) when ``--redis-url`` is set, else None.
    #: The broker takes its own pub/sub connection from it; the cluster control plane uses it too.
    redis: aioredis.Redis | None = None
    #: The cluster control plane (bridge/cluster): presence, control bus, leadership.
    cluster: LocalCluster | None = None

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        problem = settings.cluster_problem()
        if problem is not None:
            raise RuntimeError(problem)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        node_id = settings.node
        redis = None
        if settings.redis_url:
            redis = aioredis.Redis.from_url(
                settings.redis_url,
                socket_connect_timeout=REDIS_CONNECT_TIMEOUT,
                socket_timeout=REDIS_COMMAND_TIMEOUT,
                health_check_interval=10,
            )
        verifier, secret = build_verifier(settings)
        store = await open_store(settings.db_url)
        origin = f"{node_id}/{secrets.token_hex(4)}"  # unique even if two nodes share an id
        broker: Broker | None = None
        if settings.redis_url:
            broker = RedisBroker.from_url(settings.redis_url, origin)
        hub = Hub(
            verifier, limits=settings.hub_limits(), log=store, broker=broker, node_id=node_id, origin=origin
        )
        if isinstance(broker, RedisBroker):
            broker.metrics = hub.metrics.cluster
        ledger = Ledger(hub, store)
        hub.persist_revocation = ledger.persist_revocation
        await ledger.start()
        await hub.start()
        if isinstance(broker, RedisBroker):
            if not await broker.wait_ready(REDIS_START_WAIT):
                logger.warning("Redis not reachable at start: serving degraded until it is")
            hub.repair.start_checks(settings.gap_check_interval)
        health = HealthSampler(hub)
        services = cls(settings, hub, secret, store, ledger, health, node_id=node_id, redis=redis)
        services.cluster = cluster = await start_cluster(services)
        ledger.leads = lambda: cluster.leads(SWEEPS)
        services.tasks.append(cluster.health_task(health))
        services.tasks.append(cluster.led("retention", services._retention))
        if settings.marketdata:
            services.tasks.append(cluster.led("marketdata", services._marketdata))
        logger.info(
            "hub ready: node %s, store %s, broker %s, epoch %s",
            node_id, store.dialect if isinstance(store, SQLStore) else "memory",
            "redis" if broker else "in-process", hub.epoch,
        )  # fmt: skip
        return services

    async def ready_check(self) -> None:
        """The store answers a read."""
        await self.store.list_revocations(0)

    async def _marketdata(self) -> None:
        """Exchange adapters configured to run inside the hub (``marketdata`` settings)."""
        from bridge.marketdata.local import HubLocalSink
        from bridge.marketdata.runner import config_from_mapping, run_adapters

        configs = [config_from_mapping(raw) for raw in self.settings.marketdata]
        self.marketdata_sink = sink = HubLocalSink(self.hub)
        stop = asyncio.Event()
        try:
            await run_adapters(configs, sink, stop)
        except asyncio.CancelledError:
            stop.set()
            raise
        except Exception:
            logger.exception("market-data adapters stopped")

    async def _retention(self) -> None:
        keep_ms = int(self.settings.retention_days * 86400 * 1000)
        while True:
            await asyncio.sleep(RETENTION_INTERVAL)
            try:
                result = await self.store.apply_retention(int(self.hub.clock() * 1000) - keep_ms)
                logger.info("retention: %s", result)
            except Exception:
                logger.exception("retention failed")

    async def stop(self, drain: float) -> None:
        await self.hub.stop(drain_timeout=min(drain, 5.0))
        await cancel_and_wait(self.tasks)
        if self.cluster is not None:
            await self.cluster.stop()
        await self.ledger.stop()
        await self.store.close()
        if self.redis is not None:
            await self.redis.aclose()
