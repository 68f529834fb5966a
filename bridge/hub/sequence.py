"""Gap decisions for durable channels: what a node does with each publication it receives.

Pure and I/O-free; :mod:`bridge.hub.repair` is the shell that reads the store and delivers. Per
durable channel a node serves it keeps a :class:`Cursor`: the epoch and the last offset it delivered
to its local subscribers. Redis is only a notification path, so a publication may come late, twice,
out of order or never; the store (PostgreSQL) holds every offset with no hole, so each case has one
answer:

- offset = last + 1: deliver;
- offset > last + 1: a gap; hold it, read ``last+1 .. offset-1`` from the store, deliver those in
  order, then what was held;
- offset <= last: a duplicate (Redis and a fill both brought it); drop;
- another epoch: the channel was reset; its old offsets mean nothing (docs/protocol.md).

A periodic check compares the store's top offset with ``last``. A publication in flight through
Redis is normal for a few milliseconds, so a gap seen by the check is filled only if it is still
there at the next check (:func:`check`), unless Redis is known to have lost messages (``lost``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Check", "Cursor", "Verdict", "check", "classify", "held_in_order"]

T = TypeVar("T")


class Verdict(enum.Enum):
    DELIVER = "deliver"  # the next offset: deliver, advance
    PASS = "pass"  # position not known yet (the channel's first subscriber is recovering): deliver
    DUPLICATE = "duplicate"  # at or below what was delivered: drop
    HOLD = "hold"  # a fill is running: keep it until the fill is done
    GAP = "gap"  # offsets are missing before it: hold it and fill from the store
    RESET = "reset"  # another epoch: the channel's history was reset


class Check(enum.Enum):
    OK = "ok"
    WATCH = "watch"  # behind the store, maybe only by what is in flight: look again next time
    FILL = "fill"  # behind the store for two checks in a row (or after a Redis loss): fill now
    RESET = "reset"


@dataclass(slots=True)
class Cursor(Generic[T]):
    """What one node delivered on one durable channel."""

    epoch: str | None = None
    #: Last offset delivered to local subscribers; None until the channel's position is read.
    last: int | None = None
    #: A fill from the store is running; publications wait in ``held``.
    filling: bool = False
    held: list[tuple[int, T]] = field(default_factory=list)
    #: The highest offset known to exist in the store (a fill reads up to it).
    want: int = 0
    #: Highest offset passed through before the position was known (PASS).
    seen: int = 0
    #: The store's top offset at the previous check, while we were behind it (see :func:`check`).
    suspect: int = 0


def classify(cursor: Cursor[T], epoch: str, offset: int) -> Verdict:
    """The decision for one publication received on ``cursor``'s channel."""
    if cursor.last is None:
        return Verdict.PASS
    if cursor.epoch is not None and epoch != cursor.epoch:
        return Verdict.RESET
    if offset <= cursor.last:
        return Verdict.DUPLICATE
    if cursor.filling:
        return Verdict.HOLD
    if offset == cursor.last + 1:
        return Verdict.DELIVER
    return Verdict.GAP


def check(cursor: Cursor[T], epoch: str, top: int, *, lost: bool) -> Check:
    """The periodic (or after-reconnect) comparison with the store's ``(epoch, top)``.

    ``lost``: Redis is down or just came back, so publications were certainly lost: fill at once.
    Otherwise fill only what was already missing at the previous check, so that a publication
    still in flight through Redis (milliseconds) is not read from the store for nothing."""
    if cursor.last is None or cursor.filling:
        return Check.OK
    if cursor.epoch is not None and epoch != cursor.epoch:
        return Check.RESET
    if top <= cursor.last:
        cursor.suspect = 0
        return Check.OK
    if lost or (cursor.suspect and cursor.last < cursor.suspect):
        cursor.suspect = 0
        return Check.FILL
    cursor.suspect = top
    return Check.WATCH


def held_in_order(cursor: Cursor[T]) -> list[tuple[int, T]]:
    """Take the held publications, sorted by offset, duplicates (same offset twice) removed."""
    items = sorted(cursor.held, key=lambda item: item[0])
    cursor.held = []
    out: list[tuple[int, T]] = []
    for item in items:
        if out and out[-1][0] == item[0]:
            continue
        out.append(item)
    return out
