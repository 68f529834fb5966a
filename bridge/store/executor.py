"""Where a batch of write operations becomes statements: :class:`Executor` runs the operations of one
transaction, each :class:`~bridge.store.ops.Call` alone and everything between two calls as one
*segment* with one statement per table, and :func:`apply_transitions` writes delivery status changes.

Runs on the writer's thread, inside the transaction that :mod:`bridge.store.writer` opens; offsets are
allocated by :class:`~bridge.store.logwriter.LogWriter`. Not here: how operations are queued, batched and
retried (:mod:`bridge.store.writer`), nor the connection they run on (:mod:`bridge.store.sqlite`,
:mod:`bridge.store.postgres`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Final

import sqlalchemy as sa

import bridge.store.queries as q
from bridge.protocol.delivery import DeliveryStatus, can_transition
from bridge.store.base import EventRecord, StatusUpdate
from bridge.store.logwriter import LogWriter
from bridge.store.ops import (
    Append,
    AppendRow,
    Appends,
    Call,
    EventRow,
    Events,
    Op,
    Provisional,
    Record,
    Status,
)
from bridge.store.params import IN_CHUNK, PG_ARRAY_CHUNK, chunks, json_rows
from bridge.store.schema import STATUS_COLUMNS

__all__ = ["Executor", "apply_transitions"]


class Executor:
    """Runs a batch of operations on a connection in a transaction; every operation's ``result`` is set
    before the function returns (and read by its caller only once COMMIT has returned)."""

    def __init__(self, dialect: str, now_ms: Callable[[], int]) -> None:
        self.dialect = dialect
        self.now_ms = now_ms
        #: The writer's executemany statements with the dialect's positional parameters.
        self.sql = {
            sql: q.positional(sql, dialect)
            for sql in (
                q.INSERT_LOG,
                q.INSERT_SIGNAL,
                q.INSERT_PENDING,
                q.INSERT_EVENTS,
                q.UPDATE_CHANNEL_OFFSET,
            )
        }

    def run(self, conn: sa.Connection, batch: Sequence[Op], careful: bool) -> None:
        """Run a batch: ``Call`` ops one by one, everything between two calls as one segment."""
        start = 0
        while start < len(batch):
            op = batch[start]
            if isinstance(op, Call):
                op.result = op.fn(conn)
                start += 1
                continue
            end = start
            while end < len(batch) and not isinstance(batch[end], Call):
                end += 1
            self._segment(conn, batch[start:end], careful)
            start = end

    def _segment(self, conn: sa.Connection, ops: Sequence[Op], careful: bool) -> None:
        """Appends, events and status changes of many calls with one statement per table.

        Offsets are allocated and event ids deduplicated in queue order; the status changes of the
        segment (``Status`` ops, and those of newly recorded events) are applied afterwards, in
        queue order, so they see the signals published in the same segment.
        """
        appends: list[AppendRow] = []
        event_reqs: list[EventRow] = []
        for op in ops:
            if isinstance(op, Append):
                appends.append(op.request)
            elif isinstance(op, Appends):
                appends.extend(op.requests)
            elif isinstance(op, Events | Record):
                event_reqs.extend(op.requests)
        now = self.now_ms()
        # The events go in first; the ids that were already stored come back (see _insert_events_first).
        seen = self._insert_events_first(conn, event_reqs, now) if event_reqs else set()
        log = (
            LogWriter(conn, self.dialect, self.sql, self.now_ms, appends, event_reqs, seen, careful)
            if appends or event_reqs
            else None
        )

        snapshots: dict[str, dict[str, Any]] = {}
        statuses: list[StatusUpdate] = []
        # Provisional results per kind, resolved once the log is flushed; with where each op's status
        # changes start in ``statuses``.
        single: list[tuple[Append, Provisional]] = []
        many: list[tuple[Appends, list[Provisional]]] = []
        recorded: list[tuple[Record, list[tuple[bool, Provisional, bool]], int]] = []
        changed: list[tuple[Status, int]] = []
        for op in ops:
            if isinstance(op, Append):
                assert log is not None
                single.append((op, log.append(op.request)))
            elif isinstance(op, Appends):
                assert log is not None
                many.append((op, [log.append(r) for r in op.requests]))
            elif isinstance(op, Status):
                changed.append((op, len(statuses)))
                statuses.extend(op.requests)
            elif isinstance(op, Events | Record):
                assert log is not None
                first_status = len(statuses)
                flags: list[bool] = []
                entries: list[tuple[bool, Provisional, bool]] = []
                for req in op.requests:
                    new = req.event.id not in seen
                    if new:
                        seen.add(req.event.id)
                        if req.event.kind == "account":
                            _keep_snapshot(snapshots, req)
                    if req.channel is None:
                        flags.append(new)
                        continue
                    appended = log.append_entry(req.channel, req.event.id, req.payload, None)
                    if new and req.status is not None:
                        statuses.append(req.status)
                    entries.append((new, appended, new and req.status is not None))
                if isinstance(op, Events):
                    op.result = flags
                else:
                    recorded.append((op, entries, first_status))

        if snapshots:
            conn.execute(q.upsert_snapshot(self.dialect), list(snapshots.values()))
        if log is not None:
            log.flush()
        moved = self.apply_statuses(conn, statuses) if statuses else []

        for status_op, first in changed:
            status_op.result = moved[first : first + len(status_op.requests)]
        if log is None:
            return
        resolve = log.resolve
        for append_op, value in single:
            append_op.result = resolve(value)
        for appends_op, values in many:
            appends_op.result = [resolve(v) for v in values]
        for record_op, recorded_entries, index in recorded:
            records: list[EventRecord] = []
            for new, appended, has_status in recorded_entries:
                status_moved = False
                if has_status:
                    status_moved = moved[index]
                    index += 1
                records.append(EventRecord(new, resolve(appended), status_moved))
            record_op.result = records

    def _insert_events_first(self, conn: sa.Connection, requests: Sequence[EventRow], now: int) -> set[str]:
        """Store the first request of every event id (``ON CONFLICT DO NOTHING`` skips ids already stored)
        and return the ids that were stored before.

        PostgreSQL: one statement over the rows that returns the ids it inserted; the others were
        there (an id inserted meanwhile by another process is waited for, then skipped). It replaced a
        lookup followed by COPY: one round trip less per batch, and round trips set the writer's pace.
        SQLite: when every row went in, which is the rule, no lookup at all; otherwise the ids at or
        below the highest seq before the INSERT are the old ones (seq is the rowid, so new rows are above
        it, and BEGIN IMMEDIATE keeps other writers out)."""
        rows: list[tuple[Any, ...]] = []
        ids: set[str] = set()
        for req in requests:
            if req.event.id not in ids:
                ids.add(req.event.id)
                rows.append(_event_row(req, now))
        if self.dialect == "postgresql":
            inserted = conn.exec_driver_sql(q.INSERT_EVENTS_PG, (json_rows(rows),))
            return ids.difference(row[0] for row in inserted)
        last = conn.exec_driver_sql(q.SELECT_LAST_EVENT_SEQ).scalar()
        if conn.exec_driver_sql(self.sql[q.INSERT_EVENTS], rows).rowcount == len(rows) or last is None:
            return set()
        stored: set[str] = set()
        for chunk in chunks(sorted(ids)):
            sql = q.member(q.SELECT_EVENT_IDS_UP_TO, len(chunk), "sqlite")
            stored.update(row[0] for row in conn.exec_driver_sql(sql, (*chunk, last)).all())
        return stored

    def apply_statuses(self, conn: sa.Connection, updates: Sequence[StatusUpdate]) -> list[bool]:
        """Apply transitions in order; unknown signals are ignored (False)."""
        signal_ids = sorted({u.signal_id for u in updates})
        known: set[str] = set()
        states: dict[tuple[str, str], DeliveryStatus] = {}
        dialect = self.dialect
        size = PG_ARRAY_CHUNK if dialect == "postgresql" else IN_CHUNK
        for chunk in chunks(signal_ids, size):
            sql = q.member(q.SELECT_DELIVERY_STATES, len(chunk), dialect)
            for signal_id, account, status in conn.exec_driver_sql(
                sql, q.member_params(chunk, dialect)
            ).all():
                known.add(signal_id)
                states[(signal_id, account)] = _STATUSES[status]
        # Signals without any delivery row yet (group targets): ask the ledger.
        for chunk in chunks([i for i in signal_ids if i not in known], size):
            sql = q.member(q.SELECT_SIGNAL_IDS, len(chunk), dialect)
            known.update(row[0] for row in conn.exec_driver_sql(sql, q.member_params(chunk, dialect)).all())
        flags = [u.signal_id in known for u in updates]
        valid = [u for u, ok in zip(updates, flags, strict=True) if ok]
        applied = iter(apply_transitions(conn, self.dialect, valid, states))
        return [ok and next(applied) for ok in flags]


def _event_row(req: EventRow, now: int) -> tuple[Any, ...]:
    """A new trade event, as q.EVENT_COLUMNS."""
    e = req.event
    return (e.id, e.kind, e.account, e.signal_id, e.ts, now, req.payload)


def _keep_snapshot(snapshots: dict[str, dict[str, Any]], req: EventRow) -> None:
    """Keep the newest ``account`` snapshot per login of a batch."""
    e = req.event
    current = snapshots.get(e.account)
    if current is None or current["snapshot_ts_ms"] < e.ts:
        snapshots[e.account] = {"login": e.account, "snapshot": req.payload, "snapshot_ts_ms": e.ts}


#: DeliveryStatus by its value (cheaper than calling the enum), and the plain value of each (cheaper than
#: the ``value`` property).
_STATUSES: Final = {status.value: status for status in DeliveryStatus}
_STATUS_VALUES: Final = {status: status.value for status in DeliveryStatus}
#: The column of each slot of a change in apply_transitions (slots 0 and 1: status and its time).
_CHANGE_COLUMNS: Final = ("status", "updated_at_ms", "detail", *STATUS_COLUMNS.values())
_CHANGE_WIDTH: Final = len(_CHANGE_COLUMNS)
_TIME_SLOT: Final = {name: 3 + n for n, name in enumerate(STATUS_COLUMNS)}


def _delivery_row(
    signal_id: str,
    account: str,
    status: DeliveryStatus,
    at_ms: int,
    detail: str | None,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "signal_id": signal_id,
        "account": account,
        "status": status.value,
        "updated_at_ms": at_ms,
        "detail": detail,
    }
    reached = status.value
    for name, column in STATUS_COLUMNS.items():
        row[column] = at_ms if name == reached else None
    return row


def apply_transitions(
    conn: sa.Connection,
    dialect: str,
    updates: Sequence[StatusUpdate],
    states: dict[tuple[str, str], DeliveryStatus],
) -> list[bool]:
    """Decide each transition against ``states`` (updated in place) and write the outcome per delivery:
    one insert for new rows, one guarded update for existing ones, so several steps in a batch collapse.
    Updates are grouped by the columns they set (see :func:`~bridge.store.queries.update_delivery`)."""
    inserts: dict[tuple[str, str], dict[str, Any]] = {}
    # Per existing delivery: [status, at, detail, time of each status in STATUS_COLUMNS order..., mask of the
    # slots set from 2 on]. Statuses are StrEnum members: they index the str-keyed maps directly.
    changes: dict[tuple[str, str], list[Any]] = {}
    original = dict(states)
    flags: list[bool] = []
    for update in updates:
        key = (update.signal_id, update.account)
        status = update.status
        if not can_transition(states.get(key), status):
            flags.append(False)
            continue
        flags.append(True)
        states[key] = status
        if key not in original:
            row = inserts.get(key) or _delivery_row(
                update.signal_id, update.account, status, update.at_ms, None
            )
            row.update(
                {"status": status.value, "updated_at_ms": update.at_ms, STATUS_COLUMNS[status]: update.at_ms}
            )
            if update.detail is not None:
                row["detail"] = update.detail[:256]
            inserts[key] = row
            continue
        change = changes.get(key)
        if change is None:
            change = changes[key] = [None] * _CHANGE_WIDTH + [0]
        slot = _TIME_SLOT[status]
        change[0] = _STATUS_VALUES[status]
        change[1] = change[slot] = update.at_ms
        change[-1] |= 1 << slot
        if update.detail is not None:
            change[2] = update.detail[:256]
            change[-1] |= 1 << 2
    if inserts:
        conn.execute(q.insert_delivery(dialect), list(inserts.values()))
    if dialect == "postgresql":
        # One statement for every shape: an unset column is NULL and keeps its value (times and the
        # detail are only ever set, never cleared). Round trips, not rows, set the writer's pace here.
        if changes:
            every = [
                (*change[:_CHANGE_WIDTH], key[0], key[1], _STATUS_VALUES[original[key]])
                for key, change in changes.items()
            ]
            conn.exec_driver_sql(q.update_deliveries_pg(_CHANGE_COLUMNS[2:]), (json_rows(every),))
        return flags
    by_shape: dict[int, list[tuple[Any, ...]]] = {}
    for key, change in changes.items():
        rows = by_shape.get(change[-1])
        if rows is None:
            rows = by_shape[change[-1]] = []
        values = [change[0], change[1]]
        values.extend(change[i] for i in _slots(change[-1]))
        values.extend((key[0], key[1], _STATUS_VALUES[original[key]]))
        rows.append(tuple(values))
    for mask, rows in by_shape.items():
        columns = tuple(_CHANGE_COLUMNS[i] for i in _slots(mask))
        conn.exec_driver_sql(q.update_delivery(columns, dialect), rows)
    return flags


@functools.cache
def _slots(mask: int) -> tuple[int, ...]:
    """The slots of a change in apply_transitions whose bit is set in ``mask``."""
    return tuple(i for i in range(2, _CHANGE_WIDTH) if mask >> i & 1)
