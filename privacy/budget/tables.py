"""SQLModel tables of a data host's privacy-budget ledger, in the node's own database.

The ledger is the node's record of every differential-privacy mechanism run on each of
its datasets. Spend rows are only ever inserted; a reservation row changes once, from
``open`` to ``released``; a budget row never changes. Nothing here computes ε or decides
admission (that is ``ledger.py``), and the coordinator never writes these tables.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    String,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

#: Longest dataset or job id the ledger stores.
MAX_ID_LENGTH = 256
#: Longest accountant name the ledger stores.
MAX_ACCOUNTANT_LENGTH = 32
RESERVATION_OPEN = "open"
RESERVATION_RELEASED = "released"


class PrivacyBudget(SQLModel, table=True):
    """A dataset's privacy terms: δ, the lifetime ε cap and the optional per-job ε cap.

    Every read-check-write on a dataset locks this row first.
    """

    __tablename__ = "privacy_budget"

    dataset_id: str = Field(sa_column=Column(String(MAX_ID_LENGTH), primary_key=True))
    delta: float = Field(sa_column=Column(Float, nullable=False))
    lifetime_epsilon: float = Field(sa_column=Column(Float, nullable=False))
    max_epsilon_per_job: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class PrivacyReservation(SQLModel, table=True):
    """The steps a job was admitted to run on a dataset, at one noise multiplier and rate."""

    __tablename__ = "privacy_reservation"
    __table_args__ = (
        UniqueConstraint("dataset_id", "job_id", name="uq_privacy_reservation_dataset_job"),
        CheckConstraint(
            f"status IN ('{RESERVATION_OPEN}', '{RESERVATION_RELEASED}')",
            name="ck_privacy_reservation_status",
        ),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    dataset_id: str = Field(
        sa_column=Column(
            String(MAX_ID_LENGTH), ForeignKey("privacy_budget.dataset_id"), nullable=False
        )
    )
    job_id: str = Field(sa_column=Column(String(MAX_ID_LENGTH), nullable=False))
    noise_multiplier: float = Field(sa_column=Column(Float, nullable=False))
    sample_rate: float = Field(sa_column=Column(Float, nullable=False))
    planned_steps: int = Field(sa_column=Column(Integer, nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    reserved_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    released_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class PrivacySpend(SQLModel, table=True):
    """One round a job actually ran on a dataset: the mechanism it spent. Insert-only.

    ``id`` orders the history; (dataset, job, round) is unique so that a round is never
    counted twice, and (dataset, job) must name a reservation.
    """

    __tablename__ = "privacy_spend"
    __table_args__ = (
        UniqueConstraint(
            "dataset_id", "job_id", "round_number", name="uq_privacy_spend_dataset_job_round"
        ),
        ForeignKeyConstraint(
            ["dataset_id", "job_id"],
            ["privacy_reservation.dataset_id", "privacy_reservation.job_id"],
            name="fk_privacy_spend_reservation",
        ),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    dataset_id: str = Field(sa_column=Column(String(MAX_ID_LENGTH), nullable=False))
    job_id: str = Field(sa_column=Column(String(MAX_ID_LENGTH), nullable=False))
    round_number: int = Field(sa_column=Column(Integer, nullable=False))
    noise_multiplier: float = Field(sa_column=Column(Float, nullable=False))
    sample_rate: float = Field(sa_column=Column(Float, nullable=False))
    steps: int = Field(sa_column=Column(Integer, nullable=False))
    accountant: str = Field(sa_column=Column(String(MAX_ACCOUNTANT_LENGTH), nullable=False))
    recorded_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


BUDGET_TABLES = [
    PrivacyBudget.__table__,  # type: ignore[attr-defined]
    PrivacyReservation.__table__,  # type: ignore[attr-defined]
    PrivacySpend.__table__,  # type: ignore[attr-defined]
]
