"""Initial schema: channels and their log, signals ledger with deliveries, trade events, accounts,
revocations.

Revision ID: 0001
Revises:
Create Date: 2025-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "channels",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("epoch", sa.String(32), nullable=False),
        sa.Column("last_offset", sa.BigInteger, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "channel_log",
        sa.Column("channel", sa.String(200), primary_key=True),
        sa.Column("log_offset", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("message_id", sa.String(64), nullable=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger, nullable=True),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_channel_log_message_id", "channel_log", ["channel", "message_id"], unique=True)
    op.create_index("ix_channel_log_created_at", "channel_log", ["created_at_ms"])

    op.create_table(
        "signals",
        sa.Column("seq", _Seq, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("strategy", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(200), nullable=False),
        sa.Column("log_offset", sa.BigInteger, nullable=False),
        sa.Column("accounts", sa.Text, nullable=False),
        sa.Column("groups", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_signals_id", "signals", ["id"], unique=True)
    op.create_index("ix_signals_strategy", "signals", ["strategy", "seq"])
    op.create_index("ix_signals_created_at", "signals", ["created_at_ms"])
    op.create_index("ix_signals_expires_at", "signals", ["expires_at_ms"])

    op.create_table(
        "signal_deliveries",
        sa.Column("signal_id", sa.String(36), primary_key=True),
        sa.Column("account", sa.String(20), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
        sa.Column("pending_at_ms", sa.BigInteger, nullable=True),
        sa.Column("delivered_at_ms", sa.BigInteger, nullable=True),
        sa.Column("acked_at_ms", sa.BigInteger, nullable=True),
        sa.Column("expired_at_ms", sa.BigInteger, nullable=True),
        sa.Column("executed_at_ms", sa.BigInteger, nullable=True),
        sa.Column("rejected_at_ms", sa.BigInteger, nullable=True),
        sa.Column("detail", sa.String(256), nullable=True),
    )
    op.create_index("ix_signal_deliveries_account", "signal_deliveries", ["account"])

    op.create_table(
        "trade_events",
        sa.Column("seq", _Seq, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("account", sa.String(20), nullable=False),
        sa.Column("signal_id", sa.String(36), nullable=True),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("received_at_ms", sa.BigInteger, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
    )
    op.create_index("ix_trade_events_id", "trade_events", ["id"], unique=True)
    op.create_index("ix_trade_events_account", "trade_events", ["account", "seq"])
    op.create_index("ix_trade_events_signal_id", "trade_events", ["signal_id"])
    op.create_index("ix_trade_events_ts", "trade_events", ["ts"])
    op.create_index("ix_trade_events_received_at", "trade_events", ["received_at_ms"])

    op.create_table(
        "accounts",
        sa.Column("login", sa.String(20), primary_key=True),
        sa.Column("last_seen_ms", sa.BigInteger, nullable=True),
        sa.Column("snapshot", sa.Text, nullable=True),
        sa.Column("snapshot_ts_ms", sa.BigInteger, nullable=True),
    )

    op.create_table(
        "revocations",
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("value", sa.String(200), primary_key=True),
        sa.Column("revoked_at_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(256), nullable=True),
    )
    op.create_index("ix_revocations_expires_at", "revocations", ["expires_at_ms"])


def downgrade() -> None:
    for table in (
        "revocations",
        "accounts",
        "trade_events",
        "signal_deliveries",
        "signals",
        "channel_log",
        "channels",
    ):
        op.drop_table(table)
