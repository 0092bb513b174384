"""The double-entry ledger and settlement, on SQLite and PostgreSQL: balances always sum to
zero, transfers are idempotent and immutable, holds cannot be overspent, and a round
proof's money goes to its payees exactly once, rounding leftovers included."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, SQLModel, func, select

from billing.ledger import (
    AccountKind,
    InsufficientFunds,
    LedgerError,
    TransferConflict,
    balance,
    open_account,
    resolve,
    transfer,
    transfer_id,
    transfers_of,
    trial_balance,
)
from billing.settlement import (
    MeteredLine,
    Payee,
    Royalty,
    SettlementError,
    hold_account,
    place_hold,
    release_hold,
    settle_round,
)
from billing.tables import BILLING_TABLES, LedgerTransfer

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
JOB = "job_" + "a" * 26


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    SQLModel.metadata.create_all(engine, tables=BILLING_TABLES)
    with Session(engine) as opened:
        yield opened


def _balanced(session: Session) -> None:
    assert all(total == 0 for total in trial_balance(session).values()), trial_balance(session)


def _transfers(session: Session) -> int:
    return int(session.exec(select(func.count()).select_from(LedgerTransfer)).one())


def _funded(session: Session, amount: int = 10_000) -> str:
    hold = place_hold(
        session, job_id=JOB, buyer_id="acc_buyer", currency="USD", amount_minor=amount,
        rail="ledger", now=NOW,
    )  # fmt: skip
    session.commit()
    return hold


def test_a_hold_moves_money_from_the_rail_and_the_books_balance(session: Session) -> None:
    hold = _funded(session)
    assert balance(session, hold).posted == 10_000
    assert balance(session, "clearing:ledger:USD").posted == -10_000
    _balanced(session)
    # Funding twice (a retried request) places one hold.
    _funded(session)
    assert balance(session, hold).posted == 10_000
    assert _transfers(session) == 1


def test_a_transfer_id_for_another_movement_is_refused(session: Session) -> None:
    hold = _funded(session)
    payable = open_account(session, AccountKind.PAYABLE, "acc_c", "USD", now=NOW).id
    key = transfer_id("royalty", JOB, 1, "ds_x", "acc_c")
    transfer(session, key, debit=hold, credit=payable, amount_minor=5, kind="royalty", now=NOW)
    with pytest.raises(TransferConflict, match="another movement"):
        transfer(session, key, debit=hold, credit=payable, amount_minor=6, kind="royalty", now=NOW)
    assert balance(session, payable).posted == 5


def test_no_account_but_clearing_goes_negative_and_a_refusal_writes_nothing(
    session: Session,
) -> None:
    hold = _funded(session, amount=100)
    payable = open_account(session, AccountKind.PAYABLE, "acc_c", "USD", now=NOW).id
    session.commit()
    with pytest.raises(InsufficientFunds, match="100 available, 101 asked"):
        transfer(
            session, "royalty:x:1", debit=hold, credit=payable, amount_minor=101,
            kind="royalty", now=NOW,
        )  # fmt: skip
    session.rollback()
    assert balance(session, hold).posted == 100
    assert _transfers(session) == 1
    for bad in (0, -5, True):
        with pytest.raises(LedgerError, match="positive integer"):
            transfer(
                session, "royalty:x:2", debit=hold, credit=payable, amount_minor=bad,
                kind="royalty", now=NOW,
            )  # fmt: skip
    other = open_account(session, AccountKind.PAYABLE, "acc_c", "EUR", now=NOW).id
    with pytest.raises(LedgerError, match="is in USD"):
        transfer(
            session, "royalty:x:3", debit=hold, credit=other, amount_minor=1, kind="royalty",
            now=NOW,
        )  # fmt: skip


def test_pending_debits_hold_funds_and_resolve_exactly_once(session: Session) -> None:
    hold = _funded(session, amount=100)
    payable = open_account(session, AccountKind.PAYABLE, "acc_c", "USD", now=NOW).id
    transfer(
        session, "payout:a", debit=hold, credit=payable, amount_minor=70, kind="payout",
        now=NOW, pending=True,
    )  # fmt: skip
    assert balance(session, hold).available == 30
    with pytest.raises(InsufficientFunds):
        transfer(
            session, "payout:b", debit=hold, credit=payable, amount_minor=31, kind="payout",
            now=NOW,
        )  # fmt: skip
    _balanced(session)
    resolve(session, "payout:a", post=True, now=NOW)
    resolve(session, "payout:a", post=True, now=NOW)  # a retry changes nothing
    assert balance(session, payable).posted == 70
    assert balance(session, hold).posted == 30
    with pytest.raises(TransferConflict, match="posted, not pending"):
        resolve(session, "payout:a", post=False, now=NOW)
    transfer(
        session, "payout:c", debit=hold, credit=payable, amount_minor=30, kind="payout",
        now=NOW, pending=True,
    )  # fmt: skip
    resolve(session, "payout:c", post=False, now=NOW)
    assert balance(session, hold).available == 30
    _balanced(session)


def test_royalty_splits_add_up_and_the_leftover_goes_to_the_stated_party() -> None:
    royalty = Royalty((Payee("a", 3333), Payee("b", 3333), Payee("c", 3334)), "b")
    assert royalty.split(100) == [("a", 33), ("b", 34), ("c", 33)]
    for amount in (0, 1, 7, 999_999_999_999):
        assert sum(part for _, part in royalty.split(amount)) == amount
    with pytest.raises(SettlementError, match="add to 10000"):
        Royalty((Payee("a", 5000), Payee("b", 4000)), "a")
    with pytest.raises(SettlementError, match="not a payee"):
        Royalty((Payee("a", 10_000),), "z")
    with pytest.raises(SettlementError, match="twice"):
        Royalty((Payee("a", 5000), Payee("a", 5000)), "a")


def test_a_round_settles_once_pays_the_payees_and_the_fee_and_the_rest_is_released(
    session: Session,
) -> None:
    hold = _funded(session, amount=1_000)
    lines = [
        MeteredLine("ds_1", 301, Decimal("0.001"), Royalty.sole("acc_alice")),
        MeteredLine(
            "ds_2", 150, Decimal("0.002"),
            Royalty((Payee("acc_bob", 7000), Payee("acc_label", 3000)), "acc_bob"),
        ),
    ]  # fmt: skip
    settled = settle_round(
        session, job_id=JOB, round_number=1, proof_digest="f" * 64, currency="USD",
        lines=lines, fee_bps=1000, now=NOW,
    )  # fmt: skip
    session.commit()
    # 301 x 0.001 USD = 30.1 cents, rounded up to 31; 150 x 0.002 = 30 cents; fee 10%.
    assert [line["amount_minor"] for line in settled.lines] == ["31", "30"]
    assert (settled.fee_minor, settled.total_minor) == (7, 68)
    assert balance(session, "payable:acc_alice:USD").posted == 31
    assert balance(session, "payable:acc_bob:USD").posted == 21
    assert balance(session, "payable:acc_label:USD").posted == 9
    assert balance(session, "fee:platform:USD").posted == 7
    assert balance(session, hold).posted == 1_000 - 68 == settled.hold_left_minor
    # The same proof settled again (a retried or concurrent settlement) moves nothing.
    count = _transfers(session)
    settle_round(
        session, job_id=JOB, round_number=1, proof_digest="f" * 64, currency="USD",
        lines=lines, fee_bps=1000, now=NOW,
    )  # fmt: skip
    assert _transfers(session) == count
    _balanced(session)
    released = release_hold(session, job_id=JOB, buyer_id="acc_buyer", currency="USD", now=NOW)
    assert released == 932
    assert balance(session, "payable:acc_buyer:USD").posted == 932
    assert release_hold(session, job_id=JOB, buyer_id="acc_buyer", currency="USD", now=NOW) == 0
    _balanced(session)
    kinds = [item.kind for item in transfers_of(session, job_id=JOB)]
    assert sorted(kinds) == ["fee", "hold", "release", "royalty", "royalty", "royalty"]


def test_a_round_the_hold_cannot_pay_is_refused_and_writes_nothing(session: Session) -> None:
    _funded(session, amount=50)
    count = _transfers(session)
    with pytest.raises(SettlementError, match="its hold has 50 left"):
        settle_round(
            session, job_id=JOB, round_number=1, proof_digest="f" * 64, currency="USD",
            lines=[MeteredLine("ds_1", 60_000, Decimal("0.001"), Royalty.sole("acc_a"))],
            fee_bps=0, now=NOW,
        )  # fmt: skip
    assert _transfers(session) == count
    assert balance(session, hold_account(JOB, "USD")).posted == 50


def test_a_round_that_drained_the_hold_settles_again_as_a_no_op(session: Session) -> None:
    hold = _funded(session, amount=30)
    lines = [MeteredLine("ds_1", 300, Decimal("0.001"), Royalty.sole("acc_a"))]
    for _attempt in range(2):
        settled = settle_round(
            session, job_id=JOB, round_number=1, proof_digest="f" * 64, currency="USD",
            lines=lines, fee_bps=0, now=NOW,
        )  # fmt: skip
        assert settled.hold_left_minor == 0
    assert balance(session, hold).posted == 0
    assert balance(session, "payable:acc_a:USD").posted == 30
    _balanced(session)
