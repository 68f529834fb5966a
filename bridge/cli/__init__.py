"""The ``mtbridge`` command line: one parser, one module per group of subcommands.

Each module parses its subcommands' options and dispatches to the package that does the work; the
work itself lives there (the hub in :mod:`bridge.server`, benchmarks in :mod:`bridge.bench`, the EA
simulator in :mod:`bridge.simulator`, exchange adapters in :mod:`bridge.marketdata`). Every module
exposes ``register(subparsers)``, which adds its subcommands, each with ``func`` (parsed arguments
to exit status) as a parser default:

- :mod:`bridge.cli.hub`: ``serve``, ``token``, ``revoke``
- :mod:`bridge.cli.client`: ``publish``, ``tail``, ``simulate-ea``, ``demo``
- :mod:`bridge.cli.bench`: ``bench``
- :mod:`bridge.cli.marketdata`: ``marketdata``
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from bridge.cli import bench, client, hub, marketdata

__all__ = ["build_parser", "main"]

#: In the order ``mtbridge --help`` lists them.
REGISTRARS: tuple[Callable[[Any], None], ...] = (
    hub.register,
    client.register,
    bench.register,
    marketdata.register,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mtbridge", description="MetaTrader bridge and signal relay")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in REGISTRARS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
