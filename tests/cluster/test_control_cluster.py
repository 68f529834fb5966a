"""The cluster control plane on 3 real `mtbridge serve` nodes sharing a fresh PostgreSQL database and a
`redis-server` of the test's own (tests/support/cluster.py).

One cluster serves the module's scenarios in order (starting 3 nodes costs more than the scenarios):
the connection list, presence and close-connection through any node; revocation over REST and from
the CLI; pause/resume; the per-subject cap across nodes; leadership (sweeps, market data) and a
node's death last. After each scenario no connection is left in any node's registries and Redis
holds nothing of the clients that left.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.marketdata.mock import OkxFake
from tests.support.cluster import Cluster, cluster_services
from tests.support.hub import ROOT, WAIT, Client
from tests.support.waits import eventually

pytestmark = pytest.mark.integration

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "exchanges" / "recorded"
NODES = 3


class FakeVenue:
    """The OKX fake on a thread of its own, so that the module-scoped cluster can point at it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.fake = OkxFake(RECORDED / "OKX.ws.1.0")
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> FakeVenue:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.fake.start(), self.loop).result(WAIT)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self.loop).result(WAIT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        # Close everything here: a transport or loop left to the garbage collector warns from a
        # finalizer, which CPython 3.11 may run in the middle of a later compile() and fail it.
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def live(self) -> int:
        async def count() -> int:
            return len(self.fake.live)

        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(WAIT)


@pytest.fixture(scope="module")
def venue() -> Iterator[FakeVenue]:
    with FakeVenue() as v:
        yield v


@pytest.fixture(scope="module")
def cl(tmp_path_factory: pytest.TempPathFactory, venue: FakeVenue) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("control")
    marketdata = [{"venue": "okx", "symbols": ["BTC-USDT"], "ws_url": venue.fake.ws_url}]
    env = {"MTBRIDGE_MAX_CONNECTIONS_PER_SUBJECT": "1", "MTBRIDGE_MARKETDATA": json.dumps(marketdata)}
    with cluster_services(root) as services:
        cluster = Cluster(services, NODES, env=env).start()
        try:
            yield cluster
        finally:
            cluster.stop()


class Api:
    def __init__(self, cl: Cluster) -> None:
        self.cl = cl
        self.admin = cl.token("admin", "ops-admin")
        self.http = httpx.AsyncClient(timeout=WAIT)

    async def call(
        self, i: int, method: str, path: str, body: Any = None, token: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.admin}"}
        return await self.http.request(method, self.cl[i].http + path, json=body, headers=headers)

    async def ok(self, i: int, method: str, path: str, body: Any = None) -> Any:
        r = await self.call(i, method, path, body)
        assert r.status_code < 300, (r.status_code, r.text)
        return r.json()

    async def connections(self, i: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await self.ok(i, "GET", "/api/v1/connections"))["items"]
        return items

    async def close(self) -> None:
        await self.http.aclose()


@pytest.fixture
async def api(cl: Cluster) -> Any:
    a = Api(cl)
    try:
        yield a
        await assert_clean(a)
    finally:
        await a.close()


def ctl_keys(cl: Cluster) -> list[str]:
    """The control plane's keys in the cluster's Redis."""
    import redis

    client = redis.Redis(port=cl.redis.port, socket_timeout=WAIT)
    try:
        return sorted(k.decode() for k in client.scan_iter(match="mtb:ctl:*"))
    finally:
        client.close()


async def assert_clean(api: Api) -> None:
    """No connection left on any node (list, hub registry, claims), and nothing of a departed client
    left in Redis."""
    cl = api.cl
    for i in range(len(api.cl)):
        if api.cl[i].proc is None or api.cl[i].proc.poll() is not None:
            continue
        await eventually(lambda i=i: api.connections(i), lambda items: items == [])  # type: ignore[misc]

        async def registries(i: int = i) -> tuple[float, float]:
            return cl.metric(i, "mtbridge_connections{"), cl.metric(i, "mtbridge_cluster_claims")

        await eventually(registries, lambda v: v == (0, 0))

    def leftovers() -> list[str]:
        return [k for k in ctl_keys(api.cl) if k.split(":")[2] not in ("instances", "alive", "health")]

    async def probe() -> list[str]:
        return leftovers()

    await eventually(probe, lambda keys: keys == [])


async def test_connection_list_presence_and_close_through_any_node(cl: Cluster, api: Api) -> None:
    dash = await Client.open(cl[0].url, cl.token("dashboard", "screen-1"))
    assert (await dash.request("subscribe", "system:connections"))["type"] == "result"
    ea = await Client.open(cl[1].url, cl.token("ea", "ea-list", accounts=["1001"]))
    engine = await Client.open(
        cl[2].url, cl.token("engine", "eng-list", publish=["signals:*"]), encoding="msgpack"
    )
    ids = {dash.welcome["payload"]["connectionId"]: "node0", ea.welcome["payload"]["connectionId"]: "node1"}
    ids[engine.welcome["payload"]["connectionId"]] = "node2"
    # Every node lists every node's connections, each with its node.
    for i in range(NODES):
        items = await eventually(lambda i=i: api.connections(i), lambda items: len(items) == 3)  # type: ignore[misc]
        assert {e["id"]: e["node"] for e in items} == ids
        by_id = {e["id"]: e for e in items}
        ea_entry = by_id[ea.welcome["payload"]["connectionId"]]
        assert ea_entry["role"] == "ea" and ea_entry["accounts"] == ["1001"] and ea_entry["sub"] == "ea-list"
    # The dashboard on node0 heard of the EA on node1, with its node.
    event = await dash.until(
        lambda m: (
            m.get("channel") == "system:connections"
            and m["payload"]["connection"]["id"] == ea.welcome["payload"]["connectionId"]
        )
    )
    assert event["payload"]["event"] == "connected" and event["payload"]["connection"]["node"] == "node1"
    # "EA online" from any node.
    for i in range(NODES):
        accounts = await api.ok(i, "GET", "/api/v1/accounts")
        assert {a["account"]: a["connected"] for a in accounts["items"]}["1001"] is True
    # Close through a node that does not hold the connection.
    ea_id = ea.welcome["payload"]["connectionId"]
    assert await api.ok(2, "DELETE", f"/api/v1/connections/{ea_id}") == {"closed": ea_id, "node": "node1"}
    assert (await ea.closed())[0] == 4006
    assert (await api.call(0, "DELETE", f"/api/v1/connections/{ea_id}")).status_code == 404
    assert (await api.call(0, "DELETE", "/api/v1/connections/c-0000000000000000")).status_code == 404
    for i in range(NODES):
        await eventually(lambda i=i: api.connections(i), lambda items: ea_id not in {e["id"] for e in items})  # type: ignore[misc]
        accounts = await api.ok(i, "GET", "/api/v1/accounts")
        assert {a["account"]: a["connected"] for a in accounts["items"]}["1001"] is False
    await dash.close()
    await engine.close()


async def test_revocation_on_any_node_closes_everywhere(cl: Cluster, api: Api) -> None:
    # Over REST on node0; the EA is on node2.
    ea = await Client.open(cl[2].url, cl.token("ea", "ea-rev", accounts=["2001"]))
    started = time.monotonic()
    r = await api.ok(0, "POST", "/api/v1/tokens/revoke", {"kind": "sub", "value": "ea-rev"})
    assert r["revoked"] == {"kind": "sub", "value": "ea-rev"}
    assert (await ea.closed())[0] == 4501
    print(f"REST revocation on node0 closed an EA on node2 after {time.monotonic() - started:.3f} s")
    # From the CLI (straight into the database); the EA is on node1.
    token = cl.token("ea", "ea-cli", accounts=["2002"], jti="jti-cli-1")
    ea = await Client.open(cl[1].url, token)
    started = time.monotonic()
    cmd = [sys.executable, "-m", "bridge.cli", "revoke", "--jti", "jti-cli-1"]
    out = subprocess.run(
        [*cmd, "--database-url", cl.services.db.url], cwd=ROOT, capture_output=True, timeout=WAIT * 2
    )
    assert out.returncode == 0, out.stderr
    written = time.monotonic()
    assert (await ea.closed())[0] == 4501
    print(
        f"CLI revocation closed an EA on node1 {time.monotonic() - written:.3f} s after the CLI exited"
        f" ({written - started:.1f} s of CLI start-up)"
    )

    # The revoked token is refused on every node: a CLI revocation reaches each node by its own read
    # of the database (every 0.4 s), so a node that has not read it yet may still admit the token once;
    # the connection it admitted is then closed by that read, like the EA above.
    async def refused_on(i: int) -> bool:
        c = await Client.open(cl[i].url)
        reply = await c.request("auth", payload={"token": token})
        if reply["type"] == "error":
            assert reply["payload"]["code"] == "token_revoked", reply
            assert (await c.closed())[0] == 4501
            return True
        assert (await c.closed())[0] == 4501  # admitted before the read, closed by it
        return False

    for i in range(NODES):
        await eventually(lambda i=i: refused_on(i), lambda refused: refused)  # type: ignore[misc]


async def test_pause_and_resume_hold_signals_on_every_node(cl: Cluster, api: Api) -> None:
    from tests.support.factories import signal

    engine = cl.token("engine", "eng-pause", publish=["signals:*"])

    async def control(i: int) -> dict[str, Any]:
        result: dict[str, Any] = await api.ok(i, "GET", "/api/v1/control")
        return result

    await api.ok(0, "POST", "/api/v1/control", {"scope": "strategy", "command": "pause", "strategy": "beta"})
    for i in range(NODES):
        await eventually(lambda i=i: control(i), lambda s: "beta" in s["strategies"])  # type: ignore[misc]
        r = await api.call(i, "POST", "/api/v1/signals", signal("beta", ["3001"]), token=engine)
        assert r.status_code == 409 and r.json()["detail"]["code"] == "paused", r.text
    # Over WebSocket on node2 too.
    pub = await Client.open(cl[2].url, engine)
    reply = await pub.request("publish", "signals:beta", signal("beta", ["3001"]))
    assert reply["type"] == "error" and reply["payload"]["code"] == "paused"
    # Resumed on node1: every node accepts again.
    await api.ok(1, "POST", "/api/v1/control", {"scope": "strategy", "command": "resume", "strategy": "beta"})
    for i in range(NODES):
        await eventually(lambda i=i: control(i), lambda s: "beta" not in s["strategies"])  # type: ignore[misc]
        r = await api.call(i, "POST", "/api/v1/signals", signal("beta", ["3001"]), token=engine)
        assert r.status_code == 201, r.text
    # An account paused on node2 reaches its EA on node0, and every node reports it paused.
    ea = await Client.open(cl[0].url, cl.token("ea", "ea-pause", accounts=["3002"]))
    assert (await ea.request("subscribe", "account:3002:control"))["type"] == "result"
    await api.ok(2, "POST", "/api/v1/control", {"scope": "account", "command": "pause", "account": "3002"})
    msg = await ea.until(lambda m: m.get("channel") == "account:3002:control")
    assert msg["payload"]["command"] == "pause"
    for i in range(NODES):
        await eventually(lambda i=i: control(i), lambda s: "3002" in s["accounts"])  # type: ignore[misc]
    await api.ok(0, "POST", "/api/v1/control", {"scope": "account", "command": "resume", "account": "3002"})
    await pub.close()
    await ea.close()


async def test_subject_cap_holds_across_nodes(cl: Cluster, api: Api) -> None:
    token = cl.token("ea", "ea-cap", accounts=["4001"])
    first = await Client.open(cl[0].url, token)
    for i in (1, 2):  # the same subject on another node: refused
        second = await Client.open(cl[i].url)
        reply = await second.request("auth", payload={"token": token})
        assert reply["type"] == "error" and reply["payload"]["code"] == "forbidden", reply
        assert (await second.closed())[0] == 4007
    # Through the ?token= query too (the MQL5 EA's way): an unauthenticated welcome first (it is the
    # first message on every connection, docs/protocol.md), then the refusal and close 4007.
    import websockets

    ws = await websockets.connect(f"{cl[1].url}?token={token}", open_timeout=WAIT)
    received: list[dict[str, Any]] = []
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            received.append(json.loads(await asyncio.wait_for(ws.recv(), WAIT)))
    assert [m["type"] for m in received] == ["welcome", "error"], received
    assert received[0]["payload"]["authenticated"] is False
    assert received[1]["payload"]["code"] == "forbidden"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4007
    refused = sum(cl.metric(i, 'mtbridge_cluster_admissions_total{outcome="refused"}') for i in range(NODES))
    assert refused == 3
    # Once the first one leaves, another node admits the subject.
    await first.close()

    async def try_node2() -> Client | None:
        c = await Client.open(cl[2].url)
        reply = await c.request("auth", payload={"token": token})
        if reply["type"] == "result":
            return c
        await c.closed()
        return None

    again = await eventually(try_node2, lambda c: c is not None)
    assert again is not None
    await again.close()


async def test_redis_restart_keeps_presence_caps_and_commands(cl: Cluster, api: Api) -> None:
    """Redis SIGKILLed and restarted empty: every node writes its presence and claims again, the cap
    still refuses a second EA, and commands flow on the bus again."""
    token = cl.token("ea", "ea-redis", accounts=["6001"])
    ea = await Client.open(cl[0].url, token)
    ea_id = ea.welcome["payload"]["connectionId"]
    await eventually(lambda: api.connections(2), lambda items: ea_id in {e["id"] for e in items})
    cl.redis.restart()
    for i in range(NODES):  # presence comes back by itself, within a few heartbeats
        await eventually(lambda i=i: api.connections(i), lambda items: ea_id in {e["id"] for e in items})  # type: ignore[misc]

    async def refused_on(i: int) -> bool:
        c = await Client.open(cl[i].url)
        reply = await c.request("auth", payload={"token": token})
        await c.closed()
        return reply["type"] == "error" and reply["payload"]["code"] == "forbidden"

    assert await refused_on(1) and await refused_on(2)
    # The bus is back too: close through node1.
    await eventually(
        lambda: api.call(1, "DELETE", f"/api/v1/connections/{ea_id}"), lambda r: r.status_code == 200
    )
    assert (await ea.closed())[0] == 4006


async def test_a_stalled_node_is_fenced(cl: Cluster, api: Api) -> None:
    """A node that stops beating for longer than the liveness TTL (here: SIGSTOP) loses its claims;
    another node admits the subject; when the stalled node resumes it finds itself taken for dead,
    claims again, and closes its own connection of that subject: never two EAs of one subject."""
    import os
    import signal as sig

    token = cl.token("ea", "ea-stall", accounts=["7001"])
    old = await Client.open(cl[0].url, token)
    old_id = old.welcome["payload"]["connectionId"]
    await eventually(lambda: api.connections(1), lambda items: old_id in {e["id"] for e in items})
    pid = cl[0].proc.pid if cl[0].proc is not None else 0
    os.kill(pid, sig.SIGSTOP)
    try:
        new = await Client.open(cl[1].url, token)  # admitted once node0's liveness ran out
    finally:
        os.kill(pid, sig.SIGCONT)
    new_id = new.welcome["payload"]["connectionId"]
    assert (await old.closed())[0] == 4007  # node0 fenced its own connection when it came back
    items = await eventually(
        lambda: api.connections(0),
        lambda items: [e["id"] for e in items if e["sub"] == "ea-stall"] == [new_id],
    )
    assert {e["node"] for e in items if e["sub"] == "ea-stall"} == {"node1"}
    await new.close()


async def _status(api: Api) -> dict[int, dict[str, Any]]:
    out = {}
    for i in range(len(api.cl)):
        proc = api.cl[i].proc
        if proc is not None and proc.poll() is None:
            out[i] = await api.ok(i, "GET", "/api/v1/cluster")
    return out


def _leaders(status: dict[int, dict[str, Any]], name: str) -> list[int]:
    return [i for i, s in status.items() if name in s["leads"]]


async def test_leadership_and_a_node_death(cl: Cluster, api: Api, venue: FakeVenue) -> None:
    """Exactly one node leads the sweeps and runs the market-data adapters; when it dies another
    takes over, its presence entries and subject claims expire, and its EA gets in elsewhere."""
    status = await eventually(
        lambda: _status(api),
        lambda s: (
            len(_leaders(s, "sweeps")) == 1
            and len(_leaders(s, "marketdata")) == 1
            and all(n["nodes"] == ["node0", "node1", "node2"] for n in s.values())
        ),
    )

    async def venue_clients() -> int:
        return venue.live()

    await eventually(venue_clients, lambda n: n == 1)  # one node runs the adapter, not three
    # The health sample is the cluster's, with each node's figures.
    await eventually(
        lambda: api.ok(0, "GET", "/api/v1/health"),
        lambda h: sorted(n["node"] for n in h["nodes"]) == ["node0", "node1", "node2"],
    )
    md_leader = _leaders(status, "marketdata")[0]
    for name in ("sweeps", "marketdata", "retention"):
        assert sum(cl.metric(i, f'mtbridge_cluster_leader{{name="{name}"}}') for i in range(NODES)) == 1
    token = cl.token("ea", "ea-dead", accounts=["5001"])
    ea = await Client.open(cl[md_leader].url, token)
    ea_id = ea.welcome["payload"]["connectionId"]
    survivor = (md_leader + 1) % NODES
    await eventually(lambda: api.connections(survivor), lambda items: ea_id in {e["id"] for e in items})
    cl.kill_node(md_leader)
    killed_at = time.monotonic()
    await ea.closed()
    # The EA reconnects to a survivor at once: admitted as soon as the dead node's claim expires.
    refusals = 0

    async def reconnect() -> Client | None:
        nonlocal refusals
        c = await Client.open(cl[survivor].url)
        reply = await c.request("auth", payload={"token": token})
        if reply["type"] == "result":
            return c
        assert reply["payload"]["code"] == "forbidden"
        refusals += 1
        await c.closed()
        return None

    back = await eventually(reconnect, lambda c: c is not None, timeout=WAIT * 3)
    assert back is not None
    assert refusals == 0  # the authentication waited for the dead node's claim to expire
    print(
        f"claim of the killed node expired after {time.monotonic() - killed_at:.2f} s ({refusals} refusals)"
    )
    # The dead node's entries are gone from the list; its adapter moved to a survivor.
    items = await eventually(lambda: api.connections(survivor), lambda items: len(items) == 1)
    assert items[0]["id"] == back.welcome["payload"]["connectionId"] and items[0]["node"] == f"node{survivor}"
    status = await eventually(
        lambda: _status(api),
        lambda s: (
            len(_leaders(s, "sweeps")) == 1
            and len(_leaders(s, "marketdata")) == 1
            and all(len(n["nodes"]) == 2 for n in s.values())
        ),
    )
    assert md_leader not in status
    await eventually(venue_clients, lambda n: n == 1)
    dead = f"node{md_leader}#"
    keys = ctl_keys(cl)
    assert not [k for k in keys if dead in k], keys
    await back.close()
