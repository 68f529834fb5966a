"""Fixtures for the ledger acceptance tests: each runs on SQLite and on a fresh PostgreSQL database
(``pg_database``, from tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None (the hub's default SQLite in its data dir) or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_database")
    return url
