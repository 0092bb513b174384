"""The node's own admission policy: whether it will do a piece of work, whatever is asked.

Checks run in a fixed order, each before anything later is touched, and the first
failure refuses the work with a ``WorkRefused`` that says why:

1. the training code: the app bundle's hash must be on the node's allow-list;
2. the dataset: registered here, not revoked, and allowing the use (``train``...);
3. the privacy budget: the job's planned DP mechanism must fit the dataset's per-job
   cap and, composed with everything spent and reserved, its lifetime cap.

No creator data is opened by any of these checks. This module must never admit work
that one of them refuses, and never reserve budget for work it did not admit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from data_host.allowlist import AppAllowList
from data_host.errors import WorkRefused
from data_host.registry import DatasetRegistry
from privacy.budget import BudgetCheck, Mechanism, PrivacyBudgetLedger, format_epsilon
from privacy.errors import BudgetError


@dataclass(frozen=True)
class WorkRequest:
    """What a job asks of this node for one dataset."""

    dataset_id: str
    job_id: str
    use: str
    fab_hash: str
    planned: Mechanism


@dataclass(frozen=True)
class AdmissionDecision:
    """An admitted request, with the privacy arithmetic behind the decision."""

    request: WorkRequest
    manifest_digest: str
    budget: BudgetCheck
    reserved: bool

    @property
    def job_epsilon(self) -> float:
        """ε of the planned mechanism alone."""
        return self.budget.job_epsilon

    @property
    def lifetime_epsilon_after(self) -> float:
        """The dataset's committed lifetime ε once this job is counted."""
        return self.budget.committed_epsilon_after

    @property
    def lifetime_cap(self) -> float:
        """The dataset's lifetime ε cap."""
        return self.budget.lifetime_cap

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able account of the decision (ε as strings)."""
        return {
            "dataset_id": self.request.dataset_id,
            "job_id": self.request.job_id,
            "use": self.request.use,
            "fab_hash": self.request.fab_hash,
            "manifest_digest": self.manifest_digest,
            "job_epsilon": format_epsilon(self.job_epsilon),
            "lifetime_epsilon_after": format_epsilon(self.lifetime_epsilon_after),
            "lifetime_cap": format_epsilon(self.lifetime_cap),
            "delta": repr(self.budget.delta),
            "reserved": self.reserved,
        }


def admit_work(engine: Engine, request: WorkRequest, *, reserve: bool) -> AdmissionDecision:
    """Check ``request`` against the node's policy; with ``reserve``, reserve its budget.

    Raises ``WorkRefused`` naming the first check that failed.
    """
    AppAllowList(engine).require_allowed(request.fab_hash)
    dataset = DatasetRegistry(engine).require_usable(request.dataset_id, request.use)
    ledger = PrivacyBudgetLedger(engine)
    try:
        check = ledger.check(request.dataset_id, request.job_id, request.planned)
        if reserve:
            ledger.reserve(request.dataset_id, request.job_id, request.planned)
    except BudgetError as exc:
        raise WorkRefused(f"privacy budget: {exc}") from exc
    if reserve:
        # A revocation may have landed while the budget was reserved: look again, and
        # give the reservation back rather than admit work on a revoked dataset.
        try:
            DatasetRegistry(engine).require_usable(request.dataset_id, request.use)
        except WorkRefused:
            ledger.release(request.dataset_id, request.job_id)
            raise
    return AdmissionDecision(request, dataset.row.manifest_digest, check, reserved=reserve)
