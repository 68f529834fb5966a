"""The typed write operations of the SQL store: what :class:`~bridge.store.sql.SQLStore` queues for its
writer, one class per kind, each with its payload and its result type.

Lives here: the rows a write carries (:class:`AppendRow`, :class:`EventRow`, already serialised, so the
writer thread does no JSON work per call it could have done on the caller's side) and the operations
(:class:`Append`, :class:`Appends`, :class:`Events`, :class:`Record`, :class:`Status`, :class:`Call`),
joined in the tagged union :data:`Op`. Not here: how a batch of them is grouped and retried
(:mod:`bridge.store.writer`) or executed (:mod:`bridge.store.executor`).

Each operation is a ``slots`` dataclass, not a frozen one: its ``future`` (set by the writer when it is
queued, resolved after COMMIT) and its ``result`` (set by the executor inside the transaction, read by
the caller once the future is resolved) are filled in after it is built. ``size`` is what the operation
weighs against :data:`~bridge.store.writer.MAX_BATCH_ITEMS`; ``rows`` is how many requests a failure
refuses (what :class:`~bridge.store.outage.OutageLog` counts).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeAlias, TypeVar

import sqlalchemy as sa

from bridge.protocol.events import TradeEvent
from bridge.protocol.signals import Signal
from bridge.store.base import Appended, EventRecord, StatusUpdate

__all__ = [
    "Append",
    "AppendRow",
    "Appends",
    "Call",
    "EventRow",
    "Events",
    "Op",
    "Provisional",
    "Record",
    "Status",
]

T = TypeVar("T")
R = TypeVar("R")

#: What the log writer answers for one append before the batch is flushed: the new entry, or the
#: (channel, offset) of the entry an earlier write made with the same id (its epoch is known after flush).
Provisional: TypeAlias = Appended | tuple[str, int]


@dataclass(slots=True)
class AppendRow:
    """One channel-log entry to write, its payload already JSON; ``signal`` set for a publication."""

    channel: str
    message_id: str | None
    payload: str
    expires_at_ms: int | None
    signal: Signal | None


@dataclass(slots=True)
class EventRow:
    """One trade event to store, its payload already JSON."""

    event: TradeEvent
    payload: str
    channel: str | None  # record_events: where to append it; insert_events: None
    status: StatusUpdate | None


@dataclass(slots=True)
class _Queued:
    """What the writer needs of every operation: the future it resolves once the batch committed."""

    future: asyncio.Future[None] = field(init=False)


@dataclass(slots=True)
class Append(_Queued):
    """``append`` / ``publish_signal``: one entry."""

    request: AppendRow
    size: ClassVar[int] = 1
    rows: ClassVar[int] = 1
    result: Appended = field(init=False)


@dataclass(slots=True)
class _Rows(_Queued, Generic[R]):
    """An operation over the rows of one call, answered together: it weighs one item per row."""

    requests: list[R]

    @property
    def size(self) -> int:
        return len(self.requests)

    @property
    def rows(self) -> int:
        return len(self.requests)


@dataclass(slots=True)
class Appends(_Rows[AppendRow]):
    """``append_many``: entries of one call."""

    result: list[Appended] = field(init=False)


@dataclass(slots=True)
class Events(_Rows[EventRow]):
    """``insert_events``: events stored once per id; the result says which were new."""

    result: list[bool] = field(init=False)


@dataclass(slots=True)
class Record(_Rows[EventRow]):
    """``record_events``: each event stored, appended on its channel and its status applied if new."""

    result: list[EventRecord] = field(init=False)

    @property
    def size(self) -> int:
        return 2 * len(self.requests)  # an event row and a log entry each


@dataclass(slots=True)
class Status(_Rows[StatusUpdate]):
    """``update_statuses``: delivery transitions; the result says which were applied."""

    result: list[bool] = field(init=False)


@dataclass(slots=True)
class Call(_Queued, Generic[T]):
    """Any other write (retention, revocations, accounts, channel resets): a function run in the batch's
    transaction, alone between the segments before and after it."""

    fn: Callable[[sa.Connection], T]
    size: int = 1
    rows: ClassVar[int] = 1
    result: T = field(init=False)


#: Every operation the writer queues.
Op: TypeAlias = Append | Appends | Events | Record | Status | Call[Any]
