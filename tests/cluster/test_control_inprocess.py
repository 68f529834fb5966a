"""The control plane in-process, where every registry can be inspected: one hub without Redis keeps
today's behaviour; two cluster nodes (one event loop, a fresh database, a redis-server of the test's
own) share presence, fence a node taken for dead, and leave nothing behind."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from bridge.auth.tokens import issue, load_or_create_secret
from bridge.cluster import LocalCluster, RedisCluster
from tests.support.cluster import ClusterServices
from tests.support.hub import Client, RunningHub, running_hub
from tests.support.waits import until

pytestmark = pytest.mark.integration


async def test_one_hub_without_redis_is_local(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as h:
        cluster = h.services.cluster
        assert type(cluster) is LocalCluster and h.services.redis is None
        admin = h.token("admin", "ops")
        ea = await h.connect(h.token("ea", "ea-1", accounts=["1"]))
        async with httpx.AsyncClient(base_url=h.http, headers={"Authorization": f"Bearer {admin}"}) as http:
            listing = (await http.get("/api/v1/connections")).json()
            assert listing["complete"] is True
            assert [(e["sub"], e["node"]) for e in listing["items"]] == [("ea-1", h.services.node_id)]
            status = (await http.get("/api/v1/cluster")).json()
            assert status["clustered"] is False and status["nodes"] == [h.services.node_id]
            ea_id = listing["items"][0]["id"]
            assert (await http.delete(f"/api/v1/connections/{ea_id}")).json() == {
                "closed": ea_id,
                "node": h.services.node_id,
            }
        assert (await ea.closed())[0] == 4006
        await h.wait_clean()


def _clean(h: RunningHub) -> None:
    h.assert_clean()
    cluster = h.services.cluster
    assert isinstance(cluster, RedisCluster)
    assert cluster._claimed == {} and cluster._dirty == {} and cluster._written == {}
    assert h.hub.auth.pending == {}


async def test_two_nodes_share_presence_fence_and_leave_nothing(
    tmp_path: Path, services: ClusterServices
) -> None:
    common = {
        "database_url": services.db.url,
        "redis_url": services.redis.url,
        "jwt_secret_file": tmp_path / "secret",
        "max_connections_per_subject": 1,
    }
    async with (
        running_hub(tmp_path / "a", node_id="a", **common) as a,
        running_hub(tmp_path / "b", node_id="b", **common) as b,
    ):
        ca, cb = a.services.cluster, b.services.cluster
        assert isinstance(ca, RedisCluster) and isinstance(cb, RedisCluster)
        secret, _ = load_or_create_secret(tmp_path / "secret")
        token = issue(secret, sub="ea-x", role="ea", now=time.time(), ttl=3600, accounts=["9"])
        old = await a.connect(token)
        old_id = old.welcome["payload"]["connectionId"]
        await until(lambda: ca._claimed == {old_id: "ea-x"} and ca._dirty == {})
        assert [e["node"] for e in await cb.connections()] == ["a"]
        # A command addressed to a connection runs on the node that holds it, asked from any node.
        for c in (ca, cb):
            c.on_connection_command("whoami", lambda conn, body: {"sub": conn.claims.sub, "x": body["x"]})
        assert await cb.to_connection(old_id, "whoami", {"x": 1}) == {"sub": "ea-x", "x": 1, "node": "a"}
        assert await ca.to_connection(old_id, "whoami", {"x": 2}) == {"sub": "ea-x", "x": 2, "node": "a"}
        assert await cb.to_connection("c-0000000000000000", "whoami", {"x": 3}) is None
        # Node a is taken for dead (its liveness key gone, as after a long stall) and reaped.
        rds = aioredis.Redis.from_url(services.redis.url)
        try:
            await rds.delete(ca.keys.alive(ca.instance))
            await cb.presence.live_instances()
            new = await Client.open(b.url, token)  # admitted: a's claim no longer counts
            assert (await old.closed())[0] == 4007  # a finds its lapse and fences its connection
            assert ca.fenced == 1 and ca.lapses == 1
            assert [e["id"] for e in await ca.connections()] == [new.welcome["payload"]["connectionId"]]
            await new.close()
            await until(lambda: cb._claimed == {} and not cb.hub.connections)
            await asyncio.sleep(0)  # let the presence flush run
            await until(lambda: cb._dirty == {} and cb._flushing is None)
            for h in (a, b):
                await h.wait_clean()
                _clean(h)
            keys = sorted([k.decode() async for k in rds.scan_iter(match="mtb:ctl:*")])
            kinds = {k.split(":")[2] for k in keys}
            assert kinds <= {"instances", "alive", "health"}, keys
        finally:
            await rds.aclose()
    rds = aioredis.Redis.from_url(services.redis.url)
    try:
        assert [k async for k in rds.scan_iter(match="mtb:ctl:*")] == []  # both stopped: nothing left
    finally:
        await rds.aclose()
