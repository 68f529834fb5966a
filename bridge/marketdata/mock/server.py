"""The fakes' common machinery: a WebSocket server with a feed, per-symbol books and fault injection.

A fake is a real WebSocket server on 127.0.0.1 (plus, for Binance, a REST endpoint on the same
port). It keeps its own simple book per symbol (:class:`FakeBook`, a dict, independent of
:mod:`bridge.marketdata.books`, so that comparing the two checks the adapters) and a *feed*.
:meth:`FakeExchange.play` advances the feed, updating the fake's books and sending each frame to
the connections subscribed to its stream, so several connections see the same market, as on a venue.

Not here: any venue's dialect (one module each beside this one) or the synthetic feeds' generators
(:mod:`bridge.marketdata.mock.synthetic`).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import http
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

__all__ = ["FakeBook", "FakeConnection", "FakeExchange", "Faults", "FeedItem", "Key", "load_recorded"]

#: A stream a connection subscribes to: the venue's (channel, symbol) or (kind, stream name).
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

    def update(self, bids: Iterable[list[str]], asks: Iterable[list[str]]) -> None:
        """Apply rows of both sides (a size of 0 removes the level)."""
        for row in bids:
            self.set("bid", row)
        for row in asks:
            self.set("ask", row)

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
