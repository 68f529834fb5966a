"""Binance spot combined streams: ``<symbol>@depth@100ms`` diffs with a REST snapshot, ``@aggTrade``.

Rules (binance-spot-api-docs, web-socket-streams.md):

- Connect to ``/stream`` and send ``{"method":"SUBSCRIBE","params":[...],"id":n}``; the ack is
  ``{"result":null,"id":n}``, an error ``{"error":{"code":..,"msg":..},"id":n}``. At most 5 incoming
  messages per second per connection (pings, pongs and control messages count) and 1024 streams.
- The server pings every 20 s and disconnects without a pong within a minute (websockets answers
  pings automatically). A connection lives at most 24 hours; ``serverShutdown`` precedes maintenance.
- Local book: buffer diffs, GET ``/api/v3/depth``; refetch while ``lastUpdateId`` is below the first
  buffered ``U``; drop buffered events with ``u <= lastUpdateId``; the first applied event must have
  ``U <= lastUpdateId + 1 <= u``; afterwards each event's ``U`` must be the previous ``u + 1``
  (``u`` below the local id: ignore; ``U`` above local id + 1: gap, start over).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson

from bridge.marketdata.base import AdapterConfig, BookState, LevelRows, VenueLimits, VenueProtocol
from bridge.marketdata.exceptions import MalformedMessage, SequenceGap, map_parse_errors
from bridge.marketdata.metrics import DROPPED, RESYNCS
from bridge.marketdata.models import BookUpdate, Level, Side, Trade, decimal_from_wire
from bridge.marketdata.times import ms_to_us

__all__ = [
    "BINANCE_LIMITS",
    "DEFAULT_REST_URL",
    "DEFAULT_URL",
    "BinanceProtocol",
    "DepthEvent",
    "map_binance_errors",
    "parse_depth_event",
    "parse_levels",
]

logger = logging.getLogger("mtbridge.marketdata")

DEFAULT_URL = "wss://stream.binance.com:9443"
DEFAULT_REST_URL = "https://api.binance.com"
DEFAULT_SNAPSHOT_LIMIT = 1000
#: 24 h connection lifetime; reconnect (make-before-break) half an hour before the cut.
MAX_CONNECTION_AGE = 23.5 * 3600
STREAMS_PER_SYMBOL = 2
PARAMS_PER_REQUEST = 200
#: Diffs buffered per symbol while waiting for a REST snapshot before starting over.
MAX_BUFFERED = 10_000
BINANCE_LIMITS = VenueLimits(
    symbols_per_connection=1024 // STREAMS_PER_SYMBOL // 2,
    messages_per_second=4.0,
    connect_interval=1.0,  # 300 connection attempts per 5 minutes per IP
    max_connection_age=MAX_CONNECTION_AGE,
)


@contextlib.contextmanager
def map_binance_errors() -> Iterator[None]:
    with map_parse_errors("binance"):
        yield


_LEVELS = LevelRows("binance", 10_000, 2, 2, "[price, qty]", "price", "qty", "quantity")


def parse_levels(raw: Any) -> list[Level]:
    return _LEVELS.parse(raw)


def _update_id(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise MalformedMessage("binance", f"{name} must be a non-negative integer")
    return value


@dataclass(frozen=True, slots=True)
class DepthEvent:
    symbol: str
    first_id: int
    final_id: int
    bids: list[Level]
    asks: list[Level]
    exchange_ts: int


def parse_depth_event(data: Any) -> DepthEvent:
    """A ``depthUpdate`` object (``U``, ``u``, ``b``, ``a``)."""
    with map_binance_errors():
        first = _update_id(data["U"], "U")
        final = _update_id(data["u"], "u")
        if final < first:
            raise MalformedMessage("binance", "u must not be below U")
        symbol = data["s"]
        if not isinstance(symbol, str):
            raise MalformedMessage("binance", "s must be a string")
        return DepthEvent(
            symbol, first, final, parse_levels(data["b"]), parse_levels(data["a"]), ms_to_us(data["E"])
        )


@dataclass(slots=True)
class _SyncState:
    buffer: list[DepthEvent] = field(default_factory=list)
    fetching: bool = False


class BinanceProtocol(VenueProtocol):
    venue = "binance"
    protocol_pings = False  # the server pings; our pings would count against 5 messages/s

    def __init__(self, symbols: Sequence[str], config: AdapterConfig, *, now_us: int = 0) -> None:
        super().__init__(symbols, config, now_us=now_us)
        self._id = 0
        self._sync = {sym: _SyncState() for sym in self.books}
        self.snapshot_limit = config.depth or DEFAULT_SNAPSHOT_LIMIT

    def url(self) -> str:
        return (self.config.ws_url or DEFAULT_URL).rstrip("/") + "/stream"

    def snapshot_url(self, venue_symbol: str) -> str:
        base = (self.config.rest_url or DEFAULT_REST_URL).rstrip("/")
        return f"{base}/api/v3/depth?" + urlencode({"symbol": venue_symbol, "limit": self.snapshot_limit})

    def subscribe_frames(self) -> list[str]:
        params = []
        for sym in self.books:
            params += [f"{sym.lower()}@depth@100ms", f"{sym.lower()}@aggTrade"]
        frames = []
        for i in range(0, len(params), PARAMS_PER_REQUEST):
            self._id += 1
            msg = {"method": "SUBSCRIBE", "params": params[i : i + PARAMS_PER_REQUEST], "id": self._id}
            frames.append(orjson.dumps(msg).decode())
        return frames

    def _resync(self, state: BookState) -> None:
        sync = self._sync[state.venue_symbol]
        sync.buffer.clear()
        # The next diff starts a new buffer and asks for a new snapshot (procedure step 1).

    def _handle(self, data: str | bytes, now_us: int) -> None:
        with map_binance_errors():
            msg = orjson.loads(data)
            if not isinstance(msg, dict):
                raise MalformedMessage("binance", "frame must be an object")
            body = msg.get("data", msg)
            if not isinstance(body, dict):
                raise MalformedMessage("binance", "data must be an object")
            if "error" in msg or ("code" in msg and "msg" in msg):
                DROPPED.labels(self.venue, "rejected").inc()
                logger.error("! binance error: %.200s", data, extra={"action": "rejected"})
                return
            kind = body.get("e")
            if kind == "depthUpdate":
                self._handle_depth(parse_depth_event(body), now_us)
            elif kind == "aggTrade" or kind == "trade":
                self._handle_trade(body, now_us)
            elif kind == "serverShutdown":
                self.forced_reason = "serverShutdown"

    def _handle_depth(self, event: DepthEvent, now_us: int) -> None:
        state = self.books.get(event.symbol)
        if state is None:
            DROPPED.labels(self.venue, "unknown_symbol").inc()
            return
        book = state.book
        if not state.synced:
            sync = self._sync[event.symbol]
            if len(sync.buffer) >= MAX_BUFFERED:
                sync.buffer.clear()
                sync.fetching = False
            sync.buffer.append(event)
            if not sync.fetching:
                sync.fetching = True
                self._snapshots.append(event.symbol)
            return
        assert book.sequence is not None
        if event.final_id <= book.sequence:
            return
        if event.first_id > book.sequence + 1:
            self._out_of_sync(
                SequenceGap(self.venue, event.symbol, book.sequence + 1, event.first_id), now_us
            )
            # Start over (procedure step 1) with this event as the first buffered one.
            self._handle_depth(event, now_us)
            return
        self._apply(state, event, now_us)

    def _apply(self, state: BookState, event: DepthEvent, now_us: int) -> None:
        state.book.apply(event.bids, event.asks)
        prev = state.book.sequence
        state.book.sequence = event.final_id
        state.book.exchange_ts = event.exchange_ts
        self._emit(
            BookUpdate(
                venue=self.venue,
                symbol=state.symbol,
                venue_symbol=state.venue_symbol,
                bids=tuple(event.bids),
                asks=tuple(event.asks),
                sequence=event.final_id,
                prev_sequence=prev,
                exchange_ts=event.exchange_ts,
                receive_ts=now_us,
            )
        )

    def receive_snapshot(self, venue_symbol: str, body: bytes, now_us: int) -> None:
        state = self.books[venue_symbol]
        sync = self._sync[venue_symbol]
        sync.fetching = False
        try:
            with map_binance_errors():
                snap = orjson.loads(body)
                last_id = _update_id(snap["lastUpdateId"], "lastUpdateId")
                bids = parse_levels(snap["bids"])
                asks = parse_levels(snap["asks"])
        except MalformedMessage as exc:
            DROPPED.labels(self.venue, "malformed").inc()
            logger.warning("! %s", exc, extra={"action": "drop"})
            self._refetch(venue_symbol)
            return
        if not sync.buffer or last_id < sync.buffer[0].first_id:
            # The snapshot is older than the first buffered diff: fetch again (step 4).
            self._refetch(venue_symbol)
            return
        pending = [ev for ev in sync.buffer if ev.final_id > last_id]
        sync.buffer.clear()
        if pending and pending[0].first_id > last_id + 1:
            # Diffs between the snapshot and the first buffered event are missing.
            RESYNCS.labels(self.venue, "gap").inc()
            self._refetch(venue_symbol)
            return
        book = state.book
        book.load(bids, asks)
        book.sequence = last_id
        book.exchange_ts = None
        state.synced = True
        self._emit(self._snapshot_event(state, now_us))
        for i, event in enumerate(pending):
            if i and event.first_id != book.sequence + 1:
                self._out_of_sync(
                    SequenceGap(self.venue, venue_symbol, book.sequence + 1, event.first_id), now_us
                )
                for rest in pending[i:]:
                    self._handle_depth(rest, now_us)
                return
            self._apply(state, event, now_us)

    def _refetch(self, venue_symbol: str) -> None:
        sync = self._sync[venue_symbol]
        sync.fetching = True
        self._snapshots.append(venue_symbol)

    def _handle_trade(self, body: dict[str, Any], now_us: int) -> None:
        state = self.books.get(body["s"])
        if state is None:
            return
        trade_id = body["a"] if body["e"] == "aggTrade" else body["t"]
        _update_id(trade_id, "trade id")
        self._emit(
            Trade(
                venue=self.venue,
                symbol=state.symbol,
                venue_symbol=state.venue_symbol,
                trade_id=str(trade_id),
                price=decimal_from_wire(body["p"], field="p"),
                size=decimal_from_wire(body["q"], field="q"),
                # m: the buyer is the maker, so the taker sold.
                side=Side.SELL if body["m"] is True else Side.BUY,
                exchange_ts=ms_to_us(body["T"]),
                receive_ts=now_us,
            )
        )
