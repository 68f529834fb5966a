"""``mtbridge marketdata``: run one venue adapter standalone and publish into a hub.

Example::

    mtbridge marketdata --exchange binance --symbols BTCUSDT,ETHUSDT \\
        --hub ws://127.0.0.1:8765/ws --token "$MTBRIDGE_TOKEN"

The token may also come from the ``MTBRIDGE_TOKEN`` environment variable (read once, here).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal

from bridge.marketdata.base import DEFAULT_DEPTH_LEVELS, AdapterConfig
from bridge.marketdata.connection import VENUES
from bridge.marketdata.hubsink import HubSink
from bridge.marketdata.runner import run_adapters
from bridge.marketdata.symbols import SymbolError, to_venue

__all__ = ["add_arguments", "run"]

logger = logging.getLogger("mtbridge.marketdata")

TOKEN_ENV = "MTBRIDGE_TOKEN"
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_AUTH = 3


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


def _config(args: argparse.Namespace) -> AdapterConfig:
    symbols = tuple(s.strip() for s in str(args.symbols).split(",") if s.strip())
    if not symbols:
        raise ValueError("--symbols is empty")
    for sym in symbols:
        to_venue(args.exchange, sym)
    if not 1 <= args.depth_levels <= 1000:
        raise ValueError("--depth-levels must be 1..1000")
    return AdapterConfig(
        venue=args.exchange,
        symbols=symbols,
        ws_url=args.endpoint,
        rest_url=args.rest_endpoint,
        depth=args.depth,
        depth_levels=args.depth_levels,
    )


async def run(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM; 2 on bad arguments, 3 if the hub refuses the token."""
    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        logger.error("a token is required (--token or %s)", TOKEN_ENV)
        return EXIT_USAGE
    try:
        config = _config(args)
    except (ValueError, SymbolError) as exc:
        logger.error("%s", exc)
        return EXIT_USAGE
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with HubSink(args.hub, token) as sink:
        adapters = asyncio.create_task(run_adapters([config], sink, stop))
        refused = asyncio.create_task(sink.done.wait())
        await asyncio.wait({adapters, refused}, return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        refused.cancel()
        await adapters
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(sig)
    return EXIT_AUTH if sink.failed is not None else EXIT_OK
