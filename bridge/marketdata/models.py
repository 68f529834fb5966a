"""Normalised market-data models shared by every venue adapter.

Prices and sizes are :class:`~decimal.Decimal` built from the venue's own strings, so nothing is lost
to binary floating point and checksums can be recomputed from the stored values. Timestamps are integer
microseconds since the Unix epoch: ``exchange_ts`` is the venue's event time (``None`` when the venue
sends none) and ``receive_ts`` is our clock when the frame arrived.

Payloads (the JSON objects published on ``instrument:`` channels) carry decimals as strings.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "MAX_PAYLOAD_LEVELS",
    "BookSnapshot",
    "BookStatus",
    "BookUpdate",
    "Level",
    "MarketEvent",
    "PayloadError",
    "Side",
    "TopOfBook",
    "Trade",
    "decimal_from_wire",
    "format_decimal",
    "top_from_payload",
]

#: Upper bound on levels per side accepted from a payload (EAs publishing ticks, tests).
MAX_PAYLOAD_LEVELS = 1000

#: A price level: ``(price, size)``. Size ``0`` in an update removes the level.
Level = tuple[Decimal, Decimal]


class PayloadError(ValueError):
    """A payload or venue field has the wrong shape, type or value."""


class Side(enum.StrEnum):
    """Taker side of a trade."""

    BUY = "buy"
    SELL = "sell"


def decimal_from_wire(value: object, *, field: str = "value") -> Decimal:
    """Parse a venue number given as a string (or int) into a finite Decimal.

    Floats are refused: every supported venue sends prices as strings, and a float here means
    precision was already lost upstream.
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PayloadError(f"{field}: expected a decimal string")
    if isinstance(value, str) and (not value or len(value) > 64):
        raise PayloadError(f"{field}: bad length")
    try:
        result = Decimal(value)
    except (InvalidOperation, ValueError) as exc:
        raise PayloadError(f"{field}: not a decimal") from exc
    if not result.is_finite():
        raise PayloadError(f"{field}: not finite")
    return result


def format_decimal(value: Decimal) -> str:
    """Render without scientific notation, keeping the venue's trailing zeros."""
    return format(value, "f")


def _levels_payload(levels: Sequence[Level]) -> list[list[str]]:
    return [[format_decimal(p), format_decimal(s)] for p, s in levels]


@dataclass(frozen=True, slots=True, kw_only=True)
class Trade:
    """One executed trade as reported by a venue."""

    venue: str
    symbol: str
    venue_symbol: str
    trade_id: str
    price: Decimal
    size: Decimal
    side: Side | None
    exchange_ts: int | None
    receive_ts: int

    def to_payload(self) -> dict[str, object]:
        return {
            "kind": "trade",
            "venue": self.venue,
            "symbol": self.symbol,
            "venueSymbol": self.venue_symbol,
            "tradeId": self.trade_id,
            "price": format_decimal(self.price),
            "size": format_decimal(self.size),
            "side": self.side.value if self.side is not None else None,
            "exchangeTs": self.exchange_ts,
            "receiveTs": self.receive_ts,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class BookSnapshot:
    """Full (or top-N) state of one book; bids best first (descending), asks best first (ascending)."""

    venue: str
    symbol: str
    venue_symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    sequence: int | None
    exchange_ts: int | None
    receive_ts: int

    def to_payload(self) -> dict[str, object]:
        return {
            "kind": "depth",
            "venue": self.venue,
            "symbol": self.symbol,
            "venueSymbol": self.venue_symbol,
            "state": "live",
            "bids": _levels_payload(self.bids),
            "asks": _levels_payload(self.asks),
            "sequence": self.sequence,
            "exchangeTs": self.exchange_ts,
            "receiveTs": self.receive_ts,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class BookUpdate:
    """Changed levels of one book (absolute sizes; size 0 deletes the level)."""

    venue: str
    symbol: str
    venue_symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    sequence: int | None
    prev_sequence: int | None
    exchange_ts: int | None
    receive_ts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BookStatus:
    """A book went out of sync (``resyncing``) and must not be trusted until the next snapshot."""

    venue: str
    symbol: str
    venue_symbol: str
    state: str
    reason: str
    receive_ts: int

    def to_payload(self) -> dict[str, object]:
        return {
            "kind": "depth",
            "venue": self.venue,
            "symbol": self.symbol,
            "venueSymbol": self.venue_symbol,
            "state": self.state,
            "reason": self.reason,
            "bids": [],
            "asks": [],
            "sequence": None,
            "exchangeTs": None,
            "receiveTs": self.receive_ts,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TopOfBook:
    """Best bid and ask; also the model an EA uses to publish its broker's MT5 ticks."""

    venue: str
    symbol: str
    bid_price: Decimal | None
    bid_size: Decimal | None
    ask_price: Decimal | None
    ask_size: Decimal | None
    exchange_ts: int | None
    receive_ts: int

    def to_payload(self) -> dict[str, object]:
        def fmt(value: Decimal | None) -> str | None:
            return None if value is None else format_decimal(value)

        return {
            "kind": "top",
            "venue": self.venue,
            "symbol": self.symbol,
            "bidPrice": fmt(self.bid_price),
            "bidSize": fmt(self.bid_size),
            "askPrice": fmt(self.ask_price),
            "askSize": fmt(self.ask_size),
            "exchangeTs": self.exchange_ts,
            "receiveTs": self.receive_ts,
        }


MarketEvent = Trade | BookSnapshot | BookUpdate | BookStatus

_TOP_FIELDS = frozenset(
    {"kind", "venue", "symbol", "bidPrice", "bidSize", "askPrice", "askSize", "exchangeTs", "receiveTs"}
)


def _opt_decimal(payload: Mapping[str, Any], name: str) -> Decimal | None:
    value = payload.get(name)
    if value is None:
        return None
    result = decimal_from_wire(value, field=name)
    if result < 0:
        raise PayloadError(f"{name}: negative")
    return result


def _opt_int(payload: Mapping[str, Any], name: str) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise PayloadError(f"{name}: expected a non-negative integer")
    return value


def _short_str(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise PayloadError(f"{name}: expected a string of 1..64 characters")
    return value


def top_from_payload(payload: Mapping[str, Any]) -> TopOfBook:
    """Validate an untrusted ``top`` payload (for example an EA's MT5 tick) and build the model.

    Raises:
        PayloadError: unknown fields, wrong types, negative or non-finite numbers.
    """
    extra = set(payload) - _TOP_FIELDS
    if extra:
        raise PayloadError(f"unknown fields: {sorted(extra)}")
    if payload.get("kind", "top") != "top":
        raise PayloadError("kind: expected 'top'")
    receive_ts = _opt_int(payload, "receiveTs")
    if receive_ts is None:
        raise PayloadError("receiveTs: required")
    return TopOfBook(
        venue=_short_str(payload, "venue"),
        symbol=_short_str(payload, "symbol"),
        bid_price=_opt_decimal(payload, "bidPrice"),
        bid_size=_opt_decimal(payload, "bidSize"),
        ask_price=_opt_decimal(payload, "askPrice"),
        ask_size=_opt_decimal(payload, "askSize"),
        exchange_ts=_opt_int(payload, "exchangeTs"),
        receive_ts=receive_ts,
    )
