"""payment rail: operations (idempotency keys), connected accounts, webhook events

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql import sqltypes

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "rail_operation",
        sa.Column("id", sqltypes.AutoString(length=200), nullable=False),
        sa.Column("kind", sqltypes.AutoString(length=8), nullable=False),
        sa.Column("rail", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("party", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sqltypes.AutoString(length=3), nullable=False),
        sa.Column("status", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("rail_ref", sqltypes.AutoString(length=255), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("kind", "job_id", "status"):
        op.create_index(f"ix_rail_operation_{column}", "rail_operation", [column])
    op.create_table(
        "rail_account",
        sa.Column("party", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("rail", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("reference", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("payouts_enabled", sa.Boolean(), nullable=False),
        sa.Column("status_at", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("party"),
        sa.UniqueConstraint("reference"),
    )
    op.create_table(
        "rail_event",
        sa.Column("id", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("rail", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("type", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("rail_event")
    op.drop_table("rail_account")
    op.drop_table("rail_operation")
