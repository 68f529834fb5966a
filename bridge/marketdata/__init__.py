"""Market data: venue adapters normalised onto ``instrument:`` channels (see docs/marketdata.md)."""

from __future__ import annotations

from bridge.marketdata.base import AdapterConfig, BookState, Sink, VenueLimits, VenueProtocol
from bridge.marketdata.books import OrderBook, kraken_checksum, okx_checksum
from bridge.marketdata.connection import VENUES, Adapter
from bridge.marketdata.models import BookSnapshot, BookStatus, BookUpdate, Side, TopOfBook, Trade
from bridge.marketdata.publish import Publisher, channel

__all__ = [
    "VENUES",
    "Adapter",
    "AdapterConfig",
    "BookSnapshot",
    "BookState",
    "BookStatus",
    "BookUpdate",
    "OrderBook",
    "Publisher",
    "Side",
    "Sink",
    "TopOfBook",
    "Trade",
    "VenueLimits",
    "VenueProtocol",
    "channel",
    "kraken_checksum",
    "okx_checksum",
]
