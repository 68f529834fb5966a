"""The cluster's health sample: every node samples itself each second (as one hub does) into Redis,
every node aggregates the live nodes' samples for its own REST history, and only the ``sweeps``
leader publishes the aggregate on ``system:health`` — one series for dashboards, not one per node."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from bridge.cluster.model import aggregate_health, node_of
from bridge.cluster.presence import Presence
from bridge.hub.hub import Hub

__all__ = ["HEALTH_HISTORY", "HEALTH_INTERVAL", "ClusterHealth"]

logger = logging.getLogger("mtbridge.cluster")

#: Seconds between two samples, and how many cluster samples are kept (five minutes).
HEALTH_INTERVAL = 1.0
HEALTH_HISTORY = 300


class ClusterHealth:
    def __init__(
        self,
        hub: Hub,
        node_id: str,
        presence: Presence,
        live: Callable[[], list[str]],
        publishes: Callable[[], bool],
    ) -> None:
        self.hub = hub
        self.node_id = node_id
        self.presence = presence
        self.live = live
        self.publishes = publishes
        self.history: deque[dict[str, Any]] = deque(maxlen=HEALTH_HISTORY)

    async def run(self, sampler: Any) -> None:
        while True:
            await asyncio.sleep(HEALTH_INTERVAL)
            try:
                await self.tick(sampler)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("cluster health sample failed")

    async def tick(self, sampler: Any) -> dict[str, Any]:
        """One sample: this node's into Redis, the cluster's into the history (and onto
        ``system:health`` where this node leads). With Redis unreachable, this node's alone."""
        sample = sampler.sample()
        samples = {self.node_id: sample}
        try:
            await self.presence.put_health(sample)
            found = await self.presence.health_samples(self.live())
            samples = {node_of(inst): s for inst, s in found.items()} or samples
        except (RedisError, OSError):
            pass
        cluster = aggregate_health(int(sample["ts"]), samples)
        self.history.append(cluster)
        if self.publishes():
            self.hub.publish_ephemeral("system:health", cluster)
        return cluster

    def latest(self, sampler: Any) -> dict[str, Any]:
        if self.history:
            return dict(self.history[-1])
        return aggregate_health(int(self.hub.clock() * 1000), {self.node_id: sampler.sample()})
