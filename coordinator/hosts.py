"""Data hosts' attested worker keys: what capability tokens are bound to.

A creator registers a host by its DID (linked to the creator's account) and the worker's
attestation evidence. The coordinator verifies the evidence against its policy: dev
evidence, which proves nothing about isolation, is accepted only in development mode,
and stays marked insecure wherever it shows. This module must never store a worker key
whose evidence did not verify, nor accept insecure evidence outside development mode.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from coordinator.accounts import Principal
from coordinator.errors import Forbidden, InvalidRequest, NotFound
from coordinator.home import AttestationConfig
from coordinator.tables import HostWorker, Identity
from provenance.attestation import AttestationPolicy, Evidence, VerifiedAttestation, verify_evidence
from provenance.capability import jwk_thumbprint
from provenance.errors import ProvenanceError


def attestation_policy(config: AttestationConfig, *, dev_mode: bool) -> AttestationPolicy:
    """The coordinator's acceptance policy for worker evidence."""
    try:
        return AttestationPolicy(
            allow_insecure=dev_mode,
            expected_measurements=dict(config.expected_measurements),
            max_age=timedelta(days=config.max_age_days),
            trusted_dev_attesters=frozenset(config.trusted_dev_attesters),
        )
    except ProvenanceError as exc:
        raise InvalidRequest(f"coordinator attestation policy: {exc}") from exc


def check_worker_evidence(
    evidence: Evidence, policy: AttestationPolicy, *, now: datetime
) -> VerifiedAttestation:
    """Verify ``evidence`` under ``policy``, as an ``InvalidRequest`` naming the step."""
    try:
        return verify_evidence(evidence, policy, now=now)
    except ProvenanceError as exc:
        hint = ""
        if evidence.type == "dev" and not policy.allow_insecure:
            hint = " (dev evidence is accepted only when the coordinator runs in development mode)"
        raise InvalidRequest(f"worker attestation refused: {exc}{hint}", field="evidence") from exc


def register_host(
    session: Session,
    principal: Principal,
    host_did: str,
    evidence_json: bytes,
    *,
    policy: AttestationPolicy,
    now: datetime,
) -> HostWorker:
    """Verify a host's worker evidence and record its worker key (replacing an older one)."""
    principal.require("creator")
    identity = session.get(Identity, host_did)
    if identity is None or identity.account_id != principal.account_id:
        raise Forbidden(
            f"host DID {host_did} is not linked to your account; link it first "
            "(tally host register does both)"
        )
    try:
        evidence = Evidence.from_json(evidence_json)
    except ProvenanceError as exc:
        raise InvalidRequest(f"evidence: {exc}", field="evidence") from exc
    verified = check_worker_evidence(evidence, policy, now=now)
    worker = verified.worker_key
    values: dict[str, object] = {
        "account_id": principal.account_id,
        "worker_did": worker.did,
        "worker_jkt": jwk_thumbprint(worker),
        "evidence_type": evidence.type,
        "evidence_digest": evidence.digest,
        "evidence": evidence.to_json(),
        "insecure": verified.insecure,
        "insecure_reason": verified.insecure_reason,
        "evidence_time": verified.timestamp,
        "verified_at": now,
    }
    row = session.get(HostWorker, host_did)
    if row is None:
        row = HostWorker.model_validate({"host_did": host_did, **values})
    else:
        for name, value in values.items():
            setattr(row, name, value)
    session.add(row)
    session.flush()
    return row


def get_host(session: Session, principal: Principal, host_did: str) -> HostWorker:
    """A registered host the caller may see (its owner, admins, auditors)."""
    row = session.get(HostWorker, host_did)
    visible = row is not None and (
        principal.role in ("admin", "auditor") or row.account_id == principal.account_id
    )
    if row is None or not visible:
        raise NotFound(f"no registered host {host_did!r}")
    return row


def host_view(row: HostWorker) -> dict[str, object]:
    """JSON form of a registered host."""
    return {
        "host_did": row.host_did,
        "worker_did": row.worker_did,
        "worker_jkt": row.worker_jkt,
        "evidence_type": row.evidence_type,
        "evidence_digest": row.evidence_digest,
        "insecure": row.insecure,
        "insecure_reason": row.insecure_reason or None,
        "evidence_time": row.evidence_time.isoformat(),
        "verified_at": row.verified_at.isoformat(),
    }
