"""Durable paths of the hub: signals end to end (engine publish -> EA receipt -> signal.ack ->
trade.event) and trade-event ingest.

Both run the C load generator in its request mode: every request carries a requestId and
the hub answers each one, so the load generator keeps a bounded window of unanswered
requests per connection. Request rates stay under the hub's per-connection rate limit
(`HubLimits.rate_per_second`, 2,000/s by default), so the limiter never decides a figure;
the connection counts are chosen so that the offered load is above the goals (20,000
events/s, 5,000 signals/s): a run that offers less than the goal cannot show it is met.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass

from bridge.bench.exceptions import BenchError, NotAvailable
from bridge.bench.loadgen import Loadgen, Mark
from bridge.bench.procs import ServerProcess, core_ticks, cpu_probe_ms, steal_between
from bridge.bench.scenarios import Context, Row, finish_profile, start_profile, with_server
from bridge.bench.targets import HubTarget
from bridge.protocol.signals import signal_channel

__all__ = ["SIGNAL_STRATEGY", "run_ingest", "run_signals"]

#: Strategy (and channel signals:<strategy>) the signal benchmark publishes on.
SIGNAL_STRATEGY = "bench"
#: Requests per second per connection: under the hub's default limit of 2,000/s.
PER_CONNECTION_RATE = 1900.0
#: The goals of the durable paths (issue 3), per second.
INGEST_GOAL = 20_000
SIGNAL_GOAL = 5_000
#: Ingest offers this much above the goal at least (more connections than the plan if needed).
INGEST_HEADROOM = 1.4
#: Signals offered per second by default (``--rate`` changes it): 10 % above the goal; each engine
#: connection also stops at ``Plan.request_window`` unanswered publishes (``--window``, default 64).
SIGNAL_RATE = 5_500.0
#: Engine connections, each with a subject of its own (status pushes go to every connection of the
#: publishing subject; an engine normally has one).
SIGNAL_PUBLISHERS = 4
#: First MT5 login the benchmark's simulated EAs use.
FIRST_LOGIN = 700001
#: Error codes meaning the hub does not implement a request type yet.
_UNSUPPORTED_CODES = ("unknown_type", "not_implemented", "unsupported", "bad_message", "invalid_message")


@dataclass(frozen=True)
class _Window:
    seconds: float
    marks: list[tuple[Mark, Mark]]
    server_cpu_s: float
    #: Share of the window the hypervisor took the server's core away (None: not measurable).
    steal: float | None
    #: procs.cpu_probe_ms on the server's core just before the load started.
    probe_ms: float


def _measure(
    ctx: Context,
    server: ServerProcess,
    gens: Sequence[Loadgen],
    publishers: Sequence[Loadgen],
    profile: str,
) -> _Window:
    probe = cpu_probe_ms(ctx.cores.server)
    for pub in publishers:
        pub.go()
    time.sleep(ctx.plan.warmup_s)
    out = ctx.profile_dir / f"hub-{profile}.txt" if ctx.profile_dir is not None else None
    spy = start_profile(server, out, ctx) if out is not None else None
    first = [g.mark() for g in gens]
    c0, t0 = server.cpu_s(), core_ticks(ctx.cores.server)
    time.sleep(ctx.plan.measure_s)
    last = [g.mark() for g in gens]
    c1, t1 = server.cpu_s(), core_ticks(ctx.cores.server)
    if spy is not None and out is not None:
        finish_profile(spy, out, ctx)
    for pub in publishers:
        pub.stop()
    server.check_alive()
    seconds = statistics.fmean(b.t_s - a.t_s for a, b in zip(first, last, strict=True))
    return _Window(seconds, list(zip(first, last, strict=True)), c1 - c0, steal_between(t0, t1), probe)


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
    offered = ctx.plan.ingest_rate or INGEST_GOAL * INGEST_HEADROOM
    if ctx.plan.ingest_eas is None:
        conns = max(ctx.plan.ingest_connections, math.ceil(offered / PER_CONNECTION_RATE))
        per_connection = PER_CONNECTION_RATE
    else:  # many EAs, each sending less: closer to a firm's accounts than 15 EAs at 1,900/s each
        conns = max(1, ctx.plan.ingest_eas)
        per_connection = min(PER_CONNECTION_RATE, offered / conns)
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
            "--rate", f"{per_connection * conns:g}", "--window", str(ctx.plan.request_window),
        ]  # fmt: skip
        with Loadgen(ctx.exe, args, core=ctx.cores.client, label="ingest EAs") as lg:
            lg.wait_ready()
            w = _measure(ctx, server, [lg], [lg], f"ingest-{database}")
        first, last = w.marks[0]
        answered = last.acks - first.acks
        errors = _check_errors("ingest", [last], answered)
        return {
            "database": database,
            "connections": conns,
            "window": ctx.plan.request_window,
            "rate": per_connection * conns,
            "events_per_s": round((answered - errors) / w.seconds),
            "offered_per_s": round((last.sent - first.sent) / w.seconds),
            "errors": errors,
            "first_error": last.first_error[:300],
            "server_cpu": round(w.server_cpu_s / w.seconds, 3),
            "server_core_steal": w.steal,
            "cpu_probe_ms": w.probe_ms,
            "loadgen_cpu": round((last.cpu_s - first.cpu_s) / w.seconds, 3),
            "disconnected": last.closed,
        }

    ctx.log(f"  ingest on {database} with {conns} EA connections ...")
    row = with_server(target, ctx, one)
    ctx.log(f"    {row['events_per_s']:,} trade events/s committed")
    return row


def run_signals(target: HubTarget, ctx: Context, *, database: str) -> Row:
    """Engines publish signals, each to one of E accounts; per account, one EA connection answers
    every signal it receives as the MQL5 EA does: ``signal.ack`` first, then the execution report (a
    ``trade.event`` deal carrying the signal's id, committed before the hub answers).

    ``delivered`` counts the signals the EAs received (each is addressed to one account, so it is also the
    number published and fanned out); ``acked`` and ``executed`` count the hub's successful answers
    to the two requests. Engines publish open loop at ``rate`` but never with more than
    ``ctx.plan.request_window`` unanswered publishes per connection (only ``result``/``error`` frames
    answer a publish; the ``signal.status`` pushes do not), so past saturation the window sets the pace.
    """
    eas = ctx.plan.signal_eas
    logins = [str(FIRST_LOGIN + i) for i in range(eas)]
    publishers = SIGNAL_PUBLISHERS
    rate = ctx.plan.signal_rate or SIGNAL_RATE
    channel = signal_channel(SIGNAL_STRATEGY)
    signal = (
        '{"id":"%U","strategy":"' + SIGNAL_STRATEGY + '","accounts":["%C"],"symbol":"EURUSD","action":"open",'
        '"side":"buy","orderType":"market","volume":0.1,"ttl":600,"comment":"%T"}'
    )
    template = '{"type":"publish","requestId":"%S","channel":"' + channel + '","payload":' + signal + "}"
    subscribe: dict[str, object] = {"type": "subscribe", "requestId": "s", "channel": channel}
    acked_tally, executed_tally = '{"type":"result","requestId":"k', '{"type":"result","requestId":"e'

    def ea_args(server: ServerProcess, login: str) -> list[str]:
        token = target.mint_token(role="ea", sub=f"bench-ea-{login}", accounts=[login])
        ack = '{"type":"signal.ack","requestId":"k%S","payload":{"signalId":"%I","account":"' + login + '"}}'
        execution = (
            '{"type":"trade.event","requestId":"e%S","payload":{"id":"%I","kind":"deal","account":"'
            + login
            + '","signalId":"%I","ts":1700000000000,"ticket":1%S,"symbol":"EURUSD","side":"buy",'
            '"entry":"in","volume":0.1,"price":1.0801}}'
        )
        return [
            "--port", str(server.port), "--conns", "1",
            *target.request_args(token, then=[subscribe]),
            "--latency", "--ts-key", "comment", "--count-contains", '"type":"message"',
            "--ack-template", ack, "--ack-template2", execution,
            "--tally", acked_tally, "--tally", executed_tally,
        ]  # fmt: skip

    def one(server: ServerProcess) -> Row:
        with ExitStack() as stack:
            eas_: list[Loadgen] = []
            for login in logins:
                eas_.append(
                    stack.enter_context(
                        Loadgen(ctx.exe, ea_args(server, login), core=ctx.cores.client, label=f"ea {login}")
                    )
                )
            for g in eas_:
                g.wait_ready()
            pubs: list[Loadgen] = []
            for n in range(publishers):
                token = target.mint_token(role="engine", sub=f"bench-engine-{n}")
                pub_args = [
                    "--mode", "pub", "--port", str(server.port), "--conns", "1",
                    *target.request_args(token), "--template", template, "--cycle", ",".join(logins),
                    "--rate", f"{rate / publishers:g}", "--window", str(ctx.plan.request_window),
                    "--pub-answer-contains", '"requestId":"',
                ]  # fmt: skip
                pubs.append(
                    stack.enter_context(Loadgen(ctx.exe, pub_args, core=ctx.cores.client, label="engine"))
                )
            for p in pubs:
                p.wait_ready()
            w = _measure(ctx, server, [*pubs, *eas_], pubs, f"signals-{database}")
        pub_marks = w.marks[:publishers]
        ea_marks = w.marks[publishers:]
        offered = sum(b.sent - a.sent for a, b in pub_marks)
        pub_errors = sum(b.errors - a.errors for a, b in pub_marks)
        if pub_errors:
            _check_errors("signals", [b for _, b in pub_marks], sum(b.acks - a.acks for a, b in pub_marks))

        def tally(i: int) -> int:
            return sum(int(b.raw["tallies"][i]) - int(a.raw["tallies"][i]) for a, b in ea_marks)

        delivered = sum(b.frames - a.frames for a, b in ea_marks)
        acked, executed = tally(0), tally(1)
        ea_errors = sum(b.errors - a.errors for a, b in ea_marks)
        if delivered and ea_errors >= delivered:
            _check_errors("signals (signal.ack, trade.event)", [b for _, b in ea_marks], delivered)
        lat = [b for _, b in ea_marks if b.lat_n]
        first_error = next((b.first_error for _, b in w.marks if b.first_error), "")
        return {
            "database": database,
            "eas": eas,
            "window": ctx.plan.request_window,
            "publisher_connections": publishers,
            "rate": rate,
            "offered_per_s": round(offered / w.seconds),
            "published_per_s": round(delivered / w.seconds),
            "delivered_per_s": round(delivered / w.seconds),
            "acked_per_s": round(acked / w.seconds),
            "executed_per_s": round(executed / w.seconds),
            "p50_ms": round(statistics.median(b.p50_ms for b in lat), 3) if lat else None,
            "p99_ms": round(max(b.p99_ms for b in lat), 3) if lat else None,
            "errors": pub_errors + ea_errors,
            "first_error": first_error[:300],
            "server_cpu": round(w.server_cpu_s / w.seconds, 3),
            "server_core_steal": w.steal,
            "cpu_probe_ms": w.probe_ms,
            "loadgen_cpu": round(sum(b.cpu_s - a.cpu_s for a, b in w.marks) / w.seconds, 3),
            "disconnected": sum(b.closed for _, b in w.marks),
        }

    ctx.log(f"  signals on {database}: {publishers} engines at up to {rate:g}/s -> {eas} EAs (ack, exec) ...")
    row = with_server(target, ctx, one)
    ctx.log(
        f"    {row['published_per_s']:,} signals/s delivered, {row['acked_per_s']:,} acked/s, "
        f"{row['executed_per_s']:,} executed/s, p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms"
    )
    return row
