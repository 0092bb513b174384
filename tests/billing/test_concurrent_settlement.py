"""Two coordinator processes settling the same round proof at once, on the real PostgreSQL
server (and on SQLite): exactly one settlement is posted, whatever the interleaving. The
other finds the round settled, or its transaction fails (a unique id taken, the database
locked) and rolls back whole; it never posts a second time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, SQLModel, func, select

from billing.ledger import balance, trial_balance
from billing.settlement import MeteredLine, Royalty, SettlementError, place_hold, settle_round
from billing.tables import BILLING_TABLES, LedgerTransfer
from provenance.storage import make_engine

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
JOB = "job_" + "d" * 26
LINES = [
    MeteredLine(f"ds_{n}", 100 + n, Decimal("0.01"), Royalty.sole(f"acc_{n}")) for n in range(40)
]


def test_the_same_round_settled_by_two_processes_at_once_is_posted_once(
    engine: Engine, database_url: str
) -> None:
    SQLModel.metadata.create_all(engine, tables=BILLING_TABLES)
    with Session(engine) as session:
        place_hold(
            session, job_id=JOB, buyer_id="acc_buyer", currency="USD", amount_minor=10**9,
            rail="ledger", now=NOW,
        )  # fmt: skip
        session.commit()
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def settle() -> None:
        # Each "process" has its own engine and connection pool.
        own = make_engine(database_url)
        try:
            with Session(own) as session:
                start.wait()
                settle_round(
                    session, job_id=JOB, round_number=1, proof_digest="c" * 64, currency="USD",
                    lines=LINES, fee_bps=500, now=NOW,
                )  # fmt: skip
                session.commit()
                outcomes.append("posted")
        except (IntegrityError, DBAPIError, SettlementError) as exc:
            outcomes.append(type(exc).__name__)
        finally:
            own.dispose()

    threads = [threading.Thread(target=settle) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert "posted" in outcomes, outcomes
    with Session(engine) as session:
        count = session.exec(select(func.count()).select_from(LedgerTransfer)).one()
        assert count == 1 + len(LINES) + 1  # the hold, one royalty per dataset, the fee
        for n, line in enumerate(LINES):
            assert balance(session, f"payable:acc_{n}:USD").posted == line.samples
        assert set(trial_balance(session).values()) == {0}
