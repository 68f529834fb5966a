"""OrderBook and the venues' checksums (documented worked examples), without sockets."""

from __future__ import annotations

import json
import zlib
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from bridge.marketdata.books import OrderBook, kraken_checksum, okx_checksum
from tests.support.marketdata import FIXTURES, require_fixtures

prices = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("100000"), places=4)
sizes = st.one_of(
    st.just(Decimal(0)), st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(1000), places=4)
)


class TestOrderBook:
    @given(st.lists(st.tuples(st.booleans(), prices, sizes), max_size=200))
    def test_book_matches_a_naive_model(self, ops: list[tuple[bool, Decimal, Decimal]]) -> None:
        book = OrderBook()
        bids: dict[Decimal, Decimal] = {}
        asks: dict[Decimal, Decimal] = {}
        for is_bid, price, size in ops:
            side = bids if is_bid else asks
            (book.set_bid if is_bid else book.set_ask)(price, size)
            if size == 0:
                side.pop(price, None)
            else:
                side[price] = size
        assert book.bids() == sorted(bids.items(), reverse=True)
        assert book.asks() == sorted(asks.items())
        assert book.best_bid() == (max(bids.items()) if bids else None)
        assert book.best_ask() == (min(asks.items()) if asks else None)

    @given(st.lists(st.tuples(prices, sizes), max_size=50), st.integers(min_value=1, max_value=20))
    def test_truncate_keeps_the_best_levels(self, levels: list[tuple[Decimal, Decimal]], depth: int) -> None:
        book = OrderBook()
        book.load(levels, levels)
        full_bids, full_asks = book.bids(), book.asks()
        book.truncate(depth)
        assert book.bids() == full_bids[:depth] and book.asks() == full_asks[:depth]

    def test_snapshot_ignores_zero_levels_and_keeps_wire_exponent(self) -> None:
        book = OrderBook()
        book.load([(Decimal("1.50"), Decimal("0"))], [(Decimal("2.000"), Decimal("0.05000"))])
        assert book.bids() == [] and str(book.asks()[0][1]) == "0.05000"


class TestKrakenChecksum:
    def test_v1_documented_example(self) -> None:
        require_fixtures()
        doc = json.loads((FIXTURES / "kraken.json").read_text())["checksum"]["v1_worked_example"]
        assert zlib.crc32(doc["input_string"].encode()) == doc["expected_checksum"] == 974947235

    def test_v2_documented_levels(self) -> None:
        require_fixtures()
        doc = json.loads((FIXTURES / "kraken.json").read_text())["checksum"]["v2_worked_example"]
        book = OrderBook()
        book.load(
            [(Decimal(p), Decimal(q)) for p, q in doc["bids"]],
            [(Decimal(p), Decimal(q)) for p, q in doc["asks"]],
        )
        assert kraken_checksum(book) == doc["expected_checksum"]


class TestOkxChecksum:
    def test_documented_examples(self) -> None:
        require_fixtures()
        for example in json.loads((FIXTURES / "okx.json").read_text())["checksum"]["doc_examples"]:
            book = OrderBook()
            book.load(
                [(Decimal(r[0]), Decimal(r[1])) for r in example["bids"]],
                [(Decimal(r[0]), Decimal(r[1])) for r in example["asks"]],
            )
            assert okx_checksum(book) == example["crc32_signed"]
