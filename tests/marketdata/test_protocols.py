"""Book-maintenance rules of each venue, driven through the sans-I/O protocols (no sockets)."""

from __future__ import annotations

import orjson

from bridge.marketdata.base import AdapterConfig
from bridge.marketdata.binance import BinanceProtocol
from bridge.marketdata.bybit import BybitProtocol
from bridge.marketdata.coinbase import CoinbaseProtocol
from bridge.marketdata.kraken import KrakenProtocol
from bridge.marketdata.models import BookSnapshot, BookStatus, BookUpdate, Side, Trade
from bridge.marketdata.okx import OkxProtocol


def frame(obj: object) -> bytes:
    return orjson.dumps(obj)


def depth(u0: int, u1: int, bids: list[list[str]] | None = None) -> bytes:
    data = {"e": "depthUpdate", "E": 1, "s": "BNBBTC", "U": u0, "u": u1, "b": bids or [], "a": []}
    return frame({"stream": "bnbbtc@depth@100ms", "data": data})


class TestBinanceProtocol:
    def make(self) -> BinanceProtocol:
        return BinanceProtocol(
            ["BNBBTC"], AdapterConfig(venue="binance", symbols=("BNBBTC",), rest_url="http://x")
        )

    def test_client_buffers_then_syncs_from_snapshot(self) -> None:
        p = self.make()
        p.receive(depth(157, 160), 1)
        assert p.snapshots_wanted() == ["BNBBTC"]
        assert p.snapshot_url("BNBBTC") == "http://x/api/v3/depth?symbol=BNBBTC&limit=1000"
        p.receive(depth(161, 161, [["0.0024", "10"]]), 2)
        p.receive_snapshot("BNBBTC", frame({"lastUpdateId": 160, "bids": [["0.0023", "1"]], "asks": []}), 3)
        events = p.events_received()
        assert isinstance(events[0], BookSnapshot) and events[0].sequence == 160
        assert isinstance(events[1], BookUpdate) and (events[1].prev_sequence, events[1].sequence) == (
            160,
            161,
        )
        assert p.books["BNBBTC"].book.best_bid() is not None and p.synced()

    def test_client_refetches_a_snapshot_older_than_the_buffer(self) -> None:
        p = self.make()
        p.receive(depth(157, 160), 1)
        p.snapshots_wanted()
        p.receive_snapshot("BNBBTC", frame({"lastUpdateId": 100, "bids": [], "asks": []}), 2)
        assert p.snapshots_wanted() == ["BNBBTC"] and not p.synced()

    def test_client_resyncs_on_gap_and_ignores_stale_events(self) -> None:
        p = self.make()
        p.receive(depth(10, 11), 1)
        p.snapshots_wanted()
        p.receive_snapshot("BNBBTC", frame({"lastUpdateId": 11, "bids": [], "asks": []}), 2)
        p.receive(depth(5, 11), 3)  # u below the local id: ignored
        p.receive(depth(14, 15), 4)  # U above local id + 1: gap
        assert [type(e) for e in p.events_received()] == [BookSnapshot, BookStatus]
        assert p.snapshots_wanted() == ["BNBBTC"] and not p.synced()

    def test_server_shutdown_requests_a_forced_reconnect(self) -> None:
        p = self.make()
        p.receive(frame({"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": 1}}), 1)
        assert p.forced_reason == "serverShutdown"

    def test_aggtrade_side_is_the_taker(self) -> None:
        p = self.make()
        trade = {"e": "aggTrade", "E": 1, "s": "BNBBTC", "a": 5, "p": "0.001", "q": "100", "T": 2, "m": True}
        p.receive(frame(trade), 1)
        (event,) = p.events_received()
        assert isinstance(event, Trade) and event.side is Side.SELL and event.exchange_ts == 2000


class TestBybitProtocol:
    def make(self) -> BybitProtocol:
        return BybitProtocol(["BTCUSDT"], AdapterConfig(venue="bybit", symbols=("BTCUSDT",)))

    def msg(self, kind: str, u: int, bids: list[list[str]]) -> bytes:
        data = {"s": "BTCUSDT", "b": bids, "a": [], "u": u, "seq": 1}
        return frame({"topic": "orderbook.50.BTCUSDT", "type": kind, "ts": 1, "data": data})

    def test_snapshot_delta_and_u1_reset(self) -> None:
        p = self.make()
        p.receive(self.msg("snapshot", 10, [["100", "1"]]), 1)
        p.receive(self.msg("delta", 11, [["100", "0"], ["99", "2"]]), 2)
        assert p.books["BTCUSDT"].book.bids() == [(99, 2)]
        p.receive(self.msg("delta", 1, [["50", "5"]]), 3)  # u = 1: service restart, overwrite
        assert p.books["BTCUSDT"].book.bids() == [(50, 5)] and p.books["BTCUSDT"].book.sequence == 1

    def test_gap_resubscribes_the_book(self) -> None:
        p = self.make()
        p.receive(self.msg("snapshot", 10, [["100", "1"]]), 1)
        p.data_to_send()
        p.receive(self.msg("delta", 12, [["99", "2"]]), 2)
        sent = [orjson.loads(f) for _, f in p.data_to_send()]
        assert [m["op"] for m in sent] == ["unsubscribe", "subscribe"]
        assert sent[1]["args"] == ["orderbook.50.BTCUSDT"] and not p.synced()

    def test_subscribe_requests_hold_at_most_ten_args(self) -> None:
        symbols = [f"C{i}USDT" for i in range(12)]
        p = BybitProtocol(symbols, AdapterConfig(venue="bybit", symbols=tuple(symbols)))
        frames = [orjson.loads(f) for f in p.subscribe_frames()]
        assert [len(f["args"]) for f in frames] == [10, 10, 4]


class TestOkxProtocol:
    def make(self) -> OkxProtocol:
        return OkxProtocol(["BTC-USDT"], AdapterConfig(venue="okx", symbols=("BTC-USDT",)))

    def book(self, action: str, prev: int, seq: int, bids: list[list[str]]) -> bytes:
        row = {"asks": [], "bids": bids, "ts": "1", "checksum": 0, "prevSeqId": prev, "seqId": seq}
        return frame({"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": action, "data": [row]})

    def test_documented_sequence_with_keepalive_and_reset(self) -> None:
        p = self.make()
        p.receive(self.book("snapshot", -1, 10, [["1", "1", "0", "1"]]), 1)
        p.receive(self.book("update", 10, 15, [["2", "1", "0", "1"]]), 2)
        p.receive(self.book("update", 15, 15, []), 3)  # no change
        p.receive(self.book("update", 15, 3, [["3", "1", "0", "1"]]), 4)  # maintenance reset
        p.receive(self.book("update", 3, 5, []), 5)
        assert p.synced() and p.books["BTC-USDT"].book.sequence == 5
        p.receive(self.book("update", 7, 9, []), 6)
        assert not p.synced()
        assert [orjson.loads(f)["op"] for _, f in p.data_to_send()] == ["unsubscribe", "subscribe"]

    def test_notice_64008_requests_a_forced_reconnect(self) -> None:
        p = self.make()
        p.receive(frame({"event": "notice", "code": "64008", "msg": "upgrade", "connId": "a"}), 1)
        assert p.forced_reason is not None

    def test_keepalive_is_the_text_ping(self) -> None:
        p = self.make()
        assert p.keepalive_frame() == "ping"
        p.receive("pong", 1)
        assert p.events_received() == []


class TestCoinbaseProtocol:
    def make(self) -> CoinbaseProtocol:
        return CoinbaseProtocol(["BTC-USD"], AdapterConfig(venue="coinbase", symbols=("BTC-USD",)))

    def l2(self, seq: int, kind: str, side: str, price: str, qty: str) -> bytes:
        update = {
            "side": side,
            "event_time": "2023-02-09T20:32:50.714964855Z",
            "price_level": price,
            "new_quantity": qty,
        }
        event = {"type": kind, "product_id": "BTC-USD", "updates": [update]}
        return frame(
            {
                "channel": "l2_data",
                "timestamp": "2023-02-09T20:32:50Z",
                "sequence_num": seq,
                "events": [event],
            }
        )

    def test_offer_and_ask_labels_and_out_of_order(self) -> None:
        p = self.make()
        p.receive(self.l2(0, "snapshot", "bid", "100", "1"), 1)
        p.receive(self.l2(1, "update", "offer", "101", "2"), 2)
        p.receive(self.l2(2, "update", "ask", "102", "3"), 3)
        p.receive(self.l2(1, "update", "ask", "103", "3"), 4)  # lower sequence: ignored
        assert [a[0] for a in p.books["BTC-USD"].book.asks()] == [101, 102]

    def test_gap_resubscribes_level2(self) -> None:
        p = self.make()
        p.receive(self.l2(0, "snapshot", "bid", "100", "1"), 1)
        p.receive(self.l2(5, "update", "bid", "100", "2"), 2)
        assert not p.synced()
        assert [orjson.loads(f)["type"] for _, f in p.data_to_send()] == ["unsubscribe", "subscribe"]


class TestKrakenProtocol:
    def test_update_with_two_payloads_and_bad_checksum(self) -> None:
        p = KrakenProtocol(["XBT/USD"], AdapterConfig(venue="kraken", symbols=("XBT/USD",), depth=10))
        snap = {
            "as": [["5541.30000", "2.50700000", "1534614248.123678"]],
            "bs": [["5541.20000", "1.52900000", "1534614248.765567"]],
        }
        p.receive(frame([0, snap, "book-10", "XBT/USD"]), 1)
        update = [
            0,
            {"a": [["5541.30000", "0.00000000", "1534614335.345903"]]},
            {"b": [["5541.20000", "2.00000000", "1534614335.345903"]], "c": "1"},
            "book-10",
            "XBT/USD",
        ]
        p.receive(frame(update), 2)
        events = p.events_received()
        assert [type(e) for e in events] == [BookSnapshot, BookStatus]
        assert events[1].reason == "checksum"  # type: ignore[union-attr]
        assert [orjson.loads(f)["event"] for _, f in p.data_to_send()] == ["unsubscribe", "subscribe"]

    def test_trade_frames(self) -> None:
        p = KrakenProtocol(["XMR/USD"], AdapterConfig(venue="kraken", symbols=("XMR/USD",)))
        p.receive(
            frame(
                [993, [["354.11000000", "0.89594024", "1618678142.557535", "s", "l", ""]], "trade", "XMR/USD"]
            ),
            1,
        )
        (trade,) = p.events_received()
        assert isinstance(trade, Trade) and trade.side is Side.SELL and trade.symbol == "XMR-USD"
