"""Acceptance of the deployment kit (issue 18): a real nginx (deploy/nginx) in front of 3 hubs that
share PostgreSQL and Redis. Simulated EAs, an engine and a dashboard client connect only through
nginx. While the engine publishes 2,000 signals, every hub is restarted in turn (SIGTERM, then start),
then one is killed with SIGKILL and started again. In the end every EA has every signal exactly once,
in order; every trade event an EA had acknowledged is stored exactly once; every client reconnected
by itself."""

from __future__ import annotations

import asyncio
import shutil
import signal
import ssl
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from bridge.client import ClientError, RequestError, WebSocketTransport, connect
from bridge.simulator import SimulatedEA, load_state, state_path
from tests.support import factories
from tests.support.cluster import Cluster, cluster_services
from tests.support.hub import WAIT
from tests.support.nginx import NGINX, Nginx
from tests.support.pg import PG_HOST, PG_PORT, PG_USER
from tests.support.waits import until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("nginx") is None and not Path(NGINX).exists(),
        reason="nginx is installed by scripts/test.sh (apt-get install nginx)",
    ),
]

SIGNALS = 2_000
ACCOUNTS = ["60001", "60002", "60003"]
#: The publisher holds back its last signals until every restart is done, so that they all happen
#: while signals flow.
HOLD_BACK = 100
RESTART_AT = [150, 450, 750]  # SIGTERM of node 0, 1, 2 once this many signals were accepted
KILL_AT = 1_100  # then SIGKILL of node 1
CLIENT = {"backoff_initial": 0.1, "backoff_max": 1.0, "request_timeout": 5.0}


def sig(n: int) -> dict[str, Any]:
    """Opens and closes alternate, so that the simulated accounts hold at most one position."""
    sid = str(uuid.UUID(int=10_000 + n, version=4))
    if n % 2 == 0:
        return factories.signal("alpha", ACCOUNTS, sid=sid, stops=False, volume=0.01, ttl=3600)
    closing = {"action": "close", "side": ..., "orderType": ..., "volume": ...}  # ... leaves a field out
    return factories.signal("alpha", ACCOUNTS, sid=sid, stops=False, ttl=3600, **closing)


def stored_events(db_name: str) -> dict[str, list[str]]:
    """Trade-event ids per account, straight from PostgreSQL."""
    out = subprocess.run(
        ["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, "-d", db_name, "-tAF", "|", "-c",
         "SELECT account, id FROM trade_events ORDER BY seq"],
        check=True, capture_output=True, text=True, timeout=WAIT * 3,
    )  # fmt: skip
    events: dict[str, list[str]] = {}
    for line in out.stdout.splitlines():
        account, _, eid = line.partition("|")
        events.setdefault(account, []).append(eid)
    return events


def test_rolling_restart_and_a_kill_behind_nginx_lose_nothing(tmp_path: Path) -> None:
    with cluster_services(tmp_path) as services:
        cluster = Cluster(
            services, 3, "--trusted-proxy", "127.0.0.1/32", env={"MTBRIDGE_DRAIN_WINDOW": "1"}
        ).start()
        proxy = Nginx(tmp_path / "nginx", [f"127.0.0.1:{n.port}" for n in cluster.nodes]).start()
        try:
            queued = asyncio.run(scenario(cluster, proxy, tmp_path))
            events = stored_events(services.db.name)
        finally:
            proxy.stop()
            cluster.stop()
    for account in ACCOUNTS:
        state = load_state(state_path(tmp_path / "ea", account), account)
        assert list(state.signals) == [sig(n)["id"] for n in range(SIGNALS)], account  # once, in order
        assert state.outbox == []
        # Every event the EA queued was acknowledged (the outbox is empty) and is stored exactly once.
        assert sorted(events.get(account, [])) == sorted(queued[account]), account
        assert len(set(events[account])) == len(events[account])


async def scenario(cluster: Cluster, proxy: Nginx, tmp_path: Path) -> dict[str, list[str]]:
    tls = ssl.create_default_context(cafile=str(proxy.cert))
    transport = WebSocketTransport(ssl=tls)
    queued: dict[str, list[str]] = {a: [] for a in ACCOUNTS}
    eas = [
        SimulatedEA(
            proxy.wss,
            cluster.token("ea", f"ea-{a}", accounts=[a], subscribe=["signals:*"]),
            a,
            ["alpha"],
            tmp_path / "ea",
            from_start=True,
            snapshot_interval=None,
            balance=1_000_000.0,
            transport=transport,
            client_options=dict(CLIENT),
            on_queued=lambda e, a=a: queued[a].append(e["id"]),  # type: ignore[misc]
        )
        for a in ACCOUNTS
    ]
    engine = await connect(
        proxy.wss, cluster.token("engine", "eng", publish=["signals:*"]), transport=transport, **CLIENT
    )
    dashboard = await connect(
        proxy.wss, cluster.token("dashboard", "ops", accounts=["*"]), transport=transport, **CLIENT
    )
    seen_by_dashboard: list[str] = []
    for ea in eas:
        await ea.start()
    dash_sub = await dashboard.subscribe(f"account:{ACCOUNTS[0]}:events", since=0)
    accepted = 0
    restarts_done = threading.Event()
    steps = [*((at, i, signal.SIGTERM) for i, at in enumerate(RESTART_AT)), (KILL_AT, 1, signal.SIGKILL)]
    progress = threading.Condition()

    def restarter() -> None:
        for at, i, how in steps:
            with progress:
                progress.wait_for(lambda at=at: accepted >= at, timeout=WAIT * 30)  # type: ignore[misc]
            node = cluster[i]
            if how == signal.SIGKILL:
                node.kill()
            else:
                node.stop()
            node.start()
        restarts_done.set()

    thread = threading.Thread(target=restarter, name="restarter")
    thread.start()
    try:
        for n in range(SIGNALS):
            if n == SIGNALS - HOLD_BACK:
                await until(restarts_done.is_set, "the rolling restarts", timeout=WAIT * 30)
            while True:  # the same signal (same id) until the hub answers: deduplicated if it was stored
                try:
                    await engine.publish("signals:alpha", sig(n))
                    break
                except RequestError as exc:
                    if not exc.retryable:
                        raise
                except ClientError:
                    pass
                await asyncio.sleep(0.05)  # a publisher's backoff before sending the same signal again
            with progress:
                accepted = n + 1
                progress.notify_all()
        async with asyncio.timeout(WAIT * 30):
            await until(lambda: all(len(ea.state.signals) >= SIGNALS for ea in eas), "every signal")
            for ea in eas:
                await ea.drain()
            # The dashboard follows account 60001's events through every restart, once each.
            async for message in dash_sub:
                seen_by_dashboard.append(message.payload["id"])
                if len(seen_by_dashboard) >= len(queued[ACCOUNTS[0]]):
                    break
        assert sorted(seen_by_dashboard) == sorted(queued[ACCOUNTS[0]])
        # Every client came back by itself, at least once (each was on some hub that restarted).
        for client in (engine, dashboard, *(ea.client for ea in eas)):
            assert client is not None and client.stats.reconnects >= 1
    finally:
        thread.join(WAIT * 30)
        for ea in eas:
            await ea.stop()
        await engine.close()
        await dashboard.close()
    assert restarts_done.is_set()
    return queued
