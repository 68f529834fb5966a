"""OKX v5 public WebSocket: ``books`` (400 levels, incremental) and ``trades`` channels.

Rules (https://www.okx.com/docs-v5/en/#overview-websocket, order-book channel):

- ``{"id":"1","op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}, ...]}``; one
  ``{"event":"subscribe","arg":{...}}`` ack per arg, ``{"event":"error","code":"...","msg":...}`` on
  failure (``60014`` = requests too frequent: retry later). At most 480 subscribe requests per
  connection per hour; fewer than 30 book channels per connection is recommended.
- Keepalive: send the text ``ping`` when nothing was received for < 30 s; the server answers ``pong``.
- ``{"event":"notice","code":"64008"}`` announces a disconnect for a service upgrade 60 s ahead: open a
  new connection (make-before-break in the shell).
- Books: ``action`` ``snapshot`` (``prevSeqId`` -1) then ``update``s whose ``prevSeqId`` must equal the
  previous ``seqId`` (a no-change heartbeat has ``prevSeqId == seqId``; a maintenance reset may make
  ``seqId < prevSeqId``, which is still continuous). A mismatch is a gap: resubscribe for a new
  snapshot. The legacy CRC32 ``checksum`` (signed, top 25 levels interleaved) is verified when non-zero:
  OKX fixed it to 0 in 2026, but recorded sessions carry it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from bridge.marketdata.base import AdapterConfig, BookState, LevelRows, VenueLimits, VenueProtocol
from bridge.marketdata.books import okx_checksum
from bridge.marketdata.exceptions import ChecksumMismatch, MalformedMessage, SequenceGap, map_parse_errors
from bridge.marketdata.metrics import CHECKSUMS_VERIFIED, DROPPED, RATE_LIMITED
from bridge.marketdata.models import BookUpdate, Level, Side, Trade, decimal_from_wire
from bridge.marketdata.times import ms_to_us

__all__ = ["DEFAULT_URL", "OKX_LIMITS", "OkxProtocol", "map_okx_errors", "parse_levels"]

logger = logging.getLogger("mtbridge.marketdata")

DEFAULT_URL = "wss://ws.okx.com:8443/ws/v5/public"
OKX_LIMITS = VenueLimits(
    # Two channels (books + trades) per symbol, staying under 30 channels per connection.
    symbols_per_connection=14,
    messages_per_second=3.0,
    connect_interval=0.4,  # 3 connection requests per second per IP
)
RATE_LIMITED_CODES = frozenset({"60014"})
SERVICE_UPGRADE_CODE = "64008"
RATE_LIMIT_RETRY = 2.0
MAX_ARGS_BYTES = 60_000


@contextlib.contextmanager
def map_okx_errors() -> Iterator[None]:
    with map_parse_errors("okx"):
        yield


_LEVELS = LevelRows("okx", 5000, 2, 4, "[px, sz, liq, count]", "px", "sz", "size")


def parse_levels(raw: Any) -> list[Level]:
    """``[[px, sz, "0", orderCount], ...]`` to levels (the deprecated and count fields are dropped)."""
    return _LEVELS.parse(raw)


def _opt_seq(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not -1 <= value < 2**63:
        raise MalformedMessage("okx", "seqId must be an integer")
    return value


class OkxProtocol(VenueProtocol):
    venue = "okx"
    keepalive_interval = 20.0

    def __init__(self, symbols: Sequence[str], config: AdapterConfig, *, now_us: int = 0) -> None:
        super().__init__(symbols, config, now_us=now_us)
        self._id = 0
        self._requests: dict[str, str] = {}
        self.checksums_skipped = 0

    def url(self) -> str:
        return self.config.ws_url or DEFAULT_URL

    def _request(self, op: str, args: list[dict[str, str]]) -> list[str]:
        frames = []
        chunk: list[dict[str, str]] = []
        for arg in args:
            chunk.append(arg)
            if len(orjson.dumps(chunk)) > MAX_ARGS_BYTES:
                chunk.pop()
                frames.append(self._frame(op, chunk))
                chunk = [arg]
        if chunk:
            frames.append(self._frame(op, chunk))
        return frames

    def _frame(self, op: str, args: list[dict[str, str]]) -> str:
        self._id += 1
        req_id = str(self._id)
        frame = orjson.dumps({"id": req_id, "op": op, "args": args}).decode()
        self._requests[req_id] = frame
        if len(self._requests) > 256:
            self._requests.pop(next(iter(self._requests)))
        return frame

    def subscribe_frames(self) -> list[str]:
        args = [{"channel": ch, "instId": inst} for inst in self.books for ch in ("books", "trades")]
        return self._request("subscribe", args)

    def keepalive_frame(self) -> str | None:
        return "ping"

    def _resync(self, state: BookState) -> None:
        arg = [{"channel": "books", "instId": state.venue_symbol}]
        for op in ("unsubscribe", "subscribe"):
            for frame in self._request(op, arg):
                self._send(frame)

    def _handle(self, data: str | bytes, now_us: int) -> None:
        if data in ("pong", b"pong"):
            return
        with map_okx_errors():
            msg = orjson.loads(data)
            if not isinstance(msg, dict):
                raise MalformedMessage("okx", "frame must be an object")
            if "event" in msg:
                self._handle_event(msg)
                return
            arg = msg["arg"]
            channel, inst = arg["channel"], arg["instId"]
            state = self.books.get(inst)
            if state is None:
                DROPPED.labels(self.venue, "unknown_symbol").inc()
                return
            rows = msg["data"]
            if not isinstance(rows, list):
                raise MalformedMessage("okx", "data must be a list")
            if channel == "books":
                for row in rows:
                    self._handle_book(state, msg.get("action"), row, now_us)
            elif channel == "trades":
                for row in rows:
                    self._handle_trade(state, row, now_us)

    def _handle_event(self, msg: dict[str, Any]) -> None:
        event = msg["event"]
        code = str(msg.get("code", ""))
        if event == "notice" and code == SERVICE_UPGRADE_CODE:
            self.forced_reason = "service upgrade notice"
        elif event == "error":
            req_id = msg.get("id")
            if code in RATE_LIMITED_CODES:
                RATE_LIMITED.labels(self.venue).inc()
                frame = self._requests.get(str(req_id)) if req_id is not None else None
                frames = [frame] if frame is not None else self.subscribe_frames()
                for f in frames:
                    self._send(f, RATE_LIMIT_RETRY)
            else:
                DROPPED.labels(self.venue, "rejected").inc()
                logger.error("! okx error %s: %.100s", code, msg.get("msg"), extra={"action": "rejected"})

    def _handle_book(self, state: BookState, action: object, row: Any, now_us: int) -> None:
        book = state.book
        asks = parse_levels(row["asks"])
        bids = parse_levels(row["bids"])
        seq = _opt_seq(row.get("seqId"))
        prev = _opt_seq(row.get("prevSeqId"))
        exchange_ts = ms_to_us(row["ts"])
        if action == "snapshot":
            book.load(bids, asks)
        elif action == "update":
            if not state.synced:
                return  # in flight from before a resync; wait for the next snapshot
            if prev is not None and book.sequence is not None and prev != book.sequence:
                raise SequenceGap(self.venue, state.venue_symbol, book.sequence, prev)
            book.apply(bids, asks)
        else:
            raise MalformedMessage("okx", "action must be snapshot or update")
        book.sequence = seq
        book.exchange_ts = exchange_ts
        checksum = row.get("checksum", 0)
        if isinstance(checksum, bool) or not isinstance(checksum, int):
            raise MalformedMessage("okx", "checksum must be an integer")
        if checksum != 0:
            computed = okx_checksum(book)
            if computed != checksum:
                raise ChecksumMismatch(self.venue, state.venue_symbol, checksum, computed)
            self.checksums_verified += 1
            CHECKSUMS_VERIFIED.labels(self.venue).inc()
        if action == "snapshot":
            state.synced = True
            self._emit(self._snapshot_event(state, now_us))
            return
        self._emit(
            BookUpdate(
                venue=self.venue,
                symbol=state.symbol,
                venue_symbol=state.venue_symbol,
                bids=tuple(bids),
                asks=tuple(asks),
                sequence=seq,
                prev_sequence=prev,
                exchange_ts=exchange_ts,
                receive_ts=now_us,
            )
        )

    def _handle_trade(self, state: BookState, row: Any, now_us: int) -> None:
        trade_id = self._trade_id(row["tradeId"], "tradeId")
        self._emit(
            Trade(
                venue=self.venue,
                symbol=state.symbol,
                venue_symbol=state.venue_symbol,
                trade_id=trade_id,
                price=decimal_from_wire(row["px"], field="px"),
                size=decimal_from_wire(row["sz"], field="sz"),
                side={"buy": Side.BUY, "sell": Side.SELL}.get(row.get("side")),
                exchange_ts=ms_to_us(row["ts"]),
                receive_ts=now_us,
            )
        )
