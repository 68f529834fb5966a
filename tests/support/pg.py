"""PostgreSQL for tests: a database of the test's own on the shared server (:class:`PgDatabase`,
127.0.0.1:5432, created with ``createdb`` and dropped afterwards; the ``pg_database`` fixture in
tests/conftest.py), or a whole cluster of the test's own (:class:`PgCluster`, initdb/pg_ctl on a free
port) which the test may stop, start and turn into a standby. The shared server is never stopped."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.waits import WAIT

__all__ = ["PG_HOST", "PG_PORT", "PG_USER", "PgCluster", "PgDatabase"]

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"


class PgDatabase:
    """A database of the test's own on the CI PostgreSQL, dropped afterwards."""

    def __init__(self) -> None:
        self.name = "mtb_" + uuid.uuid4().hex[:12]

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.name}"

    def _run(self, *cmd: str) -> None:
        subprocess.run(
            [*cmd, "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, self.name],
            check=True, capture_output=True, timeout=WAIT * 3,
        )  # fmt: skip

    def create(self) -> PgDatabase:
        self._run("createdb")
        return self

    def drop(self) -> None:
        self._run("dropdb", "--force", "--if-exists")


def _bin(name: str) -> str | None:
    """A PostgreSQL program from PATH, else from Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


def _as_owner() -> list[str]:
    """initdb and postgres refuse to run as root: run them as the ``postgres`` user then."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class PgCluster:
    def __init__(self) -> None:
        initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
        if initdb is None or pg_ctl is None:
            message = "initdb/pg_ctl not found"
            if os.environ.get("BRIDGE_REQUIRE_SERVICES") == "1":
                pytest.fail(message + " and BRIDGE_REQUIRE_SERVICES=1")
            pytest.skip(message)
        self.pg_ctl = pg_ctl
        # Not under pytest's tmp_path: the postgres user must be able to reach the directory.
        self.root = Path(tempfile.mkdtemp(prefix="mtbridge-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.log = self.root / "server.log"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            self.root.chmod(0o755)
        self._run(initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*_as_owner(), *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120
        )

    def start(self, *settings: str, wait: bool = True) -> None:
        options = [
            f"-p {self.port}",
            f"-k {self.root}",
            "-c listen_addresses=127.0.0.1",
            "-c fsync=off",  # a test cluster: durability across power loss is not under test
            *(f"-c {s}" for s in settings),
        ]
        self._run(self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", " ".join(options),
                  "-w" if wait else "-W", "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def start_standby(self) -> None:
        """Restart as a standby that refuses every connection with SQLSTATE 57P03
        (``CannotConnectNowError``: "the database system is not accepting connections"), the
        error a server that is starting up gives."""
        signal = self.data / "standby.signal"
        signal.touch()
        if os.geteuid() == 0:
            shutil.chown(signal, "postgres")
        self.start("hot_standby=off")

    def promote(self) -> None:
        self._run(self.pg_ctl, "-D", str(self.data), "-w", "-t", "60", "promote")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
