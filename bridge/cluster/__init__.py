"""The cluster control plane: what is node-local in one hub made cluster-wide (docs/architecture.md,
"Cluster control plane").

- :mod:`~bridge.cluster.model`: the pure rules (keys, bus messages, health aggregation);
- :mod:`~bridge.cluster.presence`: presence entries and per-subject claims in Redis;
- :mod:`~bridge.cluster.control`: the control bus (commands between nodes over Redis pub/sub);
- :mod:`~bridge.cluster.leader`: leadership through PostgreSQL advisory locks;
- :mod:`~bridge.cluster.node`: the wiring into one hub process, with and without Redis.
"""

from __future__ import annotations

from typing import Any

from bridge.cluster.node import MARKETDATA, SWEEPS, LocalCluster, RedisCluster

__all__ = ["MARKETDATA", "SWEEPS", "LocalCluster", "RedisCluster", "cluster_of", "start_cluster"]


async def start_cluster(services: Any) -> LocalCluster:
    """The control plane of ``services``: a :class:`RedisCluster` node with ``--redis-url``, else a
    :class:`LocalCluster` that keeps one hub's behaviour exactly."""
    url = services.settings.redis_url
    cluster = RedisCluster(services, url) if url else LocalCluster(services)
    await cluster.start()
    return cluster


def cluster_of(services: Any) -> LocalCluster:
    """The control plane ``services`` runs (a local one for services started without one)."""
    cluster = getattr(services, "cluster", None)
    if cluster is None:
        cluster = services.cluster = LocalCluster(services)
    return cluster  # type: ignore[no-any-return]
