"""Suite-wide fixtures: service availability (PostgreSQL, Redis) under BRIDGE_REQUIRE_SERVICES, and
a fresh PostgreSQL database (``pg_database``) for the tests of several directories. Helpers that are
not fixtures live in tests/support (see tests/README.md)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.pg import PgDatabase
from tests.support.ports import reachable

POSTGRES_URL = os.environ.get("BRIDGE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BRIDGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_service(name: str, host: str, port: int) -> None:
    """Skip with a reason when a service is down, unless CI demands it (then fail)."""
    if reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if os.environ.get("BRIDGE_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " and BRIDGE_REQUIRE_SERVICES=1")
    pytest.skip(message + " (set BRIDGE_REQUIRE_SERVICES=1 to make this a failure)")


@pytest.fixture
def postgres_url() -> str:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_URL


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[str]:
    """A database of its own (``mtb_<random>``) on the shared PostgreSQL, dropped afterwards; yields
    its SQLAlchemy URL."""
    db = PgDatabase().create()
    try:
        yield db.url
    finally:
        db.drop()
