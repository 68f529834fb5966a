"""Run several adapters in one event loop (in the hub process, or standalone via the CLI)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bridge.marketdata.base import AdapterConfig, Sink
from bridge.marketdata.connection import VENUES, Adapter

__all__ = ["config_from_mapping", "run_adapters"]

_CONFIG_KEYS = frozenset(
    {"venue", "symbols", "ws_url", "rest_url", "depth", "depth_levels", "backoff_base", "backoff_cap"}
)


def config_from_mapping(raw: Mapping[str, Any]) -> AdapterConfig:
    """Build an AdapterConfig from a parsed config file entry (e.g. the hub's TOML/JSON settings).

    Raises:
        ValueError: unknown keys, unknown venue or malformed symbols.
    """
    unknown = set(raw) - _CONFIG_KEYS
    if unknown:
        raise ValueError(f"unknown market-data config keys: {sorted(unknown)}")
    venue = raw.get("venue")
    if venue not in VENUES:
        raise ValueError(f"venue must be one of {sorted(VENUES)}")
    symbols = raw.get("symbols")
    if isinstance(symbols, str):
        symbols = [s for s in symbols.split(",") if s.strip()]
    if not isinstance(symbols, Sequence) or not symbols or not all(isinstance(s, str) for s in symbols):
        raise ValueError("symbols must be a non-empty list of strings")
    kwargs: dict[str, Any] = {k: raw[k] for k in _CONFIG_KEYS - {"venue", "symbols"} if k in raw}
    return AdapterConfig(venue=str(venue), symbols=tuple(s.strip() for s in symbols), **kwargs)


async def run_adapters(configs: Iterable[AdapterConfig], sink: Sink, stop_event: asyncio.Event) -> None:
    """Run one adapter per config, publishing into ``sink``, until ``stop_event`` is set.

    The hub calls this with an in-process sink; the CLI with a :class:`HubSink`. An adapter that
    crashes takes the others down with it (TaskGroup) so the failure is visible, not silent.
    """
    adapters = [Adapter(config, sink) for config in configs]
    async with asyncio.TaskGroup() as tg:
        for adapter in adapters:
            tg.create_task(adapter.run(stop_event))
