"""training: job runs, rounds with their proofs, and the trained model

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql import sqltypes

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "job_run",
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("flower_run_id", sqltypes.AutoString(length=20), nullable=True),
        sa.Column("fab_hash", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("current_round", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"]),
        sa.PrimaryKeyConstraint("job_id"),
    )
    op.create_table(
        "job_round",
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("round_number", sa.Integer(), nullable=False),
        sa.Column("status", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("model_digest", sqltypes.AutoString(length=64), nullable=True),
        sa.Column("proof_log_index", sa.BigInteger(), nullable=True),
        sa.Column("proof_digest", sqltypes.AutoString(length=64), nullable=True),
        sa.Column("samples", sa.BigInteger(), nullable=False),
        sa.Column("cost_minor", sa.BigInteger(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"]),
        sa.PrimaryKeyConstraint("job_id", "round_number"),
    )
    op.create_table(
        "job_model",
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("round_number", sa.Integer(), nullable=False),
        sa.Column("model_digest", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("arrays", sa.LargeBinary(), nullable=False),
        sa.Column("card", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"]),
        sa.PrimaryKeyConstraint("job_id"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("job_model")
    op.drop_table("job_round")
    op.drop_table("job_run")
