"""Subscriptions managed over REST through any node of a cluster (docs/protocol.md, "Subscriptions
managed over REST"): 3 real `mtbridge serve` nodes on a fresh PostgreSQL database and a `redis-server`
of the test's own (tests/support/cluster.py).

The REST calls go to node0; the connections live on node1 and node2. The holding node decides under
the connection's own token, pushes ``subscribed`` and replays from ``since``; the answer and the
refusals are those of a single hub. Afterwards no node and no Redis channel keeps anything of the
clients. The bus timeout (503) is tested in-process against a real Redis, without a stopped node.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from bridge.cluster import subscriptions as routing
from bridge.cluster.control import ControlBus
from bridge.cluster.model import Keys
from bridge.cluster.presence import Presence
from bridge.cluster.subscriptions import SubscriptionRouter
from bridge.hub.hub import HubError
from tests.support.cluster import Cluster, RedisServer, cluster_services, require_cluster_services
from tests.support.hub import WAIT, Client, publish, settle
from tests.support.waits import eventually

pytestmark = pytest.mark.integration

C = "/api/v1/connections"
S = "/api/v1/subjects"
EA = "50123"
SUBJECT = f"ea-{EA}"


@pytest.fixture
def cl(tmp_path: Path) -> Iterator[Cluster]:
    with cluster_services(tmp_path) as services:
        cluster = Cluster(services, 3).start()
        try:
            yield cluster
        finally:
            cluster.stop()


def cid(c: Client) -> str:
    return str(c.welcome["payload"]["connectionId"])


async def listed(http: httpx.AsyncClient, cl: Cluster, admin: str, ids: set[str]) -> None:
    """Wait until node0's connection list (presence) shows ``ids``."""

    async def now() -> set[str]:
        r = await http.get(cl[0].http + C, headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 200, r.text
        return {e["id"] for e in r.json()["items"]}

    await eventually(now, lambda listed: ids <= listed, timeout=WAIT * 2, interval=0.05)


async def until_offset(c: Client, channel: str, offset: int) -> list[dict[str, Any]]:
    """Everything ``c`` receives up to the message of ``channel`` at ``offset``, which comes through
    Redis from the publishing node, so after the publish's own answer."""
    got: list[dict[str, Any]] = []
    while True:
        msg = await c.recv()
        got.append(msg)
        if msg.get("type") == "message" and msg.get("channel") == channel and msg.get("offset") == offset:
            return got


def offsets_of(got: list[dict[str, Any]], channel: str = "signals:alpha") -> list[int]:
    return [m["offset"] for m in got if m.get("type") == "message" and m.get("channel") == channel]


async def test_rest_subscriptions_through_any_node(cl: Cluster) -> None:
    admin = cl.token("admin", "ops", accounts=["*"])
    ea_token = cl.token("ea", SUBJECT, accounts=[EA], subscribe=["signals:*"])
    engine = await Client.open(cl[0].url, cl.token("engine", "eng", publish=["signals:*"]))
    solo = await Client.open(cl[1].url, cl.token("ea", "ea-solo", accounts=[EA], subscribe=["signals:*"]))
    on_b = await Client.open(cl[1].url, ea_token)
    on_c = await Client.open(cl[2].url, ea_token, encoding="msgpack")
    clients = [engine, solo, on_b, on_c]
    async with httpx.AsyncClient(base_url=cl[0].http, timeout=WAIT * 2) as http:

        async def call(method: str, path: str, body: Any = None, node: int = 0) -> httpx.Response:
            headers = {"Authorization": f"Bearer {admin}"}
            return await http.request(method, cl[node].http + path, json=body, headers=headers)

        await listed(http, cl, admin, {cid(c) for c in clients})
        for c in (solo, on_b, on_c):
            assert (await c.request("subscribe", "signals:beta"))["type"] == "result"
        offsets = [await publish(engine) for _ in range(3)]

        # One connection on node1, by id through node0, recovering from `since`: exact offsets.
        r = await call(
            "POST", f"{C}/{cid(solo)}/subscriptions", {"channel": "signals:alpha", "since": offsets[0]}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["connectionId"] == cid(solo) and body["channel"] == "signals:alpha"
        result = body["result"]
        assert (result["recovered"], result["replayed"], result["offset"]) == (True, 2, offsets[-1])
        live = await publish(engine)
        got = await until_offset(solo, "signals:alpha", live)
        assert got[0] == {"type": "subscribed", "channel": "signals:alpha", "payload": result}
        assert offsets_of(got) == [*offsets[1:], live]
        assert await settle(solo) == []
        # Twice: the holding node's answer, 409.
        r = await call("POST", f"{C}/{cid(solo)}/subscriptions", {"channel": "signals:alpha"}, node=2)
        assert (r.status_code, r.json()["detail"]["code"]) == (409, "already_subscribed")

        # A foreign account: the connection's own token refuses, on its node, with the reason.
        r = await call("POST", f"{C}/{cid(solo)}/subscriptions", {"channel": "account:50999:events"})
        assert r.status_code == 403, r.text
        detail = r.json()["detail"]
        assert (detail["code"], detail["reason"], detail["connectionId"]) == (
            "forbidden",
            "foreign_account",
            cid(solo),
        )
        # No node holds it: 404.
        r = await call("POST", f"{C}/c-0000000000000000/subscriptions", {"channel": "signals:alpha"})
        assert (r.status_code, r.json()["detail"]["code"]) == (404, "not_found")

        # Every connection of a subject, spread over node1 and node2.
        subject_ids = {cid(on_b), cid(on_c)}
        r = await call("POST", f"{S}/{SUBJECT}/subscriptions", {"channel": "account:50999:events"})
        assert r.status_code == 403, r.text
        refused = r.json()["detail"]["refused"]
        assert {x["connectionId"] for x in refused} == subject_ids
        assert {x["reason"] for x in refused} == {"foreign_account"}
        r = await call("POST", f"{S}/{SUBJECT}/subscriptions", {"channel": "signals:alpha", "since": live})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["refused"] == [] and {s["connectionId"] for s in body["subscribed"]} == subject_ids
        for s in body["subscribed"]:
            assert (s["result"]["recovered"], s["result"]["replayed"]) == (True, 0)
        after = await publish(engine)
        for c in (on_b, on_c, solo):
            got = await until_offset(c, "signals:alpha", after)
            if c is not solo:
                assert got[0]["type"] == "subscribed" and got[0]["channel"] == "signals:alpha"
            assert offsets_of(got) == [after]
            assert await settle(c) == []

        # Unsubscribe across nodes: by id through node2, by subject through node0.
        r = await call("DELETE", f"{C}/{cid(solo)}/subscriptions/signals:alpha", node=2)
        assert r.status_code == 200, r.text
        r = await call("DELETE", f"{S}/{SUBJECT}/subscriptions/signals:alpha")
        assert r.status_code == 200, r.text
        assert sorted(r.json()["unsubscribed"]) == sorted(subject_ids)
        assert r.json()["notSubscribed"] == []
        # Absent: an alpha published before a beta they subscribed to themselves never arrives.
        await publish(engine)
        marker = await publish(engine, "beta")
        for c in (solo, on_b, on_c):
            got = await until_offset(c, "signals:beta", marker)
            assert [m["type"] for m in got] == ["unsubscribed", "message"]
            assert got[0] == {
                "type": "unsubscribed",
                "channel": "signals:alpha",
                "payload": {"reason": "rest"},
            }
        r = await call("DELETE", f"{C}/{cid(solo)}/subscriptions/signals:alpha")
        assert (r.status_code, r.json()["detail"]["code"]) == (404, "not_subscribed")
        r = await call("DELETE", f"{S}/{SUBJECT}/subscriptions/signals:alpha", node=1)
        assert (r.status_code, r.json()["detail"]["code"]) == (404, "not_subscribed")

    for c in clients:
        await c.close()
    await cl.wait_clean()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    require_cluster_services()
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


async def test_a_node_that_does_not_answer_is_unavailable(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Presence names a live instance that never answers on the bus: ``unavailable`` (REST 503),
    within the routed timeout, and no waiter left behind."""
    monkeypatch.setattr(routing, "SUBSCRIBE_TIMEOUT", 0.3)
    monkeypatch.setattr(routing, "UNSUBSCRIBE_TIMEOUT", 0.3)
    redis = aioredis.Redis.from_url(own_redis.url)
    keys = Keys()
    ghost = Presence(redis, "ghost#000000000000", keys)
    await ghost.heartbeat()
    await ghost.put([{"id": "c-ghost", "sub": "ea-ghost"}])
    bus = ControlBus(redis, "here#000000000000", keys)
    await bus.start()

    class NoHub:
        connections: dict[str, Any] = {}
        by_subject: dict[str, Any] = {}

    router = SubscriptionRouter(NoHub(), Presence(redis, "here#000000000000", keys), bus, "here#000000000000")  # type: ignore[arg-type]
    try:
        assert await router.of_subject("ea-ghost") == [("c-ghost", "ghost#000000000000")]
        with pytest.raises(HubError) as err:
            await router.subscribe("c-ghost", "signals:alpha", None, None)
        assert err.value.code == "unavailable"
        with pytest.raises(HubError) as err:
            await router.unsubscribe("c-ghost", "signals:alpha")
        assert err.value.code == "unavailable"
        with pytest.raises(HubError) as err:
            await router.subscribe("c-nobody", "signals:alpha", None, None)
        assert err.value.code == "not_found"
        assert bus._waiting == {}
    finally:
        await bus.close()
        await ghost.leave()
        await redis.aclose()
