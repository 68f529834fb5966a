"""Registration of the subcommands that live in other packages."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from typing import Any

__all__ = ["REGISTRARS"]


def _bench(sub: Any) -> None:
    from bridge.bench import cli as bench_cli

    bench_cli.add_arguments(sub)


def _marketdata(sub: Any) -> None:
    from bridge.marketdata import cli as md_cli

    parser = sub.add_parser(
        "marketdata",
        help="run one exchange adapter standalone, publishing onto a hub's instrument: channels",
    )
    md_cli.add_arguments(parser)

    def run(args: argparse.Namespace) -> int:
        return asyncio.run(md_cli.run(args))

    parser.set_defaults(func=run)


def _client(sub: Any) -> None:
    from bridge.client import cli as client_cli

    client_cli.register(sub)


REGISTRARS: list[Callable[[Any], None]] = [_client, _bench, _marketdata]
