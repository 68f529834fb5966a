"""The thin asyncio shell around the sans-I/O venue protocols.

An :class:`Adapter` splits its symbols into groups of at most ``symbols_per_connection`` (the
connection pool) and supervises one :class:`VenueConnection` per group:

- a dropped connection marks its books ``resyncing`` (published), then reconnects after an exponential
  backoff with full jitter;
- a forced reconnect (Binance ``serverShutdown`` or 24 h age, OKX notice 64008) is make-before-break:
  a standby connection subscribes and syncs its books without publishing, then takes over by
  publishing full snapshots, and only then is the old connection closed. Subscribers see no gap.

Outgoing frames go through a per-connection token bucket (the venue's messages/s limit) and
connection attempts through a per-adapter minimum interval.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from bridge.marketdata.base import AdapterConfig, BookState, Sink, VenueLimits, VenueProtocol
from bridge.marketdata.binance import BINANCE_LIMITS, BinanceProtocol
from bridge.marketdata.bybit import BYBIT_LIMITS, BybitProtocol
from bridge.marketdata.coinbase import COINBASE_LIMITS, CoinbaseProtocol
from bridge.marketdata.exceptions import RateLimited
from bridge.marketdata.kraken import KRAKEN_LIMITS, KrakenProtocol
from bridge.marketdata.metrics import CONNECTIONS, RATE_LIMITED, RECONNECTS
from bridge.marketdata.okx import OKX_LIMITS, OkxProtocol
from bridge.marketdata.publish import Publisher
from bridge.tasks import cancel_and_wait

__all__ = [
    "MAX_FRAME_BYTES",
    "VENUES",
    "Adapter",
    "RateLimiter",
    "VenueConnection",
    "backoff_delay",
    "now_us",
]

logger = logging.getLogger("mtbridge.marketdata")

#: Largest venue frame accepted (a Kraken depth-1000 snapshot is ~100 KB).
MAX_FRAME_BYTES = 8 * 1024 * 1024
OPEN_TIMEOUT = 10.0
PROTOCOL_PING_INTERVAL = 20.0
PROTOCOL_PING_TIMEOUT = 20.0

VENUES: dict[str, tuple[type[VenueProtocol], VenueLimits]] = {
    "binance": (BinanceProtocol, BINANCE_LIMITS),
    "kraken": (KrakenProtocol, KRAKEN_LIMITS),
    "coinbase": (CoinbaseProtocol, COINBASE_LIMITS),
    "bybit": (BybitProtocol, BYBIT_LIMITS),
    "okx": (OkxProtocol, OKX_LIMITS),
}


def now_us() -> int:
    return time.time_ns() // 1000


def backoff_delay(attempt: int, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with full jitter: uniform in ``[0, min(cap, base * 2**attempt)]``."""
    ceiling: float = min(cap, base * 2.0 ** min(attempt, 32))
    return rng() * ceiling


class RateLimiter:
    """Token bucket: ``rate`` tokens per second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)


class _ConnectGate:
    """Spaces connection attempts to one venue by at least ``interval`` seconds."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            delay = self._next - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next = time.monotonic() + self.interval


class VenueConnection:
    """One WebSocket to a venue and the protocol object that interprets it."""

    def __init__(self, adapter: Adapter, symbols: Sequence[str], *, publishing: bool, reason: str) -> None:
        self.adapter = adapter
        self.protocol = adapter.protocol_class(symbols, adapter.config)
        self.publishing = publishing
        self.reason = reason
        self.closed = asyncio.Event()
        self.forced = asyncio.Event()
        self.synced = asyncio.Event()
        self.was_synced = False
        self.frames = 0
        self.ws: ClientConnection | None = None
        self._lock = asyncio.Lock()
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._limiter = RateLimiter(adapter.limits.messages_per_second)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"marketdata-{self.adapter.venue}")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self.closed.set()

    async def set_publishing(self, value: bool) -> None:
        """Switch publishing under the lock so no half-published frame straddles the switch."""
        async with self._lock:
            if value:
                now = now_us()
                await self.adapter.publisher.publish(
                    self.protocol.snapshot_events(now), self.protocol.books, now
                )
            self.publishing = value

    async def _run(self) -> None:
        try:
            await self._connect_and_read()
        except asyncio.CancelledError:
            raise
        except (OSError, InvalidHandshake, InvalidURI, ConnectionClosed, TimeoutError) as exc:
            logger.warning("x %s connection lost: %s", self.adapter.venue, type(exc).__name__)
        except Exception:
            logger.exception("! %s connection failed", self.adapter.venue)
        finally:
            await cancel_and_wait(list(self._tasks))
            self.closed.set()

    async def _connect_and_read(self) -> None:
        adapter = self.adapter
        await adapter.connect_gate.wait()
        ping = PROTOCOL_PING_INTERVAL if self.protocol.protocol_pings else None
        async with connect(
            self.protocol.url(),
            ping_interval=ping,
            ping_timeout=PROTOCOL_PING_TIMEOUT,
            max_size=MAX_FRAME_BYTES,
            open_timeout=OPEN_TIMEOUT,
            close_timeout=2,
            compression=None,
        ) as ws:
            self.ws = ws
            CONNECTIONS.labels(adapter.venue).inc()
            logger.info("= %s connected (%s)", adapter.venue, self.reason, extra={"action": "connect"})
            self._spawn(self._sender(ws))
            for frame in self.protocol.subscribe_frames():
                self._outbox.put_nowait(frame)
            if self.protocol.keepalive_interval is not None:
                self._spawn(self._keepalive(self.protocol.keepalive_interval))
            if adapter.limits.max_connection_age is not None:
                self._spawn(self._age_limit(adapter.limits.max_connection_age))
            while True:
                async with asyncio.timeout(adapter.config.idle_timeout):
                    data = await ws.recv()
                async with self._lock:
                    self.frames += 1
                    self.protocol.receive(data, now_us())
                    await self._drain()

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        protocol = self.protocol
        for delay, frame in protocol.data_to_send():
            if delay > 0:
                self._spawn(self._later(delay, frame))
            else:
                self._outbox.put_nowait(frame)
        for symbol in protocol.snapshots_wanted():
            self._spawn(self._fetch_snapshot(symbol))
        if protocol.forced_reason is not None and not self.forced.is_set():
            logger.info("= %s forced reconnect: %s", self.adapter.venue, protocol.forced_reason)
            self.forced.set()
        events = protocol.events_received()
        if self.publishing and events:
            await self.adapter.publisher.publish(events, protocol.books, now_us())
        if self.adapter.on_events is not None and events:
            self.adapter.on_events(self, events)
        if protocol.synced():
            self.was_synced = True
            self.synced.set()
        else:
            self.synced.clear()

    async def _later(self, delay: float, frame: str) -> None:
        await asyncio.sleep(delay)
        self._outbox.put_nowait(frame)

    async def _sender(self, ws: ClientConnection) -> None:
        while True:
            frame = await self._outbox.get()
            await self._limiter.acquire()
            await ws.send(frame)

    async def _keepalive(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            frame = self.protocol.keepalive_frame()
            if frame is not None:
                self._outbox.put_nowait(frame)

    async def _age_limit(self, age: float) -> None:
        await asyncio.sleep(age)
        self.protocol.forced_reason = "connection age limit"
        self.forced.set()

    async def _fetch_snapshot(self, venue_symbol: str) -> None:
        adapter = self.adapter
        url = self.protocol.snapshot_url(venue_symbol)
        attempt = 0
        while True:
            try:
                body = await adapter.fetch(url)
                break
            except RateLimited as exc:
                RATE_LIMITED.labels(adapter.venue).inc()
                delay = exc.retry_after if exc.retry_after is not None else adapter.backoff(attempt)
                logger.warning("! %s REST rate limited, retry in %.1fs", adapter.venue, delay)
            except (httpx.HTTPError, OSError) as exc:
                delay = adapter.backoff(attempt)
                logger.warning("! %s REST snapshot failed (%s)", adapter.venue, type(exc).__name__)
            attempt += 1
            await asyncio.sleep(delay)
        async with self._lock:
            self.protocol.receive_snapshot(venue_symbol, body, now_us())
            await self._drain()


class Adapter:
    """Runs one venue's connection pool for ``config.symbols`` and publishes into ``sink``."""

    def __init__(
        self,
        config: AdapterConfig,
        sink: Sink,
        *,
        on_events: Callable[[VenueConnection, list[Any]], None] | None = None,
        http: httpx.AsyncClient | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if config.venue not in VENUES:
            raise ValueError(f"unknown venue {config.venue!r}; expected one of {sorted(VENUES)}")
        if not config.symbols:
            raise ValueError("at least one symbol is required")
        self.config = config
        self.venue = config.venue
        self.protocol_class, default_limits = VENUES[config.venue]
        self.limits = config.limits or default_limits
        self.publisher = Publisher(sink, config.venue, config.depth_levels)
        self.on_events = on_events
        self.connect_gate = _ConnectGate(self.limits.connect_interval)
        self._http = http
        self._rng = rng
        self.groups: list[list[VenueConnection | None]] = []

    def backoff(self, attempt: int) -> float:
        return backoff_delay(attempt, self.config.backoff_base, self.config.backoff_cap, self._rng)

    async def fetch(self, url: str) -> bytes:
        """GET a REST snapshot; 429/418 raise RateLimited with the Retry-After value."""
        assert self._http is not None
        response = await self._http.get(url, timeout=self.config.rest_timeout)
        if response.status_code in (418, 429):
            retry = response.headers.get("Retry-After", "")
            raise RateLimited(self.venue, float(retry) if retry.isdigit() else None)
        response.raise_for_status()
        return response.content

    def connections(self) -> list[VenueConnection]:
        """The publishing connection of each group (for inspection and tests)."""
        return [slot[0] for slot in self.groups if slot and slot[0] is not None]

    def book(self, symbol: str) -> BookState | None:
        for conn in self.connections():
            for state in conn.protocol.books.values():
                if symbol in (state.symbol, state.venue_symbol):
                    return state
        return None

    async def run(self, stop: asyncio.Event) -> None:
        per = max(1, self.limits.symbols_per_connection)
        symbols = list(dict.fromkeys(self.config.symbols))
        chunks = [symbols[i : i + per] for i in range(0, len(symbols), per)]
        own_http = self._http is None
        if own_http:
            self._http = httpx.AsyncClient()
        try:
            async with asyncio.TaskGroup() as tg:
                for chunk in chunks:
                    slot: list[VenueConnection | None] = [None]
                    self.groups.append(slot)
                    tg.create_task(self._supervise(chunk, slot, stop))
        finally:
            if own_http and self._http is not None:
                await self._http.aclose()
                self._http = None

    async def _wait_any(self, *events: asyncio.Event, limit: float | None = None) -> None:
        waiters = [asyncio.create_task(e.wait()) for e in events]
        try:
            await asyncio.wait(waiters, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def _supervise(
        self, symbols: list[str], slot: list[VenueConnection | None], stop: asyncio.Event
    ) -> None:
        attempt = 0
        active: VenueConnection | None = None
        try:
            while not stop.is_set():
                if active is None:
                    active = VenueConnection(
                        self, symbols, publishing=True, reason="initial" if not attempt else "retry"
                    )
                    slot[0] = active
                    active.start()
                await self._wait_any(active.closed, active.forced, stop)
                if stop.is_set():
                    break
                if active.closed.is_set():
                    attempt = 0 if active.was_synced else attempt + 1
                    RECONNECTS.labels(self.venue, "dropped").inc()
                    now = now_us()
                    statuses = active.protocol.mark_all_stale("disconnected", now)
                    await self.publisher.publish(statuses, active.protocol.books, now)
                    active = None
                    await self._wait_any(stop, limit=self.backoff(attempt))
                    continue
                active = await self._replace(symbols, slot, active, stop)
        finally:
            for conn in (active, slot[0]):
                if conn is not None:
                    await conn.stop()

    async def _replace(
        self,
        symbols: list[str],
        slot: list[VenueConnection | None],
        active: VenueConnection,
        stop: asyncio.Event,
    ) -> VenueConnection:
        """Make-before-break: sync a standby connection, hand over, then close the old one."""
        RECONNECTS.labels(self.venue, "forced").inc()
        standby = VenueConnection(self, symbols, publishing=False, reason="standby")
        standby.start()
        await self._wait_any(
            standby.synced, standby.closed, active.closed, stop, limit=self.config.standby_timeout
        )
        if standby.synced.is_set() and not standby.closed.is_set():
            await active.set_publishing(False)
            await standby.set_publishing(True)
            slot[0] = standby
            await active.stop()
            logger.info("= %s standby connection took over", self.venue, extra={"action": "handover"})
            return standby
        await standby.stop()
        if not active.closed.is_set() and not stop.is_set():
            # The standby failed; keep the old connection and try again after a backoff.
            await self._wait_any(stop, active.closed, limit=self.backoff(1))
        return active
