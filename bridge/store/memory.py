"""In-memory :class:`~bridge.store.base.Store`: same contract, no persistence across processes.

For tests and ``mtbridge demo``. Every method runs to completion without awaiting anything, so on one event
loop each call is atomic and calls are applied in the order they are made; that is this store's "commit".
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from bridge.protocol.delivery import DeliveryStatus, can_transition
from bridge.protocol.events import TradeEvent
from bridge.protocol.signals import Signal
from bridge.store.base import (
    DEFAULT_PAGE_SIZE,
    Account,
    Appended,
    AppendRequest,
    Delivery,
    EventFilter,
    EventRecord,
    EventWrite,
    Page,
    Position,
    RetentionResult,
    Revocation,
    RevocationKind,
    SignalFilter,
    SignalView,
    StatusUpdate,
    Stored,
    StoredEvent,
    check_append,
    page_limit,
    parse_cursor,
)
from bridge.store.exceptions import StoreClosed

__all__ = ["MemoryStore"]


@dataclass(slots=True)
class _Channel:
    epoch: str
    last_offset: int = 0
    # offset -> (message_id, payload JSON, expires_at_ms, created_at_ms); dicts keep insertion order.
    log: dict[int, tuple[str | None, bytes, int | None, int]] = field(default_factory=dict)
    message_ids: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Signal:
    seq: int
    signal: Signal
    channel: str
    offset: int
    payload: bytes
    deliveries: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(slots=True)
class _Event:
    stored: StoredEvent


class MemoryStore:
    """The in-memory store. Payloads are copied through JSON, as the SQL store does, so callers cannot
    mutate stored data and non-JSON payloads fail the same way (``TypeError``)."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._started = False
        self._closed = False
        self._channels: dict[str, _Channel] = {}
        self._signals: dict[str, _Signal] = {}
        self._signal_seq = 0
        self._events: dict[str, _Event] = {}
        self._event_seq = 0
        self._accounts: dict[str, Account] = {}
        self._revocations: dict[tuple[str, str], Revocation] = {}

    async def __aenter__(self) -> MemoryStore:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        if self._closed:
            raise StoreClosed("store is closed")
        self._started = True

    async def close(self) -> None:
        self._closed = True

    async def migrate(self) -> None:
        self._check()

    def _check(self) -> None:
        if self._closed or not self._started:
            raise StoreClosed("store is closed" if self._closed else "store is not started")

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _channel(self, name: str) -> _Channel:
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel(secrets.token_hex(8))
        return channel

    # --- channel log ---

    def _append(
        self,
        name: str,
        message_id: str | None,
        payload: bytes,
        expires_at_ms: int | None,
    ) -> tuple[Appended, bool]:
        channel = self._channel(name)
        if message_id is not None and message_id in channel.message_ids:
            return Appended(name, channel.message_ids[message_id], channel.epoch, True), False
        channel.last_offset += 1
        channel.log[channel.last_offset] = (message_id, payload, expires_at_ms, self._now_ms())
        if message_id is not None:
            channel.message_ids[message_id] = channel.last_offset
        return Appended(name, channel.last_offset, channel.epoch, False), True

    async def append(
        self,
        channel: str,
        message_id: str | None,
        payload: dict[str, Any],
        expires_at_ms: int | None = None,
    ) -> Appended:
        self._check()
        check_append(channel, message_id)
        return self._append(channel, message_id, orjson.dumps(payload), expires_at_ms)[0]

    async def publish_signal(self, signal: Signal) -> Appended:
        self._check()
        payload = orjson.dumps(signal.to_payload())
        known = self._signals.get(signal.id)
        if known is not None:
            return Appended(known.channel, known.offset, self._channel(known.channel).epoch, True)
        appended, new = self._append(signal.channel, signal.id, payload, signal.expires_at)
        if new:
            now = self._now_ms()
            self._signal_seq += 1
            record = _Signal(self._signal_seq, signal, signal.channel, appended.offset, payload)
            for account in signal.accounts:
                record.deliveries[account] = _new_delivery(DeliveryStatus.PENDING, now, None)
            self._signals[signal.id] = record
        return appended

    async def append_many(self, requests: Sequence[AppendRequest]) -> list[Appended]:
        self._check()
        for r in requests:
            if r.signal is None:
                check_append(r.channel, r.message_id)
        results: list[Appended] = []
        for r in requests:
            if r.signal is not None:
                results.append(await self.publish_signal(r.signal))
            else:
                results.append(await self.append(r.channel, r.message_id, r.payload, r.expires_at_ms))
        return results

    async def read_since(self, channel: str, after_offset: int, limit: int) -> list[Stored]:
        self._check()
        found = self._channels.get(channel)
        if found is None:
            return []
        result: list[Stored] = []
        for offset in range(max(after_offset + 1, 1), found.last_offset + 1):
            entry = found.log.get(offset)
            if entry is None:
                continue
            result.append(Stored(offset, orjson.loads(entry[1]), entry[2]))
            if len(result) >= max(1, limit):
                break
        return result

    async def position(self, channel: str) -> Position:
        self._check()
        found = self._channel(channel)
        first = next(iter(found.log), found.last_offset + 1)
        return Position(found.last_offset, found.epoch, first)

    async def tops(self, channels: Sequence[str]) -> dict[str, tuple[str, int]]:
        self._check()
        return {n: (c.epoch, c.last_offset) for n in channels if (c := self._channels.get(n)) is not None}

    async def reset_channel(self, channel: str) -> Position:
        self._check()
        self._channels[channel] = _Channel(secrets.token_hex(8))
        return await self.position(channel)

    # --- trade events ---

    async def insert_events(self, events: Sequence[TradeEvent]) -> list[bool]:
        self._check()
        prepared = [(e, orjson.dumps(e.to_payload())) for e in events]
        return [self._insert_event(event, payload) for event, payload in prepared]

    async def record_events(self, writes: Sequence[EventWrite]) -> list[EventRecord]:
        self._check()
        for write in writes:
            check_append(write.channel, write.event.id)
        prepared = [
            (w, orjson.dumps(w.payload if w.payload is not None else w.event.to_payload())) for w in writes
        ]
        records: list[EventRecord] = []
        for write, payload in prepared:
            new = self._insert_event(write.event, payload)
            appended, _ = self._append(write.channel, write.event.id, payload, None)
            moved = new and write.status is not None and self._transition(write.status)
            records.append(EventRecord(new, appended, moved))
        return records

    def _insert_event(self, event: TradeEvent, payload: bytes) -> bool:
        if event.id in self._events:
            return False
        self._event_seq += 1
        stored = StoredEvent(
            self._event_seq,
            event.id,
            event.kind,
            event.account,
            event.signal_id,
            event.ts,
            self._now_ms(),
            orjson.loads(payload),
        )
        self._events[event.id] = _Event(stored)
        if event.kind == "account":
            account = self._accounts.get(event.account) or Account(event.account, None, None, None)
            if account.snapshot_ts_ms is None or account.snapshot_ts_ms < event.ts:
                self._accounts[event.account] = Account(
                    event.account,
                    account.last_seen_ms,
                    orjson.loads(payload),
                    event.ts,
                )
        return True

    def _matching_events(self, filters: EventFilter) -> list[StoredEvent]:
        result: list[StoredEvent] = []
        for item in self._events.values():
            e = item.stored
            if filters.account is not None and e.account != filters.account:
                continue
            if filters.kind is not None and e.kind != filters.kind:
                continue
            if filters.signal_id is not None and e.signal_id != filters.signal_id:
                continue
            if filters.since_ms is not None and e.ts < filters.since_ms:
                continue
            if filters.until_ms is not None and e.ts >= filters.until_ms:
                continue
            result.append(e)
        return result

    async def list_events(
        self,
        filters: EventFilter,
        *,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> Page[StoredEvent]:
        self._check()
        before = parse_cursor(cursor)
        size = page_limit(limit)
        items = [e for e in reversed(self._matching_events(filters)) if before is None or e.seq < before]
        page = items[:size]
        return Page(page, str(page[-1].seq) if len(items) > size else None)

    async def iter_events(
        self, filters: EventFilter, *, batch_size: int = 1000
    ) -> AsyncIterator[StoredEvent]:
        self._check()
        for item in self._matching_events(filters):
            yield item

    # --- signals ledger ---

    def _view(self, record: _Signal) -> SignalView:
        signal = record.signal
        deliveries = tuple(
            Delivery(account, d["status"], d["updated_at_ms"], dict(d["times"]), d["detail"])
            for account, d in sorted(record.deliveries.items())
        )
        return SignalView(
            id=signal.id,
            strategy=signal.strategy,
            channel=record.channel,
            offset=record.offset,
            accounts=signal.accounts,
            groups=signal.groups,
            payload=orjson.loads(record.payload),
            created_at_ms=signal.created_at,
            expires_at_ms=signal.expires_at,
            deliveries=deliveries,
        )

    async def get_signal(self, signal_id: str) -> SignalView | None:
        self._check()
        record = self._signals.get(signal_id)
        return self._view(record) if record is not None else None

    async def list_signals(
        self,
        filters: SignalFilter,
        *,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> Page[SignalView]:
        self._check()
        before = parse_cursor(cursor)
        size = page_limit(limit)
        items: list[_Signal] = []
        for record in sorted(self._signals.values(), key=lambda r: r.seq, reverse=True):
            signal = record.signal
            if before is not None and record.seq >= before:
                continue
            if filters.strategy is not None and signal.strategy != filters.strategy:
                continue
            if filters.since_ms is not None and signal.created_at < filters.since_ms:
                continue
            if filters.until_ms is not None and signal.created_at >= filters.until_ms:
                continue
            wanted = filters.account is not None or filters.status is not None
            if wanted and not any(
                (filters.account is None or account == filters.account)
                and (filters.status is None or d["status"] == filters.status)
                for account, d in record.deliveries.items()
            ):
                continue
            items.append(record)
            if len(items) > size:
                break
        page = items[:size]
        return Page([self._view(r) for r in page], str(page[-1].seq) if len(items) > size else None)

    def _transition(self, update: StatusUpdate) -> bool:
        record = self._signals.get(update.signal_id)
        if record is None:
            return False
        current = record.deliveries.get(update.account)
        if not can_transition(current["status"] if current else None, update.status):
            return False
        if current is None:
            record.deliveries[update.account] = _new_delivery(update.status, update.at_ms, update.detail)
            return True
        current["status"] = update.status
        current["updated_at_ms"] = update.at_ms
        current["times"][update.status.value] = update.at_ms
        if update.detail is not None:
            current["detail"] = update.detail[:256]
        return True

    async def update_statuses(self, updates: Sequence[StatusUpdate]) -> list[bool]:
        self._check()
        return [self._transition(update) for update in updates]

    async def expire_signals(self, now_ms: int, limit: int = 1000) -> list[tuple[str, str]]:
        self._check()
        changed: list[tuple[str, str]] = []
        for record in self._signals.values():
            if record.signal.expires_at > now_ms:
                continue
            for account, delivery in record.deliveries.items():
                if len(changed) >= limit:
                    return changed
                if delivery["status"] in (
                    DeliveryStatus.PENDING,
                    DeliveryStatus.DELIVERED,
                    DeliveryStatus.ACKED,
                ):
                    self._transition(StatusUpdate(record.signal.id, account, DeliveryStatus.EXPIRED, now_ms))
                    changed.append((record.signal.id, account))
        return changed

    # --- accounts and revocations ---

    async def touch_accounts(self, logins: Sequence[str], seen_ms: int) -> None:
        self._check()
        for login in logins:
            account = self._accounts.get(login) or Account(login, None, None, None)
            if account.last_seen_ms is None or account.last_seen_ms < seen_ms:
                self._accounts[login] = Account(login, seen_ms, account.snapshot, account.snapshot_ts_ms)

    async def get_account(self, login: str) -> Account | None:
        self._check()
        return self._accounts.get(login)

    async def list_accounts(self) -> list[Account]:
        self._check()
        return [self._accounts[login] for login in sorted(self._accounts)]

    async def revoke(
        self,
        kind: RevocationKind,
        value: str,
        *,
        revoked_at_ms: int,
        expires_at_ms: int,
        reason: str | None = None,
    ) -> None:
        self._check()
        if kind not in ("jti", "sub"):
            raise ValueError("kind must be 'jti' or 'sub'")
        self._revocations[(kind, value)] = Revocation(kind, value, revoked_at_ms, expires_at_ms, reason)

    async def list_revocations(self, now_ms: int) -> list[Revocation]:
        self._check()
        return [r for _, r in sorted(self._revocations.items()) if r.expires_at_ms > now_ms]

    # --- retention ---

    async def apply_retention(self, older_than_ms: int, *, batch_size: int = 1000) -> RetentionResult:
        self._check()
        log_entries = 0
        for channel in self._channels.values():
            old = [offset for offset, entry in channel.log.items() if entry[3] < older_than_ms]
            for offset in old:
                message_id = channel.log.pop(offset)[0]
                if message_id is not None:
                    channel.message_ids.pop(message_id, None)
            log_entries += len(old)
        old_signals = [sid for sid, r in self._signals.items() if r.signal.created_at < older_than_ms]
        deliveries = sum(len(self._signals[sid].deliveries) for sid in old_signals)
        for sid in old_signals:
            del self._signals[sid]
        old_events = [eid for eid, e in self._events.items() if e.stored.received_at_ms < older_than_ms]
        for eid in old_events:
            del self._events[eid]
        now = self._now_ms()
        expired = [key for key, r in self._revocations.items() if r.expires_at_ms <= now]
        for key in expired:
            del self._revocations[key]
        return RetentionResult(log_entries, len(old_signals), deliveries, len(old_events), len(expired))


def _new_delivery(status: DeliveryStatus, at_ms: int, detail: str | None) -> dict[str, Any]:
    return {
        "status": status,
        "updated_at_ms": at_ms,
        "times": {status.value: at_ms},
        "detail": detail[:256] if detail is not None else None,
    }
