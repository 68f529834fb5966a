"""Cluster settings: a Redis URL needs PostgreSQL; the node id is validated and defaults per process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from bridge.config import load_settings
from tests.support.hub import ROOT


def test_redis_with_sqlite_is_refused(tmp_path: Path) -> None:
    settings = load_settings(None, data_dir=tmp_path, redis_url="redis://127.0.0.1:6379/0")
    problem = settings.cluster_problem()
    assert problem is not None and "a Redis URL requires PostgreSQL" in problem


def test_serve_refuses_redis_with_sqlite_at_start(tmp_path: Path) -> None:
    env = {**os.environ, "MTBRIDGE_REDIS_URL": "redis://127.0.0.1:1/0"}
    out = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "serve", "--data-dir", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    assert b"a Redis URL requires PostgreSQL" in out.stderr


def test_no_redis_is_a_single_node(tmp_path: Path) -> None:
    settings = load_settings(None, data_dir=tmp_path)
    assert settings.redis_url is None and settings.cluster_problem() is None
    assert settings.node == settings.node  # stable within a process
    assert str(os.getpid()) in settings.node


def test_postgres_with_redis_is_accepted(tmp_path: Path) -> None:
    settings = load_settings(
        None, data_dir=tmp_path, redis_url="redis://h/0", database_url="postgresql+asyncpg://u@h/db",
        node_id="eu-1",
    )  # fmt: skip
    assert settings.cluster_problem() is None
    assert settings.node == "eu-1"


@pytest.mark.parametrize("bad", ["", "has space", "x" * 65, "a/b"])
def test_bad_node_id_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValidationError):
        load_settings(None, data_dir=tmp_path, node_id=bad)
