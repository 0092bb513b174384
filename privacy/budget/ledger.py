"""A data host's per-dataset privacy-budget ledger: admission, spending and release of ε.

Each dataset has terms (δ, a lifetime ε cap, an optional per-job ε cap). A job is
admitted by *reserving* the DP-SGD steps it plans; every round it actually runs is
*recorded* against that reservation; when it ends its reservation is *released*, so its
unspent steps stop counting. The committed ε of a dataset (everything spent plus every
open reservation's unspent steps, composed) never exceeds its lifetime cap.

Every training round runs in a fresh process, so all state lives in the database, and
every read-check-write runs in one transaction that serialises per dataset (SQLite:
``BEGIN IMMEDIATE``; PostgreSQL: ``SELECT ... FOR UPDATE`` on the dataset's budget row).
This module never trusts ε from a caller (it computes it from mechanisms), never
deletes or rewrites a spend, and never imports anything from the coordinator.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from privacy.budget.accounting import ACCOUNTANT, Mechanism, epsilon_of, format_epsilon
from privacy.budget.tables import (
    BUDGET_TABLES,
    MAX_ID_LENGTH,
    RESERVATION_OPEN,
    RESERVATION_RELEASED,
    PrivacyBudget,
    PrivacyReservation,
    PrivacySpend,
)
from privacy.errors import AccountingError, BudgetError, BudgetExceeded

_BUDGET = PrivacyBudget.__table__  # type: ignore[attr-defined]
_RESERVATION = PrivacyReservation.__table__  # type: ignore[attr-defined]
_SPEND = PrivacySpend.__table__  # type: ignore[attr-defined]
#: Largest round number the ledger accepts.
MAX_ROUND_NUMBER = 1_000_000_000


#: The engine the running process wires (``provenance.storage.make_engine``) takes the
#: database's write lock at BEGIN (SQLite ``BEGIN IMMEDIATE``) for a connection carrying
#: this execution option. ``privacy`` may not import ``provenance`` (DESIGN.md), so the
#: ledger names the option instead; a test checks that both sides agree.
WRITE_LOCK_OPTION = "tally_write_lock"


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the database write lock from its start; commits on success."""
    with engine.connect() as connection:
        locked = connection.execution_options(**{WRITE_LOCK_OPTION: True})
        with locked.begin():
            yield locked


def _finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_cap(name: str, value: object) -> None:
    if not _finite_number(value):
        raise BudgetError(f"{name} must be a finite number, got {value!r}")
    if value <= 0:  # type: ignore[operator]
        raise BudgetError(
            f"{name} must be greater than 0, got {value!r}: an ε cap of zero or less "
            "admits no training; give a positive cap"
        )


@dataclass(frozen=True)
class BudgetTerms:
    """A dataset's privacy terms, fixed when its budget is opened.

    ``delta`` is the δ every ε of the dataset is computed at (0 < δ < 1);
    ``lifetime_epsilon`` caps the composition of everything ever run on the dataset;
    ``max_epsilon_per_job`` (if set) caps any one job and is at most the lifetime cap.
    Construction refuses anything else with a ``BudgetError`` naming the field.
    """

    delta: float
    lifetime_epsilon: float
    max_epsilon_per_job: float | None = None

    def __post_init__(self) -> None:
        if not _finite_number(self.delta) or not 0 < self.delta < 1:
            raise BudgetError(f"delta must be a number with 0 < delta < 1, got {self.delta!r}")
        _check_cap("lifetime_epsilon", self.lifetime_epsilon)
        if self.max_epsilon_per_job is not None:
            _check_cap("max_epsilon_per_job", self.max_epsilon_per_job)
            if self.max_epsilon_per_job > self.lifetime_epsilon:
                raise BudgetError(
                    f"max_epsilon_per_job ({self.max_epsilon_per_job!r}) is larger than "
                    f"lifetime_epsilon ({self.lifetime_epsilon!r}); lower the per-job cap"
                )


@dataclass(frozen=True)
class BudgetStatus:
    """Where a dataset's budget stands (all ε at the dataset's δ).

    ``spent_epsilon`` composes the recorded rounds only; ``committed_epsilon`` adds the
    unspent steps of every open reservation; ``remaining_epsilon`` is the lifetime cap
    minus the committed ε, never below 0.
    """

    dataset_id: str
    delta: float
    lifetime_cap: float
    max_epsilon_per_job: float | None
    spent_epsilon: float
    committed_epsilon: float
    remaining_epsilon: float
    open_reservations: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form; every ε is decimal text (see ``format_epsilon``)."""
        per_job = self.max_epsilon_per_job
        return {
            "dataset_id": self.dataset_id,
            "delta": self.delta,
            "lifetime_cap": format_epsilon(self.lifetime_cap),
            "max_epsilon_per_job": None if per_job is None else format_epsilon(per_job),
            "spent_epsilon": format_epsilon(self.spent_epsilon),
            "committed_epsilon": format_epsilon(self.committed_epsilon),
            "remaining_epsilon": format_epsilon(self.remaining_epsilon),
            "open_reservations": self.open_reservations,
        }


@dataclass(frozen=True)
class BudgetCheck:
    """Why a planned job fits a dataset's budget: its own ε and the committed ε around it."""

    dataset_id: str
    job_id: str
    delta: float
    lifetime_cap: float
    max_epsilon_per_job: float | None
    job_epsilon: float
    committed_epsilon_before: float
    committed_epsilon_after: float


@dataclass(frozen=True)
class LedgerEntry:
    """One recorded round: the mechanism a job spent on a dataset, and when."""

    dataset_id: str
    job_id: str
    round_number: int
    mechanism: Mechanism
    recorded_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able row of the ledger's history."""
        return {
            "dataset_id": self.dataset_id,
            "job_id": self.job_id,
            "round": self.round_number,
            "noise_multiplier": self.mechanism.noise_multiplier,
            "sample_rate": self.mechanism.sample_rate,
            "steps": self.mechanism.steps,
            "accountant": self.mechanism.accountant,
            "recorded_at": self.recorded_at.isoformat(),
        }


def _check_id(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise BudgetError(f"{name} must be a non-empty string, got {value!r}")
    if len(value) > MAX_ID_LENGTH:
        raise BudgetError(f"{name} is {len(value)} characters, over the {MAX_ID_LENGTH} limit")
    if not value.isprintable():
        raise BudgetError(f"{name} {value!r} holds unprintable characters")
    return value


def _check_mechanism(name: str, value: object) -> Mechanism:
    if not isinstance(value, Mechanism):
        raise BudgetError(f"{name} must be a Mechanism, got {type(value).__name__}")
    return value


def _show(epsilon: float) -> str:
    """An ε for a message: decimal text, or ``unbounded`` where Opacus found no bound."""
    return "unbounded" if math.isinf(epsilon) else format_epsilon(epsilon)


def _utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (SQLite hands back naive UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _terms_of(row: Row[Any]) -> BudgetTerms:
    per_job = row.max_epsilon_per_job
    return BudgetTerms(
        delta=float(row.delta),
        lifetime_epsilon=float(row.lifetime_epsilon),
        max_epsilon_per_job=None if per_job is None else float(per_job),
    )


@dataclass(frozen=True)
class _Commitments:
    """A dataset's spent mechanisms and its open reservations' unspent steps."""

    spent: list[Mechanism]
    unspent: list[Mechanism]
    open_reservations: int


class PrivacyBudgetLedger:
    """The privacy-budget ledger of one data host, over SQLite or PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create_tables(self) -> None:
        """Create the ledger's tables where they are missing (idempotent)."""
        SQLModel.metadata.create_all(self._engine, tables=BUDGET_TABLES)

    # -- transactions --------------------------------------------------------------

    @contextmanager
    def _locked(self, dataset_id: str) -> Iterator[tuple[Connection, BudgetTerms]]:
        """A write transaction holding the dataset's budget row locked, and its terms."""
        with write_transaction(self._engine) as conn:
            row = conn.execute(
                select(_BUDGET).where(_BUDGET.c.dataset_id == dataset_id).with_for_update()
            ).first()
            if row is None:
                raise BudgetError(_unknown_dataset(dataset_id))
            yield conn, _terms_of(row)

    @contextmanager
    def _snapshot(self, dataset_id: str) -> Iterator[tuple[Connection, BudgetTerms]]:
        """A read transaction seeing one consistent state of the dataset, and its terms."""
        with self._engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                row = conn.execute(
                    select(_BUDGET).where(_BUDGET.c.dataset_id == dataset_id)
                ).first()
                if row is None:
                    raise BudgetError(_unknown_dataset(dataset_id))
                yield conn, _terms_of(row)

    # -- budgets -------------------------------------------------------------------

    def open_budget(
        self, dataset_id: str, terms: BudgetTerms, *, connection: Connection | None = None
    ) -> None:
        """Register ``dataset_id``'s budget under ``terms``; ``BudgetError`` if it exists.

        With ``connection`` the row is written inside the caller's transaction (so that a
        dataset and its budget are registered atomically); otherwise in one of its own.
        """
        _check_id("dataset_id", dataset_id)
        if not isinstance(terms, BudgetTerms):
            raise BudgetError(f"terms must be BudgetTerms, got {type(terms).__name__}")
        if connection is not None:
            self._insert_budget(connection, dataset_id, terms)
            return
        with write_transaction(self._engine) as conn:
            self._insert_budget(conn, dataset_id, terms)

    @staticmethod
    def _insert_budget(conn: Connection, dataset_id: str, terms: BudgetTerms) -> None:
        exists = conn.execute(
            select(_BUDGET.c.dataset_id).where(_BUDGET.c.dataset_id == dataset_id)
        ).first()
        if exists is not None:
            raise BudgetError(f"dataset {dataset_id!r} already has a privacy budget")
        try:
            conn.execute(
                insert(_BUDGET).values(
                    dataset_id=dataset_id,
                    delta=float(terms.delta),
                    lifetime_epsilon=float(terms.lifetime_epsilon),
                    max_epsilon_per_job=terms.max_epsilon_per_job,
                    created_at=datetime.now(UTC),
                )
            )
        except IntegrityError as exc:  # registered by a concurrent writer meanwhile
            raise BudgetError(f"dataset {dataset_id!r} already has a privacy budget") from exc

    def terms(self, dataset_id: str) -> BudgetTerms:
        """The terms ``dataset_id``'s budget was opened with."""
        _check_id("dataset_id", dataset_id)
        with self._snapshot(dataset_id) as (_conn, terms):
            return terms

    # -- jobs ----------------------------------------------------------------------

    def reserve(self, dataset_id: str, job_id: str, planned: Mechanism) -> BudgetStatus:
        """Admit ``job_id`` to run ``planned`` on ``dataset_id``, holding its ε until released.

        Raises ``BudgetExceeded`` when the planned job's own ε is over the per-job cap, or
        when the composition of everything spent, every open reservation's unspent steps
        and ``planned`` is over the lifetime cap; ``BudgetError`` when the dataset is
        unknown or the job already holds a reservation on it.
        """
        _check_id("dataset_id", dataset_id)
        _check_id("job_id", job_id)
        _check_mechanism("planned", planned)
        with self._locked(dataset_id) as (conn, terms):
            _refuse_second_reservation(conn, dataset_id, job_id)
            commitments = _commitments(conn, dataset_id)
            _admission(dataset_id, job_id, terms, commitments, planned)
            now = datetime.now(UTC)
            conn.execute(
                insert(_RESERVATION).values(
                    dataset_id=dataset_id,
                    job_id=job_id,
                    noise_multiplier=float(planned.noise_multiplier),
                    sample_rate=float(planned.sample_rate),
                    planned_steps=planned.steps,
                    status=RESERVATION_OPEN,
                    reserved_at=now,
                    released_at=None,
                )
            )
            admitted = _Commitments(
                spent=commitments.spent,
                unspent=[*commitments.unspent, planned],
                open_reservations=commitments.open_reservations + 1,
            )
            return _status(dataset_id, terms, admitted)

    def check(self, dataset_id: str, job_id: str, planned: Mechanism) -> BudgetCheck:
        """Would ``reserve`` admit ``planned`` now? The same arithmetic, nothing written.

        Raises ``BudgetExceeded`` exactly when ``reserve`` would; otherwise returns the
        numbers behind the decision. A later ``reserve`` may still be refused if other
        jobs reserve in between.
        """
        _check_id("dataset_id", dataset_id)
        _check_id("job_id", job_id)
        _check_mechanism("planned", planned)
        with self._snapshot(dataset_id) as (conn, terms):
            _refuse_second_reservation(conn, dataset_id, job_id)
            return _admission(dataset_id, job_id, terms, _commitments(conn, dataset_id), planned)

    def record(
        self, dataset_id: str, job_id: str, round_number: int, used: Mechanism
    ) -> BudgetStatus:
        """Record that round ``round_number`` of ``job_id`` ran ``used`` on ``dataset_id``.

        The round must fit the job's open reservation: the same noise multiplier, sample
        rate and accountant (else ``BudgetError``) and no more steps in all than reserved
        (else ``BudgetExceeded``). A round already recorded is refused with
        ``BudgetError``, so a retried process cannot spend twice.
        """
        _check_id("dataset_id", dataset_id)
        _check_id("job_id", job_id)
        if (
            not isinstance(round_number, int)
            or isinstance(round_number, bool)
            or not 0 <= round_number <= MAX_ROUND_NUMBER
        ):
            raise BudgetError(
                f"round_number must be an integer from 0 to {MAX_ROUND_NUMBER}, "
                f"got {round_number!r}"
            )
        _check_mechanism("used", used)
        where = f"job {job_id!r} on dataset {dataset_id!r}"
        with self._locked(dataset_id) as (conn, terms):
            reservation = _reservation(conn, dataset_id, job_id)
            if reservation.status != RESERVATION_OPEN:
                raise BudgetError(
                    f"{where}: the reservation was released; a released job records no rounds"
                )
            duplicate = conn.execute(
                select(_SPEND.c.id).where(
                    _SPEND.c.dataset_id == dataset_id,
                    _SPEND.c.job_id == job_id,
                    _SPEND.c.round_number == round_number,
                )
            ).first()
            if duplicate is not None:
                raise BudgetError(
                    f"{where}: round {round_number} is already recorded; a round is counted once"
                )
            if (used.noise_multiplier, used.sample_rate) != (
                reservation.noise_multiplier,
                reservation.sample_rate,
            ):
                raise BudgetError(
                    f"{where}, round {round_number}: ran noise_multiplier="
                    f"{used.noise_multiplier!r}, sample_rate={used.sample_rate!r} but reserved "
                    f"noise_multiplier={reservation.noise_multiplier!r}, "
                    f"sample_rate={reservation.sample_rate!r}; train with the reserved setting"
                )
            spent_steps = int(
                conn.execute(
                    select(func.coalesce(func.sum(_SPEND.c.steps), 0)).where(
                        _SPEND.c.dataset_id == dataset_id, _SPEND.c.job_id == job_id
                    )
                ).scalar_one()
            )
            if spent_steps + used.steps > reservation.planned_steps:
                raise BudgetExceeded(
                    f"{where}, round {round_number}: {used.steps} steps on top of "
                    f"{spent_steps} already spent exceed the {reservation.planned_steps} "
                    f"steps reserved; the job has "
                    f"{reservation.planned_steps - spent_steps} steps left"
                )
            conn.execute(
                insert(_SPEND).values(
                    dataset_id=dataset_id,
                    job_id=job_id,
                    round_number=round_number,
                    noise_multiplier=float(used.noise_multiplier),
                    sample_rate=float(used.sample_rate),
                    steps=used.steps,
                    accountant=used.accountant,
                    recorded_at=datetime.now(UTC),
                )
            )
            return _status(dataset_id, terms, _commitments(conn, dataset_id))

    def release(self, dataset_id: str, job_id: str) -> BudgetStatus:
        """End ``job_id``'s reservation on ``dataset_id``: its unspent steps stop counting.

        Its recorded rounds stay spent. ``BudgetError`` if the job holds no open
        reservation on the dataset.
        """
        _check_id("dataset_id", dataset_id)
        _check_id("job_id", job_id)
        with self._locked(dataset_id) as (conn, terms):
            reservation = _reservation(conn, dataset_id, job_id)
            if reservation.status != RESERVATION_OPEN:
                raise BudgetError(
                    f"job {job_id!r} on dataset {dataset_id!r}: the reservation was already "
                    "released; nothing to release"
                )
            conn.execute(
                update(_RESERVATION)
                .where(_RESERVATION.c.id == reservation.id)
                .values(status=RESERVATION_RELEASED, released_at=datetime.now(UTC))
            )
            return _status(dataset_id, terms, _commitments(conn, dataset_id))

    # -- reading -------------------------------------------------------------------

    def status(self, dataset_id: str) -> BudgetStatus:
        """Where ``dataset_id``'s budget stands now."""
        _check_id("dataset_id", dataset_id)
        with self._snapshot(dataset_id) as (conn, terms):
            return _status(dataset_id, terms, _commitments(conn, dataset_id))

    def history(self, dataset_id: str) -> list[LedgerEntry]:
        """Every round recorded on ``dataset_id``, in the order it was recorded."""
        _check_id("dataset_id", dataset_id)
        with self._snapshot(dataset_id) as (conn, _terms):
            rows = conn.execute(
                select(_SPEND).where(_SPEND.c.dataset_id == dataset_id).order_by(_SPEND.c.id)
            ).all()
        return [
            LedgerEntry(
                dataset_id=row.dataset_id,
                job_id=row.job_id,
                round_number=int(row.round_number),
                mechanism=_mechanism(
                    row.noise_multiplier, row.sample_rate, row.steps, row.accountant
                ),
                recorded_at=_utc(row.recorded_at),
            )
            for row in rows
        ]

    def open_reservation(self, dataset_id: str, job_id: str) -> Mechanism | None:
        """The mechanism ``job_id`` reserved on ``dataset_id`` (all its planned steps), if
        that reservation is still open; ``None`` if it never reserved or was released."""
        _check_id("dataset_id", dataset_id)
        _check_id("job_id", job_id)
        with self._snapshot(dataset_id) as (conn, _terms):
            row = conn.execute(
                select(_RESERVATION).where(
                    _RESERVATION.c.dataset_id == dataset_id,
                    _RESERVATION.c.job_id == job_id,
                    _RESERVATION.c.status == RESERVATION_OPEN,
                )
            ).first()
        if row is None:
            return None
        return _mechanism(row.noise_multiplier, row.sample_rate, row.planned_steps)

    def job_rounds(self, dataset_id: str, job_id: str) -> list[LedgerEntry]:
        """The rounds recorded for ``job_id`` on ``dataset_id``, in the order recorded."""
        return [entry for entry in self.history(dataset_id) if entry.job_id == job_id]

    def job_epsilon(self, dataset_id: str, job_id: str) -> float:
        """The ε (at the dataset's δ) of ``job_id``'s recorded rounds on ``dataset_id`` alone.

        ``BudgetError`` if the job never reserved on the dataset.
        """
        _check_id("dataset_id", dataset_id)
        _check_id("job_id", job_id)
        with self._snapshot(dataset_id) as (conn, terms):
            _reservation(conn, dataset_id, job_id)
            rows = conn.execute(
                select(_SPEND)
                .where(_SPEND.c.dataset_id == dataset_id, _SPEND.c.job_id == job_id)
                .order_by(_SPEND.c.id)
            ).all()
        used = [
            _mechanism(row.noise_multiplier, row.sample_rate, row.steps, row.accountant)
            for row in rows
        ]
        return epsilon_of(used, terms.delta)


def _unknown_dataset(dataset_id: str) -> str:
    return f"dataset {dataset_id!r} has no privacy budget; open one with open_budget first"


def _reservation(conn: Connection, dataset_id: str, job_id: str) -> Row[Any]:
    row = conn.execute(
        select(_RESERVATION).where(
            _RESERVATION.c.dataset_id == dataset_id, _RESERVATION.c.job_id == job_id
        )
    ).first()
    if row is None:
        raise BudgetError(
            f"job {job_id!r} has no reservation on dataset {dataset_id!r}; reserve before "
            "recording or releasing"
        )
    return row


def _mechanism(
    noise_multiplier: float, sample_rate: float, steps: int, accountant: str = ACCOUNTANT
) -> Mechanism:
    """A mechanism read back from the ledger (a stored row that fails validation is an error)."""
    try:
        return Mechanism(float(noise_multiplier), float(sample_rate), int(steps), str(accountant))
    except AccountingError as exc:
        raise BudgetError(f"the ledger holds a mechanism it cannot price: {exc}") from exc


def _commitments(conn: Connection, dataset_id: str) -> _Commitments:
    """Everything spent on ``dataset_id`` and the unspent steps of its open reservations."""
    spent_rows = conn.execute(
        select(
            _SPEND.c.noise_multiplier,
            _SPEND.c.sample_rate,
            _SPEND.c.accountant,
            func.sum(_SPEND.c.steps).label("steps"),
        )
        .where(_SPEND.c.dataset_id == dataset_id)
        .group_by(_SPEND.c.noise_multiplier, _SPEND.c.sample_rate, _SPEND.c.accountant)
    ).all()
    spent = [
        _mechanism(row.noise_multiplier, row.sample_rate, row.steps, row.accountant)
        for row in spent_rows
    ]
    open_rows = conn.execute(
        select(
            _RESERVATION.c.noise_multiplier,
            _RESERVATION.c.sample_rate,
            _RESERVATION.c.planned_steps,
            func.coalesce(func.sum(_SPEND.c.steps), 0).label("spent_steps"),
        )
        .select_from(
            _RESERVATION.outerjoin(
                _SPEND,
                and_(
                    _SPEND.c.dataset_id == _RESERVATION.c.dataset_id,
                    _SPEND.c.job_id == _RESERVATION.c.job_id,
                ),
            )
        )
        .where(_RESERVATION.c.dataset_id == dataset_id, _RESERVATION.c.status == RESERVATION_OPEN)
        .group_by(
            _RESERVATION.c.id,
            _RESERVATION.c.noise_multiplier,
            _RESERVATION.c.sample_rate,
            _RESERVATION.c.planned_steps,
        )
    ).all()
    unspent = [
        _mechanism(row.noise_multiplier, row.sample_rate, left)
        for row in open_rows
        if (left := int(row.planned_steps) - int(row.spent_steps)) > 0
    ]
    return _Commitments(spent=spent, unspent=unspent, open_reservations=len(open_rows))


def _refuse_second_reservation(conn: Connection, dataset_id: str, job_id: str) -> None:
    """A job reserves its steps on a dataset once: refuse a second reservation."""
    existing = conn.execute(
        select(_RESERVATION.c.status).where(
            _RESERVATION.c.dataset_id == dataset_id, _RESERVATION.c.job_id == job_id
        )
    ).first()
    if existing is not None:
        raise BudgetError(
            f"job {job_id!r} already has a reservation on dataset {dataset_id!r} "
            f"({existing.status}); a job reserves its steps once"
        )


def _admission(
    dataset_id: str,
    job_id: str,
    terms: BudgetTerms,
    commitments: _Commitments,
    planned: Mechanism,
) -> BudgetCheck:
    """The admission arithmetic shared by ``reserve`` and ``check``; raises when refused."""
    job_epsilon = epsilon_of([planned], terms.delta)
    committed = epsilon_of([*commitments.spent, *commitments.unspent], terms.delta)
    with_job = epsilon_of([*commitments.spent, *commitments.unspent, planned], terms.delta)
    per_job = terms.max_epsilon_per_job
    if (per_job is not None and job_epsilon > per_job) or with_job > terms.lifetime_epsilon:
        raise BudgetExceeded(_refusal(dataset_id, job_id, terms, job_epsilon, committed, with_job))
    return BudgetCheck(
        dataset_id=dataset_id,
        job_id=job_id,
        delta=terms.delta,
        lifetime_cap=terms.lifetime_epsilon,
        max_epsilon_per_job=per_job,
        job_epsilon=job_epsilon,
        committed_epsilon_before=committed,
        committed_epsilon_after=with_job,
    )


def _status(dataset_id: str, terms: BudgetTerms, commitments: _Commitments) -> BudgetStatus:
    spent = epsilon_of(commitments.spent, terms.delta)
    committed = epsilon_of([*commitments.spent, *commitments.unspent], terms.delta)
    return BudgetStatus(
        dataset_id=dataset_id,
        delta=terms.delta,
        lifetime_cap=terms.lifetime_epsilon,
        max_epsilon_per_job=terms.max_epsilon_per_job,
        spent_epsilon=spent,
        committed_epsilon=committed,
        remaining_epsilon=max(0.0, terms.lifetime_epsilon - committed),
        open_reservations=commitments.open_reservations,
    )


def _refusal(
    dataset_id: str,
    job_id: str,
    terms: BudgetTerms,
    job_epsilon: float,
    committed: float,
    with_job: float,
) -> str:
    """The message of a refused reservation: every number a user needs to act on it."""
    head = (
        f"job {job_id!r} on dataset {dataset_id!r} refused: the planned job's ε is "
        f"{_show(job_epsilon)} at δ={terms.delta!r}"
    )
    per_job = terms.max_epsilon_per_job
    if per_job is not None and job_epsilon > per_job:
        reason = f", over the per-job cap of {_show(per_job)}"
    else:
        reason = f"; with it the dataset's ε would reach {_show(with_job)}, over the lifetime cap"
    return (
        f"{head}{reason} (committed lifetime ε {_show(committed)} of cap "
        f"{_show(terms.lifetime_epsilon)}, δ={terms.delta!r}). Plan fewer steps, a lower "
        "sample rate or a larger noise multiplier, or wait for open jobs to release their "
        "reservations."
    )
