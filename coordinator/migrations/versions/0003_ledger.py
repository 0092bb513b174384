"""ledger: accounts with running balances, immutable two-phase transfers, disputes

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql import sqltypes

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "ledger_account",
        sa.Column("id", sqltypes.AutoString(length=120), nullable=False),
        sa.Column("kind", sqltypes.AutoString(length=24), nullable=False),
        sa.Column("owner", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("currency", sqltypes.AutoString(length=3), nullable=False),
        sa.Column("may_go_negative", sa.Boolean(), nullable=False),
        sa.Column("debits_pending", sa.BigInteger(), nullable=False),
        sa.Column("debits_posted", sa.BigInteger(), nullable=False),
        sa.Column("credits_pending", sa.BigInteger(), nullable=False),
        sa.Column("credits_posted", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ledger_account_kind", "ledger_account", ["kind"])
    op.create_index("ix_ledger_account_owner", "ledger_account", ["owner"])
    op.create_table(
        "ledger_transfer",
        sa.Column("id", sqltypes.AutoString(length=200), nullable=False),
        sa.Column("debit_account", sa.String(length=120), nullable=False),
        sa.Column("credit_account", sa.String(length=120), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sqltypes.AutoString(length=3), nullable=False),
        sa.Column("kind", sqltypes.AutoString(length=24), nullable=False),
        sa.Column("status", sqltypes.AutoString(length=8), nullable=False),
        sa.Column("job_id", sqltypes.AutoString(length=40), nullable=True),
        sa.Column("round_number", sa.Integer(), nullable=True),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("debit_account", "credit_account", "kind", "status", "job_id"):
        op.create_index(f"ix_ledger_transfer_{column}", "ledger_transfer", [column])
    op.create_table(
        "dispute",
        sa.Column("id", sqltypes.AutoString(length=40), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("round_number", sa.Integer(), nullable=True),
        sa.Column("opened_by", sqltypes.AutoString(length=40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("currency", sqltypes.AutoString(length=3), nullable=False),
        sa.Column("frozen_minor", sa.BigInteger(), nullable=False),
        sa.Column("status", sqltypes.AutoString(length=8), nullable=False),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("resolved_by", sqltypes.AutoString(length=40), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_dispute_job_id", "dispute", ["job_id"])
    op.create_index("ix_dispute_status", "dispute", ["status"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("dispute")
    op.drop_table("ledger_transfer")
    op.drop_table("ledger_account")
