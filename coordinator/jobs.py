"""Jobs: a buyer's plan checked against every dataset's terms, quoted, and moved through
its states, each transition signed and logged.

States: draft → funded → running → completed | failed, and cancelled from any state
before an end. A job's ε target on a dataset must fit the dataset's per-job cap and what
is left of its lifetime cap after every other live job's target. This module must never
create a job whose budget does not cover its quote, nor change a job's state without
logging the transition in the same transaction.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import false, func
from sqlmodel import Session, col, select

from billing.currency import check_currency, to_minor_units
from billing.errors import BillingError
from billing.pricing import Quote, build_quote, check_amount, format_minor, price_line
from billing.settlement import place_hold, release_hold
from coordinator.accounts import Principal
from coordinator.catalog import get_listing
from coordinator.errors import Conflict, Forbidden, InvalidRequest, NotFound, PaymentRequired
from coordinator.records import JOB_EVENT_PREDICATE, JOB_EVENT_RECORD, log_signed_record
from coordinator.strategies import check_strategy
from coordinator.tables import LISTED, Job, JobDataset, JobEvent, Listing
from privacy.errors import PrivacyError
from privacy.model_registry import vetted_model
from provenance.canonical import canonical_json, sha256_hex
from provenance.keys import SigningKey
from provenance.tlog.log import TransparencyLog

#: Transitions a job may make; ends have none.
TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"funded", "cancelled"}),
    "funded": frozenset({"running", "cancelled"}),
    "running": frozenset({"completed", "failed", "cancelled"}),
    "completed": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}
#: States whose ε targets count against a dataset's lifetime cap.
COMMITTED_STATES = ("funded", "running", "completed")
#: States in which a job's hold holds the buyer's money, and the states that end a job.
HELD_STATES = ("funded", "running")
ENDED_STATES = ("completed", "failed", "cancelled")
#: The payment rail a job's money comes in from unless another is named.
PAYMENT_RAIL = "ledger"


@dataclass(frozen=True)
class DatasetRequest:
    """One dataset a job wants: its id and the ε/δ target on it."""

    dataset_id: str
    target_epsilon: Decimal
    delta: Decimal


@dataclass(frozen=True)
class JobPlan:
    """What a buyer asks for. Validated field by field by the API schema, and against
    the catalog and registries here."""

    datasets: tuple[DatasetRequest, ...]
    model: str
    rounds: int
    local_epochs: int
    batch_size: int
    learning_rate: Decimal
    strategy: str = "fedavg"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    min_hosts: int = 1

    def to_dict(self, options: dict[str, float | int]) -> dict[str, Any]:
        """The canonical plan, as signed into job events (decimals as strings)."""
        return {
            "datasets": [
                {
                    "dataset_id": item.dataset_id,
                    "target_epsilon": str(item.target_epsilon),
                    "delta": str(item.delta),
                }
                for item in self.datasets
            ],
            "model": self.model,
            "rounds": self.rounds,
            "local_epochs": self.local_epochs,
            "batch_size": self.batch_size,
            "learning_rate": str(self.learning_rate),
            "strategy": {"name": self.strategy, "options": {k: str(v) for k, v in options.items()}},
            "min_hosts": self.min_hosts,
        }


@dataclass(frozen=True)
class PricedPlan:
    """A plan checked against the catalog, with its quote."""

    plan: JobPlan
    listings: tuple[Listing, ...]
    strategy_options: dict[str, float | int]
    quote: Quote


def _committed_epsilon(session: Session, dataset_id: str, excluding: str | None) -> float:
    statement = (
        select(func.coalesce(func.sum(JobDataset.target_epsilon_value), 0.0))
        .join(Job, col(Job.id) == col(JobDataset.job_id))
        .where(JobDataset.dataset_id == dataset_id, col(Job.status).in_(COMMITTED_STATES))
    )
    if excluding is not None:
        statement = statement.where(Job.id != excluding)
    return float(session.exec(statement).one())


def check_dataset_terms(
    session: Session,
    plan: JobPlan,
    item: DatasetRequest,
    position: int,
    *,
    job_id: str | None = None,
) -> Listing:
    """The listing ``item`` names, if the plan keeps every one of its terms."""
    where = f"datasets[{position}]"
    if item.target_epsilon <= 0:
        raise InvalidRequest("target ε must be above 0", field=f"{where}.target_epsilon")
    if not 0 < item.delta < 1:
        raise InvalidRequest("δ must be between 0 and 1, both excluded", field=f"{where}.delta")
    try:
        # Funding commits ε: lock the listing so that two jobs cannot both take the last of
        # a dataset's lifetime cap (PostgreSQL; SQLite serialises writers anyway).
        listing = get_listing(session, item.dataset_id, lock=job_id is not None)
    except NotFound as exc:
        raise InvalidRequest(str(exc), field=f"{where}.dataset_id") from exc
    name = f"dataset {listing.dataset_id}"
    if listing.status != LISTED:
        raise InvalidRequest(f"{name} was revoked by its creator", field=f"{where}.dataset_id")
    if "train" not in listing.allowed_uses.split(","):
        raise InvalidRequest(
            f"{name} may be used only for: {listing.allowed_uses}", field=f"{where}.dataset_id"
        )
    model = vetted_model(plan.model)
    if listing.modality not in model.modalities:
        raise InvalidRequest(
            f"model {plan.model} learns from {'/'.join(model.modalities)} data; {name} is "
            f"{listing.modality}",
            field="model",
        )
    epsilon = item.target_epsilon
    if listing.max_epsilon_per_job is not None and epsilon > Decimal(listing.max_epsilon_per_job):
        raise InvalidRequest(
            f"target ε {epsilon} on {name} exceeds its per-job cap of "
            f"{listing.max_epsilon_per_job}",
            field=f"{where}.target_epsilon",
        )
    committed = _committed_epsilon(session, listing.dataset_id, job_id)
    lifetime = float(listing.lifetime_epsilon)
    if committed + float(epsilon) > lifetime * (1 + 1e-12):
        raise InvalidRequest(
            f"target ε {epsilon} on {name} exceeds what is left of its lifetime cap "
            f"({lifetime - committed:.6g} of {listing.lifetime_epsilon})",
            field=f"{where}.target_epsilon",
        )
    if item.delta > Decimal(listing.delta):
        raise InvalidRequest(
            f"δ {item.delta} on {name} exceeds the dataset's δ of {listing.delta}",
            field=f"{where}.delta",
        )
    if plan.batch_size > listing.rows:
        raise InvalidRequest(
            f"batch size {plan.batch_size} is larger than {name}'s {listing.rows} rows",
            field="batch_size",
        )
    return listing


def price_plan(
    session: Session, plan: JobPlan, *, fee_bps: int, job_id: str | None = None
) -> PricedPlan:
    """Check ``plan`` against the registries and every dataset's terms, and quote it."""
    try:
        vetted_model(plan.model)
    except PrivacyError as exc:
        raise InvalidRequest(str(exc), field="model") from exc
    options = check_strategy(plan.strategy, plan.strategy_options)
    ids = [item.dataset_id for item in plan.datasets]
    if len(set(ids)) != len(ids):
        raise InvalidRequest("a dataset is named twice", field="datasets")
    if plan.min_hosts > len(plan.datasets):
        raise InvalidRequest(
            f"min_hosts {plan.min_hosts} is more than the {len(plan.datasets)} dataset(s)",
            field="min_hosts",
        )
    listings = tuple(
        check_dataset_terms(session, plan, item, position, job_id=job_id)
        for position, item in enumerate(plan.datasets)
    )
    try:
        lines = [
            price_line(
                listing.dataset_id,
                plan.rounds * plan.local_epochs * listing.rows,
                Decimal(listing.price_per_sample),
                listing.currency,
            )
            for listing in listings
        ]
        quote = build_quote(lines, fee_bps)
    except BillingError as exc:
        raise InvalidRequest(str(exc), field="datasets") from exc
    return PricedPlan(plan, listings, options, quote)


def _budget_minor(amount: Decimal, currency: str, quote: Quote) -> int:
    try:
        check_currency(currency)
        budget = check_amount(to_minor_units(amount, currency), "the budget")
    except BillingError as exc:
        raise InvalidRequest(f"budget: {exc}", field="budget.amount") from exc
    if currency != quote.currency:
        raise InvalidRequest(
            f"budget is in {currency} but the datasets are priced in {quote.currency}",
            field="budget.currency",
        )
    if budget < quote.total_minor:
        raise PaymentRequired(
            f"budget {format_minor(budget, currency)} does not cover the quote of "
            f"{format_minor(quote.total_minor, currency)}"
        )
    return budget


def _log_transition(
    session: Session,
    log: TransparencyLog,
    key: SigningKey,
    job: Job,
    *,
    from_status: str | None,
    to_status: str,
    actor: Principal,
    reason: str | None,
    now: datetime,
) -> JobEvent:
    index = log_signed_record(
        session,
        log,
        key,
        record_type=JOB_EVENT_RECORD,
        subject=(f"tallystick:job/{job.id}", job.spec_digest),
        predicate_type_uri=JOB_EVENT_PREDICATE,
        predicate={
            "job_id": job.id,
            "from": from_status,
            "to": to_status,
            "at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "actor": actor.account_id,
            "reason": reason,
            "buyer": job.buyer_id,
            "quote": {
                "currency": job.currency,
                "total_minor": str(job.quote_total_minor),
                "platform_fee_minor": str(job.platform_fee_minor),
            },
            "development_mode": job.development_mode,
        },
    )
    event = JobEvent(
        job_id=job.id,
        from_status=from_status,
        to_status=to_status,
        actor_id=actor.account_id,
        reason=reason,
        at=now,
        log_index=index,
    )
    session.add(event)
    return event


def create_job(
    session: Session,
    log: TransparencyLog,
    key: SigningKey,
    principal: Principal,
    plan: JobPlan,
    *,
    budget: tuple[Decimal, str],
    fee_bps: int,
    development_mode: bool,
    now: datetime,
) -> Job:
    """Check, quote and record a draft job; log its creation."""
    principal.require("buyer")
    priced = price_plan(session, plan, fee_bps=fee_bps)
    budget_minor = _budget_minor(budget[0], budget[1], priced.quote)
    spec = canonical_json(plan.to_dict(priced.strategy_options))
    job = Job(
        id="job_" + secrets.token_hex(13),
        buyer_id=principal.account_id,
        status="draft",
        model=plan.model,
        rounds=plan.rounds,
        local_epochs=plan.local_epochs,
        batch_size=plan.batch_size,
        learning_rate=str(plan.learning_rate),
        strategy=plan.strategy,
        strategy_options=json.dumps(priced.strategy_options, sort_keys=True),
        min_hosts=plan.min_hosts,
        currency=priced.quote.currency,
        budget_minor=budget_minor,
        quote_total_minor=priced.quote.total_minor,
        platform_fee_minor=priced.quote.platform_fee_minor,
        platform_fee_bps=fee_bps,
        spec=spec,
        spec_digest=sha256_hex(spec),
        development_mode=development_mode,
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    session.flush()
    for position, (item, listing, line) in enumerate(
        zip(plan.datasets, priced.listings, priced.quote.lines, strict=True)
    ):
        session.add(
            JobDataset(
                job_id=job.id,
                manifest_digest=listing.manifest_digest,
                dataset_id=listing.dataset_id,
                position=position,
                target_epsilon=str(item.target_epsilon),
                target_epsilon_value=float(item.target_epsilon),
                delta=str(item.delta),
                planned_samples=line.planned_samples,
                price_per_sample=str(line.price_per_sample),
                amount_minor=line.amount_minor,
            )
        )
    _log_transition(
        session,
        log,
        key,
        job,
        from_status=None,
        to_status="draft",
        actor=principal,
        reason=None,
        now=now,
    )
    session.flush()
    return job


def uses_datasets_of(account_id: str) -> Any:
    """A condition on ``Job``: it is past its draft and uses a dataset ``account_id`` listed.

    This is what a creator sees of jobs: the plans its datasets were funded for (their
    hosts must know the model, rounds and ε to admit the work), never a buyer's drafts.
    """
    own = (
        select(JobDataset.job_id)
        .join(Listing, col(Listing.manifest_digest) == col(JobDataset.manifest_digest))
        .where(Listing.account_id == account_id, col(JobDataset.job_id) == col(Job.id))
    )
    return (col(Job.status) != "draft") & own.exists()


def _visibility(principal: Principal) -> list[Any]:
    """The conditions on ``Job`` that keep a caller to the jobs it may see."""
    if principal.role == "buyer":
        return [Job.buyer_id == principal.account_id]
    if principal.role == "creator":
        return [uses_datasets_of(principal.account_id)]
    if principal.role in ("admin", "auditor"):
        return []
    return [false()]  # a role this rule does not know sees nothing


@dataclass(frozen=True)
class JobAudience:
    """Who a job's record may be shown to (``may_see`` applies the rule)."""

    buyer_id: str
    status: str
    creator_accounts: frozenset[str]

    def may_see(self, principal: Principal) -> bool:
        """The rule ``_visibility`` applies in SQL, for a job already read: a buyer its own,
        a creator one past its draft on its datasets, admins and auditors any."""
        if principal.role in ("admin", "auditor"):
            return True
        if principal.role == "buyer":
            return principal.account_id == self.buyer_id
        if principal.role == "creator":
            return self.status != "draft" and principal.account_id in self.creator_accounts
        return False


def job_audience(session: Session, job: Job) -> JobAudience:
    """Who may see ``job``: its buyer, and the accounts that listed its datasets."""
    creators = session.exec(
        select(Listing.account_id)
        .join(JobDataset, col(JobDataset.manifest_digest) == col(Listing.manifest_digest))
        .where(JobDataset.job_id == job.id)
    )
    return JobAudience(job.buyer_id, job.status, frozenset(creators))


def visible_job(session: Session, principal: Principal, job_id: str, *, lock: bool = False) -> Job:
    """A job the caller may see, else ``NotFound``: a buyer its own; a creator those funded
    on its datasets; admins and auditors any."""
    statement = select(Job).where(Job.id == job_id, *_visibility(principal))
    if lock:
        statement = statement.with_for_update()
    job = session.exec(statement).first()
    if job is None:
        raise NotFound(f"no job {job_id!r}")
    return job


def job_datasets(session: Session, job_id: str) -> list[JobDataset]:
    """A job's datasets in the order the buyer gave them."""
    statement = (
        select(JobDataset).where(JobDataset.job_id == job_id).order_by(col(JobDataset.position))
    )
    return list(session.exec(statement))


def job_events(session: Session, job_id: str) -> list[JobEvent]:
    """A job's transitions, oldest first."""
    statement = select(JobEvent).where(JobEvent.job_id == job_id).order_by(col(JobEvent.id))
    return list(session.exec(statement))


def job_views(session: Session, jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """``job_view`` of each of ``jobs``, reading all their datasets and events in two
    queries (not two per job)."""
    ids = [job.id for job in jobs]
    if not ids:
        return []
    datasets: dict[str, list[JobDataset]] = {job_id: [] for job_id in ids}
    for item in session.exec(
        select(JobDataset)
        .where(col(JobDataset.job_id).in_(ids))
        .order_by(col(JobDataset.job_id), col(JobDataset.position))
    ):
        datasets[item.job_id].append(item)
    events: dict[str, list[JobEvent]] = {job_id: [] for job_id in ids}
    for event in session.exec(
        select(JobEvent).where(col(JobEvent.job_id).in_(ids)).order_by(col(JobEvent.id))
    ):
        events[event.job_id].append(event)
    return [job_view(job, datasets[job.id], events[job.id]) for job in jobs]


def transition_job(
    session: Session,
    log: TransparencyLog,
    key: SigningKey,
    principal: Principal,
    job_id: str,
    to_status: str,
    *,
    reason: str | None,
    now: datetime,
    rail: str = PAYMENT_RAIL,
    hold_minor: int | None = None,
) -> Job:
    """Move a job to ``to_status`` if its state allows it, logging the transition.

    Funding re-checks every dataset's terms (a dataset may have been revoked, or its ε
    committed to other jobs, since the draft was made) and places the quote in the job's
    hold from ``rail``'s clearing account; ``hold_minor``, when given, is what the rail
    collected, and must equal the quote.
    """
    if principal.role == "auditor":
        raise Forbidden("auditors read everything and change nothing")
    job = visible_job(session, principal, job_id, lock=True)
    check_transition(job, to_status)
    if to_status == "funded":
        quote = fundable_quote(session, job)
        if hold_minor is not None and hold_minor != quote:
            raise PaymentRequired(
                f"the quote is now {format_minor(quote, job.currency)}, but "
                f"{format_minor(hold_minor, job.currency)} was paid"
            )
        # The buyer's money for the quote goes into the job's hold (escrow) at once.
        place_hold(
            session,
            job_id=job.id,
            buyer_id=job.buyer_id,
            currency=job.currency,
            amount_minor=quote,
            rail=rail,
            now=now,
        )
    elif to_status in ENDED_STATES and job.status in HELD_STATES:
        # Whatever the rounds did not spend goes back to the buyer.
        release_hold(session, job_id=job.id, buyer_id=job.buyer_id, currency=job.currency, now=now)
    previous = job.status
    job.status = to_status
    job.updated_at = now
    job.status_reason = reason
    session.add(job)
    _log_transition(
        session,
        log,
        key,
        job,
        from_status=previous,
        to_status=to_status,
        actor=principal,
        reason=reason,
        now=now,
    )
    session.flush()
    return job


def check_transition(job: Job, to_status: str) -> None:
    """Raise ``Conflict`` unless ``job`` may become ``to_status`` now."""
    allowed = TRANSITIONS[job.status]
    if to_status not in allowed:
        raise Conflict(
            f"job {job.id} is {job.status}; it cannot become {to_status}"
            + (f" (it can become: {', '.join(sorted(allowed))})" if allowed else "")
        )


def fundable_quote(session: Session, job: Job) -> int:
    """What funding ``job`` costs now, in minor units, after checking every dataset's terms
    again; raises ``PaymentRequired`` if the quote has grown past the budget."""
    plan = plan_of(job, job_datasets(session, job.id))
    priced = price_plan(session, plan, fee_bps=job.platform_fee_bps, job_id=job.id)
    if priced.quote.total_minor > job.budget_minor:
        raise PaymentRequired(
            f"the quote is now {format_minor(priced.quote.total_minor, job.currency)}, more "
            f"than the budget of {format_minor(job.budget_minor, job.currency)}"
        )
    return priced.quote.total_minor


def plan_of(job: Job, datasets: Sequence[JobDataset]) -> JobPlan:
    """The plan a stored job was created from."""
    return JobPlan(
        datasets=tuple(
            DatasetRequest(item.dataset_id, Decimal(item.target_epsilon), Decimal(item.delta))
            for item in datasets
        ),
        model=job.model,
        rounds=job.rounds,
        local_epochs=job.local_epochs,
        batch_size=job.batch_size,
        learning_rate=Decimal(job.learning_rate),
        strategy=job.strategy,
        strategy_options=json.loads(job.strategy_options),
        min_hosts=job.min_hosts,
    )


def list_jobs(
    session: Session, principal: Principal, *, status: str | None, limit: int, offset: int
) -> tuple[list[Job], int]:
    """Jobs the caller may see (newest first) and how many there are in all."""
    conditions = _visibility(principal)
    if status is not None:
        conditions.append(Job.status == status)
    total = session.exec(select(func.count()).select_from(Job).where(*conditions)).one()
    statement = (
        select(Job)
        .where(*conditions)
        .order_by(col(Job.created_at).desc(), col(Job.id))
        .offset(offset)
        .limit(limit)
    )
    return list(session.exec(statement)), int(total)


def job_view(
    job: Job, datasets: Sequence[JobDataset], events: Sequence[JobEvent]
) -> dict[str, Any]:
    """JSON form of a job with its datasets, quote and transitions."""
    subtotal = sum(item.amount_minor for item in datasets)
    return {
        "id": job.id,
        "status": job.status,
        "status_reason": job.status_reason,
        "buyer": job.buyer_id,
        "model": job.model,
        "rounds": job.rounds,
        "local_epochs": job.local_epochs,
        "batch_size": job.batch_size,
        "learning_rate": job.learning_rate,
        "strategy": {"name": job.strategy, "options": json.loads(job.strategy_options)},
        "min_hosts": job.min_hosts,
        "datasets": [
            {
                "dataset_id": item.dataset_id,
                "manifest_digest": item.manifest_digest,
                "target_epsilon": item.target_epsilon,
                "delta": item.delta,
                "planned_samples": item.planned_samples,
                "price_per_sample": item.price_per_sample,
                "amount_minor": item.amount_minor,
            }
            for item in datasets
        ],
        "quote": {
            "currency": job.currency,
            "subtotal_minor": subtotal,
            "platform_fee_bps": job.platform_fee_bps,
            "platform_fee_minor": job.platform_fee_minor,
            "total_minor": job.quote_total_minor,
            "total": format_minor(job.quote_total_minor, job.currency),
        },
        "budget": {"amount_minor": job.budget_minor, "currency": job.currency},
        "spec_digest": job.spec_digest,
        "development_mode": job.development_mode,
        "created_at": job.created_at.isoformat(),
        "updated_at": job.updated_at.isoformat(),
        "events": [
            {
                "from": event.from_status,
                "to": event.to_status,
                "at": event.at.isoformat(),
                "actor": event.actor_id,
                "reason": event.reason,
                "log_index": event.log_index,
            }
            for event in events
        ],
    }
