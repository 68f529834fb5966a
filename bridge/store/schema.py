"""Table definitions (SQLAlchemy Core). The migrations in ``migrations/versions`` create exactly these; a test
compares the migrated database with this metadata so the two cannot drift apart.

JSON documents are stored as text serialised by orjson: identical on SQLite and PostgreSQL and cheaper than
driver-side JSON codecs. Times are unix milliseconds in BIGINT columns.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "STATUS_COLUMNS",
    "accounts",
    "channel_log",
    "channels",
    "metadata",
    "revocations",
    "signal_deliveries",
    "signals",
    "trade_events",
]

metadata = sa.MetaData()

# An auto-incrementing 64-bit key that is also SQLite's rowid alias (SQLite only aliases "INTEGER").
_SeqType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

channels = sa.Table(
    "channels",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("epoch", sa.String(32), nullable=False),
    sa.Column("last_offset", sa.BigInteger, nullable=False),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
)

channel_log = sa.Table(
    "channel_log",
    metadata,
    sa.Column("channel", sa.String(200), primary_key=True),
    sa.Column("log_offset", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("message_id", sa.String(64), nullable=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("expires_at_ms", sa.BigInteger, nullable=True),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_channel_log_message_id", "channel", "message_id", unique=True),
    sa.Index("ix_channel_log_created_at", "created_at_ms"),
)

signals = sa.Table(
    "signals",
    metadata,
    sa.Column("seq", _SeqType, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False),
    sa.Column("strategy", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(200), nullable=False),
    sa.Column("log_offset", sa.BigInteger, nullable=False),
    sa.Column("accounts", sa.Text, nullable=False),
    sa.Column("groups", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Column("expires_at_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_signals_id", "id", unique=True),
    sa.Index("ix_signals_strategy", "strategy", "seq"),
    sa.Index("ix_signals_created_at", "created_at_ms"),
    sa.Index("ix_signals_expires_at", "expires_at_ms"),
)

#: Delivery status -> the column that records when it was reached.
STATUS_COLUMNS = {
    "pending": "pending_at_ms",
    "delivered": "delivered_at_ms",
    "acked": "acked_at_ms",
    "expired": "expired_at_ms",
    "executed": "executed_at_ms",
    "rejected": "rejected_at_ms",
}

signal_deliveries = sa.Table(
    "signal_deliveries",
    metadata,
    sa.Column("signal_id", sa.String(36), primary_key=True),
    sa.Column("account", sa.String(20), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
    *(sa.Column(column, sa.BigInteger, nullable=True) for column in STATUS_COLUMNS.values()),
    sa.Column("detail", sa.String(256), nullable=True),
    # (account, signal_id), not account alone: see migration 0002.
    sa.Index("ix_signal_deliveries_account_signal", "account", "signal_id"),
    postgresql_with={"fillfactor": 70},
)

trade_events = sa.Table(
    "trade_events",
    metadata,
    sa.Column("seq", _SeqType, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("account", sa.String(20), nullable=False),
    sa.Column("signal_id", sa.String(36), nullable=True),
    sa.Column("ts", sa.BigInteger, nullable=False),
    sa.Column("received_at_ms", sa.BigInteger, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Index("ix_trade_events_id", "id", unique=True),
    sa.Index("ix_trade_events_account", "account", "seq"),
    sa.Index("ix_trade_events_signal_id", "signal_id"),
    sa.Index("ix_trade_events_ts", "ts"),
    sa.Index("ix_trade_events_received_at", "received_at_ms"),
)

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("login", sa.String(20), primary_key=True),
    sa.Column("last_seen_ms", sa.BigInteger, nullable=True),
    sa.Column("snapshot", sa.Text, nullable=True),
    sa.Column("snapshot_ts_ms", sa.BigInteger, nullable=True),
)

revocations = sa.Table(
    "revocations",
    metadata,
    sa.Column("kind", sa.String(8), primary_key=True),
    sa.Column("value", sa.String(200), primary_key=True),
    sa.Column("revoked_at_ms", sa.BigInteger, nullable=False),
    sa.Column("expires_at_ms", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.String(256), nullable=True),
    sa.Index("ix_revocations_expires_at", "expires_at_ms"),
)
