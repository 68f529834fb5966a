"""``mtbridge publish``, ``tail``, ``simulate-ea`` and ``demo``: command-line tools on the SDK.

``register(subparsers)`` adds them to the ``mtbridge`` parser (:mod:`bridge.cli`); the EA and the demo
themselves live in :mod:`bridge.simulator`. Tokens come from ``--token`` or, so
that they stay out of process listings and shell history, from ``MTBRIDGE_TOKEN``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from bridge.client import ClientError, RecoveryFailed, RequestError, connect
from bridge.protocol.signals import signal_channel

__all__ = ["DEFAULT_HUB", "load_payloads", "register"]

DEFAULT_HUB = "ws://127.0.0.1:8765/ws"
TOKEN_ENV = "MTBRIDGE_TOKEN"


def _hub_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hub", default=DEFAULT_HUB, help=f"hub WebSocket URL (default {DEFAULT_HUB})")
    p.add_argument("--token", default=None, help=f"JWT (default: ${TOKEN_ENV})")
    p.add_argument("--encoding", choices=["json", "msgpack"], default="json")


def _token(args: argparse.Namespace) -> str:
    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        raise SystemExit(f"error: give --token or set {TOKEN_ENV}")
    return str(token)


def _at_least_zero(text: str) -> float:
    """A finite number >= 0 (argparse type: a bad value is a usage error, exit status 2)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number >= 0")
    return value


def _above_zero(text: str) -> float:
    value = _at_least_zero(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number > 0")
    return value


def _count(text: str) -> int:
    """An integer >= 0."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 0")
    return int(text)


def _trading_hours(text: str) -> Any:
    from bridge.simulator.risk import parse_trading_hours

    try:
        return parse_trading_hours(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _err(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), file=sys.stderr, flush=True)


def load_payloads(text: str) -> list[dict[str, Any]]:
    """A JSON object, a JSON array of objects, or JSON lines (one object per line)."""
    text = text.strip()
    if not text:
        raise ValueError("no payload given")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(i, dict) for i in items):
        raise ValueError("each payload must be a JSON object")
    return items


# -- publish ---------------------------------------------------------------------------------------


def cmd_publish(args: argparse.Namespace) -> int:
    if args.payload is not None:
        text = args.payload
    elif args.file is not None and args.file != "-":
        text = Path(args.file).read_text()
    else:
        text = sys.stdin.read()
    try:
        payloads = load_payloads(text)
    except ValueError as exc:
        _err({"error": "bad_payload", "message": str(exc)})
        return 2
    return asyncio.run(_publish(args, _token(args), payloads))


async def _publish(args: argparse.Namespace, token: str, payloads: list[dict[str, Any]]) -> int:
    failures = 0
    try:
        client = await connect(args.hub, token, encoding=args.encoding, request_timeout=args.timeout)
    except ClientError as exc:
        _err({"error": type(exc).__name__, "message": str(exc)})
        return 1
    try:
        for payload in payloads:
            channel = args.channel or (signal_channel(payload["strategy"]) if "strategy" in payload else None)
            if channel is None:
                _err({"error": "no_channel", "message": "give --channel (or a signal with a strategy)"})
                return 2
            try:
                result = await client.publish(channel, payload)
            except RequestError as exc:
                failures += 1
                _err(
                    {
                        "channel": channel,
                        "id": payload.get("id"),
                        "error": exc.code,
                        "message": exc.message,
                        "details": exc.details,
                    }
                )
                continue
            except ClientError as exc:
                failures += 1
                _err(
                    {
                        "channel": channel,
                        "id": payload.get("id"),
                        "error": type(exc).__name__,
                        "message": str(exc),
                    }
                )
                continue
            print(
                json.dumps(
                    {
                        "channel": channel,
                        "offset": result.offset,
                        "epoch": result.epoch,
                        "duplicate": result.duplicate,
                    }
                ),
                flush=True,
            )
    finally:
        await client.close()
    return 1 if failures else 0


# -- tail ------------------------------------------------------------------------------------------


def cmd_tail(args: argparse.Namespace) -> int:
    return asyncio.run(_tail(args, _token(args)))


async def _tail(args: argparse.Namespace, token: str) -> int:
    try:
        client = await connect(args.hub, token, encoding=args.encoding)
    except ClientError as exc:
        _err({"error": type(exc).__name__, "message": str(exc)})
        return 1
    count = 0
    try:
        sub = await client.subscribe(args.channel, since=args.since, epoch=args.epoch)

        async def stream() -> None:
            nonlocal count
            while args.count is None or count < args.count:
                try:
                    message = await sub.__anext__()
                except RecoveryFailed as gap:
                    _err(
                        {
                            "gap": gap.channel,
                            "reason": gap.reason,
                            "since": gap.since,
                            "offset": gap.offset,
                            "advice": gap.advice,
                        }
                    )
                    continue
                except StopAsyncIteration:
                    return
                print(
                    json.dumps(
                        {"channel": message.channel, "offset": message.offset, "payload": message.payload}
                    ),
                    flush=True,
                )
                count += 1

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stream(), args.duration)
    except ClientError as exc:
        _err({"error": type(exc).__name__, "message": str(exc)})
        return 1
    finally:
        await client.close()
    return 0


# -- simulate-ea -----------------------------------------------------------------------------------


def _guards(args: argparse.Namespace) -> Any:
    from bridge.simulator.account import RiskGuards

    return RiskGuards(
        max_lot=args.max_lot,
        allowed_symbols=frozenset(s for item in args.allowed_symbol for s in item.split(",") if s),
        max_signal_age_s=args.max_signal_age,
        trading_enabled=not args.trading_disabled,
        lot_mode=args.lot_mode,
        lot_multiplier=args.lot_multiplier,
        fixed_lot=args.fixed_lot,
        risk_percent=args.risk_percent,
        max_open_positions=args.max_open_positions,
        max_daily_loss_pct=args.max_daily_loss_pct,
        trading_hours=args.trading_hours,
        server_utc_offset_s=args.server_utc_offset,
    )


def cmd_simulate_ea(args: argparse.Namespace) -> int:
    from bridge.simulator.demo import format_line
    from bridge.simulator.ea import SimulatedEA

    strategies = [s for item in args.strategy for s in item.split(",") if s]
    try:
        guards = _guards(args)
    except ValueError as exc:  # the combinations the EA's OnInit refuses too
        print(f"mtbridge simulate-ea: error: {exc}", file=sys.stderr)
        return 2

    def sink(kind: str, data: dict[str, Any]) -> None:
        if args.json:
            print(json.dumps({"kind": kind, **data}), flush=True)
        else:
            print(format_line(kind, data), flush=True)

    ea = SimulatedEA(
        args.hub,
        _token(args),
        args.account,
        strategies or ["alpha"],
        Path(args.state_dir),
        guards=guards,
        snapshot_interval=args.snapshot_interval or None,
        from_start=args.from_start,
        sink=sink,
        client_options={"encoding": args.encoding},
    )
    try:
        asyncio.run(ea.run(args.duration))
    except ClientError as exc:
        _err({"error": type(exc).__name__, "message": str(exc)})
        return 1
    return 0


# -- demo ------------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from bridge.simulator.demo import DemoOptions, run_demo

    return run_demo(
        DemoOptions(
            data_dir=args.data_dir,
            port=args.port,
            duration=args.duration,
            interval=args.interval,
            open_browser=args.open,
        )
    )


def register(subparsers: Any) -> None:
    """Add ``publish``, ``tail``, ``simulate-ea`` and ``demo`` to the ``mtbridge`` subparsers."""
    p = subparsers.add_parser("publish", help="publish signals or messages and print each result")
    _hub_args(p)
    p.add_argument("--channel", help="e.g. signals:alpha (default: signals:<strategy> of each signal)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--payload", help="a JSON object (or array / JSON lines)")
    source.add_argument("--file", help="a file of JSON signals ('-' or nothing: stdin)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each result")
    p.set_defaults(func=cmd_publish)

    t = subparsers.add_parser("tail", help="print a channel's messages, one JSON per line")
    t.add_argument("channel")
    _hub_args(t)
    t.add_argument("--since", type=int, help="replay from after this offset")
    t.add_argument("--epoch", help="the epoch --since belongs to")
    t.add_argument("--count", type=int, help="stop after this many messages")
    t.add_argument("--duration", type=float, help="stop after this many seconds")
    t.set_defaults(func=cmd_tail)

    s = subparsers.add_parser("simulate-ea", help="run a simulated MT5 EA (same protocol as the MQL5 EA)")
    _hub_args(s)
    s.add_argument("--account", required=True, help="MT5 login")
    s.add_argument(
        "--strategy", action="append", default=[], help="strategy to follow (repeat or comma list)"
    )
    s.add_argument("--state-dir", required=True, help="where the EA keeps its state file")
    s.add_argument("--max-lot", type=_above_zero, default=1.0, help="every open is clamped to this (lots)")
    # position sizing and account limits: the EA's inputs of the same names (docs/simulator.md)
    s.add_argument("--lot-mode", choices=("multiplier", "fixed", "risk"), default="multiplier")
    s.add_argument("--lot-multiplier", type=_above_zero, default=1.0, help="signal volume x this")
    s.add_argument("--fixed-lot", type=_above_zero, default=0.01, help="lots per open (--lot-mode fixed)")
    s.add_argument("--risk-percent", type=_above_zero, default=1.0, help="%% of equity lost at the SL")
    s.add_argument("--max-open-positions", type=_count, default=0, help="0: no limit")
    s.add_argument("--max-daily-loss-pct", type=_at_least_zero, default=0.0, help="0: off")
    s.add_argument("--trading-hours", type=_trading_hours, default=(), help="e.g. 08:00-12:00,13:30-17:00")
    s.add_argument("--server-utc-offset", type=int, default=0, help="broker server time minus UTC, seconds")
    s.add_argument("--allowed-symbol", action="append", default=[], help="allowed symbol (default: all)")
    s.add_argument("--max-signal-age", type=int, default=30, help="seconds")
    s.add_argument("--trading-disabled", action="store_true", help="ack and reject every signal")
    s.add_argument("--snapshot-interval", type=float, default=60.0, help="seconds (0: off)")
    s.add_argument("--from-start", action="store_true", help="first run: replay the channel from offset 0")
    s.add_argument("--duration", type=float, help="stop after this many seconds")
    s.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    s.set_defaults(func=cmd_simulate_ea)

    d = subparsers.add_parser(
        "demo", help="a hub, a demo engine and 3 simulated EAs: live flow in one command"
    )
    d.add_argument("--data-dir", type=Path, help="hub data directory (default: a temporary one)")
    d.add_argument("--port", type=int, help="hub port (default: a free one)")
    d.add_argument("--duration", type=float, help="stop after this many seconds")
    d.add_argument("--interval", type=float, default=1.0, help="seconds between signals")
    d.add_argument(
        "--open", action="store_true", help="start the system web browser on the dashboard (if there is one)"
    )
    d.set_defaults(func=cmd_demo)
