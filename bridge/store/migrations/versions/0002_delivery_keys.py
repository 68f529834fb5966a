"""Deliveries: the account index also carries the signal id; room on PostgreSQL pages for in-place updates.

The writer moves a delivery through its statuses with one UPDATE per batch, joined to the batch on
(signal id, account). With an index on ``account`` alone, a planner without statistics yet (a young
table) may pick it for that join and then filter every delivery of the account, a cost that grows
with the account's history. An index on (account, signal id) finds the row either way and still
serves the per-account queries. On PostgreSQL a fill factor of 70 leaves room on each page, so that
a status change, which touches no indexed column, is a heap-only update: no new index entries.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_signal_deliveries_account_signal", "signal_deliveries", ["account", "signal_id"])
    op.drop_index("ix_signal_deliveries_account", table_name="signal_deliveries")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE signal_deliveries SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE signal_deliveries RESET (fillfactor)")
    op.create_index("ix_signal_deliveries_account", "signal_deliveries", ["account"])
    op.drop_index("ix_signal_deliveries_account_signal", table_name="signal_deliveries")
