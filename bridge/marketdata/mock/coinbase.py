"""The Coinbase Advanced Trade fake: ``level2`` (``l2_data``), ``market_trades`` and ``heartbeats``,
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

__all__ = ["CoinbaseFake"]


class CoinbaseFake(FakeExchange):
    """Coinbase Advanced Trade: ``level2`` (``l2_data``), ``market_trades`` and ``heartbeats``.

    ``sequence_num`` is stamped per connection at send time, like the venue's connection counter.
    """

    venue = "coinbase"

    def __init__(
        self, symbols: Iterable[str], updates: int = 200, seed: int = 11, faults: Faults | None = None
    ):
        super().__init__(faults)
        rng = random.Random(seed)
        mid = Decimal("2000.00")
        for sym in symbols:
            book = self.books[sym] = FakeBook()
            bids, asks = synthetic_levels(rng, mid, 25)
            book.update(bids, asks)
        syms = list(self.books)
        for i in range(updates):
            sym = syms[i % len(syms)]
            ts = f"2026-04-07T14:30:{i % 60:02d}.123456789Z"
            if i % 10 == 9:
                trade = {
                    "trade_id": str(i),
                    "product_id": sym,
                    "price": str(mid),
                    "size": "0.3",
                    "side": rng.choice(("BUY", "SELL")),
                    "time": ts,
                }
                msg = {
                    "channel": "market_trades",
                    "timestamp": ts,
                    "events": [{"type": "update", "trades": [trade]}],
                }
                self.feed.append(FeedItem(("market_trades", sym), msg))
                continue
            updates_ = []
            for side, row in (synthetic_change(rng, mid) for _ in range(rng.randint(1, 4))):
                updates_.append(
                    {
                        "side": "bid" if side == "bid" else "offer",
                        "event_time": ts,
                        "price_level": row[0],
                        "new_quantity": row[1],
                    }
                )
            event = {"type": "update", "product_id": sym, "updates": updates_}
            msg = {"channel": "l2_data", "client_id": "", "timestamp": ts, "events": [event]}
            self.feed.append(FeedItem(("level2", sym), msg, sym))

    def apply(self, item: FeedItem) -> None:
        if item.book_symbol is None:
            return
        book = self.books[item.book_symbol]
        for u in item.message["events"][0]["updates"]:
            book.set("bid" if u["side"] == "bid" else "ask", [u["price_level"], u["new_quantity"]])

    def render(self, item: FeedItem, index: int, conn: FakeConnection) -> Any:
        return {**item.message, "sequence_num": conn.sequence}

    async def _stamp(self, conn: FakeConnection, msg: dict[str, Any]) -> None:
        conn.sequence += 1
        await self.send(conn, {**msg, "sequence_num": conn.sequence})

    async def on_message(self, conn: FakeConnection, text: str) -> None:
        msg = orjson.loads(text)
        kind, channel = msg.get("type"), msg.get("channel")
        if kind == "subscribe" and channel == "level2" and self._should_reject():
            await self.send(conn, {"type": "error", "message": "rate limit exceeded"})
            return
        products = msg.get("product_ids", [])
        for sym in products:
            if kind == "unsubscribe":
                conn.subscriptions.discard((channel, sym))
            else:
                conn.subscriptions.add((channel, sym))
        if channel == "heartbeats":
            conn.subscriptions.add(("heartbeats", "*"))
        subs: dict[str, list[str]] = {}
        for ch, sym in sorted(conn.subscriptions):
            subs.setdefault(ch, []).append(sym)
        ts = "2026-04-07T14:30:00.000000Z"
        await self._stamp(
            conn,
            {
                "channel": "subscriptions",
                "client_id": "",
                "timestamp": ts,
                "events": [{"subscriptions": subs}],
            },
        )
        if kind == "subscribe" and channel == "level2":
            for sym in products:
                book = self.books.get(sym)
                if book is None:
                    continue
                rows = [
                    {"side": "bid", "event_time": ts, "price_level": r[0], "new_quantity": r[1]}
                    for r in book.sorted_bids()
                ]
                rows += [
                    {"side": "offer", "event_time": ts, "price_level": r[0], "new_quantity": r[1]}
                    for r in book.sorted_asks()
                ]
                event = {"type": "snapshot", "product_id": sym, "updates": rows}
                await self._stamp(
                    conn, {"channel": "l2_data", "client_id": "", "timestamp": ts, "events": [event]}
                )

    def forced_notice(self) -> Any:
        return {"channel": "heartbeats", "events": []}
