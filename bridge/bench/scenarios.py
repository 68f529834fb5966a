"""Relay scenarios: fan-out throughput, publish-to-receive latency, connection memory and storm.

Each scenario starts a fresh server per measurement, pinned to the server core, and
drives it with the C load generator pinned to the client core. Figures are taken
between two marks after a warm-up, so that connection setup never counts.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bridge.bench.exceptions import BenchError
from bridge.bench.loadgen import Loadgen, Mark
from bridge.bench.procs import Cores, ServerProcess, core_ticks, free_port, pin_to, steal_between
from bridge.bench.targets import Target

__all__ = [
    "Plan",
    "Row",
    "run_connections",
    "run_fanout",
    "run_latency",
    "with_server",
]

Row = dict[str, Any]
T = TypeVar("T")

#: Connections the load generator sets up at once (bounded, so that a listen backlog
#: never overflows and SYN retransmits never decide the figures).
DEFAULT_CONCURRENCY = 200
#: Seconds a server is left alone after its clients are ready, before RSS is read.
SETTLE_S = 1.0


@dataclass(frozen=True)
class Plan:
    """Sizes and durations of one benchmark run; `quick()` is what CI runs."""

    fanout_sizes: tuple[int, ...] = (1000, 5000, 10000)
    connection_sizes: tuple[int, ...] = (1000, 5000, 10000)
    latency_subscribers: int = 1000
    latency_rate: float = 1000.0
    #: Fan-out is a closed loop: the publisher keeps this many messages owed to every
    #: subscriber, so the server always has work queued but never an unbounded backlog.
    inflight: int = 32
    warmup_s: float = 1.5
    measure_s: float = 4.0
    concurrency: int = DEFAULT_CONCURRENCY
    signal_eas: int = 10
    #: Signals offered per second (None: the scenario's default, above the target).
    signal_rate: float | None = None
    ingest_connections: int = 10
    #: Trade events offered per second (None: the scenario's default, 40 % above the target).
    ingest_rate: float | None = None
    #: Ingest: exactly this many EA connections sharing the offered rate (None: the fewest that offer it).
    ingest_eas: int | None = None
    #: Signals and ingest: unanswered requests allowed per engine or EA connection.
    request_window: int = 64
    quick: bool = False

    @classmethod
    def quick_plan(cls) -> Plan:
        return cls(
            fanout_sizes=(1000,),
            connection_sizes=(1000,),
            latency_subscribers=500,
            latency_rate=500.0,
            warmup_s=0.7,
            measure_s=1.5,
            signal_eas=3,
            ingest_connections=4,
            quick=True,
        )


@dataclass
class Context:
    """What every scenario needs: the load generator, the cores and the plan."""

    exe: Path
    cores: Cores
    plan: Plan
    log: Callable[[str], None] = print
    notes: list[str] = field(default_factory=list)
    #: Where py-spy profiles of the hub under fan-out go (None: no profiling).
    profile_dir: Path | None = None


def with_server(target: Target, ctx: Context, fn: Callable[[ServerProcess], T]) -> T:
    """Run fn against a fresh, listening server of target; always stop it."""
    server = target.start(port=free_port(), core=ctx.cores.server)
    try:
        server.wait_listening()
        target.after_start(server)
        return fn(server)
    finally:
        server.stop()


_EMBEDDED = {
    "--path": "--pub-path",
    "--init": "--pub-init",
    "--init-hex": "--pub-init-hex",
    "--init-wait": "--pub-init-wait",
    "--ready-frames": "--pub-ready-frames",
    "--template": "--template",
    "--msgpack-channel": "--msgpack-channel",
    "--pad": "--pad",
}


def embedded_pub_args(pub_args: Sequence[str]) -> list[str]:
    """Turn a target's publisher arguments into the --pub-* ones of an embedded publisher.

    Options shared with the subscribers (--subprotocol, --sio) are dropped: the
    subscriber arguments already carry them.
    """
    out: list[str] = []
    i = 0
    while i < len(pub_args):
        key = pub_args[i]
        if key == "--sio":
            i += 1
            continue
        if key == "--subprotocol":
            i += 2
            continue
        if key not in _EMBEDDED:
            raise BenchError(f"cannot embed publisher option {key}")
        out += [_EMBEDDED[key], pub_args[i + 1]]
        i += 2
    return out


def _loadgen(
    target: Target,
    ctx: Context,
    server: ServerProcess,
    n: int,
    *,
    encoding: str = "json",
    rate: float | None = None,
    inflight: int = 0,
    extra: Sequence[str] = (),
) -> Loadgen:
    """N subscribers, plus a publisher in the same process when rate is given (0 = closed loop)."""
    args = [
        "--port",
        str(server.port),
        "--conns",
        str(n),
        "--concurrency",
        str(ctx.plan.concurrency),
        "--latency",
        *target.sub_args(encoding=encoding),
        *extra,
    ]
    if rate is not None:
        args += [*embedded_pub_args(target.pub_args(encoding=encoding)), "--rate", f"{rate:g}"]
        if inflight:
            args += ["--inflight", str(inflight)]
    return Loadgen(ctx.exe, args, core=ctx.cores.client, label=f"{target.name} load generator")


@dataclass(frozen=True)
class Window:
    """Counters over the measured window."""

    seconds: float
    end: Mark
    frames: int
    sent: int
    loadgen_cpu_s: float
    server_cpu_s: float
    #: Share of the window the hypervisor took the server's core away (None: not measurable).
    steal: float | None


def _measure(ctx: Context, server: ServerProcess, lg: Loadgen, profile: Path | None = None) -> Window:
    """Publish, warm up, then count between two marks (profiling the server in between if asked)."""
    lg.go()
    time.sleep(ctx.plan.warmup_s)
    spy = start_profile(server, profile, ctx) if profile else None
    m0, c0, t0 = lg.mark(), server.cpu_s(), core_ticks(ctx.cores.server)
    time.sleep(ctx.plan.measure_s)
    m1, c1, t1 = lg.mark(), server.cpu_s(), core_ticks(ctx.cores.server)
    if spy is not None and profile is not None:
        finish_profile(spy, profile, ctx)
    lg.stop()
    server.check_alive()
    return Window(
        seconds=m1.t_s - m0.t_s,
        end=m1,
        frames=m1.frames - m0.frames,
        sent=m1.sent - m0.sent,
        loadgen_cpu_s=m1.cpu_s - m0.cpu_s,
        server_cpu_s=c1 - c0,
        steal=steal_between(t0, t1),
    )


def start_profile(server: ServerProcess, out: Path, ctx: Context) -> subprocess.Popen[bytes]:
    """py-spy, sampling the server for the measured window, on the client core."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).is_file():
        raise BenchError("--profile needs py-spy (pip install py-spy)")
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        spy, "record", "--pid", str(server.pid), "--duration", f"{max(1, round(ctx.plan.measure_s))}",
        "--rate", "200", "--format", "raw", "--function", "--output", str(out), "--nonblocking",
    ]  # fmt: skip
    return subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=pin_to(ctx.cores.client)
    )


def finish_profile(spy: subprocess.Popen[bytes], out: Path, ctx: Context, top: int = 15) -> None:
    """Wait for py-spy, then log where the samples fall: self time per function."""
    try:
        spy.wait(timeout=ctx.plan.measure_s + 30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    try:
        lines = out.read_text().splitlines()
    except OSError:
        ctx.log(f"    (no profile written to {out})")
        return
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    if not total:
        return
    summary = out.with_suffix(".summary.txt")
    rows = [f"{100 * n / total:5.1f}% self  {100 * inclusive[f] / total:5.1f}% incl  {f}"
            for f, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]]  # fmt: skip
    summary.write_text(f"{total} samples\n" + "\n".join(rows) + "\n")
    ctx.log(f"    profile: {out} ({total} samples); top self time:")
    for row in rows[:8]:
        ctx.log(f"      {row}")


def _health(w: Window, n: int) -> dict[str, Any]:
    """Disconnects and errors seen during a run: a fast but lossy server must show it."""
    return {
        "disconnected": w.end.closed,
        "close_codes": w.end.close_codes,
        "errors": w.end.errors,
        "first_error": w.end.first_error,
        "subscribers": n,
    }


def run_fanout(target: Target, ctx: Context) -> list[Row]:
    """1 publisher -> N subscribers, as fast as the server goes: deliveries/s and CPU."""
    rows: list[Row] = []
    for n in ctx.plan.fanout_sizes:

        def one(server: ServerProcess, n: int = n) -> Row:
            profile = None
            if ctx.profile_dir is not None and target.kind == "hub":
                profile = ctx.profile_dir / f"{target.name}-fanout-{n}.txt"
            with _loadgen(target, ctx, server, n, rate=0, inflight=ctx.plan.inflight) as lg:
                ready = lg.wait_ready()
                w = _measure(ctx, server, lg, profile)
            return {
                "target": target.name,
                "subscribers": n,
                "deliveries_per_s": round(w.frames / w.seconds),
                "msgs_per_s": round(w.frames / w.seconds / n, 1),
                "inflight": ctx.plan.inflight,
                "p50_ms": w.end.p50_ms,
                "p99_ms": w.end.p99_ms,
                "server_cpu": round(w.server_cpu_s / w.seconds, 3),
                "server_core_steal": w.steal,
                "loadgen_cpu": round(w.loadgen_cpu_s / w.seconds, 3),
                "setup_s": round(float(ready["elapsed_s"]), 3),
                "seconds": round(w.seconds, 3),
                **_health(w, n),
            }

        ctx.log(f"  fanout {target.name} N={n} ...")
        rows.append(with_server(target, ctx, one))
        ctx.log(
            f"    {rows[-1]['deliveries_per_s']:,} deliveries/s, server CPU {rows[-1]['server_cpu']:.2f}, "
            f"loadgen CPU {rows[-1]['loadgen_cpu']:.2f}"
        )
    return rows


def run_latency(target: Target, ctx: Context, encodings: Sequence[str] | None = None) -> list[Row]:
    """Publish-to-receive latency at a fixed rate to N subscribers, per encoding."""
    rows: list[Row] = []
    n, rate = ctx.plan.latency_subscribers, ctx.plan.latency_rate
    for encoding in encodings or target.encodings:

        def one(server: ServerProcess, encoding: str = encoding) -> Row:
            with _loadgen(target, ctx, server, n, encoding=encoding, rate=rate) as lg:
                lg.wait_ready()
                w = _measure(ctx, server, lg)
            if w.end.lat_n == 0:
                raise BenchError(f"{target.name}: no timestamped message arrived in the latency window")
            expected = rate * n
            return {
                "target": target.name,
                "encoding": encoding,
                "subscribers": n,
                "rate": rate,
                "deliveries_per_s": round(w.frames / w.seconds),
                "kept_up": w.frames / w.seconds >= 0.95 * expected,
                "p50_ms": w.end.p50_ms,
                "p99_ms": w.end.p99_ms,
                "p999_ms": w.end.p999_ms,
                "max_ms": w.end.max_ms,
                "samples": w.end.lat_n,
                "server_cpu": round(w.server_cpu_s / w.seconds, 3),
                "server_core_steal": w.steal,
                "loadgen_cpu": round(w.loadgen_cpu_s / w.seconds, 3),
                **_health(w, n),
            }

        ctx.log(f"  latency {target.name} {encoding} N={n} at {rate:g} msgs/s ...")
        rows.append(with_server(target, ctx, one))
        r = rows[-1]
        ctx.log(f"    p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, p99.9 {r['p999_ms']:.2f} ms")
    return rows


def run_connections(target: Target, ctx: Context) -> list[Row]:
    """Server RSS per idle subscribed connection, and the time for N clients to get there."""
    rows: list[Row] = []
    for n in ctx.plan.connection_sizes:

        def one(server: ServerProcess, n: int = n) -> Row:
            time.sleep(SETTLE_S)
            rss0, cpu0 = server.rss_bytes(), server.cpu_s()
            with _loadgen(target, ctx, server, n) as lg:
                ready = lg.wait_ready()
                cpu1 = server.cpu_s()
                time.sleep(SETTLE_S)
                rss1 = server.rss_bytes()
                m = lg.mark()
            server.check_alive()
            return {
                "target": target.name,
                "connections": n,
                "setup_s": round(float(ready["elapsed_s"]), 3),
                "setup_per_s": round(n / max(float(ready["elapsed_s"]), 1e-9)),
                "setup_server_cpu_s": round(cpu1 - cpu0, 3),
                "rss_before_mb": round(rss0 / 2**20, 1),
                "rss_after_mb": round(rss1 / 2**20, 1),
                "kb_per_connection": round((rss1 - rss0) / n / 1024, 2),
                "disconnected": m.closed,
                "concurrency": ctx.plan.concurrency,
            }

        ctx.log(f"  connections {target.name} N={n} ...")
        rows.append(with_server(target, ctx, one))
        r = rows[-1]
        ctx.log(f"    {r['kb_per_connection']:.2f} KB/connection, set up in {r['setup_s']:.2f} s")
    return rows
