"""A sorted price-level order book and the venues' book checksums. Pure: no I/O, no clock.

Sizes are absolute: applying size 0 removes the level, any other size inserts or replaces it. The
stored Decimals keep the venue's exponent (``Decimal("0.05000")`` stays ``0.05000``), so checksums that
hash the wire strings (Kraken v1, OKX) can be recomputed from the book.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from decimal import Decimal

from sortedcontainers import SortedDict

from bridge.marketdata.models import Level, format_decimal

__all__ = [
    "KRAKEN_CHECKSUM_LEVELS",
    "OKX_CHECKSUM_LEVELS",
    "OrderBook",
    "kraken_checksum",
    "okx_checksum",
]

KRAKEN_CHECKSUM_LEVELS = 10
OKX_CHECKSUM_LEVELS = 25
_ZERO = Decimal(0)


class OrderBook:
    """Two sorted sides keyed by price; ``bids`` best (highest) first, ``asks`` best (lowest) first."""

    __slots__ = ("_asks", "_bids", "exchange_ts", "sequence")

    def __init__(self) -> None:
        # Bids are keyed by the negated price so both sides iterate best-first.
        self._bids: SortedDict[Decimal, Level] = SortedDict()
        self._asks: SortedDict[Decimal, Level] = SortedDict()
        self.sequence: int | None = None
        self.exchange_ts: int | None = None

    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()
        self.sequence = None
        self.exchange_ts = None

    def load(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Replace the whole book (a snapshot). Zero-size levels in a snapshot are ignored."""
        self._bids.clear()
        self._asks.clear()
        for price, size in bids:
            if size != _ZERO:
                self._bids[-price] = (price, size)
        for price, size in asks:
            if size != _ZERO:
                self._asks[price] = (price, size)

    def set_bid(self, price: Decimal, size: Decimal) -> None:
        if size == _ZERO:
            self._bids.pop(-price, None)
        else:
            self._bids[-price] = (price, size)

    def set_ask(self, price: Decimal, size: Decimal) -> None:
        if size == _ZERO:
            self._asks.pop(price, None)
        else:
            self._asks[price] = (price, size)

    def apply(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        for price, size in bids:
            self.set_bid(price, size)
        for price, size in asks:
            self.set_ask(price, size)

    def truncate(self, depth: int) -> None:
        """Keep the best ``depth`` levels per side (Kraken: levels falling out of scope get no delete)."""
        while len(self._bids) > depth:
            self._bids.popitem(-1)
        while len(self._asks) > depth:
            self._asks.popitem(-1)

    def bids(self, n: int | None = None) -> list[Level]:
        values = self._bids.values()
        return list(values if n is None else values[:n])

    def asks(self, n: int | None = None) -> list[Level]:
        values = self._asks.values()
        return list(values if n is None else values[:n])

    def best_bid(self) -> Level | None:
        return self._bids.peekitem(0)[1] if self._bids else None

    def best_ask(self) -> Level | None:
        return self._asks.peekitem(0)[1] if self._asks else None

    def __len__(self) -> int:
        return len(self._bids) + len(self._asks)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OrderBook):
            return NotImplemented
        return self.bids() == other.bids() and self.asks() == other.asks()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"OrderBook(bids={len(self._bids)}, asks={len(self._asks)}, sequence={self.sequence})"


def _kraken_digits(value: Decimal) -> str:
    return format_decimal(value).replace(".", "").lstrip("0")


def kraken_checksum(book: OrderBook) -> int:
    """Kraken v1 book checksum: CRC32 of the top 10 asks (ascending) then top 10 bids (descending).

    Each level contributes its price then its size as the wire string without the decimal point and
    without leading zeros. https://docs.kraken.com/api/docs/guides/spot-ws-book-v1
    """
    parts = [
        _kraken_digits(price) + _kraken_digits(size)
        for price, size in (*book.asks(KRAKEN_CHECKSUM_LEVELS), *book.bids(KRAKEN_CHECKSUM_LEVELS))
    ]
    return zlib.crc32("".join(parts).encode("ascii"))


def okx_checksum(book: OrderBook) -> int:
    """OKX legacy book checksum (signed CRC32), still sent non-zero by pre-2026 sessions.

    The top 25 bids and asks are interleaved ``bid1:ask1:bid2:ask2...`` (the longer side's rest
    appended), each level as ``price:size`` with the strings received.
    """
    bids = book.bids(OKX_CHECKSUM_LEVELS)
    asks = book.asks(OKX_CHECKSUM_LEVELS)
    fields: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            fields += (format_decimal(bids[i][0]), format_decimal(bids[i][1]))
        if i < len(asks):
            fields += (format_decimal(asks[i][0]), format_decimal(asks[i][1]))
    value = zlib.crc32(":".join(fields).encode("ascii"))
    return value - (1 << 32) if value >= 1 << 31 else value
