"""Venue timestamp formats to integer microseconds since the Unix epoch. Pure."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from bridge.marketdata.models import PayloadError

__all__ = ["iso_to_us", "ms_to_us", "seconds_to_us"]

_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,12}))?(Z|[+-]\d{2}:?\d{2})?$")
_MAX_US = 2**62


def ms_to_us(value: object) -> int:
    """Milliseconds (int or digit string, Binance/Bybit/OKX) to microseconds."""
    if isinstance(value, bool):
        raise PayloadError("timestamp: expected milliseconds")
    if isinstance(value, str) and value.isdigit() and len(value) <= 16:
        value = int(value)
    if not isinstance(value, int) or not 0 <= value * 1000 < _MAX_US:
        raise PayloadError("timestamp: expected milliseconds")
    return value * 1000


def seconds_to_us(value: object) -> int:
    """Decimal seconds as a string (Kraken v1 ``"1618678142.557535"``) to microseconds."""
    if not isinstance(value, str) or not 0 < len(value) <= 32:
        raise PayloadError("timestamp: expected decimal seconds")
    try:
        seconds = Decimal(value)
    except InvalidOperation as exc:
        raise PayloadError("timestamp: expected decimal seconds") from exc
    if not seconds.is_finite() or not 0 <= seconds * 1_000_000 < _MAX_US:
        raise PayloadError("timestamp: out of range")
    return int(seconds * 1_000_000)


def iso_to_us(value: object) -> int:
    """ISO-8601 UTC time with up to nanosecond digits (Coinbase) to microseconds."""
    if not isinstance(value, str) or len(value) > 40:
        raise PayloadError("timestamp: expected ISO-8601")
    match = _ISO.match(value)
    if match is None:
        raise PayloadError("timestamp: expected ISO-8601")
    date, clock, fraction, zone = match.groups()
    if zone not in (None, "Z", "+00:00", "+0000", "-00:00"):
        raise PayloadError("timestamp: only UTC is accepted")
    try:
        moment = datetime.fromisoformat(f"{date}T{clock}").replace(tzinfo=UTC)
    except ValueError as exc:
        raise PayloadError("timestamp: invalid date") from exc
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    return int(moment.timestamp()) * 1_000_000 + micros
