"""Prometheus metrics of the control plane, read from the node's state at scrape time (nothing is
counted on a hot path), on the hub's own registry. Registered by a cluster node only: a single hub's
``/metrics`` is unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from bridge.cluster.control import ControlBus
from bridge.cluster.leader import PgLeadership

__all__ = ["ClusterCollector", "ClusterState"]


class ClusterState(Protocol):
    """What the collector reads of a cluster node (``bridge.cluster.node.RedisCluster``), without
    importing the node, which registers this collector."""

    live: list[str]
    redis_ok: bool
    bus: ControlBus
    pg: PgLeadership
    admissions: dict[str, int]
    fenced: int
    lapses: int

    def claims_held(self) -> int: ...


class ClusterCollector(Collector):
    def __init__(self, cluster: ClusterState) -> None:
        self.cluster = cluster

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        c = self.cluster
        yield GaugeMetricFamily("mtbridge_cluster_nodes", "Live nodes this node sees", value=len(c.live))
        up = GaugeMetricFamily(
            "mtbridge_cluster_up", "Control plane links: Redis commands and the control bus", labels=["link"]
        )
        up.add_metric(["redis"], 1 if c.redis_ok else 0)
        up.add_metric(["bus"], 1 if c.bus.up else 0)
        yield up
        leader = GaugeMetricFamily(
            "mtbridge_cluster_leader",
            "1 while this node leads the named work (advisory lock)",
            labels=["name"],
        )
        for name in c.pg.wanted():
            leader.add_metric([name], 1 if c.pg.leads(name) else 0)
        yield leader
        yield CounterMetricFamily(
            "mtbridge_cluster_leadership_changes", "Leadership gained or lost", value=c.pg.transitions
        )
        yield GaugeMetricFamily(
            "mtbridge_cluster_claims",
            "Subject claims this node holds for its connections",
            value=c.claims_held(),
        )
        admissions = CounterMetricFamily(
            "mtbridge_cluster_admissions",
            "Authentications checked against the cluster-wide per-subject cap, by outcome",
            labels=["outcome"],
        )
        for outcome, n in sorted(c.admissions.items()):
            admissions.add_metric([outcome], n)
        yield admissions
        yield CounterMetricFamily(
            "mtbridge_cluster_fenced",
            "Connections this node closed because another node holds their subject's claim",
            value=c.fenced,
        )
        yield CounterMetricFamily(
            "mtbridge_cluster_lapses", "Times this node found itself taken for dead", value=c.lapses
        )
        bus = CounterMetricFamily(
            "mtbridge_cluster_bus_messages",
            "Control-bus messages for this node, by result",
            labels=["result"],
        )
        bus.add_metric(["handled"], c.bus.received)
        bus.add_metric(["refused"], c.bus.refused)
        yield bus
