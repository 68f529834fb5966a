"""Fixtures for the store conformance suite: one factory per backend (memory, SQLite file, PostgreSQL).

PostgreSQL tests run in a fresh schema per test, dropped afterwards. They skip when PostgreSQL is unreachable,
unless BRIDGE_REQUIRE_SERVICES is set, in which case they fail.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from bridge.store import MemoryStore, SQLStore, Store
from tests.support.store import Clock, StoreFactory

PG_URL = os.environ.get("MTBRIDGE_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
TIMEOUT_FACTOR = float(os.environ.get("MTBRIDGE_TESTS_TIMEOUT_FACTOR", "1"))


async def _pg_reachable() -> str | None:
    engine = create_async_engine(PG_URL)
    try:
        async with asyncio.timeout(5 * TIMEOUT_FACTOR), engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        return None
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    finally:
        await engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def require_postgres() -> None:
    """Skip (or fail under BRIDGE_REQUIRE_SERVICES) when PostgreSQL is unreachable."""
    problem = await _pg_reachable()
    if problem is None:
        return
    if os.environ.get("BRIDGE_REQUIRE_SERVICES"):
        pytest.fail(f"PostgreSQL at {PG_URL} required (BRIDGE_REQUIRE_SERVICES) but unreachable: {problem}")
    pytest.skip(f"PostgreSQL at {PG_URL} unreachable ({problem}); set BRIDGE_REQUIRE_SERVICES=1 to fail")


async def drop_schema(schema: str) -> None:
    engine = create_async_engine(PG_URL)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await engine.dispose()


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A fresh PostgreSQL schema name, dropped after the test."""
    await require_postgres()
    schema = f"mtb_test_{secrets.token_hex(6)}"
    yield schema
    await drop_schema(schema)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
async def make_store(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    clock: Clock,
) -> AsyncIterator[StoreFactory]:
    """A factory of started, migrated stores sharing one database; calling it again "reopens" the store
    (memory: the same instance, since nothing outlives it)."""
    backend: str = request.param
    opened: list[Store] = []
    memory: MemoryStore | None = None
    schema: str | None = None
    if backend == "postgresql":
        await require_postgres()
        schema = f"mtb_test_{secrets.token_hex(6)}"

    async def factory() -> Store:
        nonlocal memory
        store: Store
        if backend == "memory":
            if memory is None:
                memory = MemoryStore(clock=clock)
                await memory.start()
                opened.append(memory)
            return memory
        if backend == "sqlite":
            store = SQLStore(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}", clock=clock)
        else:
            store = SQLStore(PG_URL, schema=schema, clock=clock)
        await store.start()
        opened.append(store)
        await store.migrate()
        return store

    factory.backend = backend  # type: ignore[attr-defined]
    yield factory
    for store in opened:
        await store.close()
    if schema is not None:
        await drop_schema(schema)


@pytest.fixture
async def store(make_store: StoreFactory) -> Store:
    return await make_store()
