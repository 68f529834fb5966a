"""`mtbridge bench`: run the scenarios, print a table per scenario, write every figure as JSON.

``run(args)`` executes the options :mod:`bridge.cli.bench` parsed and returns the exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bridge.bench.durable import run_ingest, run_signals
from bridge.bench.exceptions import BenchError, NotAvailable
from bridge.bench.loadgen import build_loadgen
from bridge.bench.procs import pick_cores, raise_nofile
from bridge.bench.report import COLUMNS, format_table, machine_info, ratios
from bridge.bench.scenarios import Context, Plan, Row, run_connections, run_fanout, run_latency
from bridge.bench.targeted import run_targeted
from bridge.bench.targets import HubTarget, Target, peer_targets

__all__ = ["DEFAULT_POSTGRES_URL", "SCENARIOS", "SCENARIOS_BY_NAME", "run"]

SCENARIOS = ("fanout", "latency", "connections", "targeted", "signals", "ingest")
#: Run only when named: ``cluster`` needs redis-server and PostgreSQL and starts three hubs;
#: ``dashboard`` drives Chromium; ``store`` measures the store's writes in-process (no hub, no
#: sockets; bridge/bench/store.py); ``marketdata`` replays a recorded exchange session through one
#: adapter (bridge/bench/marketdata.py); ``parse`` times message validation (bridge/bench/parse.py).
#: The last four need no load generator.
SCENARIOS_BY_NAME = ("cluster", "dashboard", "store", "marketdata", "parse")
#: File descriptors the harness asks for (the load generator raises its own limit too).
WANTED_NOFILE = 65536
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def _plan(args: argparse.Namespace) -> Plan:
    plan = Plan.quick_plan() if args.quick else Plan()
    changes: dict[str, Any] = {}
    if args.sizes:
        sizes = tuple(int(s) for s in args.sizes.split(",") if s.strip())
        changes.update(fanout_sizes=sizes, connection_sizes=sizes)
    for field, value in (
        ("measure_s", args.measure),
        ("warmup_s", args.warmup),
        ("inflight", args.inflight),
        ("latency_rate", args.rate),
        ("signal_rate", args.rate),
        ("ingest_rate", args.rate),
        ("latency_subscribers", args.subscribers),
        ("ingest_eas", args.eas),
        ("request_window", args.window),
    ):
        if value is not None:
            changes[field] = value
    if not changes:
        return plan
    from dataclasses import replace

    return replace(plan, **changes)


async def _create_database(url: str) -> str:
    import asyncpg

    parts = urlsplit(url.replace("+asyncpg", ""))
    name = f"mtbridge_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    conn = await asyncpg.connect(urlunsplit(parts), timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def _drop_database(admin_url: str, url: str) -> None:
    import asyncpg

    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(urlunsplit(urlsplit(admin_url.replace("+asyncpg", ""))), timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _bind(fn: Callable[[Any, Context], list[Row]], target: Target, ctx: Context) -> Callable[[], list[Row]]:
    return lambda: fn(target, ctx)


def _bind_durable(
    fn: Callable[..., Row], target: HubTarget, ctx: Context, database: str
) -> Callable[[], list[Row]]:
    return lambda: [fn(target, ctx, database=database)]


class _Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.plan = _plan(args)
        self.results: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, dict[str, str]] = {}
        self.failed = False
        self.hub_command = args.hub_command.split() if args.hub_command else HubTarget.default_command()

    def log(self, text: str) -> None:
        print(text, flush=True)

    def targets(self) -> list[Target]:
        out: list[Target] = []
        if not self.args.no_hub:
            out.append(HubTarget(command=self.hub_command))
        if self.args.peers or self.args.peer or self.args.no_hub:
            out.extend(peer_targets(self.args.peer))
        return out

    def _record(self, scenario: str, rows: list[Row], status: str, error: str = "") -> None:
        entry = self.results.setdefault(scenario, {"status": "ok", "rows": [], "errors": []})
        entry["rows"].extend(rows)
        if status != "ok":
            entry["errors"].append(error)
            if entry["status"] != "failed":
                entry["status"] = status
        if status == "failed":
            self.failed = True

    def _guard(self, scenario: str, label: str, fn: Callable[[], list[Row]]) -> None:
        try:
            self._record(scenario, fn(), "ok")
        except NotAvailable as exc:
            self.log(f"  {label}: not available: {exc.reason}")
            self._record(scenario, [], "not available", f"{label}: {exc.reason}")
        except BenchError as exc:
            self.log(f"  {label}: FAILED: {exc}")
            self._record(scenario, [], "failed", f"{label}: {exc}")

    def run_relay(self, scenario: str, ctx: Context, targets: list[Target]) -> None:
        fn = {"fanout": run_fanout, "latency": run_latency, "connections": run_connections}[scenario]
        for target in targets:
            self.versions.setdefault(target.name, target.versions())
            self._guard(scenario, target.name, _bind(fn, target, ctx))

    def run_durable(self, scenario: str, ctx: Context) -> None:
        if self.args.no_hub:
            return
        fn = run_signals if scenario == "signals" else run_ingest
        databases: list[tuple[str, str | None]] = [] if self.args.no_sqlite else [("sqlite", None)]
        if not self.args.quick and not self.args.no_postgres:
            databases.append(("postgresql", self.args.postgres_url))
        for name, admin_url in databases:
            url = None
            if admin_url:
                try:
                    url = asyncio.run(_create_database(admin_url))
                except Exception as exc:  # unreachable server, no asyncpg, no rights
                    reason = (
                        f"PostgreSQL at {urlsplit(admin_url).hostname} unusable: {type(exc).__name__}: {exc}"
                    )
                    self.log(f"  {scenario} on postgresql: not available: {reason}")
                    self._record(scenario, [], "not available", f"postgresql: {reason}")
                    continue
            target = HubTarget(command=self.hub_command, extra_args=["--database-url", url] if url else [])
            try:
                self._guard(scenario, name, _bind_durable(fn, target, ctx, name))
            finally:
                target.cleanup()
                if url and admin_url:
                    with suppress(Exception):
                        asyncio.run(_drop_database(admin_url, url))

    def run_cluster(self, ctx: Context) -> None:
        """Two nodes on a scratch PostgreSQL database and a Redis of the bench's own."""
        from dataclasses import replace

        from bridge.bench.cluster import ClusterPlan, run_cluster

        plan = ClusterPlan.quick_plan() if self.args.quick else ClusterPlan()
        if self.args.rate:
            plan = replace(plan, relay_rate=self.args.rate, durable_rate=self.args.rate)
        if self.args.measure:
            plan = replace(plan, measure_s=self.args.measure)
        try:
            url = asyncio.run(_create_database(self.args.postgres_url))
        except Exception as exc:
            reason = f"PostgreSQL unusable: {type(exc).__name__}: {exc}"
            self.log(f"  cluster: not available: {reason}")
            self._record("cluster", [], "not available", reason)
            return
        try:
            self._guard("cluster", "mtbridge", lambda: run_cluster(ctx, self.hub_command, url, plan))
        finally:
            with suppress(Exception):
                asyncio.run(_drop_database(self.args.postgres_url, url))

    def run(self) -> int:
        started = time.monotonic()
        nofile = raise_nofile(WANTED_NOFILE)
        try:
            exe = build_loadgen()
        except BenchError as exc:
            print(f"mtbridge bench: {exc}", file=sys.stderr)
            return 2
        cores = pick_cores()
        ctx = Context(exe=exe, cores=cores, plan=self.plan, log=self.log, profile_dir=self.args.profile)
        machine = machine_info()
        self.log(
            f"mtbridge bench: server on core {cores.server}, load generator on core {cores.client}"
            f"{' (shared: 1 core)' if cores.shared else ''}; load average {machine['loadavg'][0]:.2f}"
        )
        scenarios = SCENARIOS if self.args.scenario == "all" else (self.args.scenario,)
        targets = self.targets()
        try:
            for scenario in scenarios:
                self.log(f"\n== {scenario} ==")
                if scenario in ("signals", "ingest"):
                    self.run_durable(scenario, ctx)
                elif scenario == "cluster":
                    if not self.args.no_hub:
                        self.run_cluster(ctx)
                elif scenario == "targeted":
                    if not self.args.no_hub:
                        self._guard(scenario, "mtbridge", lambda: run_targeted(ctx))
                else:
                    self.run_relay(scenario, ctx, targets)
                entry = self.results.get(scenario)
                if entry and entry["rows"]:
                    self.log(format_table(entry["rows"], COLUMNS[scenario]))
        finally:
            for target in targets:
                target.cleanup()
        summary = self._ratios()
        if summary:
            self.log("\n== ratios (mtbridge / peer, same run) ==")
            self.log(format_table(summary, ("scenario", "peer", "at", "figure", "ratio")))
        doc = {
            "format": 1,
            "command": "mtbridge bench " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "mtbridge bench",
            "quick": self.plan.quick,
            "plan": {k: v for k, v in vars(self.plan).items()},
            "machine": machine,
            "conditions": {
                "loadavg_start": machine["loadavg"],
                "loadavg_end": list(os.getloadavg()),
                "cores": {"server": cores.server, "client": cores.client, "shared": cores.shared},
                "rlimit_nofile": nofile,
            },
            "versions": self.versions,
            "scenarios": self.results,
            "ratios": summary,
            "duration_s": round(time.monotonic() - started, 1),
        }
        if self.args.out:
            self.args.out.parent.mkdir(parents=True, exist_ok=True)
            self.args.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
            self.log(f"\nwrote {self.args.out}")
        self.log(f"finished in {doc['duration_s']} s")
        return 1 if self.failed else 0

    def _ratios(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        fan = self.results.get("fanout", {}).get("rows", [])
        for r in ratios(fan, key="subscribers", figure="deliveries_per_s"):
            out.append({"scenario": "fanout", "peer": r["peer"], "at": f"N={r['subscribers']}",
                        "figure": "deliveries/s", "ratio": r["ratio"]})  # fmt: skip
        conn = self.results.get("connections", {}).get("rows", [])
        for r in ratios(conn, key="connections", figure="kb_per_connection"):
            out.append({"scenario": "connections", "peer": r["peer"], "at": f"N={r['connections']}",
                        "figure": "KB/connection", "ratio": r["ratio"]})  # fmt: skip
        lat = [r for r in self.results.get("latency", {}).get("rows", []) if r.get("encoding") == "json"]
        for r in ratios(lat, key="subscribers", figure="p99_ms"):
            out.append({"scenario": "latency", "peer": r["peer"], "at": f"N={r['subscribers']}",
                        "figure": "p99 ms", "ratio": r["ratio"]})  # fmt: skip
        return out


def run(args: argparse.Namespace) -> int:
    """Run `mtbridge bench` as parsed by add_arguments()."""
    if args.scenario == "dashboard":
        return _run_dashboard(args)
    if args.scenario == "store":
        return _run_store(args)
    if args.scenario == "marketdata":
        return _run_marketdata(args)
    if args.scenario == "parse":
        return _run_parse(args)
    return _Runner(args).run()


def _write(args: argparse.Namespace, scenario: str, result: object) -> None:
    """The JSON of a scenario run without the load generator (dashboard, store, marketdata)."""
    if args.out:
        command = "mtbridge bench " + " ".join(sys.argv[2:])
        doc = {"format": 1, "command": command, "machine": machine_info(), "scenarios": {scenario: result}}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        print(f"wrote {args.out}")


def _run_store(args: argparse.Namespace) -> int:
    """The store benchmark: the store's writes in-process, no hub (bridge/bench/store.py)."""
    import tempfile

    from bridge.bench.store import DEFAULT_COUNT, STORE_SCENARIOS, format_line, run_store

    count = args.count or (DEFAULT_COUNT // 10 if args.quick else DEFAULT_COUNT)
    scenarios = args.store_scenarios or list(STORE_SCENARIOS)
    with tempfile.TemporaryDirectory(prefix="mtbridge-bench-store-") as scratch:
        url = args.url or f"sqlite:///{scratch}/store.db"
        options: dict[str, Any] = {}
        if url.startswith("sqlite"):
            options["sqlite_synchronous"] = args.sqlite_synchronous
        if args.schema:
            options["schema"] = args.schema
        print(f"== store == {urlsplit(url).scheme}; load average {os.getloadavg()[0]:.2f}", flush=True)
        results = asyncio.run(
            run_store(
                url,
                scenarios=scenarios,
                count=count,
                concurrency=args.concurrency,
                event_batch=args.event_batch,
                **options,
            )
        )
    for name, (rate, cpu_us) in results.items():
        print(format_line(name, rate, cpu_us, count, args.concurrency), flush=True)
    rows = [
        {"scenario": name, "rows_per_s": round(rate), "cpu_us_per_row": round(cpu_us, 1),
         "count": count, "concurrency": args.concurrency}
        for name, (rate, cpu_us) in results.items()
    ]  # fmt: skip
    _write(args, "store", {"database": urlsplit(url).scheme, "rows": rows})
    return 0


def _run_parse(args: argparse.Namespace) -> int:
    """The validation microbenchmark: µs per call of decoding and parsing (bridge/bench/parse.py)."""
    from bridge.bench.parse import CASES, run_parse

    width = max(len(name) for name, _ in CASES)
    rows = []
    for name, us in run_parse(args.repeat, args.min_seconds, args.only):
        print(f"{name:<{width}}  {us:8.3f} µs/call", flush=True)
        rows.append({"case": name, "us_per_call": round(us, 3)})
    _write(args, "parse", {"rows": rows})
    return 0


def _run_marketdata(args: argparse.Namespace) -> int:
    """The market-data benchmark: one adapter replaying a recorded session (bridge/bench/marketdata.py)."""
    from bridge.bench.marketdata import run_marketdata

    result = asyncio.run(
        run_marketdata(
            args.venue,
            fixtures=args.fixtures,
            hub=args.hub,
            token=args.token,
            in_hub=args.in_hub,
            subscribers=args.subscribers or 10,
        )
    )
    print(json.dumps(result), flush=True)
    _write(args, "marketdata", result)
    return 0


def _run_dashboard(args: argparse.Namespace) -> int:
    """The dashboard benchmark: no load generator, a browser instead (bridge/bench/dashboard.py)."""
    from bridge.bench.dashboard import COLUMNS as DASHBOARD_COLUMNS
    from bridge.bench.dashboard import DashboardPlan, run_dashboard

    plan = DashboardPlan(
        rate=args.rate or 1000.0,
        seconds=args.measure or (5.0 if args.quick else 30.0),
        eas=args.eas or 1,
        control=args.control,
    )
    print(f"== dashboard == load average {os.getloadavg()[0]:.2f}", flush=True)
    try:
        row = run_dashboard(plan)
    except NotAvailable as exc:
        print(f"  dashboard: not available: {exc.reason}", file=sys.stderr)
        return 2
    except BenchError as exc:
        print(f"  dashboard: FAILED: {exc}", file=sys.stderr)
        return 1
    print(format_table([row], DASHBOARD_COLUMNS), flush=True)
    _write(args, "dashboard", row)
    return 0
