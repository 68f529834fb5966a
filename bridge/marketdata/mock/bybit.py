"""The Bybit v5 public spot fake: ``orderbook.{depth}.{symbol}`` snapshot/delta and ``publicTrade``,
on a seeded synthetic feed.

Not here: the server, feed playback and faults every fake shares (:mod:`bridge.marketdata.mock.server`).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import orjson

from bridge.marketdata.mock.server import (
    FakeBook,
    FakeConnection,
    FakeExchange,
    Faults,
    FeedItem,
)
from bridge.marketdata.mock.synthetic import synthetic_change, synthetic_levels

__all__ = ["BybitFake"]


class BybitFake(FakeExchange):
    """Bybit v5 public spot: ``orderbook.{depth}.{symbol}`` snapshot/delta and ``publicTrade``."""

    venue = "bybit"

    def __init__(
        self, symbols: Iterable[str], updates: int = 200, seed: int = 7, faults: Faults | None = None
    ):
        super().__init__(faults)
        rng = random.Random(seed)
        mid = Decimal("100.00")
        for sym in symbols:
            book = self.books[sym] = FakeBook()
            bids, asks = synthetic_levels(rng, mid, 25)
            book.update(bids, asks)
            book.sequence = 1000
        syms = list(self.books)
        for i in range(updates):
            sym = syms[i % len(syms)]
            if i % 10 == 9:
                trade = {
                    "T": 1680652847524 + i,
                    "s": sym,
                    "S": rng.choice(("Buy", "Sell")),
                    "v": "0.5",
                    "p": str(mid),
                    "i": f"t-{i}",
                    "BT": False,
                }
                msg = {
                    "topic": f"publicTrade.{sym}",
                    "type": "snapshot",
                    "ts": 1680652847526 + i,
                    "data": [trade],
                }
                self.feed.append(FeedItem(("trade", sym), msg))
                continue
            changes = [synthetic_change(rng, mid) for _ in range(rng.randint(1, 4))]
            data = {
                "s": sym,
                "b": [r for s, r in changes if s == "bid"],
                "a": [r for s, r in changes if s == "ask"],
            }
            msg = {"topic": f"orderbook.50.{sym}", "type": "delta", "ts": 1680652808085 + i, "data": data}
            self.feed.append(FeedItem(("book", sym), msg, sym))
        self._seq = {sym: self.books[sym].sequence for sym in syms}

    def apply(self, item: FeedItem) -> None:
        if item.book_symbol is None:
            return
        book = self.books[item.book_symbol]
        data = item.message["data"]
        book.update(data["b"], data["a"])
        book.sequence += 1
        data["u"] = book.sequence
        data["seq"] = book.sequence * 3

    async def on_message(self, conn: FakeConnection, text: str) -> None:
        msg = orjson.loads(text)
        op = msg.get("op")
        req_id = msg.get("req_id", "")
        if op == "ping":
            await self.send(
                conn, {"success": True, "ret_msg": "pong", "conn_id": "fake", "req_id": req_id, "op": "ping"}
            )
            return
        if op == "subscribe" and self._should_reject():
            await self.send(
                conn,
                {
                    "success": False,
                    "ret_msg": "Too many requests",
                    "conn_id": "fake",
                    "req_id": req_id,
                    "op": op,
                },
            )
            return
        await self.send(conn, {"success": True, "ret_msg": op, "conn_id": "fake", "req_id": req_id, "op": op})
        for topic in msg["args"]:
            kind, _, sym = topic.partition(".")
            sym = sym.rpartition(".")[2]
            key = ("book" if kind == "orderbook" else "trade", sym)
            if op == "unsubscribe":
                conn.subscriptions.discard(key)
                continue
            conn.subscriptions.add(key)
            if kind == "orderbook" and sym in self.books:
                book = self.books[sym]
                data = {
                    "s": sym,
                    "b": book.sorted_bids(),
                    "a": book.sorted_asks(),
                    "u": book.sequence,
                    "seq": book.sequence * 3,
                }
                await self.send(conn, {"topic": topic, "type": "snapshot", "ts": 1680652808065, "data": data})

    def forced_notice(self) -> Any:
        return {"success": True, "ret_msg": "", "op": "noop"}
