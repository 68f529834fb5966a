"""Where a channel-log entry gets its offset: :class:`LogWriter` (the entries of one segment of a write
batch: channel rows locked, ids looked up once each, offsets allocated in call order, one INSERT per
table) and :func:`lock_channels` (load or create channel rows, locked until COMMIT on PostgreSQL).

Runs inside the writer's transaction, called by :mod:`bridge.store.executor`; the statements are in
:mod:`bridge.store.queries`. Not here: events and delivery statuses (:mod:`bridge.store.executor`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

import bridge.store.queries as q
from bridge.store.base import Appended
from bridge.store.ops import AppendRow, EventRow, Provisional
from bridge.store.params import IN_CHUNK, PG_ARRAY_CHUNK, chunks, dumps, json_rows, write_rows

__all__ = ["LogWriter", "lock_channels", "new_epoch"]


def new_epoch() -> str:
    return secrets.token_hex(8)


def lock_channels(
    conn: sa.Connection, dialect: str, names: Sequence[str], now_ms: Callable[[], int]
) -> dict[str, list[Any]]:
    """Load (creating as needed) channel rows; on PostgreSQL they stay locked until COMMIT."""
    state: dict[str, list[Any]] = {}
    _select_channels(conn, dialect, names, state)
    missing = [name for name in names if name not in state]
    if missing:
        now = now_ms()
        conn.execute(
            q.insert_channel(dialect),
            [{"name": n, "epoch": new_epoch(), "last_offset": 0, "created_at_ms": now} for n in missing],
        )
        _select_channels(conn, dialect, missing, state)
    return state


def _select_channels(
    conn: sa.Connection, dialect: str, names: Sequence[str], state: dict[str, list[Any]]
) -> None:
    """Load channel rows into ``state`` (name -> [epoch, last offset]), locked on PostgreSQL."""
    lock = " FOR UPDATE" if dialect == "postgresql" else ""
    for chunk in chunks(names, PG_ARRAY_CHUNK if lock else IN_CHUNK):
        sql = q.member(q.SELECT_CHANNELS, len(chunk), dialect) + lock
        for name, epoch, last_offset in conn.exec_driver_sql(sql, q.member_params(chunk, dialect)).all():
            state[name] = [epoch, last_offset]


class LogWriter:
    """Channel-log writes of one segment: channel rows locked, signal and message ids looked up once each,
    offsets allocated in call order, one INSERT per table at the end.

    Which (channel, message id) pairs are looked up: those of plain appends; of events, only those of events
    already stored (``stored``), since record_events writes an event and its log entry in one transaction,
    so a new event id has no log entry; of signals, none, since publish_signal writes the signal and its log
    entry together and a signal already in the ledger is a duplicate before its message id matters. Those
    two shortcuts can only be wrong for a log entry written by something else with that id (a plain append,
    or a retention that trimmed the event but not its entry); its INSERT then violates the (channel,
    message_id) unique index, and the batch is re-run ``careful``: every pair looked up, as the contract
    says."""

    def __init__(
        self,
        conn: sa.Connection,
        dialect: str,
        statements: Mapping[str, str],
        now_ms: Callable[[], int],
        appends: Sequence[AppendRow],
        events: Sequence[EventRow],
        stored: set[str],
        careful: bool,
    ) -> None:
        self.conn, self.dialect, self.sql, self.now_ms = conn, dialect, statements, now_ms
        self.now = now_ms()
        self.careful = careful
        names = sorted({r.channel for r in appends} | {e.channel for e in events if e.channel is not None})
        self.state = lock_channels(conn, dialect, names, now_ms) if names else {}
        self.before = {name: value[1] for name, value in self.state.items()}
        self.known_signals: dict[str, tuple[str, int]] = {}
        signal_ids = [r.signal.id for r in appends if r.signal is not None]
        for chunk in chunks(signal_ids):
            sql = q.member(q.SELECT_SIGNAL_IDS, len(chunk), dialect)
            for signal_id, channel, offset in conn.exec_driver_sql(
                sql, q.member_params(chunk, dialect)
            ).all():
                self.known_signals[signal_id] = (channel, offset)
        self.known_messages: dict[tuple[str, str], int] = {}
        wanted = {
            (r.channel, r.message_id)
            for r in appends
            if r.message_id is not None and (careful or r.signal is None)
        }
        wanted.update(
            (e.channel, e.event.id)
            for e in events
            if e.channel is not None and (careful or e.event.id in stored)
        )
        pairs = sorted(wanted)
        if dialect == "postgresql":
            for chunk in chunks(pairs, PG_ARRAY_CHUNK):
                params = (json_rows(chunk),)
                for channel, message_id, offset in conn.exec_driver_sql(q.SELECT_LOG_PAIRS_PG, params).all():
                    self.known_messages[(channel, message_id)] = offset
        elif pairs:
            on = sorted({c for c, _ in pairs})
            for chunk in chunks(sorted({m for _, m in pairs})):
                sql = q.select_log_messages(len(on), len(chunk))
                for channel, message_id, offset in conn.exec_driver_sql(sql, (*on, *chunk)).all():
                    self.known_messages[(channel, message_id)] = offset
        self.log_rows: list[tuple[Any, ...]] = []
        self.signal_rows: list[tuple[Any, ...]] = []
        self.delivery_rows: list[tuple[Any, ...]] = []
        self.duplicates_on: set[str] = set()

    def append(self, request: AppendRow) -> Provisional:
        """Allocate the next offset, or return (channel, original offset) for a duplicate."""
        signal = request.signal
        if signal is not None and signal.id in self.known_signals:
            original = self.known_signals[signal.id]
            self.duplicates_on.add(original[0])
            return original
        result = self.append_entry(
            request.channel, request.message_id, request.payload, request.expires_at_ms
        )
        if signal is not None and isinstance(result, Appended):
            offset = result.offset
            self.known_signals[signal.id] = (request.channel, offset)
            self.signal_rows.append(  # q.SIGNAL_COLUMNS
                (
                    signal.id,
                    signal.strategy,
                    request.channel,
                    offset,
                    dumps(list(signal.accounts)),
                    dumps(list(signal.groups)),
                    request.payload,
                    signal.created_at,
                    signal.expires_at,
                )
            )
            self.delivery_rows.extend(  # q.DELIVERY_COLUMNS
                (signal.id, account, "pending", self.now, self.now) for account in signal.accounts
            )
        return result

    def append_entry(
        self, channel: str, message_id: str | None, payload: str, expires_at_ms: int | None
    ) -> Provisional:
        """:meth:`append` without a signal (what an event needs), so no request object is built per event."""
        if message_id is not None:
            known = self.known_messages.get((channel, message_id))
            if known is not None:
                self.duplicates_on.add(channel)
                return (channel, known)
        channel_state = self.state[channel]
        channel_state[1] += 1
        offset: int = channel_state[1]
        self.log_rows.append((channel, offset, message_id, payload, expires_at_ms, self.now))  # q.LOG_COLUMNS
        if message_id is not None:
            self.known_messages[(channel, message_id)] = offset
        return Appended(channel, offset, channel_state[0], False)

    def flush(self) -> None:
        """Write the rows; load the epochs of channels that only duplicates point to.

        PostgreSQL: every row in one statement (``q.WRITE_LOG_PG``). A row that collides with one
        written by another process (a unique index) fails it; the careful re-run, which writes
        table by table, settles it."""
        conn, sql, dialect = self.conn, self.sql, self.dialect
        moved = [(v[1], n) for n, v in self.state.items() if v[1] != self.before.get(n)]
        if dialect == "postgresql" and not self.careful:
            if self.log_rows or self.signal_rows or self.delivery_rows:
                params = (
                    json_rows(self.log_rows),
                    json_rows(moved),
                    json_rows(self.signal_rows),
                    json_rows(self.delivery_rows),
                )
                conn.exec_driver_sql(q.WRITE_LOG_PG, params)
        else:
            if self.log_rows:
                conn.exec_driver_sql(sql[q.INSERT_LOG], self.log_rows)
                write_rows(conn, dialect, sql[q.UPDATE_CHANNEL_OFFSET], q.UPDATE_CHANNEL_OFFSETS_PG, moved)
            if self.signal_rows:
                conn.exec_driver_sql(sql[q.INSERT_SIGNAL], self.signal_rows)
            if self.delivery_rows:
                write_rows(conn, dialect, sql[q.INSERT_PENDING], q.INSERT_PENDING_PG, self.delivery_rows)
        other = sorted(self.duplicates_on - set(self.state))
        if other:
            self.state.update(lock_channels(conn, dialect, other, self.now_ms))

    def resolve(self, result: Provisional) -> Appended:
        if isinstance(result, Appended):
            return result
        return Appended(result[0], result[1], self.state[result[0]][0], True)
