"""Run one venue adapter standalone and publish into a hub: what ``mtbridge marketdata`` runs.

The options are parsed in :mod:`bridge.cli.marketdata`.

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

from bridge.marketdata.base import AdapterConfig
from bridge.marketdata.hubsink import HubSink
from bridge.marketdata.runner import run_adapters
from bridge.marketdata.symbols import SymbolError, to_venue

__all__ = ["EXIT_AUTH", "EXIT_OK", "EXIT_USAGE", "TOKEN_ENV", "run"]

logger = logging.getLogger("mtbridge.marketdata")

TOKEN_ENV = "MTBRIDGE_TOKEN"
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_AUTH = 3


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
