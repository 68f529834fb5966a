"""Throughput of the store's durable writes with concurrent callers (group commit at work).

Usage::

    mtbridge bench store                                  # a fresh SQLite file in a temporary folder
    mtbridge bench store --url sqlite:////tmp/bench.db   # four slashes: an absolute path
    mtbridge bench store --url postgresql+asyncpg://postgres@127.0.0.1:5432/test --schema bench

Each scenario runs ``--concurrency`` coroutines that await one call at a time, as hub connections do:

- ``append``: ``append(channel, message_id, payload)``;
- ``signals``: ``publish_signal(signal)`` (log append + ledger row + one pending delivery per account);
- ``events``: ``insert_events([event])``, one event per call (one ``trade.event`` message each);
- ``events-batch``: ``insert_events`` with ``--event-batch`` events per call;
- ``record``: ``record_events([EventWrite(event, "account:<login>:events")])``, one event per call: what the
  hub does per ``trade.event`` (store it, append it on the account channel, one transaction).
- ``chain``: one signal's durable life as the hub writes it, four calls in a row per signal: published with
  ``append_many`` (one account), ``update_statuses`` with ``delivered`` and ``acked`` in one call (the hub
  flushes queued deliveries with the ack), then ``record_events`` of a ``deal`` carrying the signal id with
  an ``executed`` status. Its rate counts chains.

Every figure counts only writes whose call returned, i.e. committed. Next to each rate, the process CPU
time spent per row (per chain for ``chain``) in microseconds: the hub runs the store on the core it shares
with everything else, so CPU per row is the figure to lower, not only rows per second.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bridge.protocol.delivery import DeliveryStatus
from bridge.protocol.events import TradeEvent, parse_event
from bridge.protocol.signals import Signal, parse_signal
from bridge.store import AppendRequest, EventWrite, StatusUpdate, Store, open_store

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_COUNT",
    "DEFAULT_EVENT_BATCH",
    "STORE_SCENARIOS",
    "format_line",
    "run_store",
]

#: The scenarios in the order they run; ``--scenario`` (repeatable) picks some, all by default.
STORE_SCENARIOS = ("append", "signals", "events", "events-batch", "record", "chain")
DEFAULT_CONCURRENCY = 200
#: Calls per scenario: 20,000 lasts a few seconds per scenario on SQLite, long enough to average the
#: group commit's batches (``--quick`` uses a tenth).
DEFAULT_COUNT = 20_000
DEFAULT_EVENT_BATCH = 10


def _signals(count: int, now: float, accounts: int = 3) -> list[Signal]:
    return [
        parse_signal(
            {
                "id": str(uuid.uuid4()),
                "strategy": f"bench{n % 4}",
                "accounts": [str(50123 + (n + k) % 3) for k in range(accounts)],
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


def _events(count: int, signals: list[Signal] | None = None) -> list[TradeEvent]:
    """Deals, one per account in turn; with ``signals``, the n-th deal executes the n-th signal."""
    base = int(time.time() * 1000)
    return [
        parse_event(
            {
                "id": str(uuid.uuid4()),
                "kind": "deal",
                "account": signals[n].accounts[0] if signals is not None else str(50123 + n % 3),
                **({"signalId": signals[n].id} if signals is not None else {}),
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


async def _drive(count: int, concurrency: int, call: Callable[[int], Awaitable[Any]]) -> tuple[float, float]:
    """Run ``call(i)`` for i in range(count) from ``concurrency`` workers; returns elapsed seconds and the
    process CPU seconds (every thread: the event loop and the SQLite writer) spent meanwhile."""
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            await call(index)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, time.process_time() - cpu


async def _chain(store: Store, signal: Signal, write: EventWrite) -> None:
    """One signal from publication to execution, as the hub's calls go."""
    account = signal.accounts[0]
    await store.append_many([AppendRequest(signal.channel, {}, signal=signal)])
    now_ms = int(time.time() * 1000)
    await store.update_statuses(
        [
            StatusUpdate(signal.id, account, DeliveryStatus.DELIVERED, now_ms),
            StatusUpdate(signal.id, account, DeliveryStatus.ACKED, now_ms),
        ]
    )
    await store.record_events([write])


async def run_store(
    url: str,
    *,
    scenarios: list[str],
    count: int,
    concurrency: int,
    event_batch: int,
    **options: Any,
) -> dict[str, tuple[float, float]]:
    """Run the scenarios against a fresh store at ``url``; returns, by scenario, rows committed per second
    and process CPU microseconds per row."""
    store: Store = await open_store(url, **options)
    results: dict[str, tuple[float, float]] = {}

    def note(name: str, rows: int, elapsed: tuple[float, float]) -> None:
        results[name] = (rows / elapsed[0], elapsed[1] * 1e6 / rows)

    try:
        if "append" in scenarios:
            elapsed = await _drive(
                count,
                concurrency,
                lambda i: store.append(f"bench:{i % 4}", f"m-{i}", {"n": i, "pad": "x" * 200}),
            )
            note("append", count, elapsed)
        if "signals" in scenarios:
            signals = _signals(count, time.time())
            note(
                "signals", count, await _drive(count, concurrency, lambda i: store.publish_signal(signals[i]))
            )
        if "events" in scenarios:
            events = _events(count)
            note(
                "events", count, await _drive(count, concurrency, lambda i: store.insert_events([events[i]]))
            )
        if "record" in scenarios:
            writes = [EventWrite(e, f"account:{e.account}:events") for e in _events(count)]
            note(
                "record", count, await _drive(count, concurrency, lambda i: store.record_events([writes[i]]))
            )
        if "events-batch" in scenarios:
            batches = max(1, count // event_batch)
            events = _events(batches * event_batch)
            elapsed = await _drive(
                batches,
                concurrency,
                lambda i: store.insert_events(events[i * event_batch : (i + 1) * event_batch]),
            )
            note("events-batch", batches * event_batch, elapsed)
        if "chain" in scenarios:
            chained = _signals(count, time.time(), accounts=1)
            executed = [
                EventWrite(
                    e,
                    f"account:{e.account}:events",
                    StatusUpdate(s.id, e.account, DeliveryStatus.EXECUTED, e.ts),
                )
                for s, e in zip(chained, _events(count, chained), strict=True)
            ]
            note(
                "chain",
                count,
                await _drive(count, concurrency, lambda i: _chain(store, chained[i], executed[i])),
            )
    finally:
        await store.close()
    return results


def format_line(name: str, rate: float, cpu_us: float, count: int, concurrency: int) -> str:
    """One scenario's figures as the terminal shows them."""
    return (
        f"{name:>13}: {rate:>10,.0f} rows/s  {cpu_us:>7.1f} CPU-us/row  "
        f"(count={count}, concurrency={concurrency})"
    )
