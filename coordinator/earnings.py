"""What each creator's datasets are owed: the quoted share of every job funded on them.

A job's quote prices each dataset line (planned samples x price per sample); that line is
what the dataset's creator stands to earn from the job. This module reports those lines,
grouped by dataset, with totals per state: ``committed`` (funded or running: the buyer's
hold covers it), ``completed`` (the job finished) and ``lost`` (it failed or was cancelled
after funding). Payouts follow settled round proofs (billing); until a job is settled the
figures here are quotes, never money moved. This module must never show a creator
another creator's lines, nor a buyer anything.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from coordinator.accounts import Principal
from coordinator.errors import NotFound
from coordinator.tables import Account, Job, JobDataset, Listing

#: How each job state counts in a creator's totals (drafts are not shown at all).
STATE_BUCKETS = {
    "funded": "committed",
    "running": "committed",
    "completed": "completed",
    "failed": "lost",
    "cancelled": "lost",
}
_BUCKETS = tuple(dict.fromkeys(STATE_BUCKETS.values()))
#: Most job lines one answer carries (newest first); the totals always cover all of them.
MAX_LINES = 1000


def creator_earnings(
    session: Session, principal: Principal, *, account_id: str | None = None
) -> dict[str, Any]:
    """The earnings view of ``account_id`` (default: the caller), grouped by dataset.

    Creators see only their own; admins and auditors anyone's; buyers nothing.
    """
    principal.require("creator", "admin", "auditor")
    subject = account_id or principal.account_id
    if principal.role == "creator" and subject != principal.account_id:
        raise NotFound(f"no account {subject!r}")
    account = session.get(Account, subject)
    if account is None:
        raise NotFound(f"no account {subject!r}")
    totals: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(_BUCKETS, 0))
    lines = 0
    summed = _funded_lines(
        subject, Job.currency, Job.status, func.sum(JobDataset.amount_minor), func.count()
    ).group_by(col(Job.currency), col(Job.status))
    for currency, status, amount, count in session.exec(summed):
        totals[currency][STATE_BUCKETS[status]] += int(amount or 0)
        lines += int(count)
    newest = (
        _funded_lines(subject, JobDataset, Job, Listing)
        .order_by(col(Job.created_at).desc(), col(Job.id))
        .limit(MAX_LINES)
    )
    datasets: dict[str, dict[str, Any]] = {}
    shown = 0
    for line, job, listing in session.exec(newest):
        shown += 1
        entry = datasets.setdefault(
            listing.dataset_id,
            {"dataset_id": listing.dataset_id, "title": listing.title, "jobs": []},
        )
        entry["jobs"].append(
            {
                "job_id": job.id,
                "status": job.status,
                "bucket": STATE_BUCKETS[job.status],
                "version": listing.version,
                "planned_samples": line.planned_samples,
                "price_per_sample": line.price_per_sample,
                "amount_minor": line.amount_minor,
                "currency": job.currency,
            }
        )
    return {
        "account_id": subject,
        "datasets": list(datasets.values()),
        "totals": [
            {"currency": currency, **amounts} for currency, amounts in sorted(totals.items())
        ],
        "lines": lines,
        "truncated": lines > shown,
        "basis": "quote",
    }


def _funded_lines(account_id: str, *columns: Any) -> Any:
    """``columns`` of every job line on a dataset ``account_id`` listed, in a job that was
    funded (any state past draft)."""
    return (
        select(*columns)
        .select_from(JobDataset)
        .join(Job, col(Job.id) == col(JobDataset.job_id))
        .join(Listing, col(Listing.manifest_digest) == col(JobDataset.manifest_digest))
        .where(Listing.account_id == account_id, col(Job.status).in_(tuple(STATE_BUCKETS)))
    )
