"""Mapping between venue symbols and canonical ``BASE-QUOTE`` symbols.

Canonical symbols are upper case ``BASE-QUOTE`` (``BTC-USDT``); derivatives keep the venue's suffix
(``BTC-USD-220527``). Each venue spells them differently: Binance and Bybit glue base and quote
(``BTCUSDT``), Kraken v1 uses ``XBT/USD``, Coinbase and OKX already use ``BTC-USD``.
"""

from __future__ import annotations

import re

__all__ = [
    "KNOWN_QUOTES",
    "SymbolError",
    "to_canonical",
    "to_venue",
]

#: Quote assets recognised when splitting glued symbols, longest match wins.
KNOWN_QUOTES: tuple[str, ...] = (
    "FDUSD",
    "USDT",
    "USDC",
    "BUSD",
    "TUSD",
    "USDE",
    "DAI",
    "USD",
    "EUR",
    "GBP",
    "TRY",
    "BRL",
    "JPY",
    "AUD",
    "CHF",
    "CAD",
    "BTC",
    "ETH",
    "BNB",
    "XBT",
    "SOL",
    "DOGE",
)

_GLUED = re.compile(r"^[A-Z0-9]{2,30}$")
_CANONICAL = re.compile(r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}(-[A-Z0-9]{1,20})?$")
_KRAKEN = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$")
_KRAKEN_ALIASES = {"XBT": "BTC", "XDG": "DOGE"}
_KRAKEN_REVERSE = {v: k for k, v in _KRAKEN_ALIASES.items()}


class SymbolError(ValueError):
    """A symbol cannot be mapped for the venue."""


def _split_glued(symbol: str) -> tuple[str, str]:
    for quote in sorted(KNOWN_QUOTES, key=len, reverse=True):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise SymbolError(f"cannot split {symbol!r} into base and quote")


def to_canonical(venue: str, venue_symbol: str) -> str:
    """Canonical ``BASE-QUOTE`` for a venue's symbol.

    Raises:
        SymbolError: the symbol does not have the venue's shape.
    """
    sym = venue_symbol.upper()
    if venue in ("binance", "bybit"):
        if not _GLUED.match(sym):
            raise SymbolError(f"{venue}: bad symbol {venue_symbol!r}")
        base, quote = _split_glued(sym)
        return f"{base}-{quote}"
    if venue == "kraken":
        if not _KRAKEN.match(sym):
            raise SymbolError(f"kraken: bad pair {venue_symbol!r}")
        base, quote = sym.split("/")
        return f"{_KRAKEN_ALIASES.get(base, base)}-{_KRAKEN_ALIASES.get(quote, quote)}"
    if venue in ("coinbase", "okx"):
        if not _CANONICAL.match(sym):
            raise SymbolError(f"{venue}: bad symbol {venue_symbol!r}")
        return sym
    raise SymbolError(f"unknown venue {venue!r}")


def to_venue(venue: str, symbol: str) -> str:
    """The venue's spelling of ``symbol``, which may be canonical or already the venue's form."""
    sym = symbol.upper().strip()
    if venue in ("binance", "bybit"):
        if _CANONICAL.match(sym):
            parts = sym.split("-")
            if len(parts) != 2:
                raise SymbolError(f"{venue}: derivative suffixes are not supported: {symbol!r}")
            sym = "".join(parts)
        to_canonical(venue, sym)
        return sym
    if venue == "kraken":
        if _CANONICAL.match(sym) and sym.count("-") == 1:
            base, quote = sym.split("-")
            sym = f"{_KRAKEN_REVERSE.get(base, base)}/{_KRAKEN_REVERSE.get(quote, quote)}"
        to_canonical(venue, sym)
        return sym
    if venue in ("coinbase", "okx"):
        to_canonical(venue, sym)
        return sym
    raise SymbolError(f"unknown venue {venue!r}")
