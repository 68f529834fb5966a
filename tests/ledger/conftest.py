"""Fixtures for the ledger acceptance tests: a fresh PostgreSQL database per test."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[str]:
    """A database of its own (``mtb_<random>``), dropped afterwards; yields its SQLAlchemy URL."""
    parts = urlsplit(postgres_url)
    name = "mtb_" + secrets.token_hex(6)
    conn = [
        "-h",
        parts.hostname or "127.0.0.1",
        "-p",
        str(parts.port or 5432),
        "-U",
        parts.username or "postgres",
    ]
    subprocess.run(["createdb", *conn, name], check=True, capture_output=True, timeout=60)
    try:
        yield postgres_url.rsplit("/", 1)[0] + "/" + name
    finally:
        subprocess.run(
            ["dropdb", *conn, "--force", "--if-exists", name], check=False, capture_output=True, timeout=60
        )


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None (the hub's default SQLite in its data dir) or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_database")
    return url
