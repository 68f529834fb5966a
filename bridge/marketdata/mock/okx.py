"""The OKX v5 fake: books (with CRC32 checksums), trades and tickers replayed from OKX.ws.1.0.

``okx_crc`` computes the checksum over the fake's own string rows, on purpose apart from
:func:`bridge.marketdata.books.okx_checksum`: the adapter's checksum is checked against it.

Not here: the server, feed playback and faults every fake shares (:mod:`bridge.marketdata.mock.server`).
"""

from __future__ import annotations

import zlib
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

__all__ = ["OkxFake", "okx_crc"]


def okx_crc(book: FakeBook) -> int:
    bids, asks = book.sorted_bids(25), book.sorted_asks(25)
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts.append(f"{bids[i][0]}:{bids[i][1]}")
        if i < len(asks):
            parts.append(f"{asks[i][0]}:{asks[i][1]}")
    value = zlib.crc32(":".join(parts).encode())
    return value - 2**32 if value >= 2**31 else value


class OkxFake(FakeExchange):
    """OKX v5 public WebSocket replaying OKX.ws.1.0 (books with checksums, trades, tickers)."""

    venue = "okx"

    def __init__(self, path: Path, faults: Faults | None = None) -> None:
        super().__init__(faults)
        self.snapshot_ts: dict[str, str] = {}
        for text in load_recorded(path)[2]:
            msg = orjson.loads(text)
            if "event" in msg:
                continue
            channel, inst = msg["arg"]["channel"], msg["arg"]["instId"]
            if channel == "books" and msg.get("action") == "snapshot":
                book = self.books.setdefault(inst, FakeBook())
                row = msg["data"][0]
                book.update(row["bids"], row["asks"])
                self.snapshot_ts[inst] = row["ts"]
                continue
            self.feed.append(FeedItem((channel, inst), msg, inst if channel == "books" else None))

    async def on_message(self, conn: FakeConnection, text: str) -> None:
        if text == "ping":
            await self.send(conn, "pong")
            return
        msg = orjson.loads(text)
        op = msg.get("op")
        if op == "subscribe" and self._should_reject():
            await self.send(
                conn,
                {
                    "id": msg.get("id"),
                    "event": "error",
                    "code": "60014",
                    "msg": "Requests too frequent.",
                    "connId": "fake",
                },
            )
            return
        for arg in msg["args"]:
            key = (arg["channel"], arg["instId"])
            if op == "unsubscribe":
                conn.subscriptions.discard(key)
                await self.send(
                    conn, {"id": msg.get("id"), "event": "unsubscribe", "arg": arg, "connId": "fake"}
                )
                continue
            conn.subscriptions.add(key)
            await self.send(conn, {"id": msg.get("id"), "event": "subscribe", "arg": arg, "connId": "fake"})
            if arg["channel"] == "books" and arg["instId"] in self.books:
                book = self.books[arg["instId"]]
                row = {
                    "asks": book.sorted_asks(400),
                    "bids": book.sorted_bids(400),
                    "ts": self.snapshot_ts.get(arg["instId"], "0"),
                    "checksum": okx_crc(book),
                }
                await self.send(conn, {"arg": arg, "action": "snapshot", "data": [row]})

    def apply(self, item: FeedItem) -> None:
        if item.book_symbol is None:
            return
        book = self.books[item.book_symbol]
        row = item.message["data"][0]
        book.update(row["bids"], row["asks"])
        self.snapshot_ts[item.book_symbol] = row["ts"]

    def render(self, item: FeedItem, index: int, conn: FakeConnection) -> Any:
        if index in self.faults.corrupt_checksum:
            msg = orjson.loads(orjson.dumps(item.message))
            msg["data"][0]["checksum"] += 1
            return msg
        return item.message

    def forced_notice(self) -> Any:
        return {
            "event": "notice",
            "code": "64008",
            "connId": "fake",
            "msg": "The connection will soon be closed for a service upgrade. Please reconnect.",
        }
