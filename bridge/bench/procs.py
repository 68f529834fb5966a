"""Processes under test: start pinned, wait for the port, read CPU time and RSS from /proc.

Linux only, like the load generator: affinity, /proc/<pid>/stat and /proc/<pid>/status.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bridge.bench.exceptions import BenchError

__all__ = [
    "CoreTicks",
    "Cores",
    "ServerProcess",
    "core_ticks",
    "cpu_probe_ms",
    "free_port",
    "parse_core_ticks",
    "pick_cores",
    "pin_to",
    "pinned",
    "raise_nofile",
    "steal_between",
]

#: Seconds a server gets to accept TCP connections after it is started.
DEFAULT_START_TIMEOUT = 30.0
#: Seconds a server gets to exit after SIGTERM before it is killed.
DEFAULT_STOP_TIMEOUT = 5.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Cores:
    """Which core the server gets and which one the load clients get."""

    server: int
    client: int
    shared: bool


@dataclass(frozen=True)
class CoreTicks:
    """One core's counters from /proc/stat, in clock ticks: all time, and time stolen by the hypervisor."""

    total: int
    steal: int

    def steal_since(self, before: CoreTicks) -> float | None:
        """Share of the interval the hypervisor gave this core to someone else (None: no ticks)."""
        total = self.total - before.total
        return round((self.steal - before.steal) / total, 3) if total > 0 else None


def parse_core_ticks(stat: str, core: int) -> CoreTicks | None:
    """The ``cpu<core>`` line of /proc/stat (fields: user nice system idle iowait irq softirq steal ...)."""
    prefix = f"cpu{core} "
    for line in stat.splitlines():
        if line.startswith(prefix):
            fields = [int(v) for v in line.split()[1:]]
            # guest and guest_nice (fields 9, 10) are already counted in user and nice
            return CoreTicks(sum(fields[:8]), fields[7] if len(fields) > 7 else 0)
    return None


def core_ticks(core: int) -> CoreTicks | None:
    """Counters of ``core`` now; None where /proc/stat is missing (not Linux)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            return parse_core_ticks(f.read(), core)
    except OSError:
        return None


def steal_between(before: CoreTicks | None, after: CoreTicks | None) -> float | None:
    return after.steal_since(before) if before is not None and after is not None else None


def cpu_probe_ms(core: int, rounds: int = 3) -> float:
    """CPU milliseconds a fixed piece of Python work takes on ``core`` (the best of ``rounds``).

    On a shared VM the same work can take twice as long from one minute to the next (seen here:
    0.52 to 0.97 s for one workload, with no steal time recorded), because the host's other tenants
    share the physical core. Results carry this figure, taken just before the measured window, so
    that runs can be compared on like terms.
    """
    with pinned(core):
        best = float("inf")
        for _ in range(rounds):
            start = time.process_time()
            table: dict[str, int] = {}
            total = 0
            for i in range(200_000):
                total += i * i % 7
                table[str(i & 0xFFFF)] = total
            best = min(best, time.process_time() - start)
        return round(best * 1000, 1)


@contextlib.contextmanager
def pinned(core: int) -> Iterator[None]:
    """Run this process on ``core`` for the block, then give it back the cores it had."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def pick_cores() -> Cores:
    """Server on the first allowed core, clients on the second (or the same one on a 1-core box)."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) >= 2:
        return Cores(server=allowed[0], client=allowed[1], shared=False)
    return Cores(server=allowed[0], client=allowed[0], shared=True)


def pin_to(core: int | None) -> Callable[[], None] | None:
    """A preexec_fn that pins the child (and every thread it starts) to one core."""
    if core is None:
        return None

    def _pin() -> None:
        os.sched_setaffinity(0, {core})

    return _pin


def raise_nofile(wanted: int) -> int:
    """Raise RLIMIT_NOFILE towards the hard limit (children inherit it); returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard == resource.RLIM_INFINITY else min(max(wanted, soft), hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    """A server under test, pinned to one core, with its output kept in a temporary log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        core: int | None,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self._log = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 - closed in stop()
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        try:
            self.proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                preexec_fn=pin_to(core),
                start_new_session=True,
            )
        except OSError as exc:
            self._log.close()
            raise BenchError(f"{name}: cannot start {argv[0]}: {exc}") from exc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, limit: int = 2000) -> str:
        self._log.flush()
        self._log.seek(0)
        data = self._log.read()
        return data[-limit:].decode(errors="replace")

    def wait_listening(self, timeout: float = DEFAULT_START_TIMEOUT) -> None:
        """Block until the port accepts a TCP connection, or fail with the server's output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                    return
            except OSError:
                time.sleep(0.05)
        raise BenchError(
            f"{self.name} did not listen on {self.port} within {timeout:.0f} s:\n{self.log_tail()}"
        )

    def cpu_s(self) -> float:
        """User + system CPU seconds of the process, all threads included."""
        try:
            with open(f"/proc/{self.pid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError as exc:
            raise BenchError(f"{self.name} is gone:\n{self.log_tail()}") from exc
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK

    def rss_bytes(self) -> int:
        """Resident set size now."""
        try:
            with open(f"/proc/{self.pid}/status", encoding="ascii") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError as exc:
            raise BenchError(f"{self.name} is gone:\n{self.log_tail()}") from exc
        raise BenchError(f"{self.name}: no VmRSS in /proc/{self.pid}/status")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL it if it lingers; always closes the log."""
        try:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=DEFAULT_STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
        finally:
            self._log.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
