"""Adapter interface: the publishing sink, per-venue configuration and the sans-I/O venue protocol.

A :class:`VenueProtocol` is one venue connection's logic with no sockets and no clock: the I/O shell
(:mod:`bridge.marketdata.connection`) feeds it frames with :meth:`VenueProtocol.receive` and REST
bodies with :meth:`VenueProtocol.receive_snapshot`, then drains :meth:`events_received`,
:meth:`data_to_send` and :meth:`snapshots_wanted`. That keeps subscribe/ack handling, sequencing,
checksums and resync decisions testable without a network.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from bridge.marketdata.books import OrderBook
from bridge.marketdata.exceptions import BookOutOfSync, MalformedMessage
from bridge.marketdata.metrics import DROPPED, MESSAGES, RESYNCS
from bridge.marketdata.models import BookSnapshot, BookStatus, Level, MarketEvent, decimal_from_wire
from bridge.marketdata.symbols import to_canonical, to_venue

__all__ = [
    "DEFAULT_DEPTH_LEVELS",
    "AdapterConfig",
    "BookState",
    "LevelRows",
    "Sink",
    "VenueLimits",
    "VenueProtocol",
]

logger = logging.getLogger("mtbridge.marketdata")

#: Levels per side published on ``instrument:<symbol>:depth``.
DEFAULT_DEPTH_LEVELS = 20


@dataclass(frozen=True, slots=True)
class LevelRows:
    """How a venue writes book levels as ``[price, size, ...]`` rows, and the one rule every venue's
    rows obey: a list of at most ``max_rows`` rows, a positive price, a non-negative size (0 deletes)."""

    venue: str
    max_rows: int
    min_len: int
    max_len: int
    #: The row's shape as the error message shows it, e.g. ``[price, qty]``.
    shape: str
    price_field: str
    size_field: str
    #: The size's name in the error message (``quantity``, ``size``, ``volume``).
    size_word: str

    def parse(self, raw: Any) -> list[Level]:
        if not isinstance(raw, list) or len(raw) > self.max_rows:
            raise MalformedMessage(self.venue, "levels must be a list")
        levels = []
        for item in raw:
            if not isinstance(item, list) or not self.min_len <= len(item) <= self.max_len:
                raise MalformedMessage(self.venue, f"level must be {self.shape}")
            price = decimal_from_wire(item[0], field=self.price_field)
            size = decimal_from_wire(item[1], field=self.size_field)
            if price <= 0 or size < 0:
                raise MalformedMessage(self.venue, f"negative price or {self.size_word}")
            levels.append((price, size))
        return levels


@runtime_checkable
class Sink(Protocol):
    """Where adapters push normalised data.

    Contract: called from one task per adapter connection, in the order the venue produced the data
    for each symbol; ``key`` names the coalescing slot (the latest payload per ``(channel, key)`` is
    the one that matters; ``None`` means every payload matters). Implementations must not block for
    long: a slow sink slows the venue read loop, which the venue may punish with a disconnect.
    """

    async def publish(self, channel: str, payload: dict[str, object], key: str | None) -> None: ...


@dataclass(frozen=True, kw_only=True)
class VenueLimits:
    """A venue's documented connection limits, as enforced by the shell."""

    #: Symbols multiplexed on one connection (derived from streams/channels per connection).
    symbols_per_connection: int
    #: Outgoing messages per second per connection (subscribe, unsubscribe, JSON pings).
    messages_per_second: float
    #: Minimum seconds between two connection attempts to the venue (per adapter).
    connect_interval: float
    #: Seconds after which the venue drops a connection; we reconnect shortly before (None: no cap).
    max_connection_age: float | None = None


@dataclass(frozen=True, kw_only=True)
class AdapterConfig:
    """One adapter: a venue, its symbols and where to reach it.

    ``symbols`` may be canonical (``BTC-USDT``) or the venue's spelling. ``ws_url``/``rest_url``
    override the production endpoints (testnets, local fakes). ``None`` limits use the venue's
    documented defaults.
    """

    venue: str
    symbols: tuple[str, ...]
    ws_url: str | None = None
    rest_url: str | None = None
    depth: int | None = None
    depth_levels: int = DEFAULT_DEPTH_LEVELS
    limits: VenueLimits | None = None
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    idle_timeout: float = 60.0
    #: Seconds a standby connection gets to sync before a forced reconnect gives up on it.
    standby_timeout: float = 60.0
    rest_timeout: float = 10.0
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class BookState:
    """One symbol's local book and whether it is currently trustworthy."""

    venue_symbol: str
    symbol: str
    book: OrderBook = field(default_factory=OrderBook)
    synced: bool = False


class VenueProtocol(abc.ABC):
    """Sans-I/O logic of one venue connection carrying ``symbols`` (venue spelling).

    Subclasses implement :meth:`subscribe_frames` and :meth:`_handle`; on a detected gap or checksum
    mismatch they raise :class:`BookOutOfSync` (the base class counts it, publishes a ``resyncing``
    status and calls :meth:`_resync`).
    """

    venue: str = ""
    #: Interval of the application-level keepalive the venue wants from the client (None: none).
    keepalive_interval: float | None = None
    #: Whether the websockets library should send RFC 6455 pings (off where they count as messages).
    protocol_pings: bool = True

    def __init__(self, symbols: Sequence[str], config: AdapterConfig, *, now_us: int = 0) -> None:
        self.config = config
        self.books: dict[str, BookState] = {}
        for sym in symbols:
            vs = to_venue(self.venue, sym)
            self.books[vs] = BookState(venue_symbol=vs, symbol=to_canonical(self.venue, vs))
        self._events: list[MarketEvent] = []
        self._frames: list[tuple[float, str]] = []
        self._snapshots: list[str] = []
        self.forced_reason: str | None = None
        self.checksums_verified = 0
        self._messages_counter = MESSAGES.labels(self.venue)

    # -- interface used by the shell -------------------------------------------------------------
    @abc.abstractmethod
    def url(self) -> str:
        """The WebSocket URL to connect to."""

    @abc.abstractmethod
    def subscribe_frames(self) -> list[str]:
        """Frames to send right after connecting, in order."""

    def keepalive_frame(self) -> str | None:
        """Application-level ping frame, sent every :attr:`keepalive_interval` seconds."""
        return None

    def receive(self, data: str | bytes, now_us: int) -> None:
        """Feed one received frame. Malformed frames are counted and dropped, never raised."""
        self._messages_counter.inc()
        try:
            self._handle(data, now_us)
        except BookOutOfSync as exc:
            self._out_of_sync(exc, now_us)
        except MalformedMessage as exc:
            DROPPED.labels(self.venue, "malformed").inc()
            logger.warning("! %s", exc, extra={"action": "drop", "venue": self.venue})

    def snapshot_url(self, venue_symbol: str) -> str:
        """REST URL of the book snapshot for venues that sync from one."""
        raise NotImplementedError(f"{self.venue} has no REST snapshots")

    def receive_snapshot(self, venue_symbol: str, body: bytes, now_us: int) -> None:
        """Feed a REST snapshot body requested through :meth:`snapshots_wanted`."""
        raise NotImplementedError(f"{self.venue} has no REST snapshots")

    def events_received(self) -> list[MarketEvent]:
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[tuple[float, str]]:
        """Frames to send as ``(delay_seconds, text)``; a delay defers a retry after a rate limit."""
        frames, self._frames = self._frames, []
        return frames

    def snapshots_wanted(self) -> list[str]:
        """Venue symbols whose REST snapshot the shell must fetch and pass to receive_snapshot()."""
        wanted, self._snapshots = self._snapshots, []
        return wanted

    def synced(self) -> bool:
        return all(state.synced for state in self.books.values())

    def snapshot_events(self, now_us: int) -> list[BookSnapshot]:
        """Current synced books as snapshots (published when a standby connection takes over)."""
        return [self._snapshot_event(state, now_us) for state in self.books.values() if state.synced]

    def mark_all_stale(self, reason: str, now_us: int) -> list[BookStatus]:
        """The connection is gone: every book stops being trustworthy until resynced."""
        statuses = []
        for state in self.books.values():
            if state.synced:
                statuses.append(self._status(state, reason, now_us))
            state.synced = False
            state.book.clear()
        return statuses

    # -- helpers for subclasses -----------------------------------------------------------------
    @abc.abstractmethod
    def _handle(self, data: str | bytes, now_us: int) -> None: ...

    @abc.abstractmethod
    def _resync(self, state: BookState) -> None:
        """Start the venue's resync procedure for one book (resubscribe, or fetch a REST snapshot)."""

    def _send(self, frame: str, delay: float = 0.0) -> None:
        self._frames.append((delay, frame))

    def _emit(self, event: MarketEvent) -> None:
        self._events.append(event)

    def _trade_id(self, value: object, field: str) -> str:
        """A venue's trade id: a string of 1 to 64 characters, as the ``trade`` payload carries it."""
        if not isinstance(value, str) or not 0 < len(value) <= 64:
            raise MalformedMessage(self.venue, f"{field} must be a short string")
        return value

    def _status(self, state: BookState, reason: str, now_us: int) -> BookStatus:
        return BookStatus(
            venue=self.venue,
            symbol=state.symbol,
            venue_symbol=state.venue_symbol,
            state="resyncing",
            reason=reason,
            receive_ts=now_us,
        )

    def _snapshot_event(self, state: BookState, now_us: int) -> BookSnapshot:
        book = state.book
        return BookSnapshot(
            venue=self.venue,
            symbol=state.symbol,
            venue_symbol=state.venue_symbol,
            bids=tuple(book.bids()),
            asks=tuple(book.asks()),
            sequence=book.sequence,
            exchange_ts=book.exchange_ts,
            receive_ts=now_us,
        )

    def _out_of_sync(self, exc: BookOutOfSync, now_us: int) -> None:
        state = self.books.get(exc.symbol)
        if state is None:
            return
        RESYNCS.labels(self.venue, exc.reason).inc()
        logger.warning("! %s: resync", exc, extra={"action": "resync", "venue": self.venue})
        if state.synced:
            self._emit(self._status(state, exc.reason, now_us))
        state.synced = False
        state.book.clear()
        self._resync(state)
