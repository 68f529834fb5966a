"""Leadership through PostgreSQL advisory locks (the shared CI PostgreSQL; names unique per test)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from bridge.cluster import leader as L
from bridge.cluster.leader import LocalLeadership, PgLeadership, asyncpg_dsn
from tests.support.waits import until

pytestmark = pytest.mark.integration


def test_dsn() -> None:
    assert (
        asyncpg_dsn("postgresql+asyncpg://postgres@127.0.0.1:5432/test")
        == "postgresql://postgres@127.0.0.1:5432/test"
    )
    assert asyncpg_dsn("postgresql+asyncpg://u:p%40ss@h/db") == "postgresql://u:p%40ss@h/db"


async def test_local_leads_everything() -> None:
    ran = asyncio.Event()

    async def work() -> None:
        ran.set()

    local = LocalLeadership()
    assert local.leads("anything")
    await local.led("x", work)
    assert ran.is_set()


async def test_one_leader_and_failover(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(L, "LEADER_POLL", 0.05)
    name = f"test-{uuid.uuid4().hex[:8]}"
    dsn = asyncpg_dsn(postgres_url)
    running: dict[str, int] = {"a": 0, "b": 0}
    cancelled: list[str] = []

    def work(who: str) -> Callable[[], asyncio.Future[None]]:
        async def run() -> None:
            running[who] += 1
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(who)
                raise

        return run  # type: ignore[return-value]

    a, b = PgLeadership(dsn), PgLeadership(dsn)
    await a.start()
    task_a = a.led(name, work("a"))
    await until(lambda: a.leads(name) and running["a"] == 1)
    await b.start()
    task_b = b.led(name, work("b"))
    for _ in range(10):  # b keeps trying and keeps failing while a holds the lock
        await asyncio.sleep(0.06)  # time passing is the point: b must not get the lock however long it tries
        assert not b.leads(name) and running["b"] == 0
    await a.stop()  # a's session ends: its lock is free
    assert not a.leads(name)
    await until(lambda: b.leads(name) and running["b"] == 1)
    task_a.cancel()
    await asyncio.gather(task_a, return_exceptions=True)
    assert cancelled == ["a"]
    # b's session dies under it (as when the database restarts or the network drops it).
    b._conn.terminate()
    await until(lambda: "b" in cancelled)
    await until(lambda: b.leads(name) and running["b"] == 2)  # it reconnects and leads again
    task_b.cancel()
    await asyncio.gather(task_b, return_exceptions=True)
    await b.stop()
