"""Throughput of the store's durable writes with concurrent callers (group commit at work).

Usage::

    python -m bridge.store.bench --url sqlite:///tmp/bench.db
    python -m bridge.store.bench --url postgresql+asyncpg://postgres@127.0.0.1:5432/test --schema bench

Each scenario runs ``--concurrency`` coroutines that await one call at a time, as hub connections do:

- ``append``: ``append(channel, message_id, payload)``;
- ``signals``: ``publish_signal(signal)`` (log append + ledger row + one pending delivery per account);
- ``events``: ``insert_events([event])``, one event per call (one ``trade.event`` message each);
- ``events-batch``: ``insert_events`` with ``--event-batch`` events per call;
- ``record``: ``record_events([EventWrite(event, "account:<login>:events")])``, one event per call: what the
  hub does per ``trade.event`` (store it, append it on the account channel, one transaction).

Every figure counts only writes whose call returned, i.e. committed.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bridge.protocol.events import TradeEvent, parse_event
from bridge.protocol.signals import Signal, parse_signal
from bridge.store import EventWrite, Store, open_store

__all__ = ["main", "run"]

DEFAULT_CONCURRENCY = 200


def _signals(count: int, now: float) -> list[Signal]:
    return [
        parse_signal(
            {
                "id": str(uuid.uuid4()),
                "strategy": f"bench{n % 4}",
                "accounts": ["50123", "50124", "50125"],
                "symbol": "EURUSD",
                "action": "open",
                "side": "buy",
                "orderType": "market",
                "volume": 0.1,
                "sl": 1.07,
                "tp": 1.09,
                "ttl": 3600,
            },
            now,
        )
        for n in range(count)
    ]


def _events(count: int) -> list[TradeEvent]:
    base = int(time.time() * 1000)
    return [
        parse_event(
            {
                "id": str(uuid.uuid4()),
                "kind": "deal",
                "account": str(50123 + n % 3),
                "ts": base + n,
                "ticket": n + 1,
                "order": n + 1,
                "position": n + 1,
                "symbol": "EURUSD",
                "side": "buy",
                "entry": "in",
                "volume": 0.1,
                "price": 1.0801,
                "profit": 0.0,
                "commission": -0.35,
            },
            0,
        )
        for n in range(count)
    ]


async def _drive(count: int, concurrency: int, call: Callable[[int], Awaitable[Any]]) -> float:
    """Run ``call(i)`` for i in range(count) from ``concurrency`` workers; returns elapsed seconds."""
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            await call(index)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def run(
    url: str,
    *,
    scenarios: list[str],
    count: int,
    concurrency: int,
    event_batch: int,
    **options: Any,
) -> dict[str, float]:
    """Run the scenarios against a fresh store at ``url``; returns rows committed per second by scenario."""
    store: Store = await open_store(url, **options)
    rates: dict[str, float] = {}
    try:
        if "append" in scenarios:
            elapsed = await _drive(
                count,
                concurrency,
                lambda i: store.append(f"bench:{i % 4}", f"m-{i}", {"n": i, "pad": "x" * 200}),
            )
            rates["append"] = count / elapsed
        if "signals" in scenarios:
            signals = _signals(count, time.time())
            elapsed = await _drive(count, concurrency, lambda i: store.publish_signal(signals[i]))
            rates["signals"] = count / elapsed
        if "events" in scenarios:
            events = _events(count)
            elapsed = await _drive(count, concurrency, lambda i: store.insert_events([events[i]]))
            rates["events"] = count / elapsed
        if "record" in scenarios:
            writes = [EventWrite(e, f"account:{e.account}:events") for e in _events(count)]
            elapsed = await _drive(count, concurrency, lambda i: store.record_events([writes[i]]))
            rates["record"] = count / elapsed
        if "events-batch" in scenarios:
            batches = max(1, count // event_batch)
            events = _events(batches * event_batch)
            elapsed = await _drive(
                batches,
                concurrency,
                lambda i: store.insert_events(events[i * event_batch : (i + 1) * event_batch]),
            )
            rates["events-batch"] = batches * event_batch / elapsed
    finally:
        await store.close()
    return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bridge.store.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="store URL (a fresh SQLite file or PostgreSQL database)")
    parser.add_argument("--schema", help="PostgreSQL schema to create and use")
    parser.add_argument("--sqlite-synchronous", default="FULL", choices=["NORMAL", "FULL"])
    parser.add_argument("--count", type=int, default=20_000, help="calls per scenario")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--event-batch", type=int, default=10)
    parser.add_argument(
        "--scenario",
        action="append",
        choices=["append", "signals", "events", "events-batch", "record"],
        help="repeat to choose several (default: all)",
    )
    args = parser.parse_args(argv)
    options: dict[str, Any] = {}
    if args.url.startswith("sqlite"):
        options["sqlite_synchronous"] = args.sqlite_synchronous
    if args.schema:
        options["schema"] = args.schema
    scenarios = args.scenario or ["append", "signals", "events", "events-batch", "record"]
    rates = asyncio.run(
        run(
            args.url,
            scenarios=scenarios,
            count=args.count,
            concurrency=args.concurrency,
            event_batch=args.event_batch,
            **options,
        )
    )
    for name, rate in rates.items():
        print(f"{name:>13}: {rate:>10,.0f} rows/s  (count={args.count}, concurrency={args.concurrency})")


if __name__ == "__main__":
    main()
