"""``mtbridge marketdata``: parse the options of one standalone venue adapter and run it.

The adapter, its hub sink and its exit statuses live in :mod:`bridge.marketdata.standalone`.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bridge.marketdata.base import DEFAULT_DEPTH_LEVELS
from bridge.marketdata.connection import VENUES
from bridge.marketdata.standalone import EXIT_AUTH, EXIT_OK, EXIT_USAGE, TOKEN_ENV, run

__all__ = ["EXIT_AUTH", "EXIT_OK", "EXIT_USAGE", "add_arguments", "register", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exchange", required=True, choices=sorted(VENUES), help="venue to connect to")
    parser.add_argument(
        "--symbols", required=True, help="comma-separated symbols, venue (BTCUSDT) or canonical (BTC-USDT)"
    )
    parser.add_argument("--hub", required=True, help="hub WebSocket URL, e.g. ws://127.0.0.1:8765/ws")
    parser.add_argument(
        "--token", default=None, help=f"JWT allowed to publish instrument:* (or ${TOKEN_ENV})"
    )
    parser.add_argument("--endpoint", default=None, help="override the venue WebSocket URL (testnet, fake)")
    parser.add_argument("--rest-endpoint", default=None, help="override the venue REST base URL (Binance)")
    parser.add_argument("--depth", type=int, default=None, help="venue book depth to subscribe/fetch")
    parser.add_argument(
        "--depth-levels", type=int, default=DEFAULT_DEPTH_LEVELS, help="levels per side on :depth channels"
    )


def cmd_marketdata(args: argparse.Namespace) -> int:
    return asyncio.run(run(args))


def register(subparsers: Any) -> None:
    """Add ``marketdata`` to the ``mtbridge`` subparsers."""
    parser = subparsers.add_parser(
        "marketdata",
        help="run one exchange adapter standalone, publishing onto a hub's instrument: channels",
    )
    add_arguments(parser)
    parser.set_defaults(func=cmd_marketdata)
