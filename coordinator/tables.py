"""SQLModel tables of the coordinator: accounts and keys, identities, hosts, the catalog,
jobs and their events, issued capability tokens and idempotency records.

The schema is created and changed only by the Alembic migrations in
``coordinator/migrations``; a test checks that they produce exactly these tables. Money is
integer minor units; exact decimals (prices, ε, δ) are strings, with a float copy only where
the catalog filters or sorts on them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from provenance.storage import UtcDateTime

# Roles and states are plain strings in the database; these are the allowed values.
ROLES = ("creator", "buyer", "auditor", "admin")
LISTED = "listed"
DELISTED = "revoked"
JOB_STATES = ("draft", "funded", "running", "completed", "failed", "cancelled")


def _when(nullable: bool = False) -> Column[datetime]:
    return Column(UtcDateTime(), nullable=nullable)


class Account(SQLModel, table=True):
    """A party: creator, buyer, auditor or admin."""

    __tablename__ = "account"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=64, unique=True)
    role: str = Field(max_length=16)
    created_at: datetime = Field(sa_column=_when())
    disabled_at: datetime | None = Field(default=None, sa_column=_when(True))


class ApiKey(SQLModel, table=True):
    """An API key: only the SHA-256 of its secret part is stored."""

    __tablename__ = "api_key"

    id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(
        sa_column=Column(String(40), ForeignKey("account.id"), nullable=False, index=True)
    )
    secret_sha256: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    label: str = Field(default="", max_length=64)
    created_at: datetime = Field(sa_column=_when())
    revoked_at: datetime | None = Field(default=None, sa_column=_when(True))


class Identity(SQLModel, table=True):
    """A did:key a creator proved it holds; manifests signed by it belong to that account."""

    __tablename__ = "identity"

    did: str = Field(primary_key=True, max_length=128)
    account_id: str = Field(
        sa_column=Column(String(40), ForeignKey("account.id"), nullable=False, index=True)
    )
    linked_at: datetime = Field(sa_column=_when())


class HostWorker(SQLModel, table=True):
    """A data host's attested worker key: the key capability tokens are bound to."""

    __tablename__ = "host_worker"

    host_did: str = Field(
        sa_column=Column(String(128), ForeignKey("identity.did"), primary_key=True)
    )
    account_id: str = Field(sa_column=Column(String(40), ForeignKey("account.id"), nullable=False))
    worker_did: str = Field(max_length=128)
    worker_jkt: str = Field(max_length=64)
    evidence_type: str = Field(max_length=32)
    evidence_digest: str = Field(max_length=64)
    evidence: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    insecure: bool
    insecure_reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    evidence_time: datetime = Field(sa_column=_when())
    verified_at: datetime = Field(sa_column=_when())


class Listing(SQLModel, table=True):
    """A verified, logged dataset manifest in the catalog."""

    __tablename__ = "listing"
    __table_args__ = (
        UniqueConstraint("dataset_id", "version", name="uq_listing_dataset_version"),
        Index("ix_listing_search", "status", "modality", "price_value"),
    )

    manifest_digest: str = Field(primary_key=True, max_length=64)
    dataset_id: str = Field(max_length=32, index=True)
    version: int
    creator_did: str = Field(
        sa_column=Column(String(128), ForeignKey("identity.did"), nullable=False, index=True)
    )
    account_id: str = Field(sa_column=Column(String(40), ForeignKey("account.id"), nullable=False))
    title: str = Field(sa_column=Column(Text, nullable=False))
    modality: str = Field(max_length=16)
    data_format: str = Field(max_length=32)
    license: str = Field(max_length=128, index=True)
    allowed_uses: str = Field(max_length=256)
    price_per_sample: str = Field(max_length=64)
    price_value: float = Field(sa_column=Column(Float, nullable=False))
    currency: str = Field(max_length=3)
    rows: int = Field(sa_column=Column(BigInteger, nullable=False))
    total_bytes: int = Field(sa_column=Column(BigInteger, nullable=False))
    lifetime_epsilon: str = Field(max_length=64)
    lifetime_epsilon_value: float = Field(sa_column=Column(Float, nullable=False))
    max_epsilon_per_job: str | None = Field(default=None, max_length=64)
    max_epsilon_per_job_value: float | None = Field(default=None, sa_column=Column(Float))
    delta: str = Field(max_length=64)
    delta_value: float = Field(sa_column=Column(Float, nullable=False))
    redacted: bool
    pii_findings: int
    envelope: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    log_index: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: str = Field(default=LISTED, max_length=16)
    listed_at: datetime = Field(sa_column=_when())
    revoked_at: datetime | None = Field(default=None, sa_column=_when(True))
    revoke_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    revocation_log_index: int | None = Field(default=None, sa_column=Column(BigInteger))
    #: The manifest's royalty split resolved to accounts, as canonical JSON
    #: (``coordinator.royalties``); null when the creator's account is paid alone.
    royalties: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class Job(SQLModel, table=True):
    """A buyer's training job: its plan, its quote and its state."""

    __tablename__ = "job"

    id: str = Field(primary_key=True, max_length=40)
    buyer_id: str = Field(
        sa_column=Column(String(40), ForeignKey("account.id"), nullable=False, index=True)
    )
    status: str = Field(max_length=16, index=True)
    model: str = Field(max_length=64)
    rounds: int
    local_epochs: int
    batch_size: int
    learning_rate: str = Field(max_length=64)
    strategy: str = Field(max_length=32)
    strategy_options: str = Field(sa_column=Column(Text, nullable=False))
    min_hosts: int
    currency: str = Field(max_length=3)
    budget_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    quote_total_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    platform_fee_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    platform_fee_bps: int
    spec: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    spec_digest: str = Field(max_length=64)
    development_mode: bool
    created_at: datetime = Field(sa_column=_when())
    updated_at: datetime = Field(sa_column=_when())
    status_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class JobDataset(SQLModel, table=True):
    """One dataset of a job: the manifest it was priced on, its ε/δ target and its cost."""

    __tablename__ = "job_dataset"

    job_id: str = Field(sa_column=Column(String(40), ForeignKey("job.id"), primary_key=True))
    manifest_digest: str = Field(
        sa_column=Column(
            String(64), ForeignKey("listing.manifest_digest"), primary_key=True, index=True
        )
    )
    dataset_id: str = Field(max_length=32)
    position: int
    target_epsilon: str = Field(max_length=64)
    target_epsilon_value: float = Field(sa_column=Column(Float, nullable=False))
    delta: str = Field(max_length=64)
    planned_samples: int = Field(sa_column=Column(BigInteger, nullable=False))
    price_per_sample: str = Field(max_length=64)
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))


class JobEvent(SQLModel, table=True):
    """One state transition of a job, with the log index of its signed record."""

    __tablename__ = "job_event"

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(
        sa_column=Column(String(40), ForeignKey("job.id"), nullable=False, index=True)
    )
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str = Field(max_length=16)
    actor_id: str = Field(max_length=40)
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    at: datetime = Field(sa_column=_when())
    log_index: int = Field(sa_column=Column(BigInteger, nullable=False))


class IssuedToken(SQLModel, table=True):
    """A capability token the coordinator issued (the token itself is not kept)."""

    __tablename__ = "issued_token"

    jti: str = Field(primary_key=True, max_length=128)
    job_id: str = Field(
        sa_column=Column(String(40), ForeignKey("job.id"), nullable=False, index=True)
    )
    manifest_digest: str = Field(max_length=64)
    host_did: str = Field(max_length=128)
    worker_jkt: str = Field(max_length=64)
    insecure_attestation: bool
    issued_at: datetime = Field(sa_column=_when())
    expires_at: datetime = Field(sa_column=_when())


class IdempotencyRecord(SQLModel, table=True):
    """The sealed response to a POST made with an ``Idempotency-Key`` (``key`` holds an
    HMAC of the key, ``response_body`` the answer under AES-GCM; see api/idempotency.py)."""

    __tablename__ = "idempotency_record"

    account_id: str = Field(sa_column=Column(String(40), primary_key=True))
    key: str = Field(sa_column=Column(String(255), primary_key=True))
    method: str = Field(max_length=8)
    path: str = Field(sa_column=Column(Text, nullable=False))
    request_sha256: str = Field(max_length=64)
    status_code: int
    response_body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(sa_column=_when())


class JobRun(SQLModel, table=True):
    """A job's training run on the SuperLink: its Flower run id and how it went."""

    __tablename__ = "job_run"

    job_id: str = Field(sa_column=Column(String(40), ForeignKey("job.id"), primary_key=True))
    #: Flower's run id, an unsigned 64-bit number (kept as decimal text: it may not fit int64).
    flower_run_id: str | None = Field(default=None, max_length=20)
    fab_hash: str = Field(max_length=64)
    started_at: datetime = Field(sa_column=_when())
    finished_at: datetime | None = Field(default=None, sa_column=_when(True))
    #: The round that is running now (0 before the first).
    current_round: int = 0
    outcome: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class JobRound(SQLModel, table=True):
    """One aggregated (or failed) round of a job, with its proof's place in the log.

    ``summary`` is the JSON the CLI and the API show: metrics, accepted and rejected
    hosts with reasons, ε per dataset, samples metered and their cost.
    """

    __tablename__ = "job_round"

    job_id: str = Field(sa_column=Column(String(40), ForeignKey("job.id"), primary_key=True))
    round_number: int = Field(primary_key=True)
    status: str = Field(max_length=16)
    model_digest: str | None = Field(default=None, max_length=64)
    proof_log_index: int | None = Field(default=None, sa_column=Column(BigInteger))
    proof_digest: str | None = Field(default=None, max_length=64)
    samples: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    cost_minor: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    summary: str = Field(sa_column=Column(Text, nullable=False))
    finished_at: datetime = Field(sa_column=_when())


class JobModel(SQLModel, table=True):
    """The global model a job's last aggregated round produced, and its model card."""

    __tablename__ = "job_model"

    job_id: str = Field(sa_column=Column(String(40), ForeignKey("job.id"), primary_key=True))
    round_number: int
    model_digest: str = Field(max_length=64)
    arrays: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    card: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=_when())


#: Every table the coordinator's migrations manage, besides the log's own tables.
COORDINATOR_TABLES = [
    model.__table__  # type: ignore[union-attr]
    for model in (
        Account,
        ApiKey,
        Identity,
        HostWorker,
        Listing,
        Job,
        JobDataset,
        JobEvent,
        IssuedToken,
        IdempotencyRecord,
        JobRun,
        JobRound,
        JobModel,
    )
]
