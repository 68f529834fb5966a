"""The Binance fake: combined streams replayed from the recorded BINANCE.ws.1.0 session, plus
``GET /api/v3/depth`` (BINANCE.http.0.0) with its HTTP 429 fault.

Not here: the server, feed playback and faults every fake shares (:mod:`bridge.marketdata.mock.server`).
"""

from __future__ import annotations

import http
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from bridge.marketdata.mock.server import (
    FakeBook,
    FakeConnection,
    FakeExchange,
    Faults,
    FeedItem,
    load_recorded,
)

__all__ = ["BinanceFake"]


class BinanceFake(FakeExchange):
    """Combined-stream server plus ``GET /api/v3/depth``, replaying BINANCE.ws.1.0 / BINANCE.http.0.0."""

    venue = "binance"

    def __init__(self, ws_path: Path, http_path: Path, faults: Faults | None = None) -> None:
        super().__init__(faults)
        for line in http_path.read_text().splitlines():
            if not line.strip():
                continue
            url, rest = line.split(" -> ", 1)
            body = orjson.loads(rest.split(": ", 1)[1])
            symbol = parse_qs(urlsplit(url).query)["symbol"][0]
            book = self.books.setdefault(symbol, FakeBook())
            book.update(body["bids"], body["asks"])
            book.sequence = body["lastUpdateId"]
        for text in load_recorded(ws_path)[2]:
            msg = orjson.loads(text)
            stream = msg["stream"]
            symbol = msg["data"].get("s")
            self.feed.append(FeedItem(("stream", stream), msg, symbol if "@depth" in stream else None))

    def rest(self, path: str, query: dict[str, str]) -> tuple[http.HTTPStatus, bytes]:
        if path != "/api/v3/depth" or query.get("symbol") not in self.books:
            return http.HTTPStatus.BAD_REQUEST, b'{"code":-1121,"msg":"Invalid symbol."}'
        if self.faults.rest_rate_limited > 0:
            self.faults.rest_rate_limited -= 1
            return http.HTTPStatus.TOO_MANY_REQUESTS, b'{"code":-1003,"msg":"Too many requests."}'
        book = self.books[query["symbol"]]
        limit = int(query.get("limit", "100"))
        body = {
            "lastUpdateId": book.sequence,
            "bids": book.sorted_bids(limit),
            "asks": book.sorted_asks(limit),
        }
        return http.HTTPStatus.OK, orjson.dumps(body)

    async def on_message(self, conn: FakeConnection, text: str) -> None:
        msg = orjson.loads(text)
        if msg.get("method") == "SUBSCRIBE":
            conn.subscriptions.update(("stream", s) for s in msg["params"])
            await self.send(conn, {"result": None, "id": msg["id"]})
        elif msg.get("method") == "UNSUBSCRIBE":
            conn.subscriptions.difference_update(("stream", s) for s in msg["params"])
            await self.send(conn, {"result": None, "id": msg["id"]})
        else:
            await self.send(conn, {"error": {"code": 2, "msg": "Invalid request"}, "id": msg.get("id")})

    def apply(self, item: FeedItem) -> None:
        data = item.message["data"]
        if item.book_symbol is None or data.get("e") != "depthUpdate":
            return
        book = self.books[item.book_symbol]
        if data["u"] <= book.sequence:
            return
        book.update(data["b"], data["a"])
        book.sequence = data["u"]

    def forced_notice(self) -> Any:
        return {"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": 1770123456789}}
