"""The privacy-budget ledger: Opacus-backed accounting, admission against per-job and
lifetime ε caps, recording, release, history and racing writers, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from datetime import UTC

import pytest
from opacus.accountants import RDPAccountant
from sqlalchemy import Engine

from privacy.budget import (
    BudgetTerms,
    Mechanism,
    PrivacyBudgetLedger,
    epsilon_of,
    format_epsilon,
    noise_for_target,
)
from privacy.errors import AccountingError, BudgetError, BudgetExceeded
from provenance.storage import write_transaction

DELTA = 1e-5
#: One round of a typical job: 50 steps at q = 0.01 and sigma = 1.1.
ROUND = Mechanism(noise_multiplier=1.1, sample_rate=0.01, steps=50)


def steps(count: int, mechanism: Mechanism = ROUND) -> Mechanism:
    """``mechanism`` with ``count`` steps."""
    return Mechanism(mechanism.noise_multiplier, mechanism.sample_rate, count)


@pytest.fixture
def ledger(engine: Engine) -> PrivacyBudgetLedger:
    ledger = PrivacyBudgetLedger(engine)
    ledger.create_tables()
    return ledger


# -- accounting ----------------------------------------------------------------------


def test_epsilon_of_matches_a_fresh_opacus_accountant_fed_the_same_steps() -> None:
    runs = [Mechanism(1.1, 0.01, 30), Mechanism(0.8, 0.02, 12), Mechanism(1.1, 0.01, 5)]
    accountant = RDPAccountant()
    for run in runs:
        for _ in range(run.steps):
            accountant.step(noise_multiplier=run.noise_multiplier, sample_rate=run.sample_rate)
    assert epsilon_of(runs, DELTA) == pytest.approx(accountant.get_epsilon(DELTA), rel=1e-12)
    single = RDPAccountant()
    for _ in range(40):
        single.step(noise_multiplier=2.0, sample_rate=0.05)
    assert epsilon_of([Mechanism(2.0, 0.05, 40)], 1e-6) == single.get_epsilon(1e-6)


def test_epsilon_of_nothing_is_zero_and_order_does_not_matter() -> None:
    assert epsilon_of([], DELTA) == 0.0
    runs = [Mechanism(1.1, 0.01, 30), Mechanism(0.8, 0.02, 12), Mechanism(3.0, 0.5, 7)]
    assert epsilon_of(runs, DELTA) == epsilon_of(list(reversed(runs)), DELTA)
    # Splitting a run into rounds composes to the same ε as the run in one piece.
    assert epsilon_of([steps(20), steps(30)], DELTA) == pytest.approx(
        epsilon_of([steps(50)], DELTA), rel=1e-12
    )


def test_two_jobs_compose_to_more_than_either_alone() -> None:
    first = Mechanism(1.1, 0.01, 400)
    second = Mechanism(0.9, 0.02, 100)
    both = epsilon_of([first, second], DELTA)
    assert both > epsilon_of([first], DELTA)
    assert both > epsilon_of([second], DELTA)


@pytest.mark.parametrize(
    ("target", "sample_rate", "count"), [(1.0, 0.01, 1000), (8.0, 0.004, 5000)]
)
def test_noise_for_target_stays_within_and_close_to_the_target(
    target: float, sample_rate: float, count: int
) -> None:
    sigma = noise_for_target(target, DELTA, sample_rate, count)
    reached = epsilon_of([Mechanism(sigma, sample_rate, count)], DELTA)
    assert reached <= target
    assert reached >= target * (1 - 1e-3)


def test_noise_for_target_refuses_a_target_no_noise_can_reach() -> None:
    # With δ = 1e-5 the RDP orders cannot certify ε = 0.01 whatever the noise.
    with pytest.raises(AccountingError, match="no noise multiplier"):
        noise_for_target(0.01, DELTA, 0.01, 100)
    with pytest.raises(AccountingError, match="target_epsilon"):
        noise_for_target(0.0, DELTA, 0.01, 100)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"noise_multiplier": 0.0}, "noise_multiplier"),
        ({"noise_multiplier": -1.0}, "noise_multiplier"),
        ({"noise_multiplier": math.nan}, "noise_multiplier"),
        ({"noise_multiplier": math.inf}, "noise_multiplier"),
        ({"sample_rate": 0.0}, "sample_rate"),
        ({"sample_rate": 1.5}, "sample_rate"),
        ({"sample_rate": math.nan}, "sample_rate"),
        ({"steps": 0}, "steps"),
        ({"steps": 2.0}, "steps"),
        ({"steps": True}, "steps"),
        ({"accountant": "prv"}, "accountant"),
    ],
)
def test_mechanism_refuses_bad_fields_by_name(fields: dict[str, object], named: str) -> None:
    values: dict[str, object] = {"noise_multiplier": 1.0, "sample_rate": 0.1, "steps": 10}
    values.update(fields)
    with pytest.raises(AccountingError, match=named):
        Mechanism(**values)  # type: ignore[arg-type]


def test_epsilon_of_refuses_a_bad_delta() -> None:
    for delta in (0.0, 1.0, -1e-5, math.nan):
        with pytest.raises(AccountingError, match="delta"):
            epsilon_of([ROUND], delta)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (8.0, "8"),
        (0.1, "0.1"),
        (1.23456789, "1.23457"),
        (2.0000001, "2.00001"),
        (9.9999999, "10"),
        (1e-7, "0.0000001"),
        (1234567.0, "1234570"),
        (0.0, "0"),
    ],
)
def test_format_epsilon_is_plain_decimal_rounded_up(value: float, text: str) -> None:
    assert format_epsilon(value) == text
    assert float(text) >= value


@pytest.mark.parametrize("value", [math.inf, math.nan, -0.5])
def test_format_epsilon_refuses_what_is_not_an_epsilon(value: float) -> None:
    with pytest.raises(AccountingError):
        format_epsilon(value)


# -- terms ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"lifetime_epsilon": 0.0}, "lifetime_epsilon must be greater than 0.*zero or less"),
        ({"lifetime_epsilon": -1.0}, "lifetime_epsilon must be greater than 0"),
        ({"lifetime_epsilon": math.nan}, "lifetime_epsilon must be a finite number"),
        ({"lifetime_epsilon": math.inf}, "lifetime_epsilon must be a finite number"),
        ({"max_epsilon_per_job": 0.0}, "max_epsilon_per_job must be greater than 0"),
        ({"max_epsilon_per_job": -2.0}, "max_epsilon_per_job must be greater than 0"),
        ({"max_epsilon_per_job": math.nan}, "max_epsilon_per_job must be a finite number"),
        ({"max_epsilon_per_job": math.inf}, "max_epsilon_per_job must be a finite number"),
        ({"max_epsilon_per_job": 11.0}, "max_epsilon_per_job .* larger than lifetime_epsilon"),
        ({"delta": 1.0}, "delta"),
        ({"delta": 2.0}, "delta"),
        ({"delta": 0.0}, "delta"),
        ({"delta": math.nan}, "delta"),
    ],
)
def test_terms_refuse_bad_values_by_name(fields: dict[str, object], message: str) -> None:
    values: dict[str, object] = {
        "delta": DELTA,
        "lifetime_epsilon": 10.0,
        "max_epsilon_per_job": 4.0,
    }
    values.update(fields)
    with pytest.raises(BudgetError, match=message):
        BudgetTerms(**values)  # type: ignore[arg-type]


def test_terms_without_a_per_job_cap_are_valid() -> None:
    assert BudgetTerms(delta=DELTA, lifetime_epsilon=3.0).max_epsilon_per_job is None


# -- opening budgets -----------------------------------------------------------------


def test_open_budget_stores_terms_once(ledger: PrivacyBudgetLedger) -> None:
    terms = BudgetTerms(delta=1e-6, lifetime_epsilon=0.1 + 0.2, max_epsilon_per_job=0.3)
    ledger.open_budget("ds-1", terms)
    assert ledger.terms("ds-1") == terms
    with pytest.raises(BudgetError, match="already has a privacy budget"):
        ledger.open_budget("ds-1", BudgetTerms(delta=DELTA, lifetime_epsilon=5.0))
    assert ledger.terms("ds-1") == terms
    with pytest.raises(BudgetError, match="'ds-2' has no privacy budget"):
        ledger.terms("ds-2")
    ledger.create_tables()  # idempotent: nothing lost
    assert ledger.status("ds-1").open_reservations == 0


def test_open_budget_joins_the_callers_transaction(
    engine: Engine, ledger: PrivacyBudgetLedger
) -> None:
    terms = BudgetTerms(delta=DELTA, lifetime_epsilon=4.0)

    class RegistryFailed(Exception):
        pass

    def register_then_fail() -> None:
        with write_transaction(engine) as connection:
            ledger.open_budget("ds-rolled-back", terms, connection=connection)
            raise RegistryFailed

    with pytest.raises(RegistryFailed):
        register_then_fail()
    with pytest.raises(BudgetError, match="no privacy budget"):
        ledger.terms("ds-rolled-back")
    with write_transaction(engine) as connection:
        ledger.open_budget("ds-committed", terms, connection=connection)
    assert ledger.terms("ds-committed") == terms


def test_ids_are_parsed_with_limits(ledger: PrivacyBudgetLedger) -> None:
    terms = BudgetTerms(delta=DELTA, lifetime_epsilon=4.0)
    for bad in ("", "x" * 257, "line\nbreak"):
        with pytest.raises(BudgetError, match="dataset_id"):
            ledger.open_budget(bad, terms)


# -- admission -----------------------------------------------------------------------


def test_reservation_over_the_per_job_cap_is_refused_with_the_numbers(
    ledger: PrivacyBudgetLedger,
) -> None:
    ledger.open_budget(
        "ds", BudgetTerms(delta=DELTA, lifetime_epsilon=20.0, max_epsilon_per_job=2.0)
    )
    small = steps(200)
    ledger.reserve("ds", "job-small", small)
    committed = ledger.status("ds").committed_epsilon
    big = Mechanism(0.7, 0.02, 2000)
    big_epsilon = epsilon_of([big], DELTA)
    assert 2.0 < big_epsilon < 20.0 - committed
    with pytest.raises(BudgetExceeded) as refused:
        ledger.reserve("ds", "job-big", big)
    message = str(refused.value)
    for part in (
        "'ds'",
        "'job-big'",
        format_epsilon(big_epsilon),
        format_epsilon(committed),
        "per-job cap of 2",
        "cap 20",
        "δ=1e-05",
    ):
        assert part in message
    status = ledger.status("ds")
    assert status.open_reservations == 1
    assert status.committed_epsilon == committed


def test_reservation_over_the_lifetime_cap_is_refused_with_the_numbers(
    ledger: PrivacyBudgetLedger,
) -> None:
    one_job = steps(1000)
    one = epsilon_of([one_job], DELTA)
    two = epsilon_of([one_job, one_job], DELTA)
    cap = (one + two) / 2
    ledger.open_budget("ds", BudgetTerms(delta=DELTA, lifetime_epsilon=cap))
    first = ledger.reserve("ds", "job-1", one_job)
    assert first.committed_epsilon == pytest.approx(one, rel=1e-12)
    assert first.spent_epsilon == 0.0
    assert first.remaining_epsilon == pytest.approx(cap - one, rel=1e-9)
    with pytest.raises(BudgetExceeded) as refused:
        ledger.reserve("ds", "job-2", one_job)
    message = str(refused.value)
    for part in (
        "'ds'",
        "'job-2'",
        format_epsilon(one),
        format_epsilon(two),
        format_epsilon(cap),
        "lifetime cap",
        "δ=1e-05",
    ):
        assert part in message
    assert ledger.status("ds").open_reservations == 1


def test_a_job_reserves_once_and_unknown_datasets_are_refused(
    ledger: PrivacyBudgetLedger,
) -> None:
    ledger.open_budget("ds", BudgetTerms(delta=DELTA, lifetime_epsilon=10.0))
    ledger.reserve("ds", "job", steps(100))
    with pytest.raises(BudgetError, match="already has a reservation") as again:
        ledger.reserve("ds", "job", steps(100))
    assert not isinstance(again.value, BudgetExceeded)
    with pytest.raises(BudgetError, match="no privacy budget"):
        ledger.reserve("other", "job", steps(100))


# -- recording -----------------------------------------------------------------------


def test_recorded_rounds_are_spent_and_committed_stays_put(ledger: PrivacyBudgetLedger) -> None:
    ledger.open_budget("ds", BudgetTerms(delta=DELTA, lifetime_epsilon=10.0))
    reserved = ledger.reserve("ds", "job", steps(150))
    after_one = ledger.record("ds", "job", 1, steps(50))
    after_two = ledger.record("ds", "job", 2, steps(50))
    assert after_one.spent_epsilon == pytest.approx(epsilon_of([steps(50)], DELTA), rel=1e-12)
    assert after_two.spent_epsilon == pytest.approx(epsilon_of([steps(100)], DELTA), rel=1e-12)
    assert after_two.committed_epsilon == pytest.approx(reserved.committed_epsilon, rel=1e-12)
    assert ledger.job_epsilon("ds", "job") == after_two.spent_epsilon
    shown = ledger.status("ds").to_dict()
    assert shown == {
        "dataset_id": "ds",
        "delta": DELTA,
        "lifetime_cap": "10",
        "max_epsilon_per_job": None,
        "spent_epsilon": format_epsilon(after_two.spent_epsilon),
        "committed_epsilon": format_epsilon(after_two.committed_epsilon),
        "remaining_epsilon": format_epsilon(10.0 - after_two.committed_epsilon),
        "open_reservations": 1,
    }


def test_recording_beyond_the_reservation_is_refused(ledger: PrivacyBudgetLedger) -> None:
    ledger.open_budget("ds", BudgetTerms(delta=DELTA, lifetime_epsilon=10.0))
    ledger.reserve("ds", "job", steps(100))
    ledger.record("ds", "job", 1, steps(60))
    with pytest.raises(BudgetExceeded, match="60 already spent exceed the 100 steps reserved"):
        ledger.record("ds", "job", 2, steps(41))
    with pytest.raises(BudgetError, match="train with the reserved setting"):
        ledger.record("ds", "job", 2, Mechanism(0.9, ROUND.sample_rate, 10))
    with pytest.raises(BudgetError, match="train with the reserved setting"):
        ledger.record("ds", "job", 2, Mechanism(ROUND.noise_multiplier, 0.02, 10))
    with pytest.raises(BudgetError, match="no reservation"):
        ledger.record("ds", "stranger", 1, steps(1))
    ledger.record("ds", "job", 2, steps(40))  # exactly the rest fits
    assert [entry.round_number for entry in ledger.history("ds")] == [1, 2]


def test_the_same_round_is_never_counted_twice(ledger: PrivacyBudgetLedger) -> None:
    ledger.open_budget("ds", BudgetTerms(delta=DELTA, lifetime_epsilon=10.0))
    ledger.reserve("ds", "job", steps(500))
    first = ledger.record("ds", "job", 7, steps(50))
    with pytest.raises(BudgetError, match="round 7 is already recorded"):
        ledger.record("ds", "job", 7, steps(50))
    assert ledger.status("ds").spent_epsilon == first.spent_epsilon
    assert len(ledger.history("ds")) == 1


def test_a_noise_multiplier_survives_the_database_exactly(ledger: PrivacyBudgetLedger) -> None:
    sigma = noise_for_target(2.0, DELTA, 0.1 + 0.2, 300) + 1e-13  # many significant bits
    planned = Mechanism(sigma, 0.1 + 0.2, 300)
    ledger.open_budget("ds", BudgetTerms(delta=DELTA, lifetime_epsilon=50.0))
    ledger.reserve("ds", "job", planned)
    ledger.record("ds", "job", 1, Mechanism(sigma, 0.1 + 0.2, 100))
    assert ledger.history("ds")[0].mechanism == Mechanism(sigma, 0.1 + 0.2, 100)


# -- release -------------------------------------------------------------------------


def test_release_frees_unspent_steps_for_a_new_job(ledger: PrivacyBudgetLedger) -> None:
    whole = steps(1000)
    cap = (epsilon_of([whole], DELTA) + epsilon_of([whole, whole], DELTA)) / 2
    ledger.open_budget("ds", BudgetTerms(delta=DELTA, lifetime_epsilon=cap))
    ledger.reserve("ds", "job-a", whole)
    with pytest.raises(BudgetExceeded):
        ledger.reserve("ds", "job-b", whole)
    ledger.record("ds", "job-a", 1, steps(100))
    released = ledger.release("ds", "job-a")
    assert released.open_reservations == 0
    assert released.committed_epsilon == released.spent_epsilon
    assert released.spent_epsilon == pytest.approx(epsilon_of([steps(100)], DELTA), rel=1e-12)
    admitted = ledger.reserve("ds", "job-b", whole)
    assert admitted.committed_epsilon == pytest.approx(
        epsilon_of([steps(100), whole], DELTA), rel=1e-12
    )
    with pytest.raises(BudgetError, match="already released"):
        ledger.release("ds", "job-a")
    with pytest.raises(BudgetError, match="released"):
        ledger.record("ds", "job-a", 2, steps(10))
    with pytest.raises(BudgetError, match="no reservation"):
        ledger.release("ds", "job-z")


# -- reading -------------------------------------------------------------------------


def test_history_lists_every_round_in_order_with_job_and_time(
    ledger: PrivacyBudgetLedger,
) -> None:
    ledger.open_budget("ds", BudgetTerms(delta=DELTA, lifetime_epsilon=20.0))
    ledger.open_budget("elsewhere", BudgetTerms(delta=DELTA, lifetime_epsilon=20.0))
    ledger.reserve("ds", "job-a", steps(300))
    ledger.reserve("ds", "job-b", Mechanism(2.0, 0.05, 300))
    ledger.reserve("elsewhere", "job-a", steps(300))
    order = [("job-a", 1), ("job-b", 1), ("job-a", 2), ("job-b", 2), ("job-b", 3)]
    for job, number in order:
        used = steps(20) if job == "job-a" else Mechanism(2.0, 0.05, 20)
        ledger.record("ds", job, number, used)
    ledger.record("elsewhere", "job-a", 1, steps(20))
    history = ledger.history("ds")
    assert [(entry.job_id, entry.round_number) for entry in history] == order
    assert {entry.dataset_id for entry in history} == {"ds"}
    assert history[1].mechanism == Mechanism(2.0, 0.05, 20)
    times = [entry.recorded_at for entry in history]
    assert all(
        moment.tzinfo is not None and moment.utcoffset() == UTC.utcoffset(None) for moment in times
    )
    assert times == sorted(times)
    assert ledger.job_epsilon("ds", "job-b") == pytest.approx(
        epsilon_of([Mechanism(2.0, 0.05, 60)], DELTA), rel=1e-12
    )
    assert ledger.job_epsilon("ds", "job-a") == pytest.approx(
        epsilon_of([steps(40)], DELTA), rel=1e-12
    )
    with pytest.raises(BudgetError, match="no reservation"):
        ledger.job_epsilon("ds", "job-c")


def test_the_ledger_lives_in_the_database(engine: Engine, ledger: PrivacyBudgetLedger) -> None:
    ledger.open_budget("ds", BudgetTerms(delta=DELTA, lifetime_epsilon=10.0))
    ledger.reserve("ds", "job", steps(100))
    ledger.record("ds", "job", 1, steps(30))
    fresh = PrivacyBudgetLedger(engine)  # what the next round's process sees
    assert fresh.status("ds") == ledger.status("ds")
    with pytest.raises(BudgetExceeded):
        fresh.record("ds", "job", 2, steps(71))


# -- racing writers ------------------------------------------------------------------


def race(contenders: int, attempt: Callable[[int], object]) -> list[object]:
    """Run ``attempt(i)`` on ``contenders`` threads released at once; results or errors."""
    start = threading.Barrier(contenders)
    outcomes: list[object] = [None] * contenders

    def run(index: int) -> None:
        start.wait()
        try:
            outcomes[index] = attempt(index)
        except Exception as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_racing_reservations_admit_exactly_the_ones_that_fit(
    ledger: PrivacyBudgetLedger,
) -> None:
    job = steps(500)
    three = epsilon_of([job] * 3, DELTA)
    four = epsilon_of([job] * 4, DELTA)
    cap = (three + four) / 2
    ledger.open_budget("ds", BudgetTerms(delta=DELTA, lifetime_epsilon=cap))
    outcomes = race(8, lambda i: ledger.reserve("ds", f"job-{i}", job))
    admitted = [outcome for outcome in outcomes if not isinstance(outcome, Exception)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, BudgetExceeded)]
    assert (len(admitted), len(refused)) == (3, 5), outcomes
    status = ledger.status("ds")
    assert status.open_reservations == 3
    assert status.committed_epsilon == pytest.approx(three, rel=1e-12)
    assert status.committed_epsilon <= cap


def test_racing_writers_of_one_job_and_one_round_win_once(ledger: PrivacyBudgetLedger) -> None:
    ledger.open_budget("ds", BudgetTerms(delta=DELTA, lifetime_epsilon=10.0))
    reservations = race(4, lambda _i: ledger.reserve("ds", "job", steps(400)))
    assert sum(not isinstance(outcome, Exception) for outcome in reservations) == 1
    assert all(
        type(outcome) is BudgetError for outcome in reservations if isinstance(outcome, Exception)
    ), reservations
    rounds = race(4, lambda _i: ledger.record("ds", "job", 1, steps(50)))
    assert sum(not isinstance(outcome, Exception) for outcome in rounds) == 1
    assert all(
        "already recorded" in str(outcome) for outcome in rounds if isinstance(outcome, Exception)
    ), rounds
    assert len(ledger.history("ds")) == 1


def test_the_ledger_asks_for_the_write_lock_the_engine_provides() -> None:
    # privacy may not import provenance; the option name is the contract between them.
    from privacy.budget import ledger
    from provenance import storage

    assert ledger.WRITE_LOCK_OPTION == storage._WRITE_OPTION
