"""``mtbridge bench``: parse the benchmark's options; :mod:`bridge.bench.runner` runs them."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.bench.runner import DEFAULT_POSTGRES_URL, SCENARIOS, SCENARIOS_BY_NAME, run
from bridge.bench.targets import PEER_NAMES

__all__ = ["add_arguments", "register"]

DESCRIPTION = "`mtbridge bench`: run the scenarios, print a table per scenario, write every figure as JSON."


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type for a count or a rate: zero or less would make the load generators offer nothing,
    wait forever for a window that never opens, or divide by zero."""

    def parse(text: str) -> float:
        value = kind(text)
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `mtbridge bench` (bridge/bench/runner.py reads them)."""
    parser.add_argument(
        "scenario",
        nargs="?",
        default="all",
        choices=(*SCENARIOS, *SCENARIOS_BY_NAME, "all"),
        help="`cluster`, `dashboard` (the dashboard in Chromium under a signal flood), `store` (the "
        "store's writes alone), `marketdata` (one exchange adapter) and `parse` (validation per call) "
        "run only when named",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and short windows (under 2 minutes)"
    )
    parser.add_argument("--peers", action="store_true", help="also run the peers of bench/peers/ (same load)")
    parser.add_argument("--peer", action="append", choices=PEER_NAMES, help="only this peer (repeat)")
    parser.add_argument("--no-hub", action="store_true", help="run the peers only")
    parser.add_argument("--out", type=Path, help="write the results as JSON to this file")
    parser.add_argument("--sizes", help="subscriber/connection counts, comma-separated (e.g. 1000,5000)")
    parser.add_argument("--measure", type=float, help="seconds each measured window lasts")
    parser.add_argument("--warmup", type=float, help="seconds of load before measuring")
    parser.add_argument("--inflight", type=int, help="fan-out: messages owed to every subscriber, at most")
    parser.add_argument(
        "--rate",
        type=_positive(float),
        help="latency: messages per second; signals, ingest: signals or trade events offered per second",
    )
    parser.add_argument(
        "--subscribers", type=int, help="latency: subscriber count; marketdata --in-hub: subscribers (10)"
    )
    parser.add_argument(
        "--eas",
        type=_positive(int),
        help="ingest: EA connections sharing the offered rate (default: the fewest that offer it, 15)",
    )
    parser.add_argument(
        "--window",
        type=_positive(int),
        help="signals, ingest: unanswered requests per connection (default 64)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("MTBRIDGE_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="server for the PostgreSQL runs of signals/ingest; a scratch database is created there",
    )
    parser.add_argument("--no-postgres", action="store_true", help="durable scenarios on SQLite only")
    parser.add_argument("--no-sqlite", action="store_true", help="durable scenarios on PostgreSQL only")
    parser.add_argument(
        "--profile", type=Path, help="fan-out, signals, ingest: py-spy profiles of the hub into this folder"
    )
    parser.add_argument("--hub-command", help="command that runs mtbridge (default: the installed script)")
    parser.add_argument(
        "--control",
        action="store_true",
        help="dashboard: the same flood with the page on its login form (what the host alone costs)",
    )
    _add_store_arguments(parser)
    _add_marketdata_arguments(parser)
    _add_parse_arguments(parser)


def _add_store_arguments(parser: argparse.ArgumentParser) -> None:
    from bridge.bench.store import DEFAULT_CONCURRENCY, DEFAULT_COUNT, DEFAULT_EVENT_BATCH, STORE_SCENARIOS

    group = parser.add_argument_group("store")
    group.add_argument(
        "--url",
        help="store: a fresh SQLite file or PostgreSQL database (default: a temporary SQLite file)",
    )
    group.add_argument("--schema", help="store: PostgreSQL schema to create and use")
    group.add_argument(
        "--sqlite-synchronous", default="FULL", choices=["NORMAL", "FULL"], help="store: SQLite"
    )
    group.add_argument("--count", type=_positive(int), help=f"store: calls per scenario ({DEFAULT_COUNT})")
    group.add_argument(
        "--concurrency", type=_positive(int), default=DEFAULT_CONCURRENCY, help="store: callers"
    )
    group.add_argument(
        "--event-batch", type=_positive(int), default=DEFAULT_EVENT_BATCH, help="store: events-batch"
    )
    group.add_argument(
        "--scenario",
        dest="store_scenarios",
        action="append",
        choices=STORE_SCENARIOS,
        help="store: repeat to choose several (default: all)",
    )


def _add_marketdata_arguments(parser: argparse.ArgumentParser) -> None:
    from bridge.bench.marketdata import DEFAULT_FIXTURES, VENUES

    group = parser.add_argument_group("marketdata")
    group.add_argument(
        "--venue", default="kraken", choices=VENUES, help="marketdata: recorded session to replay"
    )
    group.add_argument(
        "--fixtures", type=Path, default=DEFAULT_FIXTURES, help="marketdata: recorded sessions"
    )
    group.add_argument("--hub", help="marketdata: publish into the running hub at this URL")
    group.add_argument("--token", default="", help="marketdata: publisher token for --hub")
    group.add_argument(
        "--in-hub", action="store_true", help="marketdata: adapter inside an in-process hub, with subscribers"
    )


def _add_parse_arguments(parser: argparse.ArgumentParser) -> None:
    from bridge.bench.parse import DEFAULT_MIN_SECONDS, DEFAULT_REPEAT

    group = parser.add_argument_group("parse")
    group.add_argument(
        "--repeat",
        type=_positive(int),
        default=DEFAULT_REPEAT,
        help="parse: timeit runs per case; the best is kept",
    )
    group.add_argument(
        "--min-seconds",
        type=_positive(float),
        default=DEFAULT_MIN_SECONDS,
        help="parse: shortest duration of one run",
    )
    group.add_argument("--only", help="parse: run only the cases whose name contains this text")


def register(subparsers: Any) -> None:
    """Add ``bench`` to the ``mtbridge`` subparsers."""
    parser = subparsers.add_parser(
        "bench",
        help="benchmark the hub (and, with --peers, the servers users would pick instead)",
        description=DESCRIPTION,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
