"""Money that follows the proofs: escrow holds, per-round settlement, royalty splits, release.

- ``place_hold``: funding a job moves its quoted total from the payment rail's clearing
  account into the job's hold.
- ``settle_round``: one round proof's metered uses become transfers out of the hold: for
  each dataset, samples x price to its payees' payables (split by basis points, the
  rounding leftover to the dataset's stated party), and the platform fee on the round's
  subtotal to the fee account. Rejected work is not in the metered uses, so it is never
  paid. Transfer ids are derived from job, round, dataset, payee and kind: settling the
  same round again changes nothing.
- ``release_hold``: at job end, what is left in the hold moves to the buyer's payable
  (the refund owed).

Every function writes inside the caller's transaction and never commits, so that the
coordinator posts a round's money together with its proof, or neither. ``Settlement``
is also the signed record (predicate ``…/settlement/v1``) logged next to the proof.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from billing.errors import BillingError
from billing.ledger import (
    AccountKind,
    InsufficientFunds,
    TransferRequest,
    account_id,
    balance,
    open_account,
    open_accounts,
    transfer,
    transfer_batch,
    transfer_id,
)
from billing.pricing import BASIS_POINTS, fee_for, price_line
from billing.tables import LedgerTransfer
from provenance.statement import Statement, Subject, predicate_type

SETTLEMENT_PREDICATE = predicate_type("settlement")
#: The log record type of a settlement.
SETTLEMENT_RECORD = "settlement"
#: The platform's owner name on its fee account.
PLATFORM = "platform"


class SettlementError(BillingError):
    """A round or a hold cannot be settled as asked; nothing was written."""


@dataclass(frozen=True)
class Payee:
    """One party paid for a dataset's use, with its share in basis points."""

    account_id: str
    share_bps: int


@dataclass(frozen=True)
class Royalty:
    """Who is paid for a dataset: payees whose shares add to 10,000 bps, and which of
    them takes the rounding leftover."""

    payees: tuple[Payee, ...]
    remainder_to: str

    def __post_init__(self) -> None:
        if not self.payees:
            raise SettlementError("a royalty split needs at least one payee")
        total = sum(payee.share_bps for payee in self.payees)
        if any(payee.share_bps <= 0 for payee in self.payees) or total != BASIS_POINTS:
            raise SettlementError(
                f"royalty shares must be positive and add to {BASIS_POINTS} bps, not {total}"
            )
        names = [payee.account_id for payee in self.payees]
        if len(set(names)) != len(names):
            raise SettlementError("a royalty split names a payee twice")
        if self.remainder_to not in names:
            raise SettlementError(
                f"the rounding leftover goes to {self.remainder_to!r}, who is not a payee"
            )

    @classmethod
    def sole(cls, account: str) -> Royalty:
        """All of a dataset's royalty to one account."""
        return cls((Payee(account, BASIS_POINTS),), account)

    def split(self, amount_minor: int) -> list[tuple[str, int]]:
        """``amount_minor`` divided by the shares, rounded down, the leftover to
        ``remainder_to``: the parts always add up to ``amount_minor``."""
        parts = {p.account_id: amount_minor * p.share_bps // BASIS_POINTS for p in self.payees}
        parts[self.remainder_to] += amount_minor - sum(parts.values())
        return [(payee.account_id, parts[payee.account_id]) for payee in self.payees]


@dataclass(frozen=True)
class MeteredLine:
    """One dataset's verified use in a round and how it is paid."""

    dataset_id: str
    samples: int
    price_per_sample: Decimal
    royalty: Royalty


@dataclass(frozen=True)
class Settlement:
    """What one round proof moved: per dataset and payee, the fee, the total."""

    job_id: str
    round: int
    proof_digest: str
    currency: str
    lines: tuple[dict[str, Any], ...]
    fee_minor: int
    total_minor: int
    hold_left_minor: int

    def to_statement(self) -> Statement:
        """The Statement the coordinator signs and logs: the round proof is its subject."""
        return Statement(
            subjects=(Subject("round-proof", {"sha256": self.proof_digest}),),
            predicate_type=SETTLEMENT_PREDICATE,
            predicate={
                "job_id": self.job_id,
                "round": self.round,
                "currency": self.currency,
                "lines": [dict(line) for line in self.lines],
                "fee_minor": str(self.fee_minor),
                "total_minor": str(self.total_minor),
                "hold_left_minor": str(self.hold_left_minor),
            },
        )


def hold_account(job_id: str, currency: str) -> str:
    """The id of ``job_id``'s hold."""
    return account_id(AccountKind.HOLD, job_id, currency)


def place_hold(
    session: Session,
    *,
    job_id: str,
    buyer_id: str,
    currency: str,
    amount_minor: int,
    rail: str,
    now: datetime,
) -> str:
    """Move ``amount_minor`` from ``rail``'s clearing account into the job's hold (once);
    returns the hold's account id."""
    clearing = open_account(session, AccountKind.CLEARING, rail, currency, now=now)
    hold = open_account(session, AccountKind.HOLD, job_id, currency, now=now)
    open_account(session, AccountKind.PAYABLE, buyer_id, currency, now=now)
    transfer(
        session,
        transfer_id("hold", job_id),
        debit=clearing.id,
        credit=hold.id,
        amount_minor=amount_minor,
        kind="hold",
        now=now,
        job_id=job_id,
        reference=f"funded by {buyer_id}",
    )
    return hold.id


def round_charge(lines: Sequence[MeteredLine], currency: str, fee_bps: int) -> tuple[int, int]:
    """A round's subtotal and platform fee, in minor units (each line rounded up)."""
    subtotal = sum(
        price_line(line.dataset_id, line.samples, line.price_per_sample, currency).amount_minor
        for line in lines
    )
    return subtotal, fee_for(subtotal, fee_bps)


def settle_round(
    session: Session,
    *,
    job_id: str,
    round_number: int,
    proof_digest: str,
    currency: str,
    lines: Sequence[MeteredLine],
    fee_bps: int,
    now: datetime,
) -> Settlement:
    """Pay one round proof's metered uses out of the job's hold (see the module docstring).

    Raises ``SettlementError`` if the hold cannot pay the round (nothing is written).
    """
    hold = hold_account(job_id, currency)
    subtotal, fee = round_charge(lines, currency, fee_bps)
    left = balance(session, hold).available
    if subtotal + fee > left and not _settled_before(session, job_id, round_number):
        raise SettlementError(
            f"job {job_id} round {round_number} costs {subtotal + fee} minor units; "
            f"its hold has {left} left"
        )
    fee_account = open_account(session, AccountKind.FEE, PLATFORM, currency, now=now)
    owners = sorted({payee.account_id for line in lines for payee in line.royalty.payees})
    open_accounts(session, AccountKind.PAYABLE, owners, currency, now=now)
    requests: list[TransferRequest] = []
    recorded = []
    for line in lines:
        amount = price_line(line.dataset_id, line.samples, line.price_per_sample, currency)
        parts = []
        for payee, part in line.royalty.split(amount.amount_minor):
            if part > 0:
                requests.append(
                    TransferRequest(
                        transfer_id("royalty", job_id, round_number, line.dataset_id, payee),
                        hold,
                        account_id(AccountKind.PAYABLE, payee, currency),
                        part,
                        "royalty",
                        job_id,
                        round_number,
                        proof_digest,
                    )
                )
            parts.append({"account": payee, "amount_minor": str(part)})
        recorded.append(
            {
                "dataset_id": line.dataset_id,
                "samples": line.samples,
                "price_per_sample": str(line.price_per_sample),
                "amount_minor": str(amount.amount_minor),
                "payees": parts,
            }
        )
    if fee > 0:
        requests.append(
            TransferRequest(
                transfer_id("fee", job_id, round_number),
                hold,
                fee_account.id,
                fee,
                "fee",
                job_id,
                round_number,
                proof_digest,
            )
        )
    try:
        transfer_batch(session, requests, now=now)
    except InsufficientFunds as exc:
        raise SettlementError(str(exc)) from exc
    return Settlement(
        job_id=job_id,
        round=round_number,
        proof_digest=proof_digest,
        currency=currency,
        lines=tuple(recorded),
        fee_minor=fee,
        total_minor=subtotal + fee,
        hold_left_minor=balance(session, hold).available,
    )


def _settled_before(session: Session, job_id: str, round_number: int) -> bool:
    statement = select(LedgerTransfer.id).where(
        LedgerTransfer.job_id == job_id,
        LedgerTransfer.round_number == round_number,
        col(LedgerTransfer.kind).in_(("royalty", "fee")),
    )
    return session.exec(statement.limit(1)).first() is not None


def release_hold(
    session: Session, *, job_id: str, buyer_id: str, currency: str, now: datetime
) -> int:
    """Move what is left in the job's hold to the buyer's payable (once); returns it."""
    hold = hold_account(job_id, currency)
    left = balance(session, hold).available
    if left <= 0:
        return 0
    refund = open_account(session, AccountKind.PAYABLE, buyer_id, currency, now=now)
    transfer(
        session,
        transfer_id("release", job_id),
        debit=hold,
        credit=refund.id,
        amount_minor=left,
        kind="release",
        now=now,
        job_id=job_id,
        reference="unused hold released at job end",
    )
    return left
