"""The Kraken WebSocket v1 fake: book and trade channels replayed from KRAKEN.ws.50.0 / KRAKEN.ws.48.0,
with corrupted-checksum and rate-limit faults.

Not here: the server, feed playback and faults every fake shares (:mod:`bridge.marketdata.mock.server`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from bridge.marketdata.mock.server import (
    FakeBook,
    FakeConnection,
    FakeExchange,
    Faults,
    FeedItem,
    load_recorded,
)

__all__ = ["KrakenFake"]


class KrakenFake(FakeExchange):
    """Kraken WebSocket v1 replaying KRAKEN.ws.50.0 (book) and/or KRAKEN.ws.48.0 (trade)."""

    venue = "kraken"

    def __init__(self, paths: Iterable[Path], faults: Faults | None = None, depth: int = 1000) -> None:
        super().__init__(faults)
        self.depth = depth
        self._channel_ids = itertools.count(100)
        for path in paths:
            for text in load_recorded(path)[2]:
                msg = orjson.loads(text)
                if not isinstance(msg, list):
                    continue
                name, pair = msg[-2], msg[-1]
                if name.startswith("book"):
                    if "as" in msg[1] or "bs" in msg[1]:
                        book = self.books.setdefault(pair, FakeBook())
                        book.update(msg[1].get("bs", []), msg[1].get("as", []))
                        continue
                    self.feed.append(FeedItem(("book", pair), msg, pair))
                else:
                    self.feed.append(FeedItem(("trade", pair), msg))

    async def on_connect(self, conn: FakeConnection) -> None:
        await self.send(
            conn, {"connectionID": 1, "event": "systemStatus", "status": "online", "version": "1.8.3"}
        )

    async def on_message(self, conn: FakeConnection, text: str) -> None:
        msg = orjson.loads(text)
        event = msg.get("event")
        if event == "ping":
            await self.send(conn, {"event": "pong", "reqid": msg.get("reqid")})
            return
        if event not in ("subscribe", "unsubscribe"):
            await self.send(conn, {"event": "error", "errorMessage": "Unsupported event"})
            return
        name = msg["subscription"]["name"]
        if event == "subscribe" and self._should_reject():
            await self.send(
                conn, {"event": "error", "errorMessage": "Exceeded msg rate", "reqid": msg.get("reqid")}
            )
            return
        for pair in msg["pair"]:
            key = ("book" if name == "book" else name, pair)
            channel = f"book-{msg['subscription'].get('depth', 10)}" if name == "book" else name
            status = {
                "channelID": next(self._channel_ids),
                "channelName": channel,
                "event": "subscriptionStatus",
                "pair": pair,
                "reqid": msg.get("reqid"),
                "subscription": msg["subscription"],
            }
            if event == "unsubscribe":
                conn.subscriptions.discard(key)
                await self.send(conn, {**status, "status": "unsubscribed"})
                continue
            conn.subscriptions.add(key)
            await self.send(conn, {**status, "status": "subscribed"})
            if name == "book" and pair in self.books:
                book = self.books[pair]
                snap = {"as": book.sorted_asks(self.depth), "bs": book.sorted_bids(self.depth)}
                await self.send(conn, [status["channelID"], snap, channel, pair])

    def apply(self, item: FeedItem) -> None:
        if item.book_symbol is None:
            return
        book = self.books[item.book_symbol]
        for payload in item.message[1:-2]:
            for row in payload.get("a", []):
                book.set("ask", row[:3])
            for row in payload.get("b", []):
                book.set("bid", row[:3])
        book.truncate(self.depth)

    def render(self, item: FeedItem, index: int, conn: FakeConnection) -> Any:
        if index in self.faults.corrupt_checksum:
            msg = orjson.loads(orjson.dumps(item.message))
            msg[-3]["c"] = str((int(msg[-3]["c"]) + 1) % 2**32)
            return msg
        return item.message

    def forced_notice(self) -> Any:
        return {"event": "systemStatus", "status": "maintenance", "version": "1.8.3"}
