"""Prometheus metrics of the cross-node data path: Redis traffic and errors (``redis.py``), and the
gap repair of what Redis lost (``bridge/hub/repair.py``). Registered on the hub's registry by
``bridge/hub/metrics.py``; here so that the broker depends on nothing of the hub."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["LAG_BUCKETS", "ClusterMetrics"]

#: Commit-to-remote-delivery lag buckets (seconds): Redis adds ~0.1-1 ms on a LAN; a gap fill from the
#: store after a Redis loss takes up to two periodic checks (2 x 2 s by default).
LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, float("inf"))


class ClusterMetrics:
    """The cross-node data path (docs/scaling.md): Redis traffic, its errors, and gap repair."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.redis_up = Gauge(
            "mtbridge_redis_up", "1 while this node's Redis connection works; 0 = degraded", registry=r
        )
        self.redis_published = Counter(
            "mtbridge_redis_published", "Publications sent to Redis", ["kind"], registry=r
        )
        self.redis_received = Counter(
            "mtbridge_redis_received", "Publications received from other nodes through Redis", registry=r
        )
        self.redis_errors = Counter(
            "mtbridge_redis_errors", "Redis failures (connect, publish, subscribe, bad message)", ["op"],
            registry=r,
        )  # fmt: skip
        self.redis_dropped = Counter(
            "mtbridge_redis_dropped",
            "Publications that could not be sent to other nodes (durable ones are repaired from the store)",
            ["kind"],
            registry=r,
        )
        self.gap_fills = Counter(
            "mtbridge_gap_fills", "Gaps in a durable channel filled from the store", ["trigger"], registry=r
        )
        self.gap_filled = Counter(
            "mtbridge_gap_filled_publications",
            "Publications delivered from the store by gap fills",
            registry=r,
        )
        self.duplicates = Counter(
            "mtbridge_duplicates_dropped", "Durable publications received again and dropped", registry=r
        )
        self.epoch_resets = Counter(
            "mtbridge_epoch_resets", "Durable channels whose epoch changed under live subscribers", registry=r
        )
        self.remote_lag = Histogram(
            "mtbridge_remote_delivery_lag_seconds",
            "From the publishing node's commit to fan-out on another node",
            buckets=LAG_BUCKETS,
            registry=r,
        )
