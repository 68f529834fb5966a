"""Each adapter against its local fake exchange, over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson
import pytest

from bridge.marketdata import metrics
from bridge.marketdata.base import AdapterConfig, VenueLimits
from bridge.marketdata.connection import Adapter
from bridge.marketdata.mock import (
    RECORDED_SYMBOLS,
    BinanceFake,
    BybitFake,
    CoinbaseFake,
    FakeExchange,
    Faults,
    KrakenFake,
    OkxFake,
)
from bridge.marketdata.models import BookUpdate
from tests.support.marketdata import RECORDED, RecordingSink, require_fixtures
from tests.support.waits import until

FAST = VenueLimits(symbols_per_connection=50, messages_per_second=1000.0, connect_interval=0.0)
KRAKEN_PAIRS = RECORDED_SYMBOLS["kraken"]
OKX_INSTS = RECORDED_SYMBOLS["okx"]
BINANCE_SYMBOLS = RECORDED_SYMBOLS["binance"]


def config(venue: str, fake: FakeExchange, symbols: tuple[str, ...], **kw: object) -> AdapterConfig:
    limits = kw.pop("limits", FAST)
    return AdapterConfig(
        venue=venue,
        symbols=symbols,
        ws_url=fake.ws_url,
        rest_url=fake.rest_url,
        limits=limits,  # type: ignore[arg-type]
        backoff_base=0.05,
        backoff_cap=0.2,
        **kw,  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def running(adapter: Adapter) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(adapter.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def counter(c: object, *labels: str) -> float:
    return float(c.labels(*labels)._value.get())  # type: ignore[attr-defined]


def assert_books_match(
    adapter: Adapter, fake: FakeExchange, symbols: tuple[str, ...], depth: int | None = None
):
    for sym in symbols:
        state = adapter.book(sym)
        assert state is not None and state.synced, sym
        bids, asks = fake.books[sym].levels()
        if depth is not None:
            bids, asks = bids[:depth], asks[:depth]
        assert state.book.bids() == bids, sym
        assert state.book.asks() == asks, sym


def fed(fake: FakeExchange) -> list[int]:
    return [i for i, item in enumerate(fake.feed) if item.book_symbol is not None]


def synced(adapter: Adapter, symbols: tuple[str, ...]) -> bool:
    return all((s := adapter.book(sym)) is not None and s.synced for sym in symbols)


async def settle(adapter: Adapter, fake: FakeExchange, symbols: tuple[str, ...]) -> None:
    """Wait until the adapter's books equal the fake's (the fake has played everything it will)."""

    def same() -> bool:
        for sym in symbols:
            state = adapter.book(sym)
            if state is None or not state.synced:
                return False
            bids, asks = fake.books[sym].levels()
            if state.book.bids() != bids or state.book.asks() != asks:
                return False
        return True

    await until(same)


class TestKraken:
    async def test_recorded_session_reproduces_every_checksum(self, sink: RecordingSink) -> None:
        require_fixtures()
        fake = KrakenFake([RECORDED / "KRAKEN.ws.50.0", RECORDED / "KRAKEN.ws.48.0"])
        async with fake:
            adapter = Adapter(config("kraken", fake, KRAKEN_PAIRS, depth=1000), sink)
            resyncs = counter(metrics.RESYNCS, "kraken", "checksum")
            async with running(adapter):
                await fake.wait_subscribed(keys=20)
                await until(lambda: synced(adapter, KRAKEN_PAIRS))
                await fake.play()
                await settle(adapter, fake, KRAKEN_PAIRS)
                conn = adapter.connections()[0]
                assert conn.protocol.checksums_verified == 4269
                assert counter(metrics.RESYNCS, "kraken", "checksum") == resyncs
                assert_books_match(adapter, fake, KRAKEN_PAIRS)
        trades = sink.on("instrument:XMR-USD:trades")
        assert trades and trades[0]["venue"] == "kraken" and trades[0]["price"] == "354.11000000"
        top = sink.on("instrument:BTC-CHF:top")[-1]
        assert top["bidPrice"] == str(adapter_best(fake, "XBT/CHF"))


def adapter_best(fake: FakeExchange, sym: str) -> object:
    return fake.books[sym].levels()[0][0][0]


def statuses(sink: RecordingSink, venue: str) -> list[dict[str, object]]:
    return [
        p
        for c, p, _ in sink.messages
        if c.endswith(":depth") and p["venue"] == venue and p["state"] != "live"
    ]


def book_indices(fake: FakeExchange, symbol: str, checksummed: bool = False) -> list[int]:
    return [i for i, item in enumerate(fake.feed) if item.book_symbol == symbol]


class TestKrakenFaults:
    PAIRS = ("XBT/CHF", "GRT/ETH")

    async def start(self, sink: RecordingSink, faults: Faults | None = None) -> tuple[KrakenFake, Adapter]:
        require_fixtures()
        fake = KrakenFake([RECORDED / "KRAKEN.ws.50.0"], faults)
        await fake.start()
        return fake, Adapter(config("kraken", fake, self.PAIRS, depth=1000), sink)

    async def test_corrupted_checksum_resubscribes_and_rebuilds(self, sink: RecordingSink) -> None:
        fake = KrakenFake([RECORDED / "KRAKEN.ws.50.0"])
        bad = book_indices(fake, "XBT/CHF")[5]
        fake, adapter = await self.start(sink, Faults(corrupt_checksum={bad}))
        before = counter(metrics.RESYNCS, "kraken", "checksum")
        async with fake, running(adapter):
            await fake.wait_subscribed(keys=4)
            await until(lambda: synced(adapter, self.PAIRS))
            await fake.play(bad + 1)
            await until(lambda: counter(metrics.RESYNCS, "kraken", "checksum") == before + 1)
            await fake.play()
            await settle(adapter, fake, self.PAIRS)
            assert_books_match(adapter, fake, self.PAIRS)
        conn_frames = [f for c in fake.connections for f in c.received]
        assert any('"unsubscribe"' in f and "XBT/CHF" in f for f in conn_frames)
        assert [s["reason"] for s in statuses(sink, "kraken")] == ["checksum"]

    @staticmethod
    def first_detectable_drop(fake: KrakenFake, pair: str) -> int:
        """A frame whose loss changes the top 10 levels (deep-level losses are invisible to the CRC)."""
        from bridge.marketdata.kraken import KrakenProtocol

        for candidate in book_indices(fake, pair)[:30]:
            proto = KrakenProtocol([pair], AdapterConfig(venue="kraken", symbols=(pair,), depth=1000))
            book = fake.books[pair]
            proto.receive(
                orjson.dumps([1, {"as": book.sorted_asks(), "bs": book.sorted_bids()}, "book-1000", pair]), 0
            )
            for i in book_indices(fake, pair):
                if i != candidate:
                    proto.receive(orjson.dumps(fake.feed[i].message), 0)
            if not proto.synced():
                return candidate
        raise AssertionError("no detectable drop")

    async def test_dropped_frame_is_caught_by_the_checksum(self, sink: RecordingSink) -> None:
        fake = KrakenFake([RECORDED / "KRAKEN.ws.50.0"])
        gap = self.first_detectable_drop(fake, "GRT/ETH")
        fake, adapter = await self.start(sink, Faults(drop={gap}))
        async with fake, running(adapter):
            await fake.wait_subscribed(keys=4)
            await until(lambda: synced(adapter, self.PAIRS))
            await fake.play()
            await settle(adapter, fake, self.PAIRS)
        assert [s["reason"] for s in statuses(sink, "kraken")] == ["checksum"]

    async def test_dropped_connection_marks_stale_then_resyncs(self, sink: RecordingSink) -> None:
        fake, adapter = await self.start(sink)
        async with fake, running(adapter):
            await fake.wait_subscribed(keys=4)
            await until(lambda: synced(adapter, self.PAIRS))
            await fake.play(300)
            await fake.drop_connections()
            await fake.play(300)
            await fake.wait_subscribed(keys=4)
            await fake.play()
            await settle(adapter, fake, self.PAIRS)
            assert len(fake.connections) == 2
        assert sorted(s["symbol"] for s in statuses(sink, "kraken")) == ["BTC-CHF", "GRT-ETH"]
        assert all(s["reason"] == "disconnected" for s in statuses(sink, "kraken"))
        assert sink.on("instrument:GRT-ETH:depth")[-1]["state"] == "live"

    async def test_server_ping_is_answered_and_client_pings(
        self, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from bridge.marketdata.kraken import KrakenProtocol

        monkeypatch.setattr(KrakenProtocol, "keepalive_interval", 0.05)
        fake, adapter = await self.start(sink)
        async with fake, running(adapter):
            await fake.wait_subscribed(keys=4)
            assert await fake.ping_all() == 1
            await fake.wait_for(lambda: any('"ping"' in f for f in fake.connections[0].received))
            await fake.play()
            await settle(adapter, fake, self.PAIRS)

    async def test_rate_limited_subscribe_is_retried(
        self, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from bridge.marketdata import kraken

        monkeypatch.setattr(kraken, "RATE_LIMIT_RETRY", 0.05)
        limited = counter(metrics.RATE_LIMITED, "kraken")
        fake, adapter = await self.start(sink, Faults(reject_first_subscribe=True))
        async with fake, running(adapter):
            await fake.wait_subscribed(keys=4)
            await until(lambda: synced(adapter, self.PAIRS))
            await fake.play()
            await settle(adapter, fake, self.PAIRS)
        assert counter(metrics.RATE_LIMITED, "kraken") == limited + 1


class TestOkx:
    async def test_recorded_session_reproduces_every_checksum(self, sink: RecordingSink) -> None:
        require_fixtures()
        fake = OkxFake(RECORDED / "OKX.ws.1.0")
        async with fake:
            adapter = Adapter(config("okx", fake, OKX_INSTS), sink)
            async with running(adapter):
                await fake.wait_subscribed(keys=6)
                await fake.play()
                await settle(adapter, fake, OKX_INSTS)
                # 3 snapshots (rebuilt by the fake with their checksum) + 287 recorded updates.
                assert adapter.connections()[0].protocol.checksums_verified == 290
                assert_books_match(adapter, fake, OKX_INSTS)
        assert sink.on("instrument:BTC-USDT:trades")[0]["tradeId"] == "338476307"
        assert not statuses(sink, "okx")

    async def test_corrupted_checksum_resubscribes(self, sink: RecordingSink) -> None:
        require_fixtures()
        probe = OkxFake(RECORDED / "OKX.ws.1.0")
        bad = book_indices(probe, "BTC-USDT")[4]
        fake = OkxFake(RECORDED / "OKX.ws.1.0", Faults(corrupt_checksum={bad}))
        async with fake:
            adapter = Adapter(config("okx", fake, OKX_INSTS), sink)
            async with running(adapter):
                await fake.wait_subscribed(keys=6)
                await fake.play(bad + 1)
                await until(lambda: len(statuses(sink, "okx")) == 1)
                await fake.play()
                await settle(adapter, fake, OKX_INSTS)
        assert statuses(sink, "okx")[0]["symbol"] == "BTC-USDT"

    async def test_service_upgrade_notice_hands_over_without_a_gap(self, sink: RecordingSink) -> None:
        require_fixtures()
        fake = OkxFake(RECORDED / "OKX.ws.1.0")
        async with fake:
            adapter = Adapter(config("okx", fake, OKX_INSTS), sink)
            async with running(adapter):
                await fake.wait_subscribed(keys=6)
                await fake.play(150)
                old = adapter.connections()[0]
                await fake.send_forced_notice()
                await until(lambda: adapter.connections()[0] is not old)
                await until(lambda: old.closed.is_set())
                await fake.play()
                await settle(adapter, fake, OKX_INSTS)
                assert len(fake.connections) == 2
                assert len(fake.live) == 1
        assert not statuses(sink, "okx")

    async def test_rate_limited_subscribe_is_retried(
        self, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        require_fixtures()
        from bridge.marketdata import okx

        monkeypatch.setattr(okx, "RATE_LIMIT_RETRY", 0.05)
        fake = OkxFake(RECORDED / "OKX.ws.1.0", Faults(reject_first_subscribe=True))
        async with fake:
            adapter = Adapter(config("okx", fake, OKX_INSTS), sink)
            async with running(adapter):
                await fake.wait_subscribed(keys=6)
                await until(lambda: synced(adapter, OKX_INSTS))
                await fake.play()
                await settle(adapter, fake, OKX_INSTS)

    async def test_text_keepalive(self, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch) -> None:
        require_fixtures()
        from bridge.marketdata.okx import OkxProtocol

        monkeypatch.setattr(OkxProtocol, "keepalive_interval", 0.05)
        fake = OkxFake(RECORDED / "OKX.ws.1.0")
        async with fake:
            adapter = Adapter(config("okx", fake, OKX_INSTS), sink)
            async with running(adapter):
                await fake.wait_subscribed(keys=6)
                await fake.wait_for(lambda: "ping" in fake.connections[0].received)


async def first_sync(fake: FakeExchange, adapter: Adapter, symbol: str) -> None:
    """Play up to the symbol's first diff and wait for its REST sync (as early in the live session)."""
    while fake.feed[fake.position].book_symbol != symbol:
        await fake.play(1)
    await fake.play(1)
    await until(lambda: synced(adapter, (symbol,)))


class TestBinance:
    def fake(self, faults: Faults | None = None) -> BinanceFake:
        require_fixtures()
        return BinanceFake(RECORDED / "BINANCE.ws.1.0", RECORDED / "BINANCE.http.0.0", faults)

    async def test_recorded_session_syncs_from_rest_snapshot(self, sink: RecordingSink) -> None:
        fake = self.fake()
        gaps = counter(metrics.RESYNCS, "binance", "gap")
        applied: list[tuple[int | None, int | None]] = []

        def record(conn: object, events: list[object]) -> None:
            applied.extend(
                (e.prev_sequence, e.sequence)
                for e in events  # type: ignore[attr-defined]
                if isinstance(e, BookUpdate) and e.venue_symbol == "NKNUSDT"
            )

        async with fake:
            adapter = Adapter(config("binance", fake, BINANCE_SYMBOLS), sink, on_events=record)
            async with running(adapter):
                await fake.wait_subscribed(keys=8)
                seen: set[str] = set()
                # Play like the live session: each symbol's REST snapshot is taken right after its
                # first diff, so the recorded snapshot (BINANCE.http.0.0) is the one served.
                while await fake.play(1):
                    sym = fake.feed[fake.position - 1].book_symbol
                    if sym is not None and sym not in seen:
                        seen.add(sym)
                        await until(lambda sym=sym: synced(adapter, (sym,)))
                await settle(adapter, fake, BINANCE_SYMBOLS)
                assert adapter.book("NKNUSDT").book.sequence == 499870179  # type: ignore[union-attr]
                assert fake.rest_requests == 4
        assert counter(metrics.RESYNCS, "binance", "gap") == gaps
        assert sink.on("instrument:NKN-USDT:depth")[0]["sequence"] == 499869752
        # [499869750, 499869752] is dropped; [499869753, 499869754] is the first event applied.
        assert applied[0] == (499869752, 499869754)
        assert len(applied) == 149
        assert sink.on("instrument:NKN-USDT:trades")[0]["tradeId"] == "15683430"
        assert not statuses(sink, "binance")

    async def test_gap_triggers_a_new_rest_snapshot(self, sink: RecordingSink) -> None:
        fake = self.fake()
        gap = book_indices(fake, "NKNUSDT")[40]
        fake.faults.drop.add(gap)
        async with fake:
            adapter = Adapter(config("binance", fake, ("NKNUSDT",)), sink)
            async with running(adapter):
                await fake.wait_subscribed(keys=2)
                await first_sync(fake, adapter, "NKNUSDT")
                await fake.play()
                await settle(adapter, fake, ("NKNUSDT",))
                assert fake.rest_requests == 2
        assert [s["reason"] for s in statuses(sink, "binance")] == ["gap"]

    async def test_rest_429_is_retried(self, sink: RecordingSink) -> None:
        fake = self.fake(Faults(rest_rate_limited=2))
        limited = counter(metrics.RATE_LIMITED, "binance")
        async with fake:
            adapter = Adapter(config("binance", fake, ("NKNUSDT",)), sink)
            async with running(adapter):
                await fake.wait_subscribed(keys=2)
                await first_sync(fake, adapter, "NKNUSDT")
                await fake.play()
                await settle(adapter, fake, ("NKNUSDT",))
        assert counter(metrics.RATE_LIMITED, "binance") == limited + 2
        assert fake.rest_requests == 3

    async def test_server_shutdown_hands_over_without_a_gap(self, sink: RecordingSink) -> None:
        fake = self.fake()
        async with fake:
            adapter = Adapter(config("binance", fake, ("NKNUSDT",)), sink)
            async with running(adapter):
                await fake.wait_subscribed(keys=2)
                await fake.play(100)
                old = adapter.connections()[0]
                await fake.send_forced_notice()
                await fake.wait_subscribed(connections=2, keys=2)
                await fake.play()
                await until(lambda: adapter.connections()[0] is not old and old.closed.is_set())
                await settle(adapter, fake, ("NKNUSDT",))
        assert not statuses(sink, "binance")
        seqs = [p["sequence"] for p in sink.on("instrument:NKN-USDT:depth")]
        assert seqs == sorted(seqs)

    async def test_connection_age_limit_reconnects_make_before_break(self, sink: RecordingSink) -> None:
        fake = self.fake()
        limits = VenueLimits(
            symbols_per_connection=50,
            messages_per_second=1000.0,
            connect_interval=0.0,
            max_connection_age=0.2,
        )
        async with fake:
            adapter = Adapter(config("binance", fake, ("NKNUSDT",), limits=limits), sink)
            async with running(adapter):
                await fake.wait_subscribed(keys=2)
                await fake.play(50)
                await fake.wait_subscribed(connections=2, keys=2)
                await fake.play(20)
                await until(lambda: len(fake.connections) >= 2 and not fake.connections[0].subscriptions)
        assert not statuses(sink, "binance")

    async def test_server_ping_is_answered(self, sink: RecordingSink) -> None:
        fake = self.fake()
        async with fake:
            adapter = Adapter(config("binance", fake, ("NKNUSDT",)), sink)
            async with running(adapter):
                await fake.wait_subscribed(keys=2)
                assert await fake.ping_all() == 1
                await fake.play()
                await settle(adapter, fake, ("NKNUSDT",))

    async def test_dropped_connection_resyncs(self, sink: RecordingSink) -> None:
        fake = self.fake()
        async with fake:
            adapter = Adapter(config("binance", fake, ("NKNUSDT",)), sink)
            async with running(adapter):
                await fake.wait_subscribed(keys=2)
                await fake.play(100)
                await until(lambda: synced(adapter, ("NKNUSDT",)))
                await fake.drop_connections()
                await fake.wait_subscribed(keys=2)
                await fake.play()
                await settle(adapter, fake, ("NKNUSDT",))
        assert [s["reason"] for s in statuses(sink, "binance")] == ["disconnected"]


class TestBybit:
    SYMBOLS = ("BTCUSDT", "ETHUSDT")

    async def test_sync_gap_and_rate_limit(
        self, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from bridge.marketdata import bybit

        monkeypatch.setattr(bybit, "RATE_LIMIT_RETRY", 0.05)
        monkeypatch.setattr(bybit.BybitProtocol, "keepalive_interval", 0.05)
        probe = BybitFake(self.SYMBOLS)
        gap = book_indices(probe, "ETHUSDT")[10]
        fake = BybitFake(self.SYMBOLS, faults=Faults(drop={gap}, reject_first_subscribe=True))
        async with fake:
            adapter = Adapter(config("bybit", fake, ("BTC-USDT", "ETH-USDT")), sink)
            async with running(adapter):
                await fake.wait_subscribed(keys=4)
                await until(lambda: synced(adapter, self.SYMBOLS))
                await fake.play()
                await settle(adapter, fake, self.SYMBOLS)
                await fake.wait_for(lambda: any('"ping"' in f for f in fake.connections[0].received))
        assert [s["reason"] for s in statuses(sink, "bybit")] == ["gap"]
        assert sink.on("instrument:ETH-USDT:trades")

    async def test_dropped_connection_resyncs(self, sink: RecordingSink) -> None:
        fake = BybitFake(self.SYMBOLS)
        async with fake:
            adapter = Adapter(config("bybit", fake, self.SYMBOLS), sink)
            async with running(adapter):
                await fake.wait_subscribed(keys=4)
                await until(lambda: synced(adapter, self.SYMBOLS))
                await fake.play(50)
                await fake.drop_connections()
                await fake.play(50)
                await fake.wait_subscribed(keys=4)
                await fake.play()
                await settle(adapter, fake, self.SYMBOLS)


class TestCoinbase:
    SYMBOLS = ("BTC-USD", "ETH-USD")

    async def test_sync_gap_and_rate_limit(
        self, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from bridge.marketdata import coinbase

        monkeypatch.setattr(coinbase, "RATE_LIMIT_RETRY", 0.05)
        probe = CoinbaseFake(self.SYMBOLS)
        gap = book_indices(probe, "BTC-USD")[20]
        fake = CoinbaseFake(self.SYMBOLS, faults=Faults(drop={gap}, reject_first_subscribe=True))
        async with fake:
            adapter = Adapter(config("coinbase", fake, self.SYMBOLS), sink)
            async with running(adapter):
                await fake.wait_subscribed(keys=5)
                await until(lambda: synced(adapter, self.SYMBOLS))
                await fake.play()
                await settle(adapter, fake, self.SYMBOLS)
        reasons = sorted((s["symbol"], s["reason"]) for s in statuses(sink, "coinbase"))
        assert reasons == [("BTC-USD", "gap"), ("ETH-USD", "gap")]
        trades = sink.on("instrument:BTC-USD:trades") + sink.on("instrument:ETH-USD:trades")
        assert trades and all(t["side"] in ("buy", "sell") for t in trades)

    async def test_dropped_connection_resyncs(self, sink: RecordingSink) -> None:
        fake = CoinbaseFake(self.SYMBOLS)
        async with fake:
            adapter = Adapter(config("coinbase", fake, self.SYMBOLS), sink)
            async with running(adapter):
                await fake.wait_subscribed(keys=5)
                await until(lambda: synced(adapter, self.SYMBOLS))
                await fake.play(50)
                await fake.drop_connections()
                await fake.wait_subscribed(keys=5)
                await fake.play()
                await settle(adapter, fake, self.SYMBOLS)


async def test_symbols_are_pooled_across_connections(sink: RecordingSink) -> None:
    fake = BybitFake(("BTCUSDT", "ETHUSDT", "SOLUSDT"))
    limits = VenueLimits(symbols_per_connection=2, messages_per_second=1000.0, connect_interval=0.0)
    async with fake:
        adapter = Adapter(config("bybit", fake, ("BTCUSDT", "ETHUSDT", "SOLUSDT"), limits=limits), sink)
        async with running(adapter):
            await fake.wait_subscribed(connections=2, keys=2)
            await fake.play()
            await settle(adapter, fake, ("BTCUSDT", "ETHUSDT", "SOLUSDT"))
            assert len(adapter.connections()) == 2
