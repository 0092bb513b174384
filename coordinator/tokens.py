"""Capability tokens: the coordinator's permission for one host to train one job on one dataset.

A token is issued only for a funded or running job, for a dataset of that job still
listed, to the host that published it, and only after the host's stored worker evidence
verifies again under the current attestation policy. It is bound (``cnf.jkt``) to that
worker key, lives for minutes, and is recorded by ``jti``. This module must never issue a
token for insecure (dev) evidence outside development mode.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, select

from coordinator.accounts import Principal
from coordinator.errors import Conflict, Forbidden, InvalidRequest, NotFound
from coordinator.hosts import check_worker_evidence
from coordinator.tables import LISTED, HostWorker, IssuedToken, Job, JobDataset, Listing
from provenance.attestation import AttestationPolicy, Evidence
from provenance.capability import (
    CapabilityClaims,
    CapabilityScope,
    issue_capability,
    jwk_thumbprint,
    new_jti,
)
from provenance.keys import SigningKey

#: Job states in which hosts may be given tokens.
TOKEN_STATES = ("funded", "running")


def issue_job_token(
    session: Session,
    key: SigningKey,
    principal: Principal,
    job_id: str,
    dataset_id: str,
    *,
    policy: AttestationPolicy,
    ttl: timedelta,
    now: datetime,
    operation: str = "train",
) -> tuple[str, CapabilityClaims]:
    """Issue the capability token for ``dataset_id`` in ``job_id``.

    The caller is the dataset's creator (its node fetches its own token) or an admin (the
    operator's training launcher). ``operation`` is ``train`` or ``evaluate``.
    """
    principal.require("creator", "admin")
    job = session.get(Job, job_id)
    item = session.exec(
        select(JobDataset).where(JobDataset.job_id == job_id, JobDataset.dataset_id == dataset_id)
    ).first()
    listing = session.get(Listing, item.manifest_digest) if item is not None else None
    if job is None or item is None or listing is None:
        raise NotFound(f"job {job_id!r} has no dataset {dataset_id!r}")
    if principal.role == "creator" and listing.account_id != principal.account_id:
        raise NotFound(f"job {job_id!r} has no dataset {dataset_id!r}")
    if job.status not in TOKEN_STATES:
        raise Conflict(f"job {job.id} is {job.status}; tokens are issued only when it is funded")
    if listing.status != LISTED:
        raise Conflict(f"dataset {dataset_id} was revoked; no token is issued for it")
    host = session.get(HostWorker, listing.creator_did)
    if host is None:
        raise InvalidRequest(
            f"the host of dataset {dataset_id} ({listing.creator_did}) has no attested worker "
            "key; register it with: tally host register",
            field="dataset_id",
        )
    verified = check_worker_evidence(Evidence.from_json(host.evidence), policy, now=now)
    if verified.worker_key.did != host.worker_did:
        raise Forbidden(f"host {host.host_did}: stored evidence binds another worker key")
    claims = CapabilityClaims(
        issuer=key.public_key.did,
        subject=host.host_did,
        audience=host.host_did,
        issued_at=now,
        expires_at=now + ttl,
        jti=new_jti(),
        scope=CapabilityScope(
            job_id=job.id,
            dataset_digest=listing.manifest_digest,
            operation=operation,
            rounds=job.rounds,
            epsilon=item.target_epsilon,
            delta=item.delta,
        ),
        worker_jkt=jwk_thumbprint(verified.worker_key),
        insecure_attestation=verified.insecure,
    )
    token = issue_capability(key, claims)
    session.add(
        IssuedToken(
            jti=claims.jti,
            job_id=job.id,
            manifest_digest=listing.manifest_digest,
            host_did=host.host_did,
            worker_jkt=claims.worker_jkt,
            insecure_attestation=claims.insecure_attestation,
            issued_at=claims.issued_at,
            expires_at=claims.expires_at,
        )
    )
    session.flush()
    return token, claims
