"""Exceptions raised by the market-data package.

Tree::

    MarketDataError
    ├── MalformedMessage        a venue frame has the wrong shape or types (untrusted input)
    ├── BookOutOfSync           the local book can no longer be trusted -> resync
    │   ├── SequenceGap         a sequence number was skipped
    │   └── ChecksumMismatch    the venue's checksum disagrees with the local book
    ├── SubscriptionRejected    the venue refused a subscription (not retryable)
    ├── RateLimited             the venue refused a request for rate reasons (retry later)
    └── ForcedReconnect         the venue announced it will drop the connection

Each venue module has a ``map_<venue>_errors()`` context manager that turns parsing errors
(``KeyError``, ``TypeError``...) into :class:`MalformedMessage` with ``raise ... from exc``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from bridge.marketdata.models import PayloadError
from bridge.marketdata.symbols import SymbolError

__all__ = [
    "BookOutOfSync",
    "ChecksumMismatch",
    "ForcedReconnect",
    "MalformedMessage",
    "MarketDataError",
    "RateLimited",
    "SequenceGap",
    "SubscriptionRejected",
    "map_parse_errors",
]


class MarketDataError(Exception):
    """Base class of every market-data error."""


class MalformedMessage(MarketDataError):
    def __init__(self, venue: str, detail: str) -> None:
        super().__init__(f"{venue}: malformed message: {detail}")
        self.venue = venue
        self.detail = detail


class BookOutOfSync(MarketDataError):
    def __init__(self, venue: str, symbol: str, reason: str) -> None:
        super().__init__(f"{venue} {symbol}: {reason}")
        self.venue = venue
        self.symbol = symbol
        self.reason = reason


class SequenceGap(BookOutOfSync):
    def __init__(self, venue: str, symbol: str, expected: int, got: int) -> None:
        super().__init__(venue, symbol, "gap")
        self.expected = expected
        self.got = got


class ChecksumMismatch(BookOutOfSync):
    def __init__(self, venue: str, symbol: str, expected: int, computed: int) -> None:
        super().__init__(venue, symbol, "checksum")
        self.expected = expected
        self.computed = computed


class SubscriptionRejected(MarketDataError):
    def __init__(self, venue: str, detail: str) -> None:
        super().__init__(f"{venue}: subscription rejected: {detail}")
        self.venue = venue
        self.detail = detail


class RateLimited(MarketDataError):
    def __init__(self, venue: str, retry_after: float | None) -> None:
        super().__init__(f"{venue}: rate limited (retry after {retry_after})")
        self.venue = venue
        self.retry_after = retry_after


class ForcedReconnect(MarketDataError):
    def __init__(self, venue: str, reason: str) -> None:
        super().__init__(f"{venue}: forced reconnect: {reason}")
        self.venue = venue
        self.reason = reason


@contextlib.contextmanager
def map_parse_errors(venue: str) -> Iterator[None]:
    """Translate the errors that walking an untrusted JSON tree can raise into MalformedMessage."""
    try:
        yield
    except MarketDataError:
        raise
    except (PayloadError, SymbolError) as exc:
        raise MalformedMessage(venue, str(exc)) from exc
    except (KeyError, IndexError) as exc:
        raise MalformedMessage(venue, f"missing field {exc}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise MalformedMessage(venue, type(exc).__name__) from exc
