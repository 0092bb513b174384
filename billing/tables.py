"""The ledger's tables: accounts with running balances, and immutable transfers.

Balances follow TigerBeetle's model: each account keeps four running sums (debits and
credits, pending and posted) that change only together with the transfer that moves them,
in one database transaction. Amounts are integer minor units of the account's currency.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, String, Text
from sqlmodel import Field, SQLModel

from provenance.storage import UtcDateTime


class LedgerAccount(SQLModel, table=True):
    """One ledger account (see ``billing.ledger`` for the kinds and their rules)."""

    __tablename__ = "ledger_account"

    id: str = Field(primary_key=True, max_length=120)
    kind: str = Field(max_length=24, index=True)
    owner: str = Field(max_length=64, index=True)
    currency: str = Field(max_length=3)
    #: Whether posted and pending debits may exceed posted credits (only rail clearing).
    may_go_negative: bool = False
    debits_pending: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    debits_posted: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    credits_pending: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    credits_posted: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))


class LedgerTransfer(SQLModel, table=True):
    """One transfer: ``amount_minor`` from the debit account to the credit account.

    ``id`` is derived from what the transfer is for (job, round, party, kind), so that the
    same movement asked for twice is one row. A transfer never changes, except that a
    pending one is posted or voided once (``status``, ``resolved_at``).
    """

    __tablename__ = "ledger_transfer"

    id: str = Field(primary_key=True, max_length=200)
    debit_account: str = Field(sa_column=Column(String(120), nullable=False, index=True))
    credit_account: str = Field(sa_column=Column(String(120), nullable=False, index=True))
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    kind: str = Field(max_length=24, index=True)
    status: str = Field(max_length=8, index=True)
    job_id: str | None = Field(default=None, max_length=40, index=True)
    round_number: int | None = None
    #: What the transfer rests on: a round proof's digest, a dispute id, a payout id.
    reference: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    resolved_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )


class Dispute(SQLModel, table=True):
    """One dispute and what it froze."""

    __tablename__ = "dispute"

    id: str = Field(primary_key=True, max_length=40)
    job_id: str = Field(sa_column=Column(String(40), nullable=False, index=True))
    round_number: int | None = None
    opened_by: str = Field(max_length=40)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    currency: str = Field(max_length=3)
    frozen_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: str = Field(max_length=8, index=True)
    resolution: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    resolved_by: str | None = Field(default=None, max_length=40)
    opened_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    resolved_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )


class RailOperation(SQLModel, table=True):
    """One call to the payment rail that moves money: funding, a payout, a refund.

    The row is committed before the rail is called, with ``id`` as the call's
    idempotency key, so that a coordinator that dies at any point finds the operation on
    restart and reconciles it against the rail instead of calling again blindly. A
    payout's or refund's ``id`` is also the id of its pending ledger transfer.
    """

    __tablename__ = "rail_operation"

    id: str = Field(primary_key=True, max_length=200)
    kind: str = Field(max_length=8, index=True)
    rail: str = Field(max_length=16)
    job_id: str = Field(sa_column=Column(String(40), nullable=False, index=True))
    party: str = Field(max_length=64)
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    #: ``pending`` until the rail's answer is recorded, then ``succeeded`` or ``failed``
    #: (funding also ``requires_action`` while the buyer must confirm the payment).
    status: str = Field(max_length=16, index=True)
    #: The rail's id for it (``pi_…``, ``tr_…``, ``re_…``, or the ledger statement's).
    rail_ref: str | None = Field(default=None, max_length=255)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))


class RailAccount(SQLModel, table=True):
    """A party's account on the payment rail (a Stripe connected account)."""

    __tablename__ = "rail_account"

    party: str = Field(primary_key=True, max_length=64)
    rail: str = Field(max_length=16)
    reference: str = Field(max_length=255, unique=True)
    payouts_enabled: bool = False
    #: When the rail stated the status above (an event's ``created``): older news is ignored.
    status_at: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))


class RailEvent(SQLModel, table=True):
    """A webhook event the rail sent, kept so that a replayed event is applied once."""

    __tablename__ = "rail_event"

    id: str = Field(primary_key=True, max_length=255)
    rail: str = Field(max_length=16)
    type: str = Field(max_length=64)
    created: int = Field(sa_column=Column(BigInteger, nullable=False))
    outcome: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))


#: The tables ``billing`` owns (the coordinator's migrations create them).
BILLING_TABLES = [
    LedgerAccount.__table__,  # type: ignore[attr-defined]
    LedgerTransfer.__table__,  # type: ignore[attr-defined]
    Dispute.__table__,  # type: ignore[attr-defined]
    RailOperation.__table__,  # type: ignore[attr-defined]
    RailAccount.__table__,  # type: ignore[attr-defined]
    RailEvent.__table__,  # type: ignore[attr-defined]
]
