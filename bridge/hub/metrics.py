"""Prometheus metrics of one hub, on a registry of its own (several hubs can live in one process).

The cross-node ones (Redis, gap repair) are ``bridge/broker/metrics.py``: the broker uses them too,
and the broker must not import the hub."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry, Counter, Gauge, GCCollector, Histogram

from bridge.broker.metrics import ClusterMetrics

__all__ = ["HubMetrics", "Tally"]


class HubMetrics:
    def __init__(self, node: str = "") -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        # The node label: every series of this registry belongs to this node (join on it, or let the
        # scraper's instance label do it); the value is always 1.
        Gauge("mtbridge_node_info", "This hub node's id", ["node"], registry=r).labels(node or "single").set(
            1
        )
        GCCollector(registry=r)
        Gauge(
            "mtbridge_gc_frozen_objects",
            "Objects frozen out of the cyclic garbage collector once the hub started (gc_young_threshold)",
            registry=r,
        ).set_function(gc.get_freeze_count)
        self.connections = Gauge("mtbridge_connections", "Open connections by role", ["role"], registry=r)
        self.connections_total = Counter(
            "mtbridge_connections_opened",
            "Connections accepted (the reconnect rate is its rate())",
            registry=r,
        )
        self.messages_in = Counter("mtbridge_messages_in", "Messages received", ["type"], registry=r)
        self.messages_out = Counter("mtbridge_messages_out", "Messages delivered to subscribers", registry=r)
        self.bytes_in = Counter("mtbridge_bytes_in", "Bytes of WebSocket messages received", registry=r)
        self.bytes_out = Counter("mtbridge_bytes_out", "Bytes written to sockets", registry=r)
        self.queue_bytes = Gauge("mtbridge_queue_bytes", "Bytes waiting in outbound queues", registry=r)
        self.channels = Gauge(
            "mtbridge_channels", "Channels with a local subscriber (each one watched in Redis)", registry=r
        )
        self.queue_max_bytes = Gauge(
            "mtbridge_queue_max_bytes", "Deepest outbound queue at the last housekeeping pass", registry=r
        )
        self.drops = Counter("mtbridge_drops", "Lossy messages dropped or coalesced", ["reason"], registry=r)
        self.slow_closes = Counter("mtbridge_slow_consumer_closes", "Slow consumers closed", registry=r)
        self.auth_failures = Counter("mtbridge_auth_failures", "Failed authentications", ["code"], registry=r)
        self.disconnects = Counter(
            "mtbridge_disconnects", "Connections closed by the hub", ["code"], registry=r
        )
        self.errors = Counter("mtbridge_errors", "Error replies sent", ["code"], registry=r)
        self.connection_age = Histogram(
            "mtbridge_connection_age_seconds",
            "Age of connections when they close",
            buckets=(1, 5, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, float("inf")),
            registry=r,
        )
        # Histograms, not summaries: buckets add up across hubs (histogram_quantile over sum by le).
        self.signal_delivery = Histogram(
            "mtbridge_signal_delivery_seconds",
            "From a signal's createdAt to its queueing for an EA on this hub: path=live (fan-out) or "
            "replay (an EA that was away recovered it by offset)",
            ["path"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
                     float("inf")),
            registry=r,
        )  # fmt: skip
        self.signal_status = Counter(
            "mtbridge_signal_status",
            "Delivery status changes committed (delivered, acked, executed, rejected, expired, ...)",
            ["status"],
            registry=r,
        )
        self.trade_events = Counter(
            "mtbridge_trade_events",
            "Trade events committed, by result (new or duplicate)",
            ["result"],
            registry=r,
        )
        self.commit_latency = Histogram(
            "mtbridge_store_commit_seconds",
            "A batch of durable requests from its hand-off to the store until COMMIT, by kind "
            "(publish, ack, trade_event)",
            ["kind"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, float("inf")),
            registry=r,
        )
        self.ea_connections = Gauge(
            "mtbridge_ea_connections",
            "EA connections per account on this hub; kept at 0 once the last one left, so that an alert "
            "can see the account go dark (sum by account over every hub)",
            ["account"],
            registry=r,
        )
        self.publish_latency = Histogram(
            "mtbridge_publish_seconds",
            "From a publish arriving to its fan-out being queued (durable writes included)",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, float("inf")),
            registry=r,
        )
        self.cluster = ClusterMetrics(r)


class Tally:
    """Plain-integer counts kept on the hot path, drained into :class:`HubMetrics` periodically."""

    __slots__ = ("bytes_in", "bytes_out", "messages_in", "messages_out")

    def __init__(self) -> None:
        self.bytes_in = 0
        self.bytes_out = 0
        self.messages_out = 0
        self.messages_in: dict[str, int] = {}

    def drain_into(self, m: HubMetrics) -> None:
        if self.bytes_in:
            m.bytes_in.inc(self.bytes_in)
            self.bytes_in = 0
        if self.bytes_out:
            m.bytes_out.inc(self.bytes_out)
            self.bytes_out = 0
        if self.messages_out:
            m.messages_out.inc(self.messages_out)
            self.messages_out = 0
        if self.messages_in:
            counts, self.messages_in = self.messages_in, {}
            for mtype, n in counts.items():
                m.messages_in.labels(mtype).inc(n)
