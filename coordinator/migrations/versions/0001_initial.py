"""initial schema: accounts, identities, hosts, catalog, jobs, tokens, idempotency, log

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-25 11:19:25.534924
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql import sqltypes

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "account",
        sa.Column("id", sqltypes.AutoString(length=40), nullable=False),
        sa.Column("name", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("role", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "idempotency_record",
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("method", sqltypes.AutoString(length=8), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("request_sha256", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "key"),
    )
    op.create_table(
        "tlog_blob",
        sa.Column("digest", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("media_type", sqltypes.AutoString(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_table(
        "tlog_checkpoint",
        sa.Column(
            "size",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("size"),
    )
    op.create_table(
        "tlog_entry",
        sa.Column(
            "idx",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("idx"),
        sa.UniqueConstraint("leaf_hash"),
    )
    op.create_table(
        "tlog_meta",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("origin", sqltypes.AutoString(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "tlog_node",
        sa.Column(
            "key",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "api_key",
        sa.Column("id", sqltypes.AutoString(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("secret_sha256", sa.LargeBinary(length=32), nullable=False),
        sa.Column("label", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_api_key_account_id"), "api_key", ["account_id"], unique=False)
    op.create_table(
        "identity",
        sa.Column("did", sqltypes.AutoString(length=128), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
        ),
        sa.PrimaryKeyConstraint("did"),
    )
    op.create_index(op.f("ix_identity_account_id"), "identity", ["account_id"], unique=False)
    op.create_table(
        "job",
        sa.Column("id", sqltypes.AutoString(length=40), nullable=False),
        sa.Column("buyer_id", sa.String(length=40), nullable=False),
        sa.Column("status", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("model", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("rounds", sa.Integer(), nullable=False),
        sa.Column("local_epochs", sa.Integer(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("learning_rate", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("strategy", sqltypes.AutoString(length=32), nullable=False),
        sa.Column("strategy_options", sa.Text(), nullable=False),
        sa.Column("min_hosts", sa.Integer(), nullable=False),
        sa.Column("currency", sqltypes.AutoString(length=3), nullable=False),
        sa.Column("budget_minor", sa.BigInteger(), nullable=False),
        sa.Column("quote_total_minor", sa.BigInteger(), nullable=False),
        sa.Column("platform_fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("platform_fee_bps", sa.Integer(), nullable=False),
        sa.Column("spec", sa.LargeBinary(), nullable=False),
        sa.Column("spec_digest", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("development_mode", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["buyer_id"],
            ["account.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_job_buyer_id"), "job", ["buyer_id"], unique=False)
    op.create_index(op.f("ix_job_status"), "job", ["status"], unique=False)
    op.create_table(
        "host_worker",
        sa.Column("host_did", sa.String(length=128), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("worker_did", sqltypes.AutoString(length=128), nullable=False),
        sa.Column("worker_jkt", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("evidence_type", sqltypes.AutoString(length=32), nullable=False),
        sa.Column("evidence_digest", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("evidence", sa.LargeBinary(), nullable=False),
        sa.Column("insecure", sa.Boolean(), nullable=False),
        sa.Column("insecure_reason", sa.Text(), nullable=False),
        sa.Column("evidence_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
        ),
        sa.ForeignKeyConstraint(
            ["host_did"],
            ["identity.did"],
        ),
        sa.PrimaryKeyConstraint("host_did"),
    )
    op.create_table(
        "issued_token",
        sa.Column("jti", sqltypes.AutoString(length=128), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("manifest_digest", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("host_did", sqltypes.AutoString(length=128), nullable=False),
        sa.Column("worker_jkt", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("insecure_attestation", sa.Boolean(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["job.id"],
        ),
        sa.PrimaryKeyConstraint("jti"),
    )
    op.create_index(op.f("ix_issued_token_job_id"), "issued_token", ["job_id"], unique=False)
    op.create_table(
        "job_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("from_status", sqltypes.AutoString(length=16), nullable=True),
        sa.Column("to_status", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("actor_id", sqltypes.AutoString(length=40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["job.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_job_event_job_id"), "job_event", ["job_id"], unique=False)
    op.create_table(
        "listing",
        sa.Column("manifest_digest", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("dataset_id", sqltypes.AutoString(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("creator_did", sa.String(length=128), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("modality", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("data_format", sqltypes.AutoString(length=32), nullable=False),
        sa.Column("license", sqltypes.AutoString(length=128), nullable=False),
        sa.Column("allowed_uses", sqltypes.AutoString(length=256), nullable=False),
        sa.Column("price_per_sample", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("price_value", sa.Float(), nullable=False),
        sa.Column("currency", sqltypes.AutoString(length=3), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("total_bytes", sa.BigInteger(), nullable=False),
        sa.Column("lifetime_epsilon", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("lifetime_epsilon_value", sa.Float(), nullable=False),
        sa.Column("max_epsilon_per_job", sqltypes.AutoString(length=64), nullable=True),
        sa.Column("max_epsilon_per_job_value", sa.Float(), nullable=True),
        sa.Column("delta", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("delta_value", sa.Float(), nullable=False),
        sa.Column("redacted", sa.Boolean(), nullable=False),
        sa.Column("pii_findings", sa.Integer(), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("status", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("listed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.Column("revocation_log_index", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
        ),
        sa.ForeignKeyConstraint(
            ["creator_did"],
            ["identity.did"],
        ),
        sa.PrimaryKeyConstraint("manifest_digest"),
        sa.UniqueConstraint("dataset_id", "version", name="uq_listing_dataset_version"),
    )
    op.create_index(op.f("ix_listing_creator_did"), "listing", ["creator_did"], unique=False)
    op.create_index(op.f("ix_listing_dataset_id"), "listing", ["dataset_id"], unique=False)
    op.create_index(op.f("ix_listing_license"), "listing", ["license"], unique=False)
    op.create_index(
        "ix_listing_search", "listing", ["status", "modality", "price_value"], unique=False
    )
    op.create_table(
        "job_dataset",
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("manifest_digest", sa.String(length=64), nullable=False),
        sa.Column("dataset_id", sqltypes.AutoString(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("target_epsilon", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("target_epsilon_value", sa.Float(), nullable=False),
        sa.Column("delta", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("planned_samples", sa.BigInteger(), nullable=False),
        sa.Column("price_per_sample", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["job.id"],
        ),
        sa.ForeignKeyConstraint(
            ["manifest_digest"],
            ["listing.manifest_digest"],
        ),
        sa.PrimaryKeyConstraint("job_id", "manifest_digest"),
    )
    op.create_index(
        op.f("ix_job_dataset_manifest_digest"), "job_dataset", ["manifest_digest"], unique=False
    )


def downgrade() -> None:
    """Undo this revision."""
    op.drop_index(op.f("ix_job_dataset_manifest_digest"), table_name="job_dataset")
    op.drop_table("job_dataset")
    op.drop_index("ix_listing_search", table_name="listing")
    op.drop_index(op.f("ix_listing_license"), table_name="listing")
    op.drop_index(op.f("ix_listing_dataset_id"), table_name="listing")
    op.drop_index(op.f("ix_listing_creator_did"), table_name="listing")
    op.drop_table("listing")
    op.drop_index(op.f("ix_job_event_job_id"), table_name="job_event")
    op.drop_table("job_event")
    op.drop_index(op.f("ix_issued_token_job_id"), table_name="issued_token")
    op.drop_table("issued_token")
    op.drop_table("host_worker")
    op.drop_index(op.f("ix_job_status"), table_name="job")
    op.drop_index(op.f("ix_job_buyer_id"), table_name="job")
    op.drop_table("job")
    op.drop_index(op.f("ix_identity_account_id"), table_name="identity")
    op.drop_table("identity")
    op.drop_index(op.f("ix_api_key_account_id"), table_name="api_key")
    op.drop_table("api_key")
    op.drop_table("tlog_node")
    op.drop_table("tlog_meta")
    op.drop_table("tlog_entry")
    op.drop_table("tlog_checkpoint")
    op.drop_table("tlog_blob")
    op.drop_table("idempotency_record")
    op.drop_table("account")
