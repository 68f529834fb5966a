"""Presence, subject claims and the control bus against a real Redis (the shared one on 6379, under
a prefix of each test's own; every key is gone at the end)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bridge.cluster import presence
from bridge.cluster.control import ControlBus
from bridge.cluster.model import BusMessage, Keys, new_instance
from bridge.cluster.presence import Presence
from tests.support.cluster import RedisServer, require_cluster_services
from tests.support.ports import free_port
from tests.support.waits import WAIT, until

pytestmark = pytest.mark.integration


@pytest.fixture
async def rds(redis_url: str) -> AsyncIterator[tuple[aioredis.Redis, Keys]]:
    client = aioredis.Redis.from_url(redis_url)
    keys = Keys(f"test-{uuid.uuid4().hex[:8]}:")
    try:
        yield client, keys
    finally:
        leftovers = [k async for k in client.scan_iter(match=keys.prefix + "*")]
        if leftovers:
            await client.delete(*leftovers)
        await client.aclose()
        assert not leftovers, f"keys left behind: {leftovers}"


async def test_presence_entries_and_locate(rds: tuple[aioredis.Redis, Keys]) -> None:
    client, keys = rds
    a = Presence(client, new_instance("a"), keys)
    b = Presence(client, new_instance("b"), keys)
    assert await a.heartbeat() is False  # first beat: the key did not exist yet
    assert await a.heartbeat() is True
    await b.heartbeat()
    await a.put([{"id": "c-1", "node": "a", "role": "ea", "accounts": ["1"]}])
    await b.put([{"id": "c-2", "node": "b", "role": "engine", "accounts": []}])
    assert sorted(e["id"] for e in await a.entries()) == ["c-1", "c-2"]
    assert await a.locate("c-2") == b.instance
    assert await a.locate("c-9") is None
    await b.drop(["c-2"])
    assert [e["id"] for e in await a.entries()] == ["c-1"]
    await a.leave()
    await b.leave()
    assert await client.exists(keys.instances) == 0


async def test_subject_cap_across_instances(rds: tuple[aioredis.Redis, Keys]) -> None:
    client, keys = rds
    a = Presence(client, new_instance("a"), keys)
    b = Presence(client, new_instance("b"), keys)
    await a.heartbeat()
    await b.heartbeat()
    assert await a.claim("ea-1", "c-1", 1)
    assert await a.claim("ea-1", "c-1", 1)  # the same connection again: still its own slot
    ok, left = await b.try_claim("ea-1", "c-2", 1)  # another node: refused
    assert not ok and 0 < left <= presence.ALIVE_TTL  # how long a's claim lives if a stops beating
    assert await b.claim("ea-1", "c-2", 2)  # a cap of two admits it
    await a.release("ea-1", "c-1")
    assert await a.claimants("ea-1") == [f"{b.instance}|c-2"]
    assert await client.smembers(keys.claims(a.instance)) == set()
    await b.release("ea-1", "c-2")
    assert await client.exists(keys.subject("ea-1")) == 0
    await a.leave()
    await b.leave()


async def test_dead_instance_claims_stop_counting_and_are_reaped(rds: tuple[aioredis.Redis, Keys]) -> None:
    client, keys = rds
    dead = Presence(client, new_instance("dead"), keys)
    live = Presence(client, new_instance("live"), keys)
    await dead.heartbeat()
    await live.heartbeat()
    assert await dead.claim("ea-1", "c-1", 1)
    await dead.put([{"id": "c-1", "node": "dead", "role": "ea", "accounts": ["1"]}])
    assert not await live.claim("ea-1", "c-2", 1)
    await client.delete(keys.alive(dead.instance))  # what the TTL does when the node dies
    assert await live.claim("ea-1", "c-2", 1)  # the dead claim no longer counts
    assert await live.live_instances() == [live.instance]  # and the dead instance is reaped
    for key in keys.owned(dead.instance):
        assert await client.exists(key) == 0
    assert await live.entries() == []
    assert await live.claimants("ea-1") == [f"{live.instance}|c-2"]
    # The dead node comes back (Redis was unreachable for it): its heartbeat says it lapsed.
    assert await dead.heartbeat() is False
    assert not await dead.claim("ea-1", "c-1", 1)  # the subject is held elsewhere now
    await live.leave()
    await dead.leave()
    assert await client.exists(keys.subject("ea-1")) == 0


async def test_liveness_expires_by_itself(
    rds: tuple[aioredis.Redis, Keys], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(presence, "ALIVE_TTL", 0.3)
    client, keys = rds
    p = Presence(client, new_instance("short"), keys)
    await p.heartbeat()
    assert await p.claim("s", "c-1", 1)

    async def gone() -> bool:
        return not await client.exists(keys.alive(p.instance))

    await until(gone)
    other = Presence(client, new_instance("other"), keys)
    await other.heartbeat()
    assert await other.claim("s", "c-2", 1)
    await other.live_instances()
    await other.leave()


async def test_bus_broadcast_addressing_and_request(rds: tuple[aioredis.Redis, Keys]) -> None:
    client, keys = rds
    a = ControlBus(client, new_instance("a"), keys)
    b = ControlBus(client, new_instance("b"), keys)
    c = ControlBus(client, new_instance("c"), keys)
    seen: dict[str, list[BusMessage]] = {"a": [], "b": [], "c": []}
    for name, bus in (("a", a), ("b", b), ("c", c)):
        bus.on("ping", lambda m, name=name: seen[name].append(m))  # type: ignore[misc]
        bus.on("echo", lambda m: {"echo": m.body["x"]})
        await bus.start()
    try:
        assert await a.send("ping", {"n": 1}) == 3
        await until(lambda: len(seen["b"]) == 1 and len(seen["c"]) == 1)
        assert seen["a"] == []  # a node does not act on its own broadcast
        await a.send("ping", {"n": 2}, to=c.instance)
        await until(lambda: len(seen["c"]) == 2)
        assert len(seen["b"]) == 1
        assert await a.request(b.instance, "echo", {"x": 7}) == {"echo": 7}
        with pytest.raises(TimeoutError):
            await a.request("nobody#000000000000", "echo", {"x": 1}, within=0.3)
        b.dispatch(b"garbage")
        assert b.refused == 1
    finally:
        for bus in (a, b, c):
            await bus.close()
    assert await client.pubsub_numsub(keys.bus) == [(keys.bus.encode(), 0)]


async def test_bus_starts_without_redis_and_subscribes_when_it_comes(tmp_path: Path) -> None:
    """A node may start while Redis is down: the bus subscribes once Redis answers, then catches up."""
    require_cluster_services()  # our own redis-server
    server = RedisServer(tmp_path / "redis", free_port())
    client = aioredis.Redis.from_url(server.url, socket_connect_timeout=1, socket_timeout=2)
    keys = Keys("t:")
    bus = ControlBus(client, new_instance("late"), keys)
    caught_up = asyncio.Event()

    async def catch_up() -> None:
        caught_up.set()

    bus.on_reconnect.append(catch_up)
    seen: list[BusMessage] = []
    bus.on("ping", seen.append)
    await bus.start()
    try:
        assert not bus.up
        server.start()
        await until(lambda: bus.up, timeout=WAIT * 2)
        await asyncio.wait_for(caught_up.wait(), WAIT)
        other = ControlBus(client, new_instance("other"), keys)
        await other.send("ping", {})
        await until(lambda: len(seen) == 1)
    finally:
        await bus.close()
        await client.aclose()
        server.stop()
