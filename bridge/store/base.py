"""The ``Store`` Protocol: what the hub needs from durable storage, with its contract.

Contract shared by every implementation (``memory``, ``sql``):

- **Durability.** A write coroutine returns only after its transaction has committed (SQL: after COMMIT,
  which on SQLite with ``synchronous=FULL`` in WAL mode means the WAL has been fsynced). A write that raised
  may or may not have been committed; every write is idempotent, so the caller retries the same call.
- **Group commit.** Concurrent writes from many coroutines are batched by one writer task into one
  transaction; callers do not serialise anything themselves.
- **Channel log.** Per channel, offsets start at 1 and increase by exactly 1 per appended message, in the
  order in which the ``append``/``publish_signal`` calls were made (for calls made from the same coroutine:
  call order; for concurrent calls: the order they reached the writer). There are never holes. Retention
  trims the oldest entries without renumbering; ``Position.first_available_offset`` tells what is left.
- **Epoch.** Created with the channel, changes only when :meth:`Store.reset_channel` erases its history.
- **Idempotency.** A ``message_id`` already on the channel (and a signal id already in the ledger) returns the
  original offset with ``duplicate=True`` and stores nothing. Trade events are stored once per ``id``.
  The idempotency window is the retention period. An ``append`` without ``message_id`` is not idempotent.
- **Delivery status** only moves forward (:func:`bridge.protocol.delivery.can_transition`).
- Timestamps are unix milliseconds (int) everywhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

from bridge.protocol.delivery import DeliveryStatus
from bridge.protocol.events import EventKind, TradeEvent
from bridge.protocol.recovery import NotRecovered, refusal
from bridge.protocol.signals import Signal
from bridge.store.exceptions import InvalidCursor

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_CHANNEL_LENGTH",
    "MAX_MESSAGE_ID_LENGTH",
    "MAX_PAGE_SIZE",
    "Account",
    "AppendRequest",
    "Appended",
    "Delivery",
    "EventFilter",
    "EventRecord",
    "EventWrite",
    "Page",
    "Position",
    "RetentionResult",
    "Revocation",
    "RevocationKind",
    "SignalFilter",
    "SignalView",
    "StatusUpdate",
    "Store",
    "Stored",
    "StoredEvent",
    "check_append",
    "page_limit",
    "parse_cursor",
]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
#: Longest channel name and message id the store accepts (the width of their columns).
MAX_CHANNEL_LENGTH = 200
MAX_MESSAGE_ID_LENGTH = 64

T = TypeVar("T")
RevocationKind = Literal["jti", "sub"]


@dataclass(frozen=True, slots=True)
class Appended:
    """Result of an append: ``offset`` is the original one when ``duplicate`` is true."""

    channel: str
    offset: int
    epoch: str
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """One publication of :meth:`Store.append_many`: with ``signal`` set, what :meth:`Store.publish_signal`
    does (``signal.to_payload()`` is stored: a caller that already built it passes it as ``payload`` so
    it is not built twice, otherwise ``{}``); otherwise what :meth:`Store.append` does."""

    channel: str
    payload: dict[str, Any]
    message_id: str | None = None
    expires_at_ms: int | None = None
    signal: Signal | None = None


@dataclass(frozen=True, slots=True)
class Stored:
    """One entry of a channel log."""

    offset: int
    payload: dict[str, Any]
    expires_at_ms: int | None


@dataclass(frozen=True, slots=True)
class Position:
    """Where a channel stands.

    A subscriber that last saw offset ``N`` under ``epoch`` can be fully recovered iff its epoch equals
    ``epoch`` and ``first_available_offset <= N + 1 <= last_offset + 1``. ``first_available_offset`` is
    ``last_offset + 1`` when the log holds nothing.
    """

    last_offset: int
    epoch: str
    first_available_offset: int

    def refusal(self, since: int, epoch: str | None, max_recovery: int | None = None) -> NotRecovered | None:
        """Why ``since``/``epoch`` cannot be recovered here (:func:`bridge.protocol.recovery.refusal`)."""
        return refusal(
            since,
            epoch,
            current_epoch=self.epoch,
            last_offset=self.last_offset,
            first_available=self.first_available_offset,
            max_recovery=max_recovery,
        )

    def can_recover(self, since: int, epoch: str) -> bool:
        return self.refusal(since, epoch) is None


@dataclass(frozen=True, slots=True)
class Delivery:
    """Status of one signal for one account, with the time each status was reached (``times``)."""

    account: str
    status: DeliveryStatus
    updated_at_ms: int
    times: Mapping[str, int]
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class SignalView:
    """A signal from the ledger with its per-account deliveries."""

    id: str
    strategy: str
    channel: str
    offset: int
    accounts: tuple[str, ...]
    groups: tuple[str, ...]
    payload: dict[str, Any]
    created_at_ms: int
    expires_at_ms: int
    deliveries: tuple[Delivery, ...] = ()


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A requested delivery transition; a row is created if the account had none (group targets)."""

    signal_id: str
    account: str
    status: DeliveryStatus
    at_ms: int
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class EventWrite:
    """A trade event to record (:meth:`Store.record_events`): stored once per id, appended on ``channel``
    with the event id as message id, and ``status`` applied only if the event is new, all in one
    transaction, so a crash can never leave one of the three without the others."""

    event: TradeEvent
    channel: str
    status: StatusUpdate | None = None
    #: ``event.to_payload()`` when the caller built it already (it is not built twice), else None.
    payload: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """Outcome of one :class:`EventWrite`: ``new`` is false for an id already stored; ``appended`` is where
    the event sits on its channel (``duplicate`` when it was there already); ``status_moved`` whether the
    status transition was applied."""

    new: bool
    appended: Appended
    status_moved: bool = False


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A trade event as stored; ``seq`` is the store's insertion order, used by cursors."""

    seq: int
    id: str
    kind: EventKind
    account: str
    signal_id: str | None
    ts: int
    received_at_ms: int
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class EventFilter:
    """Filters for trade events; ``since_ms``/``until_ms`` bound ``ts`` as [since, until)."""

    account: str | None = None
    kind: EventKind | None = None
    signal_id: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalFilter:
    """Filters for the signal ledger; ``since_ms``/``until_ms`` bound ``createdAt`` as [since, until)."""

    strategy: str | None = None
    account: str | None = None
    status: DeliveryStatus | None = None
    since_ms: int | None = None
    until_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """A page of results, newest first; pass ``next_cursor`` back to get the next page (None: no more)."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Account:
    """What the store knows of an account: last activity and last snapshot (an ``account`` event payload)."""

    login: str
    last_seen_ms: int | None
    snapshot: dict[str, Any] | None
    snapshot_ts_ms: int | None


@dataclass(frozen=True, slots=True)
class Revocation:
    """A revoked token id (``jti``) or subject (``sub``: tokens issued at or before ``revoked_at_ms``)."""

    kind: RevocationKind
    value: str
    revoked_at_ms: int
    expires_at_ms: int
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """How many rows retention removed, per kind."""

    log_entries: int = 0
    signals: int = 0
    deliveries: int = 0
    events: int = 0
    revocations: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def check_append(channel: str, message_id: str | None) -> None:
    """Reject names the store cannot hold, before anything is queued."""
    if not channel or len(channel) > MAX_CHANNEL_LENGTH:
        raise ValueError(f"channel must be 1-{MAX_CHANNEL_LENGTH} characters")
    if message_id is not None and not 0 < len(message_id) <= MAX_MESSAGE_ID_LENGTH:
        raise ValueError(f"message_id must be 1-{MAX_MESSAGE_ID_LENGTH} characters")


def parse_cursor(cursor: str | None) -> int | None:
    """The seq a page cursor stands for (every store issues seqs as cursors), or None for the first page."""
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 19:
        raise InvalidCursor("invalid cursor", operation="paginate")
    return int(cursor)


def page_limit(limit: int) -> int:
    """A page size a caller asked for, within 1 and :data:`MAX_PAGE_SIZE`."""
    return max(1, min(limit, MAX_PAGE_SIZE))


@runtime_checkable
class Store(Protocol):
    """Durable storage of the hub. See the module docstring for the contract every method honours."""

    async def start(self) -> None:
        """Open connections and start the writer task; idempotent."""

    async def close(self) -> None:
        """Finish queued writes, stop the writer, close connections; idempotent."""

    async def migrate(self) -> None:
        """Bring the schema to the latest revision (Alembic ``upgrade head``); safe to run at every start."""

    async def append(
        self,
        channel: str,
        message_id: str | None,
        payload: dict[str, Any],
        expires_at_ms: int | None = None,
    ) -> Appended:
        """Durably append ``payload`` to ``channel`` and return its offset.

        A ``message_id`` already present on the channel returns the original offset, ``duplicate=True``.
        The payload must be JSON-serialisable (``TypeError`` otherwise); ``channel`` is at most
        :data:`MAX_CHANNEL_LENGTH` and ``message_id`` at most :data:`MAX_MESSAGE_ID_LENGTH` characters
        (``ValueError`` otherwise). Both are checked before anything is queued.
        """

    async def publish_signal(self, signal: Signal) -> Appended:
        """Append ``signal.to_payload()`` on ``signal.channel`` with ``signal.id`` as message id, and record
        it in the ledger with a ``pending`` delivery per listed account, in the same transaction.

        A signal id already in the ledger (on any channel) is a duplicate: nothing is stored and the
        original channel, offset and epoch are returned.
        """

    async def append_many(self, requests: Sequence[AppendRequest]) -> list[Appended]:
        """Every request as one ``append`` or ``publish_signal`` call made in list order, in one store call:
        one result per request, in order. Exists so that a hub can hand the publications of one event-loop
        iteration to the writer as one operation instead of one future each."""

    async def read_since(self, channel: str, after_offset: int, limit: int) -> list[Stored]:
        """Entries with offset > ``after_offset`` in offset order, at most ``limit``; expired entries are
        included (with their ``expires_at_ms``) so the caller can mark them expired instead of delivering."""

    async def position(self, channel: str) -> Position:
        """Current position of ``channel``; creates the channel (offset 0, new epoch) if it does not exist,
        so that a subscriber always gets a stable epoch."""

    async def tops(self, channels: Sequence[str]) -> dict[str, tuple[str, int]]:
        """``(epoch, last offset)`` of each existing channel among ``channels``, read in one query:
        a cluster node compares them with what it delivered to find publications Redis lost."""

    async def reset_channel(self, channel: str) -> Position:
        """Erase the channel's log and start a new epoch at offset 0 (operator action)."""

    async def insert_events(self, events: Sequence[TradeEvent]) -> list[bool]:
        """Store trade events once per id; ``True`` where the event was new. Returns after COMMIT.
        ``account`` events also update the account's last snapshot when newer."""

    async def record_events(self, writes: Sequence[EventWrite]) -> list[EventRecord]:
        """Record trade events as :class:`EventWrite` says, in one transaction; returns after COMMIT.

        Idempotent: an event id already stored is not stored again and its status is not applied; its
        payload is appended on the channel only if the channel does not hold that message id yet. Within one
        call (and one batch) writes are applied in order, so the first of two writes with the same id wins.
        The channel payload is ``event.to_payload()``; ``channel`` is checked like :meth:`append`'s.
        """

    async def list_events(
        self,
        filters: EventFilter,
        *,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> Page[StoredEvent]:
        """Trade events matching ``filters``, newest first, cursor-paginated."""

    def iter_events(self, filters: EventFilter, *, batch_size: int = 1000) -> AsyncIterator[StoredEvent]:
        """All matching events oldest first, fetched in batches (for CSV export)."""

    async def get_signal(self, signal_id: str) -> SignalView | None:
        """One signal with its per-account deliveries, or None."""

    async def list_signals(
        self,
        filters: SignalFilter,
        *,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> Page[SignalView]:
        """Signals matching ``filters``, newest first, cursor-paginated, with their deliveries."""

    async def update_statuses(self, updates: Sequence[StatusUpdate]) -> list[bool]:
        """Apply delivery transitions in order; ``True`` where the status moved. A transition that is not
        forward, or for an unknown signal, is ignored (``False``)."""

    async def expire_signals(self, now_ms: int, limit: int = 1000) -> list[tuple[str, str]]:
        """Move pending/delivered/acked deliveries of signals expired at ``now_ms`` to ``expired``;
        returns the (signal id, account) pairs changed, at most ``limit``."""

    async def touch_accounts(self, logins: Sequence[str], seen_ms: int) -> None:
        """Record that these accounts were seen at ``seen_ms`` (never moves backwards)."""

    async def get_account(self, login: str) -> Account | None:
        """One account, or None if never seen."""

    async def list_accounts(self) -> list[Account]:
        """Every known account, by login."""

    async def revoke(
        self,
        kind: RevocationKind,
        value: str,
        *,
        revoked_at_ms: int,
        expires_at_ms: int,
        reason: str | None = None,
    ) -> None:
        """Persist a revocation; it may be forgotten after ``expires_at_ms`` (the token's own expiry)."""

    async def list_revocations(self, now_ms: int) -> list[Revocation]:
        """Revocations still active at ``now_ms``."""

    async def apply_retention(self, older_than_ms: int, *, batch_size: int = 1000) -> RetentionResult:
        """Delete log entries, signals (with deliveries) and events created before ``older_than_ms``, in
        batches of ``batch_size`` rows per transaction, and revocations already expired (store clock).
        Channel offsets and epochs are kept, so offsets never restart after a trim."""
