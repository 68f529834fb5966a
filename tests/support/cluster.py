"""A real cluster for tests: its own ``redis-server`` on a free port, a fresh PostgreSQL database,
and N ``mtbridge serve`` processes (:class:`~tests.support.hub.HubProcess`) sharing both.

The test owns every process, so it can SIGKILL and restart a node or Redis mid-stream. The database
is created with ``createdb`` on the CI PostgreSQL (127.0.0.1:5432) and dropped afterwards; the shared
service on 6379 is never touched. Usage::

    with cluster_services(tmp_path) as services:      # skips (or fails under CI) without them
        cluster = Cluster(tmp_path, services, nodes=3).start()
        ...
        cluster.stop()
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.auth.tokens import issue, load_or_create_secret
from tests.support.hub import HubProcess
from tests.support.pg import PG_HOST, PG_PORT, PG_USER, PgDatabase
from tests.support.ports import free_port, reachable
from tests.support.waits import WAIT, wait_until

__all__ = [
    "PG_HOST",
    "PG_PORT",
    "PG_USER",
    "Cluster",
    "ClusterServices",
    "RedisServer",
    "cluster_services",
    "require_cluster_services",
]


def require_cluster_services() -> None:
    """Skip with a reason when PostgreSQL (or ``redis-server``/``createdb``) is missing, unless CI
    demands them with ``BRIDGE_REQUIRE_SERVICES=1`` (then fail)."""
    problems = []
    if not reachable(PG_HOST, PG_PORT):
        problems.append(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}")
    for tool in ("redis-server", "createdb", "dropdb"):
        if shutil.which(tool) is None:
            problems.append(f"{tool} is not on PATH")
    if not problems:
        return
    message = "; ".join(problems)
    if os.environ.get("BRIDGE_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " and BRIDGE_REQUIRE_SERVICES=1")
    pytest.skip(message + " (set BRIDGE_REQUIRE_SERVICES=1 to make this a failure)")


class RedisServer:
    """A ``redis-server`` of the test's own, on a free port, without persistence: a restart after
    SIGKILL comes back empty, as a real crash of a cache-only Redis would."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"redis-{self.port}.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.workdir), "--protected-mode", "no",
        ]  # fmt: skip
        logf = open(self.log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
        proc = self.proc

        def listening() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log.read_text()[-2000:]}")
            return reachable("127.0.0.1", self.port)

        wait_until(listening, "redis-server to listen", timeout=WAIT)
        return self

    def kill(self) -> None:
        """SIGKILL: no goodbye to the subscribed nodes, in-flight messages lost."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(WAIT)

    def restart(self) -> RedisServer:
        self.kill()
        return self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.kill()

    def command(self, *args: str) -> str:
        """One command through ``redis-cli`` (for the tests' PUBSUB checks)."""
        out = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, check=True, timeout=WAIT
        )
        return out.stdout.decode()

    def channels(self) -> list[str]:
        """Every pub/sub channel with a subscriber (``PUBSUB CHANNELS``)."""
        import redis

        with contextlib.closing(redis.Redis(port=self.port, socket_timeout=WAIT)) as r:
            return sorted(c.decode() for c in r.pubsub_channels())  # type: ignore[union-attr]

    def pattern_count(self) -> int:
        import redis

        with contextlib.closing(redis.Redis(port=self.port, socket_timeout=WAIT)) as r:
            return int(r.pubsub_numpat())  # type: ignore[arg-type]


@dataclass
class ClusterServices:
    redis: RedisServer
    db: PgDatabase
    root: Path


@contextlib.contextmanager
def cluster_services(root: Path) -> Iterator[ClusterServices]:
    """A fresh Redis and database for one test (skipped or failed as :func:`require_cluster_services`)."""
    require_cluster_services()
    redis = RedisServer(root / "redis").start()
    db = PgDatabase().create()
    try:
        yield ClusterServices(redis, db, root)
    finally:
        redis.stop()
        db.drop()


class Cluster:
    """N hub processes on one database and one Redis, sharing one signing secret."""

    def __init__(
        self, services: ClusterServices, nodes: int = 3, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        self.services = services
        self.secret_file = services.root / "jwt-secret"
        load_or_create_secret(self.secret_file)
        self.nodes: list[HubProcess] = []
        for i in range(nodes):
            node_env = {
                "MTBRIDGE_JWT_SECRET_FILE": str(self.secret_file),
                "MTBRIDGE_NODE_ID": f"node{i}",
                "MTBRIDGE_LOG_LEVEL": "info",
                **(env or {}),
            }
            args = ("--database-url", services.db.url, "--redis-url", services.redis.url, *extra)
            self.nodes.append(HubProcess(services.root / f"node{i}", None, *args, env=node_env))

    def __getitem__(self, i: int) -> HubProcess:
        return self.nodes[i]

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def redis(self) -> RedisServer:
        return self.services.redis

    def start(self) -> Cluster:
        # The first node migrates the fresh database alone; the others start once it is ready.
        self.nodes[0].start()
        for node in self.nodes[1:]:
            node.start()
        return self

    def stop(self) -> None:
        """SIGTERM every node at once, then wait for each (a graceful stop drains for seconds)."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.signal(signal.SIGTERM)
        for node in self.nodes:
            node.stop()

    def token(self, role: str, sub: str, ttl: float = 3600, **claims: Any) -> str:
        secret, _ = load_or_create_secret(self.secret_file)
        return issue(secret, sub=sub, role=role, now=time.time(), ttl=ttl, **claims)

    def kill_node(self, i: int) -> None:
        self.nodes[i].kill()

    def restart_node(self, i: int) -> HubProcess:
        self.nodes[i].kill()
        return self.nodes[i].start()

    async def wait_clean(self, nodes: list[int] | None = None) -> None:
        """Once clients left: every node's connection and channel registries empty (its /metrics),
        and Redis holding no subscription of theirs. What stays is the nodes' own: liveness
        (``mtb:node:*``), hub-internal notices (``mtb:pub:_*``) and the control plane (``mtb:ctl*``)."""
        import asyncio

        indices = nodes if nodes is not None else list(range(len(self)))
        deadline = time.monotonic() + WAIT * 3
        while True:
            leftovers: dict[str, Any] = {}
            for i in indices:
                m = await asyncio.to_thread(self.metrics, i)
                conns = sum(v for k, v in m.items() if k.startswith("mtbridge_connections{"))
                if conns:
                    leftovers[f"node{i} connections"] = conns
                if m.get("mtbridge_channels"):
                    leftovers[f"node{i} channels"] = m["mtbridge_channels"]
            own = ("mtb:node:", "mtb:pub:_", "mtb:ctl")
            channels = [c for c in await asyncio.to_thread(self.redis.channels) if not c.startswith(own)]
            if channels:
                leftovers["redis channels"] = channels
            if not leftovers:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"left behind: {leftovers}")
            await asyncio.sleep(0.1)

    def metrics(self, i: int) -> dict[str, float]:
        """Node ``i``'s Prometheus samples, ``name{labels}`` -> value."""
        with urllib.request.urlopen(self.nodes[i].http + "/metrics", timeout=WAIT) as r:
            text = r.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    out[key] = float(value)
        return out

    def metric(self, i: int, prefix: str) -> float:
        """The sum of node ``i``'s samples whose ``name{labels}`` starts with ``prefix``."""
        return sum(v for k, v in self.metrics(i).items() if k.startswith(prefix))
