"""Build and drive the C load generator (``bench/loadgen/loadgen.c``).

The load generator is compiled once per source revision into a cache directory, so
that the harness never ships or commits a binary. Each run is one process talking a
line protocol on stdin/stdout: the harness sends ``m`` (mark), ``g`` (go), ``s``
(stop) or ``q`` (quit) and reads one JSON line back.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bridge.bench.exceptions import BenchError
from bridge.bench.procs import pin_to

__all__ = [
    "DEFAULT_READY_TIMEOUT",
    "Loadgen",
    "Mark",
    "build_loadgen",
    "repo_root",
]

#: Seconds to wait for every connection of a run to be ready.
DEFAULT_READY_TIMEOUT = 90.0
#: Seconds to wait for one answer line on the control pipe.
ANSWER_TIMEOUT = 30.0
CFLAGS = ("-O2", "-Wall", "-Wextra", "-std=gnu11")


def repo_root() -> Path:
    """The checkout that holds ``bench/``; MTBRIDGE_BENCH_ROOT overrides it for installed copies."""
    env = os.environ.get("MTBRIDGE_BENCH_ROOT")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2]


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mtbridge" / "bench"


def build_loadgen(source: Path | None = None, cache_dir: Path | None = None) -> Path:
    """Compile the load generator with gcc -O2 unless this exact source is already built.

    Returns:
        The path of the executable, named after a hash of the source and flags.

    Raises:
        BenchError: no C compiler, a missing source, or a failed build.
    """
    src = source or repo_root() / "bench" / "loadgen" / "loadgen.c"
    if not src.is_file():
        raise BenchError(f"load generator source not found: {src}")
    cc = shutil.which(os.environ.get("CC", "gcc"))
    if cc is None:
        raise BenchError("no C compiler found: install gcc (Debian package build-essential)")
    digest = hashlib.sha256(src.read_bytes() + " ".join(CFLAGS).encode()).hexdigest()[:16]
    out_dir = cache_dir or _cache_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    exe = out_dir / f"loadgen-{digest}"
    if exe.is_file() and os.access(exe, os.X_OK):
        return exe
    tmp = out_dir / f".loadgen-{digest}.{os.getpid()}"
    proc = subprocess.run(
        [cc, *CFLAGS, "-o", str(tmp), str(src)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise BenchError(f"building the load generator failed:\n{proc.stderr}")
    tmp.replace(exe)
    return exe


@dataclass(frozen=True)
class Mark:
    """One answer of the load generator: counters since start, latency since the previous mark."""

    t_s: float
    cpu_s: float
    frames: int
    open: int
    ready: int
    failed: int
    closed: int
    sent: int
    acks: int
    errors: int
    first_error: str
    close_codes: dict[str, int]
    lat_n: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Mark:
        lat = data.get("lat", {})
        return cls(
            t_s=float(data["t_s"]),
            cpu_s=float(data["cpu_s"]),
            frames=int(data["frames"]),
            open=int(data["open"]),
            ready=int(data["ready"]),
            failed=int(data["failed"]),
            closed=int(data["closed"]),
            sent=int(data["sent"]),
            acks=int(data["acks"]),
            errors=int(data.get("errors", 0)),
            first_error=str(data.get("first_error", "")),
            close_codes={str(k): int(v) for k, v in data.get("close_codes", {}).items()},
            lat_n=int(lat.get("n", 0)),
            p50_ms=int(lat.get("p50_us", 0)) / 1000.0,
            p99_ms=int(lat.get("p99_us", 0)) / 1000.0,
            p999_ms=int(lat.get("p999_us", 0)) / 1000.0,
            max_ms=int(lat.get("max_us", 0)) / 1000.0,
            raw=data,
        )


class Loadgen:
    """One running load generator process, pinned to a core.

    Use as a context manager: leaving it quits the process (and kills it if it does not).
    """

    def __init__(self, exe: Path, args: Sequence[str], *, core: int | None, label: str) -> None:
        self.label = label
        self._stderr: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            [str(exe), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=pin_to(core),
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        threading.Thread(target=self._pump, args=(self.proc.stdout, self._lines), daemon=True).start()
        threading.Thread(target=self._pump_err, args=(self.proc.stderr,), daemon=True).start()
        self.ready_info: dict[str, Any] = {}

    @staticmethod
    def _pump(stream: IO[str], out: queue.Queue[str | None]) -> None:
        for line in stream:
            out.put(line)
        out.put(None)

    def _pump_err(self, stream: IO[str]) -> None:
        for line in stream:
            if len(self._stderr) < 50:
                self._stderr.append(line.rstrip())

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr[-10:])

    def _read(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise BenchError(f"{self.label}: no answer within {timeout:.0f} s") from None
        if line is None:
            self.proc.wait(timeout=5)
            raise BenchError(
                f"{self.label}: load generator exited with {self.proc.returncode}: {self.stderr_tail()}"
            )
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def wait_ready(
        self, timeout: float = DEFAULT_READY_TIMEOUT, *, allow_failed: bool = False
    ) -> dict[str, Any]:
        """Wait for the ready event; every connection must be ready unless allow_failed."""
        info = self._read(timeout + 5.0)
        if info.get("event") != "ready":
            raise BenchError(f"{self.label}: unexpected answer {info}")
        if not allow_failed and (info.get("failed") or info.get("timeout")):
            raise BenchError(
                f"{self.label}: {info.get('ready')} of {info.get('conns')} connections ready: "
                f"{self.stderr_tail()}"
            )
        self.ready_info = info
        return info

    def _command(self, cmd: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(cmd + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise BenchError(f"{self.label}: load generator is gone: {self.stderr_tail()}") from None

    def mark(self) -> Mark:
        self._command("m")
        return Mark.parse(self._read(ANSWER_TIMEOUT))

    def go(self) -> None:
        self._command("g")

    def stop(self) -> None:
        self._command("s")

    def close(self) -> Mark | None:
        """Quit and return the final counters, or None when the process had already died."""
        final: Mark | None = None
        if self.proc.poll() is None:
            try:
                self._command("q")
                final = Mark.parse(self._read(10.0))
            except BenchError:
                final = None
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return final

    def __enter__(self) -> Loadgen:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
