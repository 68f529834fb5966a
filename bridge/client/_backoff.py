"""Reconnect delays: exponential backoff with full jitter.

The constants are module variables so tests and applications can override them (as with
``websockets``' ``BACKOFF_*``); :func:`backoff_delay` reads them at call time unless told otherwise.
Full jitter (a uniform draw between 0 and the exponential bound) spreads a crowd of clients that
lost the same hub, so they do not come back in one wave.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from bridge.protocol import codes

__all__ = [
    "BACKOFF_FACTOR",
    "BACKOFF_INITIAL_DELAY",
    "BACKOFF_MAX_DELAY",
    "MIN_DELAY_AFTER_RATE_LIMIT",
    "MIN_DELAY_AFTER_TOO_MANY_CONNECTIONS",
    "backoff_delay",
    "minimum_delay",
]

#: First bound of the exponential series (seconds), as in docs/protocol.md.
BACKOFF_INITIAL_DELAY = 0.5
#: Growth of the bound per failed attempt.
BACKOFF_FACTOR = 2.0
#: Largest bound (seconds).
BACKOFF_MAX_DELAY = 30.0
#: After a 4003 close the protocol asks for at least 5 s.
MIN_DELAY_AFTER_RATE_LIMIT = 5.0
#: After a 4007 close the protocol asks for at least 30 s.
MIN_DELAY_AFTER_TOO_MANY_CONNECTIONS = 30.0


def backoff_delay(
    attempt: int,
    *,
    rand: Callable[[], float] = random.random,
    initial: float | None = None,
    factor: float | None = None,
    cap: float | None = None,
) -> float:
    """Delay before retry ``attempt`` (0 = first): uniform in [0, min(cap, initial·factor^n)].

    Args:
        attempt: how many attempts already failed since the last good connection.
        rand: a source of floats in [0, 1); injectable for tests.
        initial, factor, cap: override the module constants.
    """
    initial = BACKOFF_INITIAL_DELAY if initial is None else initial
    factor = BACKOFF_FACTOR if factor is None else factor
    cap = BACKOFF_MAX_DELAY if cap is None else cap
    bound = cap
    if attempt < 64:  # beyond that the bound is the cap anyway; avoid float overflow
        bound = min(cap, initial * factor ** max(0, attempt))
    return bound * rand()


def minimum_delay(close_code: int | None) -> float:
    """The floor some close codes put under the jittered delay (docs/protocol.md, close codes)."""
    if close_code == codes.RATE_LIMITED.code:
        return MIN_DELAY_AFTER_RATE_LIMIT
    if close_code == codes.TOO_MANY_CONNECTIONS.code:
        return MIN_DELAY_AFTER_TOO_MANY_CONNECTIONS
    return 0.0
