"""Throughput of one adapter: a recorded session replayed by a local fake as fast as possible.

Run: ``mtbridge bench marketdata [--venue kraken|okx|binance] [--in-hub | --hub URL --token T]``.
Without ``--hub`` the sink only counts (adapter cost alone); with it, publications go through
:class:`HubSink` into a running hub; with ``--in-hub`` the adapter publishes into an in-process hub
whose subscribers receive every publication (the hub's own market-data mode).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from bridge.marketdata.base import AdapterConfig, Sink, VenueLimits
from bridge.marketdata.connection import Adapter
from bridge.marketdata.hubsink import HubSink
from bridge.marketdata.mock import RECORDED_SYMBOLS, BinanceFake, FakeExchange, KrakenFake, OkxFake

__all__ = [
    "DEFAULT_FIXTURES",
    "VENUES",
    "CountingSink",
    "InHubSink",
    "bench_adapter_throughput",
    "run_marketdata",
]

#: The recorded exchange sessions the repository keeps for its tests (tests/fixtures/exchanges);
#: a benchmark run from a clone needs nothing beside it.
DEFAULT_FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "exchanges"
#: The venues with a recorded session in the fixtures.
VENUES = ("kraken", "okx", "binance")
_UNLIMITED = VenueLimits(symbols_per_connection=1000, messages_per_second=1e6, connect_interval=0.0)


class CountingSink:
    """Counts publications and drops them."""

    def __init__(self) -> None:
        self.count = 0

    async def publish(self, channel: str, payload: dict[str, object], key: str | None) -> None:
        self.count += 1


class _NullSocket:
    """The socket side of an in-process benchmark subscriber: counts bytes, never blocks."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.bytes += len(data)

    def buffered(self) -> int:
        return 0

    def ping_frame(self) -> bytes:
        return b""

    def close_frame(self, code: int, reason: str) -> bytes:
        return b""

    def finish(self, flush: bool) -> None:
        return None


class InHubSink:
    """Publishes into a real in-process hub (as the hub's own adapters do, through
    :class:`bridge.marketdata.local.HubLocalSink`), with ``subscribers`` authenticated connections
    joined to every channel the adapter publishes on, so each publication is framed, queued and
    written to them: the figure includes the hub's fan-out."""

    def __init__(self, subscribers: int = 10) -> None:
        import secrets as _secrets

        from bridge.auth.tokens import Verifier, issue
        from bridge.hub.hub import Hub
        from bridge.marketdata.local import HubLocalSink
        from bridge.protocol.envelope import Encoding

        secret = _secrets.token_bytes(32)
        self.hub = Hub(Verifier(["HS256"], secret=secret))
        token = issue(secret, sub="bench", role="dashboard", now=time.time(), ttl=3600)
        self.sockets = [_NullSocket() for _ in range(subscribers)]
        self.conns = [self.hub.connect(sock, Encoding.JSON, "bench") for sock in self.sockets]
        for conn in self.conns:
            self.hub.authenticate(conn, token, None)
        self.local = HubLocalSink(self.hub)
        self.seen: set[str] = set()

    async def start(self) -> None:
        await self.hub.start()

    async def stop(self) -> None:
        await asyncio.sleep(0)
        await self.hub.stop(0)

    async def publish(self, channel: str, payload: dict[str, object], key: str | None) -> None:
        if channel not in self.seen:
            self.seen.add(channel)
            request = json.dumps({"type": "subscribe", "channel": channel}).encode()
            for conn in self.conns:
                self.hub.receive(conn, request, False)
        await self.local.publish(channel, payload, key)

    @property
    def bytes_written(self) -> int:
        return sum(sock.bytes for sock in self.sockets)


def _fake(venue: str, fixtures: Path) -> tuple[FakeExchange, tuple[str, ...], int | None]:
    recorded = fixtures / "recorded"
    fake: FakeExchange
    if venue == "kraken":
        fake = KrakenFake([recorded / "KRAKEN.ws.50.0", recorded / "KRAKEN.ws.48.0"])
        return fake, RECORDED_SYMBOLS["kraken"], 1000
    if venue == "okx":
        return OkxFake(recorded / "OKX.ws.1.0"), RECORDED_SYMBOLS["okx"], None
    if venue == "binance":
        fake = BinanceFake(recorded / "BINANCE.ws.1.0", recorded / "BINANCE.http.0.0")
        return fake, RECORDED_SYMBOLS["binance"], None
    raise ValueError("venue must be kraken, okx or binance (the venues with recorded sessions)")


async def bench_adapter_throughput(
    venue: str = "kraken", *, sink: Sink | None = None, fixtures: Path = DEFAULT_FIXTURES
) -> dict[str, object]:
    """Replay ``venue``'s recorded session through its adapter into ``sink``; return the figures.

    ``normalised_per_s`` counts Trade/BookSnapshot/BookUpdate events produced (checksums and sequence
    checks included); ``published_per_s`` counts channel publications handed to the sink.
    """
    fake, symbols, depth = _fake(venue, fixtures)
    out: Sink = sink if sink is not None else CountingSink()
    async with fake:
        config = AdapterConfig(
            venue=venue,
            symbols=symbols,
            ws_url=fake.ws_url,
            rest_url=fake.rest_url,
            depth=depth,
            limits=_UNLIMITED,
        )
        adapter = Adapter(config, out)
        stop = asyncio.Event()
        task = asyncio.create_task(adapter.run(stop))
        try:
            await fake.wait_subscribed(keys=len(symbols) * 2)
            if venue == "binance":
                # Let each book sync from its REST snapshot at the recorded point, then replay at full speed.
                pending = set(symbols)
                while pending and await fake.play(1):
                    sym = fake.feed[fake.position - 1].book_symbol
                    if sym in pending:
                        pending.discard(sym)
                        while not adapter.book(sym) or not adapter.book(sym).synced:  # type: ignore[union-attr]  # noqa: ASYNC110
                            await asyncio.sleep(0.005)
            conn = adapter.connections()[0]
            published0, normalised0, frames0 = (
                adapter.publisher.published,
                adapter.publisher.normalised,
                conn.frames,
            )
            start = time.perf_counter()
            await fake.play()
            frames_sent = fake.sent_frames
            while conn.frames < frames_sent:  # noqa: ASYNC110 (polls the adapter task's counter)
                await asyncio.sleep(0.001)
            elapsed = time.perf_counter() - start
        finally:
            stop.set()
            await task
    normalised = adapter.publisher.normalised - normalised0
    published = adapter.publisher.published - published0
    return {
        "venue": venue,
        "frames": conn.frames - frames0,
        "normalised": normalised,
        "published": published,
        "seconds": round(elapsed, 4),
        "normalised_per_s": round(normalised / elapsed),
        "published_per_s": round(published / elapsed),
        "checksums_verified": conn.protocol.checksums_verified,
    }


async def run_marketdata(
    venue: str,
    *,
    fixtures: Path = DEFAULT_FIXTURES,
    hub: str | None = None,
    token: str = "",
    in_hub: bool = False,
    subscribers: int = 10,
) -> dict[str, object]:
    """The ``mtbridge bench marketdata`` run: the adapter alone (counting sink), into a running hub
    (``hub``), or inside an in-process hub with ``subscribers`` connections (``in_hub``)."""
    if in_hub:
        sink = InHubSink(subscribers)
        await sink.start()
        try:
            result = await bench_adapter_throughput(venue, sink=sink, fixtures=fixtures)
            result["hub_publications"] = sink.local.published
            result["subscribers"] = subscribers
            result["bytes_written_to_subscribers"] = sink.bytes_written
        finally:
            await sink.stop()
    elif hub:
        async with HubSink(hub, token) as hub_sink:
            result = await bench_adapter_throughput(venue, sink=hub_sink, fixtures=fixtures)
            await hub_sink.drain()
    else:
        result = await bench_adapter_throughput(venue, fixtures=fixtures)
    return result
