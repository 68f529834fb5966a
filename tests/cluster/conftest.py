"""Cluster fixtures: a Redis and a PostgreSQL database of the test's own (tests/support/cluster.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import ClusterServices, cluster_services


@pytest.fixture
def services(tmp_path: Path) -> Iterator[ClusterServices]:
    """A fresh ``redis-server`` on a free port and a fresh database; skipped without them (unless
    BRIDGE_REQUIRE_SERVICES=1)."""
    with cluster_services(tmp_path) as s:
        yield s
