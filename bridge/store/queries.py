"""Every SQL statement of the store, one named function each (built with SQLAlchemy Core).

Statements that are run with many parameter sets (``executemany``) use ``b_``-prefixed bind names where a
column of the same name is also updated, as SQLAlchemy requires. ``dialect`` is the SQLAlchemy dialect name
(``sqlite`` or ``postgresql``); both support ``INSERT ... ON CONFLICT``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite

from bridge.store.schema import (
    STATUS_COLUMNS,
    accounts,
    channel_log,
    channels,
    revocations,
    signal_deliveries,
    signals,
    trade_events,
)

__all__ = [
    "DELIVERY_COLUMNS",
    "EVENT_COLUMNS",
    "INSERT_EVENTS",
    "INSERT_EVENTS_PG",
    "INSERT_LOG",
    "INSERT_PENDING",
    "INSERT_PENDING_PG",
    "INSERT_SIGNAL",
    "LOG_COLUMNS",
    "SELECT_CHANNELS",
    "SELECT_DELIVERY_STATES",
    "SELECT_EVENT_IDS_UP_TO",
    "SELECT_LAST_EVENT_SEQ",
    "SELECT_LOG_PAIRS_PG",
    "SELECT_SIGNAL_IDS",
    "SIGNAL_COLUMNS",
    "UPDATE_CHANNEL_OFFSET",
    "UPDATE_CHANNEL_OFFSETS_PG",
    "WRITE_LOG_PG",
    "delete_deliveries_of",
    "delete_events",
    "delete_log",
    "delete_log_keys",
    "delete_signals",
    "insert_channel",
    "insert_delivery",
    "json_rows",
    "list_accounts",
    "list_events",
    "list_revocations",
    "list_signals",
    "member",
    "member_params",
    "min_offset",
    "positional",
    "purge_revocations",
    "read_since",
    "reset_channel",
    "select_account",
    "select_channel",
    "select_deliveries",
    "select_expirable",
    "select_log_messages",
    "select_old_events",
    "select_old_log",
    "select_old_signals",
    "select_signal",
    "touch_account",
    "update_delivery",
    "update_delivery_any",
    "upsert_revocation",
    "upsert_snapshot",
]


def positional(sql: str, dialect: str) -> str:
    """Adapt ``?`` placeholders to the driver: kept for sqlite3, ``$1, $2, ...`` for asyncpg."""
    if dialect != "postgresql":
        return sql
    parts = sql.split("?")
    return "".join(part + (f"${n}" if n < len(parts) else "") for n, part in enumerate(parts, 1))


# Hot bulk inserts are plain SQL run with ``exec_driver_sql`` and tuples in the order of the *_COLUMNS
# constants, skipping SQLAlchemy's per-row parameter processing (the largest cost of a batch).
LOG_COLUMNS = ("channel", "log_offset", "message_id", "payload", "expires_at_ms", "created_at_ms")
SIGNAL_COLUMNS = (
    "id",
    "strategy",
    "channel",
    "log_offset",
    "accounts",
    "groups",
    "payload",
    "created_at_ms",
    "expires_at_ms",
)
DELIVERY_COLUMNS = ("signal_id", "account", "status", "updated_at_ms", "pending_at_ms")
EVENT_COLUMNS = ("id", "kind", "account", "signal_id", "ts", "received_at_ms", "payload")


def json_rows(param: int, columns: Sequence[tuple[str, str]]) -> str:
    """PostgreSQL: a SELECT of the rows passed as parameter ``param``, one jsonb array of arrays (rows in
    ``columns`` order; ``columns`` are (name, SQL type) pairs).

    Why not one array per column through ``unnest``: asyncpg encodes an array element by element, with
    several ``isinstance`` checks against abstract base classes for each, which made array encoding the
    writer thread's largest cost. One ``orjson.dumps`` of the rows is C from end to end; measured over
    200 trade-event rows: 0.19 ms of client CPU and 0.93 ms per statement against 0.72 and 1.24 ms with
    arrays. jsonb, not json: ``->>`` on json parses the element again for every field (3.1 ms)."""
    fields = ", ".join(
        f"r->>{i} AS {name}" if kind == "text" else f"(r->>{i})::{kind} AS {name}"
        for i, (name, kind) in enumerate(columns)
    )
    return f"SELECT {fields} FROM jsonb_array_elements(${param}::jsonb) AS r"  # noqa: S608 (constants only)


def _typed(table: sa.Table, names: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """(name, SQL type) of ``names`` in ``table`` for :func:`json_rows`: the tables hold only BIGINT and
    strings."""
    return tuple((n, "bigint" if isinstance(table.c[n].type, sa.BigInteger) else "text") for n in names)


_LOG_TYPES = _typed(channel_log, LOG_COLUMNS)
_SIGNAL_TYPES = _typed(signals, SIGNAL_COLUMNS)
_DELIVERY_TYPES = _typed(signal_deliveries, DELIVERY_COLUMNS)
_EVENT_TYPES = _typed(trade_events, EVENT_COLUMNS)
_OFFSET_TYPES = _typed(channels, ("last_offset", "name"))

_LOG_INSERT = (
    "INSERT INTO channel_log (channel, log_offset, message_id, payload, expires_at_ms, created_at_ms) "
)
# "groups" is quoted because GROUPS is a keyword.
_SIGNAL_INSERT = (
    'INSERT INTO signals (id, strategy, channel, log_offset, accounts, "groups", payload, created_at_ms, '
    "expires_at_ms) "
)
_PENDING_INSERT = "INSERT INTO signal_deliveries (signal_id, account, status, updated_at_ms, pending_at_ms) "
_EVENT_INSERT = "INSERT INTO trade_events (id, kind, account, signal_id, ts, received_at_ms, payload) "


def _pending_insert_pg(param: int) -> str:
    return f"{_PENDING_INSERT}{json_rows(param, _DELIVERY_TYPES)} ON CONFLICT (signal_id, account) DO NOTHING"


def _offsets_update_pg(param: int) -> str:
    return (
        "UPDATE channels AS c SET last_offset = u.last_offset "  # noqa: S608 (constants only)
        f"FROM ({json_rows(param, _OFFSET_TYPES)}) AS u WHERE c.name = u.name"
    )


#: Append log entries (LOG_COLUMNS tuples).
INSERT_LOG = f"{_LOG_INSERT}VALUES (?, ?, ?, ?, ?, ?)"
#: Record signals (SIGNAL_COLUMNS tuples).
INSERT_SIGNAL = f"{_SIGNAL_INSERT}VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
#: Create pending deliveries (DELIVERY_COLUMNS tuples), leaving existing rows alone.
INSERT_PENDING = f"{_PENDING_INSERT}VALUES (?, ?, ?, ?, ?) ON CONFLICT (signal_id, account) DO NOTHING"
#: PostgreSQL: INSERT_PENDING for a whole batch in one statement (rows as :func:`json_rows`). asyncpg's
#: executemany runs the statement once per row on the server; measured inside the hub's writer under
#: `mtbridge bench signals`: 5.4 ms per batch of ~125 rows that way.
INSERT_PENDING_PG = _pending_insert_pg(1)
#: Store events (EVENT_COLUMNS tuples), ignoring ids stored meanwhile by another writer.
INSERT_EVENTS = f"{_EVENT_INSERT}VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
#: PostgreSQL: INSERT_EVENTS for a whole batch (rows as :func:`json_rows`), answering the ids it inserted.
INSERT_EVENTS_PG = f"{_EVENT_INSERT}{json_rows(1, _EVENT_TYPES)} ON CONFLICT (id) DO NOTHING RETURNING id"

#: PostgreSQL: the log entries of (channel, message id) pairs (rows as :func:`json_rows`). Joining the pairs
#: is one probe of the (channel, message_id) index each; ``channel = ANY(..) AND message_id = ANY(..)`` is
#: planned as a scan of the channels' whole logs, which grows with the log.
SELECT_LOG_PAIRS_PG = (
    "SELECT l.channel, l.message_id, l.log_offset "  # noqa: S608 (constants only)
    f"FROM ({json_rows(1, _typed(channel_log, ('channel', 'message_id')))}) AS k "
    "JOIN channel_log AS l ON l.channel = k.channel AND l.message_id = k.message_id"
)

# Lookups of the writer, by id lists: plain SQL with ``{}`` where :func:`member` puts the membership test, so
# that a batch costs no SQLAlchemy compilation and, on PostgreSQL, one prepared statement serves every size.

#: SQLite: the given event ids stored up to a seq (the last parameter), i.e. before a batch inserted its own.
SELECT_EVENT_IDS_UP_TO = "SELECT id FROM trade_events WHERE id {} AND seq <= ?"
#: SQLite: the highest event seq (new rows get higher ones: seq is the rowid).
SELECT_LAST_EVENT_SEQ = "SELECT max(seq) FROM trade_events"
#: Signals already in the ledger among the given ids, with where they were published.
SELECT_SIGNAL_IDS = "SELECT id, channel, log_offset FROM signals WHERE id {}"
#: Status of every delivery of the given signals (a signal with a delivery row is in the ledger: retention
#: deletes a signal's deliveries with it, so only signals without rows need SELECT_SIGNAL_IDS).
SELECT_DELIVERY_STATES = "SELECT signal_id, account, status FROM signal_deliveries WHERE signal_id {}"
#: Channel rows by name (PostgreSQL: the caller appends FOR UPDATE).
SELECT_CHANNELS = "SELECT name, epoch, last_offset FROM channels WHERE name {}"
#: Move a channel's last offset (executemany of (last_offset, name)).
UPDATE_CHANNEL_OFFSET = "UPDATE channels SET last_offset = ? WHERE name = ?"
#: PostgreSQL: UPDATE_CHANNEL_OFFSET for many channels in one statement ((last_offset, name) rows as
#: :func:`json_rows`).
UPDATE_CHANNEL_OFFSETS_PG = _offsets_update_pg(1)

#: PostgreSQL: a segment's channel-log writes as one statement of data-modifying CTEs, four parameters of
#: rows as :func:`json_rows`: log entries (LOG_COLUMNS), channel offsets ((last_offset, name)), signals
#: (SIGNAL_COLUMNS) and pending deliveries (DELIVERY_COLUMNS). Empty arrays write nothing. The writer's
#: transaction is a sequence of round trips (about 2 ms each under signals load, docs/benchmarks.md);
#: this replaced four of them (two COPYs and two statements) with one.
WRITE_LOG_PG = (
    f"WITH log AS ({_LOG_INSERT}{json_rows(1, _LOG_TYPES)}), "
    f"moved AS ({_offsets_update_pg(2)}), "
    f"sig AS ({_SIGNAL_INSERT}{json_rows(3, _SIGNAL_TYPES)}) "
    f"{_pending_insert_pg(4)}"
)


@functools.lru_cache(maxsize=1024)
def member(template: str, count: int, dialect: str) -> str:
    """``template`` with its ``{}`` replaced by a test of membership in a list of ``count`` strings: ``IN (?,
    ..)`` on SQLite (one parameter per value; the text is cached per count), ``= ANY($1::varchar[])`` on
    PostgreSQL (one array parameter: see :func:`member_params`)."""
    if dialect == "postgresql":
        return template.format("= ANY($1::varchar[])")
    return template.format(f"IN ({', '.join('?' * count)})")


def member_params(values: Sequence[str], dialect: str) -> tuple[Any, ...]:
    """The parameters of a :func:`member` statement for ``values``."""
    return (list(values),) if dialect == "postgresql" else tuple(values)


_SELECT_LOG_MESSAGES = (
    "SELECT channel, message_id, log_offset FROM channel_log WHERE channel IN ({}) AND message_id IN ({})"
)


@functools.lru_cache(maxsize=1024)
def select_log_messages(channels: int, message_ids: int) -> str:
    """SQLite: log entries of ``channels`` channels carrying one of ``message_ids`` message ids (parameters:
    the channel names, then the message ids); PostgreSQL uses :data:`SELECT_LOG_PAIRS_PG`."""
    return _SELECT_LOG_MESSAGES.format(", ".join("?" * channels), ", ".join("?" * message_ids))


_UPDATE_DELIVERY = (
    "UPDATE signal_deliveries SET status = ?, updated_at_ms = ?{} "
    "WHERE signal_id = ? AND account = ? AND status = ?"
)


@functools.lru_cache(maxsize=256)
def update_delivery(columns: tuple[str, ...], dialect: str) -> str:
    """Move a delivery forward if it is still at its old status, setting only what changed: parameters are
    the status, its time, one value per name of ``columns`` (``detail`` and the time columns of the statuses
    reached, in that order), then signal id, account and old status. Only the columns a batch touches are
    written: SQLite's cost of an UPDATE grows with the expressions it evaluates."""
    return positional(_UPDATE_DELIVERY.format("".join(f", {column} = ?" for column in columns)), dialect)


# Column names come from STATUS_COLUMNS and "detail" only, never from a request.
_UPDATE_DELIVERIES_PG = (
    "UPDATE signal_deliveries AS d SET status = u.status, updated_at_ms = u.at{} "
    "FROM ({}) AS u "
    "WHERE d.signal_id = u.signal_id AND d.account = u.account AND d.status = u.old"
)


@functools.lru_cache(maxsize=16)
def update_deliveries_pg(columns: tuple[str, ...]) -> str:
    """PostgreSQL: :func:`update_delivery` for a whole batch in one statement. The parameter is the rows
    (:func:`json_rows`), each with the parameters of :func:`update_delivery` in the same order; each
    (signal id, account) appears at most once in a batch, so no row is updated twice by one statement. A
    NULL in a column keeps the row's value (times and the detail are only ever set), so rows that set
    different columns share the statement: one round trip per batch, not one per combination of
    columns."""
    fields = [("status", "text"), ("at", "bigint")]
    fields += [(f"c{i}", "text" if c == "detail" else "bigint") for i, c in enumerate(columns)]
    fields += [("signal_id", "text"), ("account", "text"), ("old", "text")]
    sets = "".join(f", {column} = COALESCE(u.c{i}, d.{column})" for i, column in enumerate(columns))
    return _UPDATE_DELIVERIES_PG.format(sets, json_rows(1, fields))


def _insert(dialect: str, table: sa.Table) -> Any:
    """A dialect-specific INSERT that supports ON CONFLICT."""
    return pg.insert(table) if dialect == "postgresql" else sqlite.insert(table)


# --- channels and the channel log ---


def select_channel(name: str) -> sa.Select[Any]:
    """One channel row."""
    return sa.select(channels.c.epoch, channels.c.last_offset).where(channels.c.name == name)


def select_tops(names: Sequence[str]) -> sa.Select[Any]:
    """Epoch and last offset of many channels in one statement (the cluster's periodic gap check)."""
    return sa.select(channels.c.name, channels.c.epoch, channels.c.last_offset).where(
        channels.c.name.in_(list(names))
    )


def insert_channel(dialect: str) -> Any:
    """Create a channel (name, epoch, last_offset, created_at_ms) unless it exists."""
    return _insert(dialect, channels).on_conflict_do_nothing(index_elements=["name"])


def reset_channel(name: str, epoch: str) -> sa.Update:
    """Give a channel a new epoch and restart its offsets."""
    return channels.update().where(channels.c.name == name).values(epoch=epoch, last_offset=0)


def read_since(name: str, after: int, limit: int) -> sa.Select[Any]:
    """Log entries after an offset, in offset order."""
    return (
        sa.select(channel_log.c.log_offset, channel_log.c.payload, channel_log.c.expires_at_ms)
        .where(channel_log.c.channel == name, channel_log.c.log_offset > after)
        .order_by(channel_log.c.log_offset)
        .limit(limit)
    )


def min_offset(name: str) -> sa.Select[Any]:
    """The oldest offset still in a channel's log."""
    return sa.select(sa.func.min(channel_log.c.log_offset)).where(channel_log.c.channel == name)


def delete_log(name: str) -> sa.Delete:
    """Erase a channel's whole log."""
    return channel_log.delete().where(channel_log.c.channel == name)


def select_old_log(cutoff_ms: int, limit: int) -> sa.Select[Any]:
    """Keys of log entries created before the cutoff (a retention batch)."""
    return (
        sa.select(channel_log.c.channel, channel_log.c.log_offset)
        .where(channel_log.c.created_at_ms < cutoff_ms)
        .limit(limit)
    )


def delete_log_keys(keys: Sequence[tuple[str, int]]) -> sa.Delete:
    """Delete log entries by (channel, offset)."""
    return channel_log.delete().where(sa.tuple_(channel_log.c.channel, channel_log.c.log_offset).in_(keys))


# --- signals ledger ---


def insert_delivery(dialect: str) -> Any:
    """Create delivery rows (executemany), leaving existing ones alone."""
    return _insert(dialect, signal_deliveries).on_conflict_do_nothing(index_elements=["signal_id", "account"])


def _signal_columns() -> list[sa.ColumnElement[Any]]:
    return [
        signals.c.seq,
        signals.c.id,
        signals.c.strategy,
        signals.c.channel,
        signals.c.log_offset,
        signals.c.accounts,
        signals.c.groups,
        signals.c.payload,
        signals.c.created_at_ms,
        signals.c.expires_at_ms,
    ]


def select_signal(signal_id: str) -> sa.Select[Any]:
    """One signal of the ledger."""
    return sa.select(*_signal_columns()).where(signals.c.id == signal_id)


def list_signals(
    *,
    strategy: str | None,
    account: str | None,
    status: str | None,
    since_ms: int | None,
    until_ms: int | None,
    before_seq: int | None,
    limit: int,
) -> sa.Select[Any]:
    """A page of signals, newest first."""
    stmt = sa.select(*_signal_columns())
    if strategy is not None:
        stmt = stmt.where(signals.c.strategy == strategy)
    if since_ms is not None:
        stmt = stmt.where(signals.c.created_at_ms >= since_ms)
    if until_ms is not None:
        stmt = stmt.where(signals.c.created_at_ms < until_ms)
    if before_seq is not None:
        stmt = stmt.where(signals.c.seq < before_seq)
    if account is not None or status is not None:
        sub = sa.select(signal_deliveries.c.signal_id).where(signal_deliveries.c.signal_id == signals.c.id)
        if account is not None:
            sub = sub.where(signal_deliveries.c.account == account)
        if status is not None:
            sub = sub.where(signal_deliveries.c.status == status)
        stmt = stmt.where(sa.exists(sub))
    return stmt.order_by(signals.c.seq.desc()).limit(limit)


def select_deliveries(signal_ids: Sequence[str]) -> sa.Select[Any]:
    """Delivery rows of these signals."""
    return (
        sa.select(signal_deliveries)
        .where(signal_deliveries.c.signal_id.in_(signal_ids))
        .order_by(signal_deliveries.c.signal_id, signal_deliveries.c.account)
    )


def update_delivery_any() -> sa.Update:
    """Move a delivery forward if still at b_old (executemany with b_sid, b_acc, b_old, b_status, b_at,
    b_detail and b_<status> for each status: the time it was reached in this batch, or None)."""
    values: dict[str, Any] = {
        "status": sa.bindparam("b_status"),
        "updated_at_ms": sa.bindparam("b_at"),
        "detail": sa.func.coalesce(sa.bindparam("b_detail", type_=sa.String), signal_deliveries.c.detail),
    }
    for name, column in STATUS_COLUMNS.items():
        values[column] = sa.func.coalesce(
            sa.bindparam(f"b_{name}", type_=sa.BigInteger), signal_deliveries.c[column]
        )
    return (
        signal_deliveries.update()
        .where(
            signal_deliveries.c.signal_id == sa.bindparam("b_sid"),
            signal_deliveries.c.account == sa.bindparam("b_acc"),
            signal_deliveries.c.status == sa.bindparam("b_old"),
        )
        .values(values)
    )


def select_expirable(now_ms: int, limit: int) -> sa.Select[Any]:
    """Deliveries still waiting on signals that have expired."""
    return (
        sa.select(signal_deliveries.c.signal_id, signal_deliveries.c.account, signal_deliveries.c.status)
        .join(signals, signals.c.id == signal_deliveries.c.signal_id)
        .where(
            signals.c.expires_at_ms <= now_ms,
            signal_deliveries.c.status.in_(("pending", "delivered", "acked")),
        )
        .limit(limit)
    )


def select_old_signals(cutoff_ms: int, limit: int) -> sa.Select[Any]:
    """Ids of signals created before the cutoff (a retention batch)."""
    return sa.select(signals.c.id).where(signals.c.created_at_ms < cutoff_ms).limit(limit)


def delete_deliveries_of(signal_ids: Sequence[str]) -> sa.Delete:
    """Delete the deliveries of these signals."""
    return signal_deliveries.delete().where(signal_deliveries.c.signal_id.in_(signal_ids))


def delete_signals(signal_ids: Sequence[str]) -> sa.Delete:
    """Delete these signals."""
    return signals.delete().where(signals.c.id.in_(signal_ids))


# --- trade events ---


def list_events(
    *,
    account: str | None,
    kind: str | None,
    signal_id: str | None,
    since_ms: int | None,
    until_ms: int | None,
    before_seq: int | None,
    after_seq: int | None,
    newest_first: bool,
    limit: int,
) -> sa.Select[Any]:
    """A page of trade events."""
    stmt = sa.select(trade_events)
    if account is not None:
        stmt = stmt.where(trade_events.c.account == account)
    if kind is not None:
        stmt = stmt.where(trade_events.c.kind == kind)
    if signal_id is not None:
        stmt = stmt.where(trade_events.c.signal_id == signal_id)
    if since_ms is not None:
        stmt = stmt.where(trade_events.c.ts >= since_ms)
    if until_ms is not None:
        stmt = stmt.where(trade_events.c.ts < until_ms)
    if before_seq is not None:
        stmt = stmt.where(trade_events.c.seq < before_seq)
    if after_seq is not None:
        stmt = stmt.where(trade_events.c.seq > after_seq)
    order = trade_events.c.seq.desc() if newest_first else trade_events.c.seq.asc()
    return stmt.order_by(order).limit(limit)


def select_old_events(cutoff_ms: int, limit: int) -> sa.Select[Any]:
    """Keys of events received before the cutoff (a retention batch)."""
    return sa.select(trade_events.c.seq).where(trade_events.c.received_at_ms < cutoff_ms).limit(limit)


def delete_events(seqs: Sequence[int]) -> sa.Delete:
    """Delete events by key."""
    return trade_events.delete().where(trade_events.c.seq.in_(seqs))


# --- accounts ---


def upsert_snapshot(dialect: str) -> Any:
    """Store an account's snapshot (login, snapshot, snapshot_ts_ms) unless a newer one is stored."""
    stmt = _insert(dialect, accounts)
    return stmt.on_conflict_do_update(
        index_elements=["login"],
        set_={"snapshot": stmt.excluded.snapshot, "snapshot_ts_ms": stmt.excluded.snapshot_ts_ms},
        where=sa.or_(
            accounts.c.snapshot_ts_ms.is_(None), accounts.c.snapshot_ts_ms < stmt.excluded.snapshot_ts_ms
        ),
    )


def touch_account(dialect: str) -> Any:
    """Record an account's last activity (login, last_seen_ms); never moves backwards."""
    stmt = _insert(dialect, accounts)
    return stmt.on_conflict_do_update(
        index_elements=["login"],
        set_={"last_seen_ms": stmt.excluded.last_seen_ms},
        where=sa.or_(accounts.c.last_seen_ms.is_(None), accounts.c.last_seen_ms < stmt.excluded.last_seen_ms),
    )


def select_account(login: str) -> sa.Select[Any]:
    """One account."""
    return sa.select(accounts).where(accounts.c.login == login)


def list_accounts() -> sa.Select[Any]:
    """Every account, by login."""
    return sa.select(accounts).order_by(accounts.c.login)


# --- revocations ---


def upsert_revocation(dialect: str) -> Any:
    """Store a revocation, or refresh an existing one."""
    stmt = _insert(dialect, revocations)
    return stmt.on_conflict_do_update(
        index_elements=["kind", "value"],
        set_={
            "revoked_at_ms": stmt.excluded.revoked_at_ms,
            "expires_at_ms": stmt.excluded.expires_at_ms,
            "reason": stmt.excluded.reason,
        },
    )


def list_revocations(now_ms: int) -> sa.Select[Any]:
    """Revocations not yet past their expiry."""
    return (
        sa.select(revocations)
        .where(revocations.c.expires_at_ms > now_ms)
        .order_by(revocations.c.kind, revocations.c.value)
    )


def purge_revocations(cutoff_ms: int) -> sa.Delete:
    """Forget revocations whose tokens have expired."""
    return revocations.delete().where(revocations.c.expires_at_ms <= cutoff_ms)
