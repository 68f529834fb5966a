"""Bybit v5 public WebSocket (spot by default): ``orderbook.{depth}.{symbol}`` and ``publicTrade``.

Rules (https://bybit-exchange.github.io/docs/v5/ws/connect and .../websocket/public/orderbook):

- ``{"req_id":"1","op":"subscribe","args":[...]}`` with at most 10 args per request on spot; the ack
  is ``{"success":true|false,"ret_msg":...,"op":"subscribe","req_id":"1"}``.
- Keepalive: the client sends ``{"req_id":"n","op":"ping"}`` every 20 s (answer: ``ret_msg`` pong).
- Book: a ``snapshot`` (at any time, and always when ``u`` is 1 after a service restart) replaces the
  local book; ``delta``s apply absolute sizes (0 deletes). Each delta's ``u`` must be the previous
  ``u + 1`` (documented for orderbook.full and the SBE feed, applied here too); otherwise resubscribe.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from bridge.marketdata.base import AdapterConfig, BookState, LevelRows, VenueLimits, VenueProtocol
from bridge.marketdata.exceptions import MalformedMessage, SequenceGap, map_parse_errors
from bridge.marketdata.metrics import DROPPED, RATE_LIMITED
from bridge.marketdata.models import BookUpdate, Level, Side, Trade, decimal_from_wire
from bridge.marketdata.times import ms_to_us

__all__ = [
    "BYBIT_LIMITS",
    "DEFAULT_DEPTH",
    "DEFAULT_URL",
    "BybitProtocol",
    "map_bybit_errors",
    "parse_levels",
]

logger = logging.getLogger("mtbridge.marketdata")

DEFAULT_URL = "wss://stream.bybit.com/v5/public/spot"
DEFAULT_DEPTH = 50
VALID_DEPTHS = (1, 50, 200, 1000)
ARGS_PER_REQUEST = 10
BYBIT_LIMITS = VenueLimits(
    symbols_per_connection=50,
    messages_per_second=10.0,
    connect_interval=0.6,  # 500 connections per 5 minutes per domain
)
RATE_LIMIT_RETRY = 2.0
_RATE_WORDS = ("too many", "rate", "frequen")


@contextlib.contextmanager
def map_bybit_errors() -> Iterator[None]:
    with map_parse_errors("bybit"):
        yield


_LEVELS = LevelRows("bybit", 5000, 2, 2, "[price, size]", "price", "size", "size")


def parse_levels(raw: Any) -> list[Level]:
    return _LEVELS.parse(raw)


def _seq(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise MalformedMessage("bybit", "u must be a non-negative integer")
    return value


class BybitProtocol(VenueProtocol):
    venue = "bybit"
    keepalive_interval = 20.0

    def __init__(self, symbols: Sequence[str], config: AdapterConfig, *, now_us: int = 0) -> None:
        super().__init__(symbols, config, now_us=now_us)
        self.depth = config.depth or DEFAULT_DEPTH
        if self.depth not in VALID_DEPTHS:
            raise ValueError(f"bybit book depth must be one of {VALID_DEPTHS}")
        self._id = 0
        self._requests: dict[str, str] = {}

    def url(self) -> str:
        return self.config.ws_url or DEFAULT_URL

    def _request(self, op: str, args: list[str]) -> list[str]:
        frames = []
        for i in range(0, len(args), ARGS_PER_REQUEST):
            self._id += 1
            req_id = str(self._id)
            frame = orjson.dumps(
                {"req_id": req_id, "op": op, "args": args[i : i + ARGS_PER_REQUEST]}
            ).decode()
            self._requests[req_id] = frame
            frames.append(frame)
        while len(self._requests) > 256:
            self._requests.pop(next(iter(self._requests)))
        return frames

    def _book_topic(self, venue_symbol: str) -> str:
        return f"orderbook.{self.depth}.{venue_symbol}"

    def subscribe_frames(self) -> list[str]:
        args = []
        for sym in self.books:
            args += [self._book_topic(sym), f"publicTrade.{sym}"]
        return self._request("subscribe", args)

    def keepalive_frame(self) -> str | None:
        self._id += 1
        return orjson.dumps({"req_id": str(self._id), "op": "ping"}).decode()

    def _resync(self, state: BookState) -> None:
        for op in ("unsubscribe", "subscribe"):
            for frame in self._request(op, [self._book_topic(state.venue_symbol)]):
                self._send(frame)

    def _handle(self, data: str | bytes, now_us: int) -> None:
        with map_bybit_errors():
            msg = orjson.loads(data)
            if not isinstance(msg, dict):
                raise MalformedMessage("bybit", "frame must be an object")
            if "op" in msg:
                self._handle_op(msg)
                return
            topic = msg["topic"]
            if not isinstance(topic, str):
                raise MalformedMessage("bybit", "topic must be a string")
            kind, _, rest = topic.partition(".")
            symbol = rest.rpartition(".")[2]
            state = self.books.get(symbol)
            if state is None:
                DROPPED.labels(self.venue, "unknown_symbol").inc()
                return
            if kind == "orderbook":
                self._handle_book(state, msg, now_us)
            elif kind == "publicTrade":
                rows = msg["data"]
                if not isinstance(rows, list):
                    raise MalformedMessage("bybit", "trade data must be a list")
                for row in rows:
                    self._handle_trade(state, row, now_us)

    def _handle_op(self, msg: dict[str, Any]) -> None:
        if msg.get("success") is not False:
            return
        ret = str(msg.get("ret_msg", ""))
        if any(word in ret.lower() for word in _RATE_WORDS):
            RATE_LIMITED.labels(self.venue).inc()
            frame = self._requests.get(str(msg.get("req_id")))
            for f in [frame] if frame is not None else self.subscribe_frames():
                self._send(f, RATE_LIMIT_RETRY)
        else:
            DROPPED.labels(self.venue, "rejected").inc()
            logger.error("! bybit rejected %s: %.100s", msg.get("op"), ret, extra={"action": "rejected"})

    def _handle_book(self, state: BookState, msg: dict[str, Any], now_us: int) -> None:
        data = msg["data"]
        book = state.book
        bids = parse_levels(data["b"])
        asks = parse_levels(data["a"])
        update_id = _seq(data["u"])
        exchange_ts = ms_to_us(msg["ts"])
        kind = msg["type"]
        if kind == "snapshot" or update_id == 1:
            book.load(bids, asks)
            book.sequence = update_id
            book.exchange_ts = exchange_ts
            state.synced = True
            self._emit(self._snapshot_event(state, now_us))
            return
        if kind != "delta":
            raise MalformedMessage("bybit", "type must be snapshot or delta")
        if not state.synced:
            return
        assert book.sequence is not None
        if update_id <= book.sequence:
            return  # already applied (replayed after a reconnect)
        if update_id != book.sequence + 1:
            raise SequenceGap(self.venue, state.venue_symbol, book.sequence + 1, update_id)
        book.apply(bids, asks)
        book.sequence = update_id
        book.exchange_ts = exchange_ts
        self._emit(
            BookUpdate(
                venue=self.venue,
                symbol=state.symbol,
                venue_symbol=state.venue_symbol,
                bids=tuple(bids),
                asks=tuple(asks),
                sequence=update_id,
                prev_sequence=update_id - 1,
                exchange_ts=exchange_ts,
                receive_ts=now_us,
            )
        )

    def _handle_trade(self, state: BookState, row: Any, now_us: int) -> None:
        trade_id = self._trade_id(row["i"], "trade id")
        self._emit(
            Trade(
                venue=self.venue,
                symbol=state.symbol,
                venue_symbol=state.venue_symbol,
                trade_id=trade_id,
                price=decimal_from_wire(row["p"], field="p"),
                size=decimal_from_wire(row["v"], field="v"),
                side={"Buy": Side.BUY, "Sell": Side.SELL}.get(row.get("S")),
                exchange_ts=ms_to_us(row["T"]),
                receive_ts=now_us,
            )
        )
