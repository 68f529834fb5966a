"""Local fake exchanges speaking each venue's documented protocol, for tests and benchmarks.

A fake is a real WebSocket server on 127.0.0.1 (plus Binance's REST depth endpoint on the same port).
It keeps its own simple book per symbol (a dict, independent of :mod:`bridge.marketdata.books`) and a
*feed*: the recorded session (Binance, Kraken v1, OKX) or a seeded synthetic one (Bybit, Coinbase).
:meth:`FakeExchange.play` advances the feed, updating the fake's books and sending each frame to the
connections subscribed to its stream, so several connections see the same market, as on a venue.

:class:`Faults` injects the failures the adapters must survive: dropped frames (gaps), corrupted
checksums, rate-limit rejections and HTTP 429s; :meth:`FakeExchange.drop_connections`,
:meth:`FakeExchange.ping_all` and :meth:`FakeExchange.send_forced_notice` cover dropped connections,
server pings and forced disconnects.

Size (about 830 lines): five venues' fakes share one server, feed and fault machinery (the first
300 lines); each venue's dialect is about 100 lines. Split per venue when a sixth arrives.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import http
import itertools
import random
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

__all__ = [
    "FAKES",
    "BinanceFake",
    "BybitFake",
    "CoinbaseFake",
    "FakeBook",
    "FakeExchange",
    "Faults",
    "KrakenFake",
    "OkxFake",
    "load_recorded",
]

Key = tuple[str, str]


def load_recorded(path: Path) -> tuple[str, list[str], list[str]]:
    """A recorded session: ``(url, sent frames, received frames)``, blank lines skipped."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    url = lines[0].split(" <-> ")[0]
    sent, received = [], []
    for line in lines[1:]:
        if " <- " in line.split(": ", 1)[0]:
            sent.append(line.split(": ", 1)[1])
        else:
            received.append(line.split(": ", 1)[1])
    return url, sent, received


@dataclass
class Faults:
    """Failures to inject, by feed index (0-based position in the feed)."""

    drop: set[int] = field(default_factory=set)
    corrupt_checksum: set[int] = field(default_factory=set)
    reject_first_subscribe: bool = False
    rest_rate_limited: int = 0


class FakeBook:
    """Deliberately naive book: price -> the venue's level row (strings), sorted on demand."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, list[str]] = {}
        self.asks: dict[Decimal, list[str]] = {}
        self.sequence = 0

    def set(self, side: str, row: list[str]) -> None:
        target = self.bids if side == "bid" else self.asks
        if Decimal(row[1]) == 0:
            target.pop(Decimal(row[0]), None)
        else:
            target[Decimal(row[0])] = list(row)

    def sorted_bids(self, n: int | None = None) -> list[list[str]]:
        rows = [self.bids[p] for p in sorted(self.bids, reverse=True)]
        return rows if n is None else rows[:n]

    def sorted_asks(self, n: int | None = None) -> list[list[str]]:
        rows = [self.asks[p] for p in sorted(self.asks)]
        return rows if n is None else rows[:n]

    def truncate(self, depth: int) -> None:
        if len(self.bids) <= depth and len(self.asks) <= depth:
            return
        for p in sorted(self.bids, reverse=True)[depth:]:
            del self.bids[p]
        for p in sorted(self.asks)[depth:]:
            del self.asks[p]

    def levels(self) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """``(bids, asks)`` as Decimals, best first, to compare with an adapter's book."""
        return (
            [(Decimal(r[0]), Decimal(r[1])) for r in self.sorted_bids()],
            [(Decimal(r[0]), Decimal(r[1])) for r in self.sorted_asks()],
        )


@dataclass
class FeedItem:
    key: Key
    message: Any
    book_symbol: str | None = None


@dataclass(eq=False)
class FakeConnection:
    ws: ServerConnection
    subscriptions: set[Key] = field(default_factory=set)
    sequence: int = 0
    received: list[str] = field(default_factory=list)


class FakeExchange(abc.ABC):
    """Base of the per-venue fakes: server lifecycle, subscriptions, feed playback and faults."""

    venue = ""

    def __init__(self, faults: Faults | None = None) -> None:
        self.faults = faults or Faults()
        self.books: dict[str, FakeBook] = {}
        self.feed: list[FeedItem] = []
        self.position = 0
        self.connections: list[FakeConnection] = []
        self.subscribe_requests = 0
        self.rest_requests = 0
        self.sent_frames = 0
        self._server: Server | None = None
        self._changed = asyncio.Condition()

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self._server = await serve(
            self._handler,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            compression=None,
            max_size=2**20,
            ping_interval=None,
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> FakeExchange:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None
        sock = next(iter(self._server.sockets))
        return int(sock.getsockname()[1])

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def live(self) -> list[FakeConnection]:
        return [c for c in self.connections if c.ws.state.name == "OPEN"]

    # -- waiting helpers ---------------------------------------------------------------------------
    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Any, limit: float = 30.0) -> None:
        async with asyncio.timeout(limit), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_subscribed(self, connections: int = 1, keys: int = 1, limit: float = 30.0) -> None:
        """Until ``connections`` open connections each hold at least ``keys`` subscriptions."""
        await self.wait_for(
            lambda: sum(len(c.subscriptions) >= keys for c in self.live) >= connections, limit
        )

    # -- connection handling ---------------------------------------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        self.rest_requests += 1
        url = urlsplit(request.path)
        status, body = self.rest(url.path, {k: v[0] for k, v in parse_qs(url.query).items()})
        headers = Headers({"Content-Type": "application/json", "Content-Length": str(len(body))})
        if status == http.HTTPStatus.TOO_MANY_REQUESTS:
            headers["Retry-After"] = "0"
        return Response(status.value, status.phrase, headers, body)

    def rest(self, path: str, query: dict[str, str]) -> tuple[http.HTTPStatus, bytes]:
        return http.HTTPStatus.NOT_FOUND, b"{}"

    async def _handler(self, ws: ServerConnection) -> None:
        conn = FakeConnection(ws)
        self.connections.append(conn)
        try:
            await self.on_connect(conn)
            async for data in ws:
                text = data if isinstance(data, str) else data.decode()
                conn.received.append(text)
                await self.on_message(conn, text)
                await self._notify()
        except ConnectionClosed:
            pass
        finally:
            conn.subscriptions.clear()
            await self._notify()

    async def send(self, conn: FakeConnection, message: Any) -> None:
        text = message if isinstance(message, str) else orjson.dumps(message).decode()
        with contextlib.suppress(ConnectionClosed):
            await conn.ws.send(text)
            self.sent_frames += 1

    async def on_connect(self, conn: FakeConnection) -> None:
        return None

    @abc.abstractmethod
    async def on_message(self, conn: FakeConnection, text: str) -> None: ...

    @abc.abstractmethod
    def apply(self, item: FeedItem) -> None:
        """Update the fake's books with a feed item (played whether or not anyone receives it)."""

    def render(self, item: FeedItem, index: int, conn: FakeConnection) -> Any:
        return item.message

    @abc.abstractmethod
    def forced_notice(self) -> Any:
        """The venue's announcement that it will drop the connection soon."""

    def _should_reject(self) -> bool:
        self.subscribe_requests += 1
        return self.faults.reject_first_subscribe and self.subscribe_requests == 1

    # -- feed playback ---------------------------------------------------------------------------
    async def play(self, count: int | None = None) -> int:
        """Play up to ``count`` feed items (all remaining by default); returns how many were played."""
        end = len(self.feed) if count is None else min(len(self.feed), self.position + count)
        played = 0
        while self.position < end:
            index = self.position
            self.position += 1
            item = self.feed[index]
            self.apply(item)
            played += 1
            for conn in list(self.connections):
                if item.key in conn.subscriptions:
                    conn.sequence += 1
                    if index in self.faults.drop:
                        continue
                    await self.send(conn, self.render(item, index, conn))
        await self._notify()
        return played

    async def drop_connections(self, code: int = 1011) -> None:
        """Close every connection abruptly (as a venue crash or a network cut would)."""
        for conn in list(self.live):
            conn.subscriptions.clear()
            await conn.ws.close(code, "fake exchange dropped the connection")

    async def ping_all(self, limit: float = 30.0) -> int:
        """Send an RFC 6455 ping on every open connection; returns the number of pongs received."""
        waiters = [await c.ws.ping() for c in self.live]
        async with asyncio.timeout(limit):
            await asyncio.gather(*waiters)
        return len(waiters)

    async def send_forced_notice(self) -> None:
        for conn in list(self.live):
            await self.send(conn, self.forced_notice())


# ------------------------------------------------------------------------------------------------
# Binance


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
            for row in body["bids"]:
                book.set("bid", row)
            for row in body["asks"]:
                book.set("ask", row)
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
        for row in data["b"]:
            book.set("bid", row)
        for row in data["a"]:
            book.set("ask", row)
        book.sequence = data["u"]

    def forced_notice(self) -> Any:
        return {"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": 1770123456789}}


# ------------------------------------------------------------------------------------------------
# Kraken v1


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
                        for row in msg[1].get("bs", []):
                            book.set("bid", row)
                        for row in msg[1].get("as", []):
                            book.set("ask", row)
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


# ------------------------------------------------------------------------------------------------
# OKX


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
                for level in row["bids"]:
                    book.set("bid", level)
                for level in row["asks"]:
                    book.set("ask", level)
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
        for level in row["bids"]:
            book.set("bid", level)
        for level in row["asks"]:
            book.set("ask", level)
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


# ------------------------------------------------------------------------------------------------
# Synthetic feeds (Bybit, Coinbase): no recorded session exists in the fixtures.


def _synthetic_levels(
    rng: random.Random, mid: Decimal, count: int
) -> tuple[list[list[str]], list[list[str]]]:
    tick = Decimal("0.01")
    bids = [[str(mid - tick * (i + 1)), str(Decimal(rng.randint(1, 5000)) / 1000)] for i in range(count)]
    asks = [[str(mid + tick * (i + 1)), str(Decimal(rng.randint(1, 5000)) / 1000)] for i in range(count)]
    return bids, asks


def _synthetic_change(rng: random.Random, mid: Decimal) -> tuple[str, list[str]]:
    side = rng.choice(("bid", "ask"))
    offset = Decimal("0.01") * rng.randint(1, 40)
    price = mid - offset if side == "bid" else mid + offset
    size = "0" if rng.random() < 0.3 else str(Decimal(rng.randint(1, 5000)) / 1000)
    return side, [str(price), size]


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
            bids, asks = _synthetic_levels(rng, mid, 25)
            for row in bids:
                book.set("bid", row)
            for row in asks:
                book.set("ask", row)
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
            changes = [_synthetic_change(rng, mid) for _ in range(rng.randint(1, 4))]
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
        for row in data["b"]:
            book.set("bid", row)
        for row in data["a"]:
            book.set("ask", row)
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
            bids, asks = _synthetic_levels(rng, mid, 25)
            for row in bids:
                book.set("bid", row)
            for row in asks:
                book.set("ask", row)
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
            for side, row in (_synthetic_change(rng, mid) for _ in range(rng.randint(1, 4))):
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


FAKES: dict[str, type[FakeExchange]] = {
    "binance": BinanceFake,
    "kraken": KrakenFake,
    "okx": OkxFake,
    "bybit": BybitFake,
    "coinbase": CoinbaseFake,
}
