"""Kraken spot WebSocket API v1 (public): ``book`` and ``trade`` channels.

Rules (https://docs.kraken.com/api/docs/websocket-v1/ and the v1 book-checksum guide):

- Subscribe with ``{"event":"subscribe","pair":[...],"subscription":{"name":"book","depth":N}}``; one
  ``subscriptionStatus`` ack per pair (``status`` ``subscribed`` or ``error`` with ``errorMessage``).
- Data frames are arrays ``[channelID, payload..., channelName, pair]``. A book snapshot payload has
  ``as``/``bs``; an update has ``a`` and/or ``b`` (possibly in two objects) and the checksum ``c``.
- After each update the book is truncated to the subscribed depth (levels that fall out of scope get no
  delete), then the CRC32 of the top 10 asks and bids must equal ``c``; a mismatch means resync:
  unsubscribe and subscribe the pair again for a fresh snapshot.
- Keepalive: the server sends ``heartbeat`` events; the client pings (``{"event":"ping"}``) because the
  server closes connections idle for about a minute.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from bridge.marketdata.base import AdapterConfig, BookState, LevelRows, VenueLimits, VenueProtocol
from bridge.marketdata.books import kraken_checksum
from bridge.marketdata.exceptions import ChecksumMismatch, MalformedMessage, map_parse_errors
from bridge.marketdata.metrics import CHECKSUMS_VERIFIED, DROPPED, RATE_LIMITED
from bridge.marketdata.models import BookUpdate, Level, Side, Trade, decimal_from_wire
from bridge.marketdata.times import seconds_to_us

__all__ = [
    "DEFAULT_DEPTH",
    "DEFAULT_URL",
    "KRAKEN_LIMITS",
    "KrakenProtocol",
    "map_kraken_errors",
    "parse_levels",
]

logger = logging.getLogger("mtbridge.marketdata")

DEFAULT_URL = "wss://ws.kraken.com"
DEFAULT_DEPTH = 100
VALID_DEPTHS = (10, 25, 100, 500, 1000)
KRAKEN_LIMITS = VenueLimits(
    symbols_per_connection=50,
    messages_per_second=5.0,
    # About 150 connection attempts per rolling 10 minutes per IP (Cloudflare).
    connect_interval=4.0,
)
RATE_LIMIT_RETRY = 5.0
_RATE_WORDS = ("rate", "too many")


@contextlib.contextmanager
def map_kraken_errors() -> Iterator[None]:
    with map_parse_errors("kraken"):
        yield


_LEVELS = LevelRows("kraken", 5000, 3, 4, "[price, volume, time(, r)]", "price", "volume", "volume")


def parse_levels(raw: Any) -> list[Level]:
    """``[[price, volume, timestamp, ("r")], ...]`` to levels; the update flag and time are dropped."""
    return _LEVELS.parse(raw)


class KrakenProtocol(VenueProtocol):
    venue = "kraken"
    keepalive_interval = 30.0

    def __init__(self, symbols: Sequence[str], config: AdapterConfig, *, now_us: int = 0) -> None:
        super().__init__(symbols, config, now_us=now_us)
        self.depth = config.depth or DEFAULT_DEPTH
        if self.depth not in VALID_DEPTHS:
            raise ValueError(f"kraken book depth must be one of {VALID_DEPTHS}")
        self._reqid = 0
        self._trade_seq = 0
        self.system_status: str | None = None

    def url(self) -> str:
        return self.config.ws_url or DEFAULT_URL

    def _next_reqid(self) -> int:
        self._reqid += 1
        return self._reqid

    def _subscription(self, name: str, pairs: Sequence[str], event: str = "subscribe") -> str:
        sub: dict[str, object] = {"name": name}
        if name == "book":
            sub["depth"] = self.depth
        msg = {"event": event, "reqid": self._next_reqid(), "pair": list(pairs), "subscription": sub}
        return orjson.dumps(msg).decode()

    def subscribe_frames(self) -> list[str]:
        pairs = list(self.books)
        return [self._subscription("book", pairs), self._subscription("trade", pairs)]

    def keepalive_frame(self) -> str | None:
        return orjson.dumps({"event": "ping", "reqid": self._next_reqid()}).decode()

    def _resync(self, state: BookState) -> None:
        pair = [state.venue_symbol]
        self._send(self._subscription("book", pair, "unsubscribe"))
        self._send(self._subscription("book", pair))

    def _handle(self, data: str | bytes, now_us: int) -> None:
        with map_kraken_errors():
            msg = orjson.loads(data)
            if isinstance(msg, dict):
                self._handle_event(msg)
            elif isinstance(msg, list) and len(msg) >= 4:
                name, pair = msg[-2], msg[-1]
                if not isinstance(name, str) or not isinstance(pair, str):
                    raise MalformedMessage("kraken", "channel name and pair must be strings")
                state = self.books.get(pair)
                if state is None:
                    DROPPED.labels(self.venue, "unknown_symbol").inc()
                    return
                if name.startswith("book-"):
                    self._handle_book(state, msg[1:-2], now_us)
                elif name == "trade":
                    self._handle_trades(state, msg[1], now_us)
            else:
                raise MalformedMessage("kraken", "unexpected frame")

    def _handle_event(self, msg: dict[str, Any]) -> None:
        event = msg.get("event")
        if event == "systemStatus":
            self.system_status = str(msg.get("status"))
        elif (event == "subscriptionStatus" and msg.get("status") == "error") or event == "error":
            self._rejected(msg, str(msg.get("errorMessage", "")))

    def _rejected(self, msg: dict[str, Any], error: str) -> None:
        if any(word in error.lower() for word in _RATE_WORDS):
            RATE_LIMITED.labels(self.venue).inc()
            sub = msg.get("subscription")
            name = sub.get("name") if isinstance(sub, dict) else None
            pair = msg.get("pair")
            pairs = [pair] if isinstance(pair, str) and pair in self.books else list(self.books)
            names = [name] if name in ("book", "trade") else ["book", "trade"]
            for n in names:
                self._send(self._subscription(str(n), pairs), RATE_LIMIT_RETRY)
        else:
            DROPPED.labels(self.venue, "rejected").inc()
            logger.error("! kraken rejected a subscription: %.100s", error, extra={"action": "rejected"})

    def _handle_book(self, state: BookState, payloads: list[Any], now_us: int) -> None:
        book = state.book
        for payload in payloads:
            if not isinstance(payload, dict):
                raise MalformedMessage("kraken", "book payload must be an object")
        first = payloads[0]
        if "as" in first or "bs" in first:
            asks = parse_levels(first.get("as", []))
            bids = parse_levels(first.get("bs", []))
            book.load(bids, asks)
            book.truncate(self.depth)
            state.synced = True
            self._emit(self._snapshot_event(state, now_us))
            return
        if not state.synced:
            return  # in flight from before a resync; the next snapshot replaces the book
        bids_all: list[Level] = []
        asks_all: list[Level] = []
        checksum: object = None
        exchange_ts: int | None = None
        for payload in payloads:
            for key, target, setter in (("a", asks_all, book.set_ask), ("b", bids_all, book.set_bid)):
                if key in payload:
                    levels = parse_levels(payload[key])
                    for price, size in levels:
                        setter(price, size)
                    target.extend(levels)
                    for raw in payload[key]:
                        exchange_ts = max(exchange_ts or 0, seconds_to_us(raw[2]))
            checksum = payload.get("c", checksum)
        book.truncate(self.depth)
        if exchange_ts is not None:
            book.exchange_ts = exchange_ts
        if checksum is not None:
            if not isinstance(checksum, str) or not checksum.isdigit() or len(checksum) > 10:
                raise MalformedMessage("kraken", "checksum must be a digit string")
            computed = kraken_checksum(book)
            if computed != int(checksum):
                raise ChecksumMismatch(self.venue, state.venue_symbol, int(checksum), computed)
            self.checksums_verified += 1
            CHECKSUMS_VERIFIED.labels(self.venue).inc()
        self._emit(
            BookUpdate(
                venue=self.venue,
                symbol=state.symbol,
                venue_symbol=state.venue_symbol,
                bids=tuple(bids_all),
                asks=tuple(asks_all),
                sequence=None,
                prev_sequence=None,
                exchange_ts=exchange_ts,
                receive_ts=now_us,
            )
        )

    def _handle_trades(self, state: BookState, rows: Any, now_us: int) -> None:
        if not isinstance(rows, list):
            raise MalformedMessage("kraken", "trades must be a list")
        for row in rows:
            if not isinstance(row, list) or len(row) < 4:
                raise MalformedMessage("kraken", "trade must be [price, volume, time, side, ...]")
            self._trade_seq += 1
            side = {"b": Side.BUY, "s": Side.SELL}.get(row[3])
            self._emit(
                Trade(
                    venue=self.venue,
                    symbol=state.symbol,
                    venue_symbol=state.venue_symbol,
                    # v1 trades carry no id: the venue time plus our position keeps it unique per stream.
                    trade_id=f"{row[2]}-{self._trade_seq}",
                    price=decimal_from_wire(row[0], field="price"),
                    size=decimal_from_wire(row[1], field="volume"),
                    side=side,
                    exchange_ts=seconds_to_us(row[2]),
                    receive_ts=now_us,
                )
            )
