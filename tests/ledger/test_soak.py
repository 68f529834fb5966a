"""The soak test of issue 3: 5,000 signals to 3 accounts through random EA disconnects and two hub
SIGKILLs, on SQLite and on PostgreSQL; and (issue 15) the same on a 3-node cluster sharing PostgreSQL
and Redis, where every reconnect lands on the next node and two nodes are SIGKILLed in turn.

Outcome, checked against the hub's own REST API: every EA got every signal targeted at it exactly
once, in offset order; the database holds each trade event exactly once and every trade event the
hub acknowledged; every targeted (signal, account) ends ``executed``. The engine and EAs are in
tests/support/soak.py.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from tests.support.cluster import Cluster, cluster_services
from tests.support.hub import HubProcess
from tests.support.soak import (
    ACCOUNTS,
    CHANNEL,
    EA,
    N_SIGNALS,
    N_SIGNALS_CLUSTER,
    RUN_TIMEOUT,
    Engine,
    plan,
    verify_store,
)
from tests.support.waits import until

pytestmark = pytest.mark.slow


async def soak(tmp_path: Path, database_url: str | None, cluster: Cluster | None = None) -> None:
    """One hub (``cluster`` None) or every node of ``cluster``: EAs and the engine start on different
    nodes and move to the next one on every reconnect; the killer SIGKILLs node 0, then node 1."""
    seed = int(time.time())
    rng = random.Random(seed)
    extra = ("--database-url", database_url) if database_url else ()
    env = {
        "MTBRIDGE_RATE_PER_SECOND": "100000",
        "MTBRIDGE_RATE_BURST": "200000",
        "MTBRIDGE_LOG_LEVEL": "warning",
    }
    nodes = cluster.nodes if cluster is not None else [HubProcess(tmp_path / "hub", None, *extra, env=env)]
    n_signals = N_SIGNALS if cluster is None else N_SIGNALS_CLUSTER
    hub = nodes[0]
    urls = [node.url for node in nodes]
    for node in nodes:
        if node.proc is None:
            await asyncio.to_thread(node.start)
    started = time.monotonic()
    signals = plan(n_signals)
    engine = Engine(
        urls, hub.token("engine", "soak-engine", publish=[CHANNEL]), signals, random.Random(rng.random())
    )
    eas = [
        EA(
            urls[k % len(urls) :] + urls[: k % len(urls)],  # EA k starts on node k
            hub.token("ea", f"ea-{a}", accounts=[a], subscribe=[CHANNEL]),
            a,
            random.Random(rng.random()),
        )
        for k, a in enumerate(ACCOUNTS)
    ]
    expected_per_account = {a: [s["id"] for s in signals if a in s["accounts"]] for a in ACCOUNTS}
    restarts: list[int] = []

    def engine_done() -> bool:
        return engine.confirmed == n_signals

    def caught_up(ea: EA) -> bool:
        return len(ea.received) >= len(expected_per_account[ea.account]) and not ea.outbox

    async def killer() -> None:
        """SIGKILL and restart a hub twice (node 0, then node 1 of a cluster), at 25-40% and 60-75% of
        the publications."""
        for k, mark in enumerate((0.25 + rng.random() * 0.15, 0.6 + rng.random() * 0.15)):
            share = mark * n_signals
            await until(lambda share=share: engine.confirmed >= share, "the kill mark", timeout=RUN_TIMEOUT)
            victim = nodes[k % len(nodes)]
            await asyncio.to_thread(victim.kill)
            restarts.append(engine.confirmed)
            await asyncio.sleep(0.2 + rng.random())  # the chaos under test: down for a random 0.2-1.2 s
            await asyncio.to_thread(victim.start)

    def progress() -> str:
        return (
            f"t={time.monotonic() - started:.0f}s "
            f"alive={[n.proc is not None and n.proc.poll() is None for n in nodes]} "
            f"published={engine.confirmed}/{n_signals} engine_sessions={engine.sessions} restarts={restarts} "
            + " ".join(
                f"{ea.account}:got={len(ea.received)}/{len(expected_per_account[ea.account])},"
                f"outbox={len(ea.outbox)},sessions={ea.sessions},drops={ea.disconnects}"
                for ea in eas
            )
        )

    async def monitor() -> None:
        with open(tmp_path / "progress.log", "a") as f:
            while True:
                f.write(progress() + "\n")
                f.flush()
                await asyncio.sleep(2)  # a progress line every 2 s for a human reading the log; no wait

    async def run_all() -> None:
        ea_tasks = [asyncio.create_task(ea.run(lambda ea=ea: caught_up(ea))) for ea in eas]
        chaos = [asyncio.create_task(ea.chaos(engine_done)) for ea in eas]
        kill_task = asyncio.create_task(killer())
        try:
            await engine.run()
            await kill_task
            await asyncio.gather(*chaos)
            for ea in eas:
                ea.stop = True
            await asyncio.gather(*ea_tasks)
        finally:
            for task in (*ea_tasks, *chaos, kill_task):
                task.cancel()
            await asyncio.gather(*ea_tasks, *chaos, kill_task, return_exceptions=True)

    monitor_task = asyncio.create_task(monitor())
    try:
        try:
            await asyncio.wait_for(run_all(), RUN_TIMEOUT)
        except TimeoutError:
            raise AssertionError(f"the soak did not complete: {progress()}") from None
        finally:
            monitor_task.cancel()
        elapsed = time.monotonic() - started
        kind = "cluster" if cluster else "postgres" if database_url else "sqlite"
        print(
            f"\nsoak[{kind}] seed={seed} {elapsed:.1f}s "
            f"engine sessions={engine.sessions} duplicates={engine.duplicates} restarts at {restarts} "
            + " ".join(f"{ea.account}: sessions={ea.sessions} drops={ea.disconnects}" for ea in eas)
        )

        assert engine.failures == []
        assert len(restarts) == 2
        for ea in eas:
            assert ea.violations == [], (ea.account, ea.violations[:5])
            offsets = [o for o, _ in ea.received]
            assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
            # Exactly once, in publication (offset) order, no gap.
            expected = sorted(expected_per_account[ea.account], key=lambda sid: engine.offsets[sid])
            assert [sid for _, sid in ea.received] == expected, ea.account
            assert offsets == [engine.offsets[sid] for sid in expected]
            assert ea.outbox == {}
        assert sorted(engine.offsets.values()) == list(range(1, n_signals + 1))

        await verify_store(hub, signals, engine, eas)
        if cluster is not None:
            await cluster.wait_clean()  # every node's registries empty, nothing of theirs left in Redis
    finally:
        for node in nodes:
            await asyncio.to_thread(node.stop)


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
async def test_soak_exactly_once_through_disconnects_and_hub_kills(
    tmp_path: Path, db: str, request: pytest.FixtureRequest
) -> None:
    url: str | None = request.getfixturevalue("pg_database") if db == "postgres" else None
    await soak(tmp_path, url)


async def test_soak_on_a_three_node_cluster(tmp_path: Path) -> None:
    """The same soak and assertions on 3 nodes sharing a fresh PostgreSQL database and a Redis of the
    test's own: reconnects move between nodes, node 0 and then node 1 are SIGKILLed mid-stream."""
    with cluster_services(tmp_path) as services:
        env = {
            "MTBRIDGE_RATE_PER_SECOND": "100000",
            "MTBRIDGE_RATE_BURST": "200000",
            "MTBRIDGE_LOG_LEVEL": "warning",
        }
        cluster = Cluster(services, 3, env=env)
        await asyncio.to_thread(cluster.start)
        try:
            await soak(tmp_path, services.db.url, cluster)
        finally:
            await asyncio.to_thread(cluster.stop)
