"""Presence and subject claims in Redis: which connections live on which node, cluster-wide caps.

Every instance (one start of a node) keeps, in Redis:

- ``alive:<instance>``, a key with a TTL of :data:`ALIVE_TTL` seconds, refreshed every
  :data:`HEARTBEAT_INTERVAL` seconds. The instance is alive exactly while that key exists, on
  Redis's clock, so nodes need no synchronised clocks.
- ``conns:<instance>``: one presence entry per authenticated connection (the connection list,
  ``system:connections`` and "EA online" read these).
- ``subject:<sub>`` members ``<instance>|<connection id>``: the claims the per-subject cap counts,
  across the cluster. A claim of an instance whose ``alive`` key is gone no longer counts (the claim
  script checks liveness for every member it counts), so **a dead node's claims stop blocking within
  ALIVE_TTL seconds (5 s)** even before anyone reaps them.

A live node reaps a dead instance's keys on its next heartbeat: the claims it held, its presence
hash, its health sample. When a node stops cleanly it deletes its own keys at once.

If this instance's own ``alive`` key was gone when its heartbeat came back (Redis was unreachable
for longer than the TTL, or was restarted empty), other nodes may have reaped its claims and
admitted another connection of the same subject. The instance then claims again for every local
connection, in connection order; a connection whose claim is refused now (someone else holds the
subject) is closed by the caller. That is the fencing that keeps two EAs of one subject from both
executing a signal.

Scripts run on a single Redis (or a primary with replicas); Redis Cluster is not supported for the
control plane (the claim script touches keys of several hash slots).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import orjson
import redis.asyncio as aioredis

from bridge.cluster.model import Keys

__all__ = ["ALIVE_TTL", "HEARTBEAT_INTERVAL", "Presence"]

logger = logging.getLogger("mtbridge.cluster")

#: Seconds between heartbeats of an instance.
HEARTBEAT_INTERVAL = 1.0
#: Seconds an instance stays alive without a heartbeat: five missed beats. This bounds how long a
#: dead node's presence entries and subject claims last (a killed node's EAs reconnecting elsewhere
#: are refused with 4007 until then, and retry).
ALIVE_TTL = 5.0

# Claim one slot of a subject if fewer than `cap` live claims exist; drops dead members on the way.
# ARGV: prefix, sub, instance, connection id, cap.
# Returns {1, 0} (claimed) or {0, ms}: refused, and the longest any blocking claim's instance may
# still live (the smallest remaining TTL of their liveness keys: the first slot that can free up).
_CLAIM = """
local p, sub, inst, conn, cap = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local skey = p .. 'subject:' .. sub
local mine = inst .. '|' .. conn
local live = 0
local soonest = -1
for _, m in ipairs(redis.call('SMEMBERS', skey)) do
  if m == mine then return {1, 0} end
  local owner = string.match(m, '^(.*)|[^|]*$')
  local ttl = -2
  if owner then ttl = redis.call('PTTL', p .. 'alive:' .. owner) end
  if ttl > 0 then
    live = live + 1
    if soonest < 0 or ttl < soonest then soonest = ttl end
  else
    redis.call('SREM', skey, m)
  end
end
if live >= cap then return {0, soonest} end
redis.call('SADD', skey, mine)
redis.call('SADD', p .. 'claims:' .. inst, sub)
return {1, 0}
"""

# Release one claim; forget the subject in the instance's claim index once it holds none there.
# ARGV: prefix, sub, instance, connection id.
_RELEASE = """
local p, sub, inst, conn = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local skey = p .. 'subject:' .. sub
redis.call('SREM', skey, inst .. '|' .. conn)
local lead = inst .. '|'
for _, m in ipairs(redis.call('SMEMBERS', skey)) do
  if string.sub(m, 1, #lead) == lead then return 1 end
end
redis.call('SREM', p .. 'claims:' .. inst, sub)
return 0
"""

# Remove every trace of a dead (or stopping) instance. ARGV: prefix, instance.
_REAP = """
local p, inst = ARGV[1], ARGV[2]
local lead = inst .. '|'
for _, sub in ipairs(redis.call('SMEMBERS', p .. 'claims:' .. inst)) do
  local skey = p .. 'subject:' .. sub
  for _, m in ipairs(redis.call('SMEMBERS', skey)) do
    if string.sub(m, 1, #lead) == lead then redis.call('SREM', skey, m) end
  end
end
for _, kind in ipairs({'alive:', 'conns:', 'claims:', 'health:'}) do redis.call('DEL', p .. kind .. inst) end
redis.call('SREM', p .. 'instances', inst)
return 1
"""


class Presence:
    """The Redis side of presence and claims for one instance."""

    def __init__(self, redis: aioredis.Redis, instance: str, keys: Keys | None = None) -> None:
        self.redis = redis
        self.instance = instance
        self.keys = keys or Keys()
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)
        self._reap = redis.register_script(_REAP)

    # -- liveness -------------------------------------------------------------------------------

    async def heartbeat(self) -> bool:
        """Refresh this instance's liveness. Returns False if the key had lapsed (the instance was
        taken for dead: its claims may be gone and must be asserted again)."""
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(k.alive(self.instance), b"1", px=int(ALIVE_TTL * 1000), xx=True)
        pipe.sadd(k.instances, self.instance)
        refreshed, _ = await pipe.execute()
        if refreshed:
            return True
        await self.redis.set(k.alive(self.instance), b"1", px=int(ALIVE_TTL * 1000))
        return False

    async def live_instances(self) -> list[str]:
        """Instances alive now; reaps those whose liveness key is gone."""
        k = self.keys
        members = sorted(_text(m) for m in await self.redis.smembers(k.instances))
        if not members:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for inst in members:
            pipe.exists(k.alive(inst))
        flags = await pipe.execute()
        alive = [inst for inst, flag in zip(members, flags, strict=True) if flag]
        for inst in members:
            if inst not in alive:
                logger.info("presence: reaping departed instance %s", inst)
                await self.reap(inst)
        return alive

    async def reap(self, instance: str) -> None:
        await self._reap(args=[self.keys.prefix, instance])

    async def leave(self) -> None:
        """This instance stops: remove every key of it at once."""
        await self.reap(self.instance)

    # -- presence entries -----------------------------------------------------------------------

    async def put(self, entries: Iterable[dict[str, Any]]) -> None:
        """Write (or overwrite) presence entries of this instance's connections."""
        mapping = {e["id"]: orjson.dumps(e) for e in entries}
        if mapping:
            await self.redis.hset(self.keys.conns(self.instance), mapping=mapping)  # type: ignore[misc]

    async def drop(self, conn_ids: Iterable[str]) -> None:
        ids = list(conn_ids)
        if ids:
            await self.redis.hdel(self.keys.conns(self.instance), *ids)  # type: ignore[misc]

    async def entries(self) -> list[dict[str, Any]]:
        """Every live instance's presence entries (reaping dead instances on the way)."""
        alive = await self.live_instances()
        if not alive:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for inst in alive:
            pipe.hvals(self.keys.conns(inst))
        out: list[dict[str, Any]] = []
        for values in await pipe.execute():
            for raw in values:
                try:
                    entry = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(entry, dict):
                    out.append(entry)
        return out

    async def locate(self, conn_id: str) -> str | None:
        """The live instance holding connection ``conn_id``, or None."""
        alive = await self.live_instances()
        if not alive:
            return None
        pipe = self.redis.pipeline(transaction=False)
        for inst in alive:
            pipe.hexists(self.keys.conns(inst), conn_id)
        for inst, found in zip(alive, await pipe.execute(), strict=True):
            if found:
                return inst
        return None

    # -- claims ---------------------------------------------------------------------------------

    async def claim(self, sub: str, conn_id: str, cap: int) -> bool:
        """Take one of the ``cap`` slots of ``sub`` across the cluster for ``conn_id``."""
        ok, _ = await self.try_claim(sub, conn_id, cap)
        return ok

    async def try_claim(self, sub: str, conn_id: str, cap: int) -> tuple[bool, float]:
        """Like :meth:`claim`; when refused, also the seconds until the first blocking instance's
        liveness runs out if it stops beating (ALIVE_TTL for one that just beat)."""
        ok, ms = await self._claim(args=[self.keys.prefix, sub, self.instance, conn_id, cap])
        return bool(ok), max(0, int(ms)) / 1000

    async def release(self, sub: str, conn_id: str) -> None:
        await self._release(args=[self.keys.prefix, sub, self.instance, conn_id])

    async def claimants(self, sub: str) -> list[str]:
        """Members ``<instance>|<connection id>`` currently claiming ``sub`` (tests and diagnostics)."""
        return sorted(_text(m) for m in await self.redis.smembers(self.keys.subject(sub)))

    # -- health ---------------------------------------------------------------------------------

    async def put_health(self, sample: dict[str, Any]) -> None:
        await self.redis.set(self.keys.health(self.instance), orjson.dumps(sample), px=int(ALIVE_TTL * 1000))

    async def health_samples(self, instances: list[str]) -> dict[str, dict[str, Any]]:
        if not instances:
            return {}
        values = await self.redis.mget([self.keys.health(i) for i in instances])
        out: dict[str, dict[str, Any]] = {}
        for inst, raw in zip(instances, values, strict=True):
            if raw is None:
                continue
            try:
                sample = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(sample, dict):
                out[inst] = sample
        return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
