"""Durable paths of the hub: signals end to end (engine publish -> EA ack) and trade-event ingest.

Both run the C load generator in its request mode: every request carries a requestId and
the hub answers each one, so the load generator keeps a bounded window of unanswered
requests per connection. Request rates stay under the hub's per-connection rate limit
(`HubLimits.rate_per_second`, 2,000/s by default), so the limiter never decides a figure;
the connection counts are chosen so that the targets (20,000 events/s, 5,000 signals/s)
are reachable.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass

from bridge.bench.exceptions import BenchError, NotAvailable
from bridge.bench.loadgen import Loadgen, Mark
from bridge.bench.procs import ServerProcess
from bridge.bench.scenarios import Context, Row, with_server
from bridge.bench.targets import HubTarget

__all__ = ["SIGNAL_STRATEGY", "run_ingest", "run_signals"]

#: Strategy (and channel signals:<strategy>) the signal benchmark publishes on.
SIGNAL_STRATEGY = "bench"
#: Requests per second per connection: under the hub's default limit of 2,000/s.
PER_CONNECTION_RATE = 1900.0
#: Unanswered requests allowed per connection.
REQUEST_WINDOW = 64
#: First MT5 login the benchmark's simulated EAs use.
FIRST_LOGIN = 700001
#: Error codes meaning the hub does not implement a request type yet.
_UNSUPPORTED_CODES = ("unknown_type", "not_implemented", "unsupported", "bad_message", "invalid_message")


@dataclass(frozen=True)
class _Window:
    seconds: float
    marks: list[tuple[Mark, Mark]]
    server_cpu_s: float


def _measure(
    ctx: Context, server: ServerProcess, gens: Sequence[Loadgen], publishers: Sequence[Loadgen]
) -> _Window:
    for pub in publishers:
        pub.go()
    time.sleep(ctx.plan.warmup_s)
    first = [g.mark() for g in gens]
    c0 = server.cpu_s()
    time.sleep(ctx.plan.measure_s)
    last = [g.mark() for g in gens]
    c1 = server.cpu_s()
    for pub in publishers:
        pub.stop()
    server.check_alive()
    seconds = statistics.fmean(b.t_s - a.t_s for a, b in zip(first, last, strict=True))
    return _Window(seconds, list(zip(first, last, strict=True)), c1 - c0)


def _check_errors(scenario: str, marks: Sequence[Mark], answered: int) -> int:
    """Raise NotAvailable when the hub refused every request; return the error count."""
    errors = sum(m.errors for m in marks)
    first = next((m.first_error for m in marks if m.first_error), "")
    closed = {code: n for m in marks for code, n in m.close_codes.items()}
    if errors and errors >= answered:
        try:
            code = str(json.loads(first)["payload"]["code"])
        except (ValueError, KeyError, TypeError):
            code = ""
        if code in _UNSUPPORTED_CODES or not code:
            raise NotAvailable(scenario, f"the hub refused every request: {first[:300]}")
        raise BenchError(f"{scenario}: the hub refused every request: {first[:300]}")
    if "4504" in closed:
        raise NotAvailable(
            scenario, f"the hub closed the connections with 4504 (bad messages): {first[:300]}"
        )
    return errors


def run_ingest(target: HubTarget, ctx: Context, *, database: str) -> Row:
    """EA-like connections send trade.event and wait for the committed result: events/s."""
    conns = ctx.plan.ingest_connections
    account = str(FIRST_LOGIN)
    template = (
        '{"type":"trade.event","requestId":"%S","payload":{"id":"%U","kind":"deal","account":"'
        + account
        + '","ts":1700000000000,"ticket":%S,"symbol":"EURUSD","side":"buy","entry":"in",'
        '"volume":0.1,"price":1.0801}}'
    )

    def one(server: ServerProcess) -> Row:
        token = target.mint_token(role="ea", sub="bench-ingest", accounts=[account])
        args = [
            "--mode", "pub", "--port", str(server.port), "--conns", str(conns),
            "--concurrency", str(ctx.plan.concurrency),
            *target.request_args(token), "--template", template,
            "--rate", f"{PER_CONNECTION_RATE * conns:g}", "--window", str(REQUEST_WINDOW),
        ]  # fmt: skip
        with Loadgen(ctx.exe, args, core=ctx.cores.client, label="ingest EAs") as lg:
            lg.wait_ready()
            w = _measure(ctx, server, [lg], [lg])
        first, last = w.marks[0]
        answered = last.acks - first.acks
        errors = _check_errors("ingest", [last], answered)
        return {
            "database": database,
            "connections": conns,
            "events_per_s": round((answered - errors) / w.seconds),
            "offered_per_s": round((last.sent - first.sent) / w.seconds),
            "errors": errors,
            "first_error": last.first_error[:300],
            "server_cpu": round(w.server_cpu_s / w.seconds, 3),
            "loadgen_cpu": round((last.cpu_s - first.cpu_s) / w.seconds, 3),
            "disconnected": last.closed,
        }

    ctx.log(f"  ingest on {database} with {conns} EA connections ...")
    row = with_server(target, ctx, one)
    ctx.log(f"    {row['events_per_s']:,} trade events/s committed")
    return row


def run_signals(target: HubTarget, ctx: Context, *, database: str) -> Row:
    """Engine publishes signals, each to one of E accounts; every EA acks what it receives."""
    eas = ctx.plan.signal_eas
    logins = [str(FIRST_LOGIN + i) for i in range(eas)]
    publishers = max(1, -(-5000 // int(PER_CONNECTION_RATE)) + 1)  # room above the 5,000/s target
    channel = f"signals:{SIGNAL_STRATEGY}"
    signal = (
        '{"id":"%U","strategy":"' + SIGNAL_STRATEGY + '","accounts":["%C"],"symbol":"EURUSD","action":"open",'
        '"side":"buy","orderType":"market","volume":0.1,"ttl":600,"comment":"%T"}'
    )
    template = '{"type":"publish","requestId":"%S","channel":"' + channel + '","payload":' + signal + "}"

    def one(server: ServerProcess) -> Row:
        engine_token = target.mint_token(role="engine", sub="bench-engine")
        with ExitStack() as stack:
            ea_gens: list[Loadgen] = []
            for login in logins:
                token = target.mint_token(role="ea", sub=f"bench-ea-{login}", accounts=[login])
                subscribe: dict[str, object] = {"type": "subscribe", "requestId": "s", "channel": channel}
                ack = (
                    '{"type":"signal.ack","requestId":"k%S","payload":{"signalId":"%I","account":"'
                    + login
                    + '"}}'
                )
                args = [
                    "--port", str(server.port), "--conns", "1",
                    *target.request_args(token, then=[subscribe]),
                    "--latency", "--ts-key", "comment", "--count-contains", '"type":"message"',
                    "--ack-template", ack,
                ]  # fmt: skip
                ea_gens.append(
                    stack.enter_context(Loadgen(ctx.exe, args, core=ctx.cores.client, label=f"EA {login}"))
                )
            for g in ea_gens:
                g.wait_ready()
            pub_args = [
                "--mode", "pub", "--port", str(server.port), "--conns", str(publishers),
                *target.request_args(engine_token), "--template", template, "--cycle", ",".join(logins),
                "--rate", f"{PER_CONNECTION_RATE * publishers:g}", "--window", str(REQUEST_WINDOW),
            ]  # fmt: skip
            pub = stack.enter_context(Loadgen(ctx.exe, pub_args, core=ctx.cores.client, label="engine"))
            pub.wait_ready()
            w = _measure(ctx, server, [pub, *ea_gens], [pub])
        (p0, p1), ea_marks = w.marks[0], w.marks[1:]
        published = p1.acks - p0.acks
        pub_errors = _check_errors("signals", [p1], published)
        delivered = sum(b.frames - a.frames for a, b in ea_marks)
        acked = sum(b.raw.get("other", 0) - a.raw.get("other", 0) for a, b in ea_marks)
        ack_errors = sum(b.errors for _, b in ea_marks)
        if delivered and ack_errors >= delivered:
            _check_errors("signals (signal.ack)", [b for _, b in ea_marks], delivered)
        lat = [b for _, b in ea_marks if b.lat_n]
        return {
            "database": database,
            "eas": eas,
            "publisher_connections": publishers,
            "published_per_s": round((published - pub_errors) / w.seconds),
            "delivered_per_s": round(delivered / w.seconds),
            "acked_per_s": round(max(0, acked - ack_errors) / w.seconds),
            "p50_ms": round(statistics.median(b.p50_ms for b in lat), 3) if lat else None,
            "p99_ms": round(max(b.p99_ms for b in lat), 3) if lat else None,
            "errors": pub_errors + ack_errors,
            "first_error": (
                p1.first_error or next((b.first_error for _, b in ea_marks if b.first_error), "")
            )[:300],
            "server_cpu": round(w.server_cpu_s / w.seconds, 3),
            "loadgen_cpu": round(sum(b.cpu_s - a.cpu_s for a, b in w.marks) / w.seconds, 3),
            "disconnected": sum(b.closed for _, b in w.marks),
        }

    ctx.log(f"  signals on {database}: {publishers} engine connections -> {eas} EAs ...")
    row = with_server(target, ctx, one)
    ctx.log(
        f"    {row['published_per_s']:,} signals/s published, {row['acked_per_s']:,} acked/s, "
        f"p99 {row['p99_ms']} ms"
    )
    return row
