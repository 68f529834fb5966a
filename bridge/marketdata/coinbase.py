"""Coinbase Advanced Trade market-data WebSocket: ``level2``, ``market_trades`` and ``heartbeats``.

Rules (https://docs.cdp.coinbase.com/coinbase-app/advanced-trade-apis/websocket/websocket-overview):

- One channel per ``{"type":"subscribe","product_ids":[...],"channel":"level2"}`` message, sent
  within 5 s of connecting; the server confirms with a ``subscriptions`` message. Unauthenticated
  clients may send 8 messages per second per IP. Errors are ``{"type":"error","message":...}``.
- Keepalive: subscribing to ``heartbeats`` keeps idle subscriptions open (one message per second).
- Every message carries ``sequence_num``; it is a counter of the whole connection (shared by all
  channels), so a skipped number means some message of the connection was lost: every book on the
  connection is resubscribed. A lower number than the last one is out of order and ignored.
- ``l2_data`` events are ``snapshot`` or ``update`` with absolute ``new_quantity`` per
  ``price_level``; asks are labelled ``offer`` (or ``ask``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from bridge.marketdata.base import AdapterConfig, BookState, VenueLimits, VenueProtocol
from bridge.marketdata.exceptions import MalformedMessage, SequenceGap, map_parse_errors
from bridge.marketdata.metrics import DROPPED, RATE_LIMITED
from bridge.marketdata.models import BookUpdate, Level, Side, Trade, decimal_from_wire
from bridge.marketdata.times import iso_to_us

__all__ = ["COINBASE_LIMITS", "DEFAULT_URL", "CoinbaseProtocol", "map_coinbase_errors", "parse_updates"]

logger = logging.getLogger("mtbridge.marketdata")

DEFAULT_URL = "wss://advanced-trade-ws.coinbase.com"
COINBASE_LIMITS = VenueLimits(
    symbols_per_connection=30,
    messages_per_second=4.0,  # 8 unauthenticated messages per second per IP, shared
    connect_interval=0.1,
)
RATE_LIMIT_RETRY = 2.0
_RATE_WORDS = ("rate", "too many", "limit")
# Coinbase reports the maker side; our Trade.side is the taker (aggressor) side.
_TAKER_SIDE = {"BUY": Side.SELL, "SELL": Side.BUY}


@contextlib.contextmanager
def map_coinbase_errors() -> Iterator[None]:
    with map_parse_errors("coinbase"):
        yield


def parse_updates(raw: Any) -> tuple[list[Level], list[Level], int | None]:
    """``updates`` of an ``l2_data`` event to ``(bids, asks, latest event_time)``."""
    if not isinstance(raw, list) or len(raw) > 50_000:
        raise MalformedMessage("coinbase", "updates must be a list")
    bids: list[Level] = []
    asks: list[Level] = []
    latest: int | None = None
    for item in raw:
        if not isinstance(item, dict):
            raise MalformedMessage("coinbase", "update must be an object")
        price = decimal_from_wire(item["price_level"], field="price_level")
        size = decimal_from_wire(item["new_quantity"], field="new_quantity")
        if price <= 0 or size < 0:
            raise MalformedMessage("coinbase", "negative price or quantity")
        side = item["side"]
        if side == "bid":
            bids.append((price, size))
        elif side in ("offer", "ask"):
            asks.append((price, size))
        else:
            raise MalformedMessage("coinbase", "side must be bid or offer")
        if "event_time" in item:
            ts = iso_to_us(item["event_time"])
            latest = ts if latest is None else max(latest, ts)
    return bids, asks, latest


class CoinbaseProtocol(VenueProtocol):
    venue = "coinbase"

    def __init__(self, symbols: Sequence[str], config: AdapterConfig, *, now_us: int = 0) -> None:
        super().__init__(symbols, config, now_us=now_us)
        self.last_sequence: int | None = None

    def url(self) -> str:
        return self.config.ws_url or DEFAULT_URL

    def _frame(self, kind: str, channel: str, products: list[str] | None = None) -> str:
        msg: dict[str, object] = {"type": kind, "channel": channel}
        if products is not None:
            msg["product_ids"] = products
        return orjson.dumps(msg).decode()

    def subscribe_frames(self) -> list[str]:
        products = list(self.books)
        return [
            self._frame("subscribe", "heartbeats"),
            self._frame("subscribe", "level2", products),
            self._frame("subscribe", "market_trades", products),
        ]

    def _resync(self, state: BookState) -> None:
        for kind in ("unsubscribe", "subscribe"):
            self._send(self._frame(kind, "level2", [state.venue_symbol]))

    def _handle(self, data: str | bytes, now_us: int) -> None:
        with map_coinbase_errors():
            msg = orjson.loads(data)
            if not isinstance(msg, dict):
                raise MalformedMessage("coinbase", "frame must be an object")
            if msg.get("type") == "error":
                self._handle_error(str(msg.get("message", "")))
                return
            seq = msg.get("sequence_num")
            if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
                raise MalformedMessage("coinbase", "sequence_num must be a non-negative integer")
            last = self.last_sequence
            if last is not None and seq <= last:
                DROPPED.labels(self.venue, "out_of_order").inc()
                return
            self.last_sequence = seq
            if last is not None and seq != last + 1:
                self._gap(last + 1, seq, now_us)
            channel = msg.get("channel")
            events = msg.get("events", [])
            if not isinstance(events, list):
                raise MalformedMessage("coinbase", "events must be a list")
            if channel == "l2_data":
                for event in events:
                    self._handle_l2(event, msg.get("timestamp"), now_us)
            elif channel == "market_trades":
                for event in events:
                    for row in event["trades"]:
                        self._handle_trade(row, now_us)

    def _gap(self, expected: int, got: int, now_us: int) -> None:
        # The counter is per connection: any book may have lost an update.
        for state in self.books.values():
            self._out_of_sync(SequenceGap(self.venue, state.venue_symbol, expected, got), now_us)

    def _handle_error(self, message: str) -> None:
        if any(word in message.lower() for word in _RATE_WORDS):
            RATE_LIMITED.labels(self.venue).inc()
            for frame in self.subscribe_frames():
                self._send(frame, RATE_LIMIT_RETRY)
        else:
            DROPPED.labels(self.venue, "rejected").inc()
            logger.error("! coinbase error: %.100s", message, extra={"action": "rejected"})

    def _handle_l2(self, event: Any, timestamp: object, now_us: int) -> None:
        state = self.books.get(event["product_id"])
        if state is None:
            DROPPED.labels(self.venue, "unknown_symbol").inc()
            return
        bids, asks, event_ts = parse_updates(event["updates"])
        exchange_ts = event_ts if event_ts else (iso_to_us(timestamp) if timestamp else None)
        book = state.book
        kind = event["type"]
        if kind == "snapshot":
            book.load(bids, asks)
            book.sequence = self.last_sequence
            book.exchange_ts = exchange_ts
            state.synced = True
            self._emit(self._snapshot_event(state, now_us))
            return
        if kind != "update":
            raise MalformedMessage("coinbase", "l2 event type must be snapshot or update")
        if not state.synced:
            return
        book.apply(bids, asks)
        book.sequence = self.last_sequence
        book.exchange_ts = exchange_ts
        self._emit(
            BookUpdate(
                venue=self.venue,
                symbol=state.symbol,
                venue_symbol=state.venue_symbol,
                bids=tuple(bids),
                asks=tuple(asks),
                sequence=self.last_sequence,
                prev_sequence=None,
                exchange_ts=exchange_ts,
                receive_ts=now_us,
            )
        )

    def _handle_trade(self, row: Any, now_us: int) -> None:
        state = self.books.get(row["product_id"])
        if state is None:
            return
        trade_id = self._trade_id(row["trade_id"], "trade_id")
        self._emit(
            Trade(
                venue=self.venue,
                symbol=state.symbol,
                venue_symbol=state.venue_symbol,
                trade_id=trade_id,
                price=decimal_from_wire(row["price"], field="price"),
                size=decimal_from_wire(row["size"], field="size"),
                side=_TAKER_SIDE.get(row.get("side")),  # type: ignore[arg-type]
                exchange_ts=iso_to_us(row["time"]),
                receive_ts=now_us,
            )
        )
