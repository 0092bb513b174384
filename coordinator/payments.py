"""Money in and out through the payment rail: funding, payouts, refunds, onboarding,
webhooks, and reconciliation after a crash.

Every rail call follows the same order (``billing.payouts``): commit the operation (its id
is the idempotency key; a payout's or refund's money is reserved by a pending ledger
transfer), call the rail, commit the answer. ``reconcile`` settles what a dead process
left between those commits: it looks each pending operation up on the rail by its key
and records what it finds, or calls again with the same key, which the rail answers with
the object made the first time. Nothing is paid twice and nothing owed is lost.

``run_payouts`` reconciles, then pays everything owed: creators' royalties through the
configured rail (Stripe transfers to onboarded Express accounts; on the ``ledger`` rail, a
line of the statement), buyers' released holds back through the rail that collected them.
It signs one payout statement for what it paid, and logs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from billing.ledger import AccountKind, open_account, transfer
from billing.payouts import (
    FAILED,
    FUND,
    PAYOUT,
    PENDING,
    REFUND,
    REQUIRES_ACTION,
    SUCCEEDED,
    Owed,
    begin_funding,
    begin_operation,
    complete_operation,
    fail_operation,
    funding_of,
    note_status,
    operations_of,
    owed,
    pending_operations,
)
from billing.rails.base import PaymentRail, RailError, RailEventData, RailResult, RailUnavailable
from billing.tables import RailAccount, RailEvent, RailOperation
from coordinator.accounts import Principal
from coordinator.crash_points import crash_point
from coordinator.database import reading, writing
from coordinator.errors import (
    Conflict,
    CoordinatorError,
    InvalidRequest,
    NotFound,
    PaymentRequired,
    UpstreamError,
)
from coordinator.jobs import check_transition, fundable_quote, transition_job, visible_job
from coordinator.service import Coordinator
from coordinator.tables import Job
from provenance.canonical import canonical_json, sha256_hex
from provenance.statement import Statement, Subject, predicate_type, sign_statement
from provenance.tlog.records import append_records

PAYOUT_PREDICATE = predicate_type("payout")
#: The log record type of a payout statement.
PAYOUT_RECORD = "payout"
#: Who moves a job when the rail, not a person, says the payment succeeded.
PAYMENT_AGENT = Principal(account_id="coordinator", name="payment rail", role="admin", key_id="")
#: Webhook bodies larger than this are refused before they are parsed.
MAX_WEBHOOK_BYTES = 256 * 1024


@dataclass
class PayoutReport:
    """What one payout run did: payouts and refunds paid (including ones reconciled from
    an earlier run), payments reconciled into funded jobs, operations the rail refused or
    that still wait, and owed amounts it skipped (with why)."""

    rail: str
    paid: list[dict[str, Any]] = field(default_factory=list)
    funded: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    waiting: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    statement: dict[str, Any] | None = None
    log_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The report as the API returns it."""
        return {
            "rail": self.rail,
            "paid": self.paid,
            "funded": self.funded,
            "failed": self.failed,
            "waiting": self.waiting,
            "skipped": self.skipped,
            "statement": self.statement,
            "log_index": self.log_index,
        }


def operation_view(operation: RailOperation) -> dict[str, Any]:
    """One rail operation as the API shows it (amounts as strings)."""
    return {
        "id": operation.id,
        "kind": operation.kind,
        "rail": operation.rail,
        "job_id": operation.job_id,
        "party": operation.party,
        "amount_minor": str(operation.amount_minor),
        "currency": operation.currency,
        "status": operation.status,
        "rail_ref": operation.rail_ref,
        **({"detail": operation.detail} if operation.status == FAILED else {}),
    }


def _rail(coordinator: Coordinator, name: str) -> PaymentRail:
    rail = coordinator.rails.get(name)
    if rail is None:
        raise UpstreamError(
            f"rail operations on the {name} rail are pending, but this coordinator is not "
            f"configured for it (tally coordinator payments --rail {name})"
        )
    return rail


# Funding -----------------------------------------------------------------------------


def fund_job(
    coordinator: Coordinator, principal: Principal, job_id: str, payment_method: str | None
) -> dict[str, Any]:
    """Fund a draft job through the configured rail; returns the payment's state.

    On the ``ledger`` rail the hold is placed at once. On ``stripe`` a PaymentIntent is
    made and confirmed with ``payment_method``: if it succeeds the job is funded now; if
    the buyer must act (3-D Secure) the job stays a draft and the ``payment_intent.succeeded``
    webhook funds it. A declined card is ``PaymentRequired`` with Stripe's reason.
    """
    principal.require("buyer")
    rail = coordinator.payment_rail
    if rail.name == "ledger":
        with writing(coordinator.engine) as session:
            transition_job(
                session, coordinator.log, coordinator.signing_key, principal, job_id, "funded",
                reason=None, now=coordinator.now(), rail=rail.name,
            )  # fmt: skip
        coordinator.logged()
        return {"rail": rail.name, "status": SUCCEEDED}
    if payment_method is None:
        raise InvalidRequest(
            "the stripe rail needs a payment method (e.g. pm_card_visa in test mode)",
            field="payment_method",
        )
    with writing(coordinator.engine) as session:
        job = visible_job(session, principal, job_id, lock=True)
        check_transition(job, "funded")
        operation = begin_funding(
            session, job_id=job.id, buyer=job.buyer_id, amount_minor=fundable_quote(session, job),
            currency=job.currency, rail=rail.name, now=coordinator.now(),
        )  # fmt: skip
        operation.detail = payment_method
        session.add(operation)
        key, amount, currency = operation.id, operation.amount_minor, operation.currency
    try:
        result = rail.collect(
            key=key, job_id=job_id, amount_minor=amount, currency=currency,
            payment_method=payment_method,
        )  # fmt: skip
    except RailError as exc:
        with writing(coordinator.engine) as session:
            fail_operation(session, key, reason=str(exc), now=coordinator.now())
        raise PaymentRequired(str(exc)) from exc
    except RailUnavailable as exc:
        raise UpstreamError(f"{exc}; the payment is retried by tally billing reconcile") from exc
    crash_point("fund:after-rail")
    with writing(coordinator.engine) as session:
        outcome = _collection_answer(coordinator, session, key, result)
    coordinator.logged()
    return outcome


def _collection_answer(
    coordinator: Coordinator, session: Session, key: str, result: RailResult
) -> dict[str, Any]:
    """Record what the rail says of funding operation ``key``; fund the job if it succeeded."""
    now = coordinator.now()
    answer: dict[str, Any] = {"rail": "stripe", "payment": result.reference}
    if result.status == SUCCEEDED:
        answer.update(status=SUCCEEDED, **_apply_collection(coordinator, session, key, result))
        return answer
    if result.status in ("canceled", "requires_payment_method"):
        fail_operation(session, key, reason=f"the payment is {result.status}", now=now)
        answer["status"] = FAILED
        return answer
    status = REQUIRES_ACTION if result.status == "requires_action" else PENDING
    note_status(session, key, status=status, reference=result.reference, now=now)
    answer.update(status=result.status, client_secret=result.client_secret)
    return answer


def _apply_collection(
    coordinator: Coordinator, session: Session, key: str, result: RailResult
) -> dict[str, Any]:
    """The rail collected funding operation ``key``: fund its job. If the job can no longer
    be funded (cancelled meanwhile, a dataset revoked, the quote grown), the money
    collected is booked as owed back to the buyer, so that the next payout run refunds it."""
    operation = session.get(RailOperation, key)
    assert operation is not None
    if operation.status == SUCCEEDED:
        return {}
    complete_operation(session, key, reference=result.reference, now=coordinator.now())
    job = session.get(Job, operation.job_id)
    assert job is not None
    try:
        check_transition(job, "funded")
        quote = fundable_quote(session, job)
        if quote != operation.amount_minor:
            raise PaymentRequired(f"the quote is now {quote} minor units, not the amount paid")
    except CoordinatorError as exc:
        _book_unapplied(session, operation, coordinator.now())
        return {"refund_owed": str(operation.amount_minor), "reason": str(exc)}
    transition_job(
        session, coordinator.log, coordinator.signing_key, PAYMENT_AGENT, job.id, "funded",
        reason=f"payment {result.reference} succeeded", now=coordinator.now(),
        rail=operation.rail, hold_minor=operation.amount_minor,
    )  # fmt: skip
    return {}


def _book_unapplied(session: Session, operation: RailOperation, now: datetime) -> None:
    clearing = open_account(
        session, AccountKind.CLEARING, operation.rail, operation.currency, now=now
    )
    payable = open_account(
        session, AccountKind.PAYABLE, operation.party, operation.currency, now=now
    )
    transfer(
        session, f"unapplied:{operation.id}", debit=clearing.id, credit=payable.id,
        amount_minor=operation.amount_minor, kind="unapplied", now=now,
        job_id=operation.job_id, reference="payment collected for a job that cannot be funded",
    )  # fmt: skip


# Payouts and refunds -----------------------------------------------------------------


def run_payouts(coordinator: Coordinator, principal: Principal) -> PayoutReport:
    """Reconcile, then pay everything owed (see the module docstring). Admins only."""
    principal.require("admin")
    report = PayoutReport(rail=coordinator.payment_rail.name)
    reconcile_into(coordinator, report)
    with reading(coordinator.engine) as session:
        buyers = dict(session.exec(select(Job.id, Job.buyer_id)).all())
        lines = owed(session, buyers=buyers)
        routes = [_route(coordinator, session, line) for line in lines]
    for line, (rail_name, destination, collection, skip) in zip(lines, routes, strict=True):
        if skip:
            report.skipped.append(_owed_view(line, skip))
            continue
        with writing(coordinator.engine) as session:
            operation = begin_operation(session, line, rail=rail_name, now=coordinator.now())
            key = operation.id
        crash_point("payout:after-post")
        _execute(coordinator, report, key, destination=destination, collection=collection)
    _sign_statement(coordinator, report)
    return report


def _route(
    coordinator: Coordinator, session: Session, line: Owed
) -> tuple[str, str | None, str | None, str | None]:
    """How ``line`` is paid: (rail, connected account, collection to refund, why not)."""
    if line.kind == REFUND:
        funding = funding_of(session, line.job_id)
        if funding is None:  # funded on the ledger rail, which makes no operation
            return "ledger", None, None, None
        return funding.rail, None, funding.rail_ref, None
    rail = coordinator.payment_rail
    if rail.name == "ledger":
        return "ledger", None, None, None
    account = session.get(RailAccount, line.party)
    if account is None or account.rail != rail.name:
        return rail.name, None, None, "the creator has not onboarded (tally billing onboard)"
    if not account.payouts_enabled:
        return rail.name, None, None, "the creator's Stripe account cannot take payouts yet"
    return rail.name, account.reference, None, None


def _execute(
    coordinator: Coordinator,
    report: PayoutReport,
    key: str,
    *,
    destination: str | None,
    collection: str | None,
) -> None:
    """Steps 2 and 3 of operation ``key``: call the rail with the key, record the answer."""
    with reading(coordinator.engine) as session:
        operation = session.get(RailOperation, key)
        assert operation is not None
    rail = _rail(coordinator, operation.rail)
    try:
        if operation.kind == PAYOUT:
            result = rail.pay_out(
                key=key, job_id=operation.job_id, destination=destination,
                amount_minor=operation.amount_minor, currency=operation.currency,
            )  # fmt: skip
        else:
            result = rail.refund(
                key=key, job_id=operation.job_id, collection=collection or "",
                amount_minor=operation.amount_minor, currency=operation.currency,
            )  # fmt: skip
    except RailError as exc:
        with writing(coordinator.engine) as session:
            failed = fail_operation(session, key, reason=str(exc), now=coordinator.now())
            report.failed.append(operation_view(failed))
        return
    except RailUnavailable as exc:
        report.waiting.append({**operation_view(operation), "detail": str(exc)})
        return
    crash_point("payout:after-rail")
    with writing(coordinator.engine) as session:
        done = complete_operation(session, key, reference=result.reference, now=coordinator.now())
        report.paid.append(operation_view(done))


def _owed_view(line: Owed, reason: str) -> dict[str, Any]:
    return {
        "kind": line.kind,
        "job_id": line.job_id,
        "party": line.party,
        "amount_minor": str(line.amount_minor),
        "currency": line.currency,
        "reason": reason,
    }


def _sign_statement(coordinator: Coordinator, report: PayoutReport) -> None:
    """Sign and log the payout statement of what ``report`` paid (nothing if it paid none):
    on the ``ledger`` rail it is the instruction to pay; on ``stripe``, the record of the
    transfers and refunds made, with Stripe's ids."""
    if not report.paid:
        return
    statement = Statement(
        subjects=(
            Subject(
                "rail-operations",
                {"sha256": sha256_hex(canonical_json([item["id"] for item in report.paid]))},
            ),
        ),
        predicate_type=PAYOUT_PREDICATE,
        predicate={
            "rail": report.rail,
            "paid_at": coordinator.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "operations": report.paid,
        },
    )
    envelope = sign_statement(statement, [coordinator.signing_key])
    with writing(coordinator.engine) as session:
        result = append_records(
            coordinator.log,
            [(PAYOUT_RECORD, envelope, statement)],
            connection=session.connection(),
        )
    coordinator.logged()
    report.log_index = result.indexes[0]
    report.statement = envelope.to_dict()


# Reconciliation ----------------------------------------------------------------------


def reconcile(coordinator: Coordinator, principal: Principal) -> PayoutReport:
    """Settle every operation a crashed or cut-off run left pending. Admins only."""
    principal.require("admin")
    report = PayoutReport(rail=coordinator.payment_rail.name)
    reconcile_into(coordinator, report)
    _sign_statement(coordinator, report)
    return report


def reconcile_into(coordinator: Coordinator, report: PayoutReport) -> None:
    """Reconcile each pending operation against its rail by its idempotency key."""
    with reading(coordinator.engine) as session:
        pending = pending_operations(session)
        collections = {
            item.id: funding.rail_ref
            for item in pending
            if item.kind == REFUND and (funding := funding_of(session, item.job_id)) is not None
        }
        destinations = {
            item.party: item.reference for item in session.exec(select(RailAccount)).all()
        }
    for operation in pending:
        if operation.kind == FUND:
            _reconcile_funding(coordinator, report, operation)
            continue
        rail = _rail(coordinator, operation.rail)
        collection = collections.get(operation.id)
        try:
            if operation.kind == PAYOUT:
                found = rail.find_payout(key=operation.id, job_id=operation.job_id)
            else:
                found = rail.find_refund(key=operation.id, collection=collection or "")
        except (RailError, RailUnavailable) as exc:
            report.waiting.append({**operation_view(operation), "detail": str(exc)})
            continue
        if found is None:
            # The rail never saw it: call again with the same key.
            _execute(
                coordinator, report, operation.id,
                destination=destinations.get(operation.party), collection=collection,
            )  # fmt: skip
            continue
        with writing(coordinator.engine) as session:
            done = complete_operation(
                session, operation.id, reference=found.reference, now=coordinator.now()
            )
            report.paid.append(operation_view(done))


def _reconcile_funding(
    coordinator: Coordinator, report: PayoutReport, operation: RailOperation
) -> None:
    rail = _rail(coordinator, operation.rail)
    try:
        if operation.rail_ref:
            result = rail.collection(operation.rail_ref)
        else:  # the same call as the first, answered from the rail's idempotency record
            result = rail.collect(
                key=operation.id, job_id=operation.job_id, amount_minor=operation.amount_minor,
                currency=operation.currency, payment_method=operation.detail or None,
            )  # fmt: skip
    except RailError as exc:
        with writing(coordinator.engine) as session:
            report.failed.append(
                operation_view(
                    fail_operation(session, operation.id, reason=str(exc), now=coordinator.now())
                )
            )
        return
    except RailUnavailable as exc:
        report.waiting.append({**operation_view(operation), "detail": str(exc)})
        return
    with writing(coordinator.engine) as session:
        _collection_answer(coordinator, session, operation.id, result)
        refreshed = session.get(RailOperation, operation.id)
        assert refreshed is not None
        view = operation_view(refreshed)
    coordinator.logged()
    if refreshed.status in (PENDING, REQUIRES_ACTION):
        report.waiting.append(view)
    elif refreshed.status == FAILED:
        report.failed.append(view)
    else:
        report.funded.append(view)


# Onboarding --------------------------------------------------------------------------


def onboard(coordinator: Coordinator, principal: Principal, email: str | None) -> dict[str, Any]:
    """A creator's rail account (made once) and a fresh link to finish onboarding."""
    principal.require("creator")
    rail = coordinator.payment_rail
    with reading(coordinator.engine) as session:
        known = session.get(RailAccount, principal.account_id)
        existing = known.reference if known is not None and known.rail == rail.name else None
    try:
        made = rail.onboard(
            party=principal.account_id, email=email, account=existing,
            return_url=_return_url(coordinator),
        )  # fmt: skip
    except RailError as exc:
        raise Conflict(str(exc)) from exc
    except RailUnavailable as exc:
        raise UpstreamError(str(exc)) from exc
    with writing(coordinator.engine) as session:
        account = session.get(RailAccount, principal.account_id)
        if account is None:
            account = RailAccount(
                party=principal.account_id, rail=rail.name, reference=made.account,
                payouts_enabled=made.payouts_enabled, created_at=coordinator.now(),
            )  # fmt: skip
            session.add(account)
        payouts_enabled = account.payouts_enabled
    return {"rail": rail.name, "account": made.account, "url": made.url,
            "payouts_enabled": payouts_enabled}  # fmt: skip


def _return_url(coordinator: Coordinator) -> str:
    stripe = coordinator.config.payments.stripe
    if stripe is not None:
        return stripe.onboarding_return_url
    return f"http://{coordinator.config.api_host}:{coordinator.config.api_port}/"


# Webhooks ----------------------------------------------------------------------------


def handle_webhook(
    coordinator: Coordinator, rail_name: str, payload: bytes, signature: str | None
) -> dict[str, Any]:
    """Verify a webhook event and apply it once (replays are answered, not applied again).

    Raises ``InvalidRequest`` for a body that is too large, unsigned, signed with another
    secret or too old: nothing is recorded for it.
    """
    rail = coordinator.rails.get(rail_name)
    if rail is None or rail_name == "ledger":
        raise NotFound(f"this coordinator takes no webhooks from {rail_name!r}")
    if len(payload) > MAX_WEBHOOK_BYTES:
        raise InvalidRequest(f"the webhook body is over {MAX_WEBHOOK_BYTES} bytes", field="body")
    try:
        event = rail.parse_event(payload, signature)
    except RailError as exc:
        raise InvalidRequest(str(exc), field="Stripe-Signature") from exc
    with writing(coordinator.engine) as session:
        seen = session.get(RailEvent, event.id)
        if seen is not None:
            return {"event": event.id, "duplicate": True, "outcome": seen.outcome}
        # An event that cannot be applied rolls back whole and is not recorded, so that
        # the rail delivers it again.
        outcome = _apply_event(coordinator, session, event)
        session.add(
            RailEvent(
                id=event.id, rail=rail_name, type=event.type[:64], created=event.created,
                outcome=outcome, received_at=coordinator.now(),
            )
        )  # fmt: skip
    coordinator.logged()
    return {"event": event.id, "duplicate": False, "outcome": outcome}


def _metadata_key(event: RailEventData) -> str | None:
    metadata = event.object.get("metadata")
    value = metadata.get("tally_operation") if isinstance(metadata, dict) else None
    return value if isinstance(value, str) else None


def _apply_event(coordinator: Coordinator, session: Session, event: RailEventData) -> str:
    """Apply one verified event; returns what it did (kept with the event)."""
    now = coordinator.now()
    if event.type == "account.updated":
        return _account_updated(session, event)
    key = _metadata_key(event)
    operation = session.get(RailOperation, key) if key else None
    if operation is None:
        return "ignored: not one of ours"
    reference = str(event.object.get("id", ""))
    if event.type == "payment_intent.succeeded":
        if operation.status == SUCCEEDED:
            return "already applied"
        result = RailResult(reference, SUCCEEDED)
        outcome = _apply_collection(coordinator, session, operation.id, result)
        return "job funded" if not outcome else f"refund owed: {outcome['reason']}"
    if event.type == "payment_intent.payment_failed":
        if operation.status == SUCCEEDED:
            return "ignored: the payment succeeded already"
        fail_operation(session, operation.id, reason="the payment failed", now=now)
        return "payment failed"
    if event.type in ("payment_intent.requires_action", "payment_intent.processing"):
        if operation.status not in (PENDING, REQUIRES_ACTION):
            return f"ignored: the payment is {operation.status}"
        status = REQUIRES_ACTION if event.type.endswith("requires_action") else PENDING
        note_status(session, operation.id, status=status, reference=reference, now=now)
        return f"payment {status}"
    if event.type in ("transfer.created", "refund.created", "refund.updated"):
        if operation.status == SUCCEEDED:
            return "already applied"
        if event.object.get("status") == "failed":
            fail_operation(session, operation.id, reason="the rail reports it failed", now=now)
            return "failed"
        complete_operation(session, operation.id, reference=reference, now=now)
        return "confirmed"
    return f"ignored: {event.type}"


def _account_updated(session: Session, event: RailEventData) -> str:
    """A connected account changed: keep the newest state (events may arrive out of order)."""
    reference = str(event.object.get("id", ""))
    account = session.exec(
        select(RailAccount).where(col(RailAccount.reference) == reference).with_for_update()
    ).first()
    if account is None:
        return "ignored: not one of ours"
    if event.created < account.status_at:
        return "ignored: older than the state we hold"
    account.payouts_enabled = bool(event.object.get("payouts_enabled"))
    account.status_at = event.created
    session.add(account)
    return f"payouts {'enabled' if account.payouts_enabled else 'disabled'}"


def rail_operations(
    coordinator: Coordinator, principal: Principal, job_id: str
) -> list[dict[str, Any]]:
    """The rail operations of a job the caller may see."""
    with reading(coordinator.engine) as session:
        visible_job(session, principal, job_id)
        return [operation_view(row) for row in operations_of(session, job_id)]
