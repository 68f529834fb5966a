"""Turn normalised events into ``instrument:`` channel publications.

Channels (see docs/marketdata.md):

- ``instrument:<SYMBOL>:trades``: one payload per trade, ``key`` None (no coalescing).
- ``instrument:<SYMBOL>:top``: best bid/ask when it changes, ``key`` = venue.
- ``instrument:<SYMBOL>:depth``: the top N levels per side after each applied book change (or a
  ``resyncing`` status), ``key`` = venue. Every depth payload is a complete picture, so a hub that
  coalesces slow subscribers to the latest payload per key never leaves them with a broken book.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bridge.marketdata.base import DEFAULT_DEPTH_LEVELS, BookState, Sink
from bridge.marketdata.metrics import PUBLISHED
from bridge.marketdata.models import (
    BookSnapshot,
    BookStatus,
    BookUpdate,
    Level,
    MarketEvent,
    TopOfBook,
    Trade,
)

__all__ = ["Publisher", "channel"]


def channel(symbol: str, kind: str) -> str:
    """``instrument:<canonical symbol>:<kind>`` with kind trades, top or depth."""
    return f"instrument:{symbol}:{kind}"


class Publisher:
    """Publishes one adapter's events; remembers the last top of book to publish only changes."""

    def __init__(self, sink: Sink, venue: str, depth_levels: int = DEFAULT_DEPTH_LEVELS) -> None:
        self.sink = sink
        self.venue = venue
        self.depth_levels = depth_levels
        self._last_top: dict[str, tuple[Level | None, Level | None]] = {}
        self.published = 0
        self.normalised = 0
        self._counters: dict[str, Any] = {}

    async def publish(
        self, events: Iterable[MarketEvent], books: Mapping[str, BookState], now_us: int
    ) -> None:
        dirty: dict[str, None] = {}
        for event in events:
            self.normalised += 1
            if isinstance(event, Trade):
                await self._send(channel(event.symbol, "trades"), event.to_payload(), None, "trade")
            elif isinstance(event, BookStatus):
                dirty.pop(event.venue_symbol, None)
                self._last_top.pop(event.venue_symbol, None)
                await self._send(channel(event.symbol, "depth"), event.to_payload(), self.venue, "status")
            elif isinstance(event, BookSnapshot | BookUpdate):
                dirty[event.venue_symbol] = None
        for venue_symbol in dirty:
            state = books.get(venue_symbol)
            if state is not None and state.synced:
                await self.publish_book(state, now_us)

    async def publish_book(self, state: BookState, now_us: int) -> None:
        book = state.book
        snapshot = BookSnapshot(
            venue=self.venue,
            symbol=state.symbol,
            venue_symbol=state.venue_symbol,
            bids=tuple(book.bids(self.depth_levels)),
            asks=tuple(book.asks(self.depth_levels)),
            sequence=book.sequence,
            exchange_ts=book.exchange_ts,
            receive_ts=now_us,
        )
        await self._send(channel(state.symbol, "depth"), snapshot.to_payload(), self.venue, "depth")
        best = (book.best_bid(), book.best_ask())
        if self._last_top.get(state.venue_symbol) != best:
            self._last_top[state.venue_symbol] = best
            bid, ask = best
            top = TopOfBook(
                venue=self.venue,
                symbol=state.symbol,
                bid_price=bid[0] if bid else None,
                bid_size=bid[1] if bid else None,
                ask_price=ask[0] if ask else None,
                ask_size=ask[1] if ask else None,
                exchange_ts=book.exchange_ts,
                receive_ts=now_us,
            )
            await self._send(channel(state.symbol, "top"), top.to_payload(), self.venue, "top")

    async def _send(self, chan: str, payload: dict[str, object], key: str | None, kind: str) -> None:
        await self.sink.publish(chan, payload, key)
        self.published += 1
        counter = self._counters.get(kind)
        if counter is None:
            counter = self._counters[kind] = PUBLISHED.labels(self.venue, kind)
        counter.inc()
