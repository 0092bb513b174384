"""Disputes freeze what the disputed work was paid, and an admin's resolution releases it
to the payees or refunds it to the buyer, exactly once, with the books balanced."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, SQLModel

from billing.disputes import REFUNDED, RELEASED, DisputeError, open_dispute, resolve_dispute
from billing.ledger import balance, trial_balance
from billing.settlement import MeteredLine, Payee, Royalty, place_hold, settle_round
from billing.tables import BILLING_TABLES

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
JOB = "job_" + "c" * 26
LINES = [
    MeteredLine("ds_1", 400, Decimal("0.01"), Royalty.sole("acc_alice")),
    MeteredLine(
        "ds_2", 200, Decimal("0.01"),
        Royalty((Payee("acc_bob", 5000), Payee("acc_label", 5000)), "acc_bob"),
    ),
]  # fmt: skip


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    SQLModel.metadata.create_all(engine, tables=BILLING_TABLES)
    with Session(engine) as opened:
        place_hold(
            opened, job_id=JOB, buyer_id="acc_buyer", currency="USD", amount_minor=100_00,
            rail="ledger", now=NOW,
        )  # fmt: skip
        for round_number in (1, 2):
            settle_round(
                opened, job_id=JOB, round_number=round_number, proof_digest="e" * 64,
                currency="USD", lines=LINES, fee_bps=0, now=NOW,
            )  # fmt: skip
        opened.commit()
        yield opened


def _posted(session: Session, owner: str) -> int:
    return balance(session, f"payable:{owner}:USD").posted


def _open(session: Session, dispute_id: str, round_number: int | None) -> int:
    frozen = open_dispute(
        session, dispute_id=dispute_id, job_id=JOB, round_number=round_number, currency="USD",
        opened_by="acc_buyer", reason="the round's data was not what was listed", now=NOW,
    )  # fmt: skip
    return frozen.dispute.frozen_minor


def test_a_round_dispute_freezes_that_round_and_release_gives_it_back(session: Session) -> None:
    assert (_posted(session, "acc_alice"), _posted(session, "acc_bob")) == (800, 200)
    assert _open(session, "dsp_1", 2) == 400 + 200
    assert (_posted(session, "acc_alice"), _posted(session, "acc_bob")) == (400, 100)
    assert balance(session, "reserve:dsp_1:USD").posted == 600
    resolve_dispute(
        session, "dsp_1", outcome=RELEASED, buyer_id="acc_buyer", resolved_by="acc_admin",
        note="data checked against its manifest", now=NOW,
    )  # fmt: skip
    assert (_posted(session, "acc_alice"), _posted(session, "acc_bob")) == (800, 200)
    assert balance(session, "reserve:dsp_1:USD").posted == 0
    assert set(trial_balance(session).values()) == {0}
    with pytest.raises(DisputeError, match="already released"):
        resolve_dispute(
            session, "dsp_1", outcome=REFUNDED, buyer_id="acc_buyer", resolved_by="acc_admin",
            note="again", now=NOW,
        )  # fmt: skip


def test_a_job_dispute_refunded_pays_the_buyer_back(session: Session) -> None:
    before = _posted(session, "acc_buyer")
    assert _open(session, "dsp_2", None) == 800 + 200 + 200  # alice, bob, label: all rounds
    resolve_dispute(
        session, "dsp_2", outcome=REFUNDED, buyer_id="acc_buyer", resolved_by="acc_admin",
        note="the datasets were mislabelled", now=NOW,
    )  # fmt: skip
    assert _posted(session, "acc_buyer") == before + 1200
    assert _posted(session, "acc_alice") == _posted(session, "acc_label") == 0
    assert set(trial_balance(session).values()) == {0}


def test_overlapping_or_empty_disputes_are_refused_and_write_nothing(session: Session) -> None:
    _open(session, "dsp_3", 1)
    session.commit()
    with pytest.raises(DisputeError, match="already holds this work"):
        _open(session, "dsp_4", None)
    with pytest.raises(DisputeError, match="needs a reason"):
        open_dispute(
            session, dispute_id="dsp_5", job_id=JOB, round_number=2, currency="USD",
            opened_by="acc_buyer", reason="   ", now=NOW,
        )  # fmt: skip
    with pytest.raises(DisputeError, match="'released' or 'refunded'"):
        resolve_dispute(
            session, "dsp_3", outcome="split", buyer_id="acc_buyer", resolved_by="acc_admin",
            note="n", now=NOW,
        )  # fmt: skip
    session.rollback()
    assert _posted(session, "acc_alice") == 400
    assert set(trial_balance(session).values()) == {0}
