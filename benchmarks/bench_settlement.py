"""Settling one round proof with 1,000 accepted receipts, on a SQLite file.

A job over ``--datasets`` datasets, each with its own creator, funded with a hold that
covers every round. In the same process, on fresh SQLite files (WAL, synchronous=FULL, as
the coordinator runs them):

- baseline: the database floor, the same rows written with plain SQL in one transaction
  (one transfer row per royalty plus the fee, one balance update per account touched, via
  ``executemany``) and committed;
- ours: ``billing.settlement.settle_round`` (payees' accounts opened, each transfer
  checked for idempotency, accounts locked in order, balances checked, immutable rows)
  and the commit.

Wall-clock seconds, best of ``--runs``, each run settling a new round. The target is one
such round settled in at most 1 s. This script writes only into a temporary directory.

    python -m benchmarks.bench_settlement [--datasets 1000] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlmodel import Session, SQLModel

from benchmarks.timing import cpu_model
from billing.settlement import MeteredLine, Royalty, place_hold, settle_round
from billing.tables import BILLING_TABLES
from provenance.storage import make_engine, sqlite_url

TARGET_SECONDS = 1.0
JOB = "job_" + "b" * 26


def _lines(count: int) -> list[MeteredLine]:
    return [
        MeteredLine(f"ds_{n:026d}", 300 + n % 50, Decimal("0.001"), Royalty.sole(f"acct_{n:026d}"))
        for n in range(count)
    ]


def _ours(root: Path, lines: list[MeteredLine], runs: int) -> float:
    engine = make_engine(sqlite_url(root / "ours.db"))
    SQLModel.metadata.create_all(engine, tables=BILLING_TABLES)
    now = datetime.now(UTC)
    with Session(engine) as session:
        place_hold(
            session, job_id=JOB, buyer_id="acct_buyer", currency="USD",
            amount_minor=10**12, rail="ledger", now=now,
        )  # fmt: skip
        session.commit()
    best = float("inf")
    for round_number in range(1, runs + 1):
        start = time.perf_counter()
        with Session(engine) as session:
            settle_round(
                session, job_id=JOB, round_number=round_number, proof_digest="a" * 64,
                currency="USD", lines=lines, fee_bps=1000, now=now,
            )  # fmt: skip
            session.commit()
        best = min(best, time.perf_counter() - start)
    engine.dispose()
    return best


def _baseline(root: Path, lines: list[MeteredLine], runs: int) -> float:
    connection = sqlite3.connect(root / "floor.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute(
        "CREATE TABLE account (id TEXT PRIMARY KEY, credits INTEGER, debits INTEGER)"
    )
    connection.execute(
        "CREATE TABLE transfer (id TEXT PRIMARY KEY, debit TEXT, credit TEXT, amount INTEGER)"
    )
    payees = [line.royalty.payees[0].account_id for line in lines]
    connection.executemany(
        "INSERT INTO account VALUES (?, 0, 0)", [(p,) for p in [*payees, "hold", "fee"]]
    )
    best = float("inf")
    for round_number in range(1, runs + 1):
        start = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        rows = [
            (f"royalty:{JOB}:{round_number}:{line.dataset_id}", "hold", payee, line.samples)
            for line, payee in zip(lines, payees, strict=True)
        ] + [(f"fee:{JOB}:{round_number}", "hold", "fee", 1)]
        connection.executemany("INSERT INTO transfer VALUES (?, ?, ?, ?)", rows)
        connection.executemany(
            "UPDATE account SET credits = credits + ? WHERE id = ?",
            [(amount, credit) for _, _, credit, amount in rows],
        )
        connection.execute(
            "UPDATE account SET debits = debits + ? WHERE id = 'hold'",
            (sum(row[3] for row in rows),),
        )
        connection.execute("COMMIT")
        best = min(best, time.perf_counter() - start)
    connection.close()
    return best


def main(argv: list[str] | None = None) -> int:
    """Run both contenders and print the timings and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    lines = _lines(args.datasets)
    with tempfile.TemporaryDirectory(prefix="tally-settle-") as directory:
        root = Path(directory)
        baseline = _baseline(root, lines, args.runs)
        ours = _ours(root, lines, args.runs)
    result = {
        "datasets": args.datasets,
        "cpu": cpu_model(),
        "baseline_plain_sql_s": round(baseline, 4),
        "ours_settle_round_s": round(ours, 4),
        "ratio": round(ours / baseline, 1),
        "target_s": TARGET_SECONDS,
        "meets_target": ours <= TARGET_SECONDS,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>22}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
