"""The catalog: verified, logged dataset manifests that buyers can search and pay for.

A creator posts a manifest envelope. It is listed only if its signature verifies, its
signer is the creator it names, that DID is linked to the posting account, its terms
parse and every royalty payee's DID is linked to an account; it is then logged (record
``dataset-manifest``) in the same transaction that lists it. Revocation by the creator
delists the dataset and logs a coordinator-signed ``dataset-revocation`` record. This
module must never list or log a manifest it has not verified, and never show one
creator's listing controls to another.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from billing.currency import check_currency
from billing.errors import BillingError
from coordinator.accounts import Principal
from coordinator.errors import Conflict, Forbidden, InvalidRequest, NotFound
from coordinator.records import (
    DATASET_MANIFEST_RECORD,
    DATASET_REVOCATION_PREDICATE,
    DATASET_REVOCATION_RECORD,
    log_signed_record,
)
from coordinator.royalties import resolve_royalties, royalties_view
from coordinator.tables import DELISTED, LISTED, HostWorker, Identity, Listing
from provenance.dsse import Envelope
from provenance.errors import ProvenanceError
from provenance.keys import SigningKey
from provenance.manifest import DatasetManifest, SignedManifest, subject_name, verify_manifest
from provenance.statement import Statement
from provenance.tlog.log import TransparencyLog
from provenance.tlog.records import append_records

#: The largest page a search returns.
MAX_PAGE = 200
#: The dearest price per sample a listing may ask, in major units.
MAX_PRICE_PER_SAMPLE = Decimal(1_000_000)
#: The largest row or byte count a listing may claim (JSON's exact integers).
MAX_COUNT = 2**53


@dataclass(frozen=True)
class CatalogFilter:
    """What a catalog search asks for; ``None`` means "any"."""

    text: str | None = None
    modality: str | None = None
    license: str | None = None
    currency: str | None = None
    use: str | None = None
    creator: str | None = None
    max_price: Decimal | None = None
    min_rows: int | None = None
    max_rows: int | None = None
    min_bytes: int | None = None
    max_bytes: int | None = None
    min_lifetime_epsilon: float | None = None
    min_epsilon_per_job: float | None = None
    max_delta: float | None = None
    include_revoked: bool = False
    limit: int = 50
    offset: int = 0


def modality_of(schema: Mapping[str, Any]) -> str:
    """``image``, ``text`` or ``tabular``, from a manifest's schema section.

    Image folders and arrays with 2-D rows are images; a table whose every input column
    is a string is text; anything else is tabular (numeric columns, maybe with strings).
    """
    if schema.get("format") == "image-folder":
        return "image"
    label = schema.get("label")
    features = [f for f in schema.get("features", []) if isinstance(f, dict)]
    if any(len(f.get("shape", [])) >= 2 for f in features if f.get("name") != label):
        return "image"
    inputs = [f for f in features if f.get("name") != label]
    if inputs and all(f.get("dtype") == "string" for f in inputs):
        return "text"
    return "tabular"


def _decimal(text: Any, where: str) -> Decimal:
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        raise InvalidRequest(f"manifest {where} {text!r} is not a number", field=where) from None
    if not value.is_finite() or value < 0:
        raise InvalidRequest(f"manifest {where} must be a finite number ≥ 0", field=where)
    return value


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise InvalidRequest(f"manifest {where} must be a whole number from 0 to 2^53", field=where)
    return value


def _listing_row(signed: SignedManifest, account_id: str, log_index: int, now: datetime) -> Listing:
    manifest: DatasetManifest = signed.manifest
    predicate = manifest.predicate
    privacy = predicate["privacy"]
    price = predicate["price"]
    try:
        currency = check_currency(str(price["currency"]))
    except BillingError as exc:
        raise InvalidRequest(f"manifest price.currency: {exc}", field="price.currency") from exc
    per_sample = _decimal(price["per_sample"], "price.per_sample")
    lifetime = _decimal(privacy["lifetime_epsilon"], "privacy.lifetime_epsilon")
    delta = _decimal(privacy["delta"], "privacy.delta")
    per_job_text = privacy.get("max_epsilon_per_job")
    per_job = (
        None if per_job_text is None else _decimal(per_job_text, "privacy.max_epsilon_per_job")
    )
    if lifetime <= 0 or not 0 < delta < 1:
        raise InvalidRequest("manifest privacy terms need lifetime ε > 0 and 0 < δ < 1")
    if per_sample > MAX_PRICE_PER_SAMPLE:
        raise InvalidRequest(
            f"manifest price.per_sample is over the largest accepted ({MAX_PRICE_PER_SAMPLE})",
            field="price.per_sample",
        )
    rows = _count(predicate["schema"]["rows"], "schema.rows")
    total_bytes = _count(predicate["content"]["chunking"]["total_bytes"], "chunking.total_bytes")
    pii = predicate.get("pii", {})
    total_findings = pii.get("total", 0) if isinstance(pii, dict) else 0
    return Listing(
        manifest_digest=signed.digest,
        dataset_id=manifest.dataset_id,
        version=manifest.version,
        creator_did=manifest.creator,
        account_id=account_id,
        title=manifest.title[:500],
        modality=modality_of(predicate["schema"]),
        data_format=str(predicate["schema"].get("format", ""))[:32],
        license=str(predicate["license"])[:128],
        allowed_uses=",".join(sorted(str(use) for use in predicate["allowed_uses"]))[:256],
        price_per_sample=str(per_sample),
        price_value=float(per_sample),
        currency=currency,
        rows=rows,
        total_bytes=total_bytes,
        lifetime_epsilon=str(lifetime),
        lifetime_epsilon_value=float(lifetime),
        max_epsilon_per_job=None if per_job is None else str(per_job),
        max_epsilon_per_job_value=None if per_job is None else float(per_job),
        delta=str(delta),
        delta_value=float(delta),
        redacted=bool(predicate["content"]["redacted"]),
        pii_findings=int(total_findings) if isinstance(total_findings, int) else 0,
        envelope=signed.envelope.to_json(),
        log_index=log_index,
        status=LISTED,
        listed_at=now,
    )


def publish_manifest(
    session: Session,
    log: TransparencyLog,
    principal: Principal,
    envelope: Envelope,
    *,
    now: datetime,
) -> tuple[Listing, bool]:
    """Verify, log and list a creator's manifest. Returns the listing and whether it is new.

    Posting the same manifest again returns the existing listing (idempotent).
    """
    principal.require("creator")
    try:
        signed = verify_manifest(envelope)
    except ProvenanceError as exc:
        raise InvalidRequest(str(exc), field="envelope") from exc
    creator = signed.manifest.creator
    identity = session.get(Identity, creator)
    if identity is None or identity.account_id != principal.account_id:
        raise Forbidden(
            f"the manifest's creator {creator} is not linked to your account; link it first "
            "(tally host register)"
        )
    existing = session.get(Listing, signed.digest)
    if existing is not None:
        if existing.status != LISTED:
            raise Conflict(
                f"dataset {existing.dataset_id} v{existing.version} was revoked; "
                "publish a new version instead"
            )
        return existing, False
    clash = session.exec(
        select(Listing).where(
            Listing.dataset_id == signed.manifest.dataset_id,
            Listing.version == signed.manifest.version,
        )
    ).first()
    if clash is not None:
        raise Conflict(
            f"dataset {clash.dataset_id} v{clash.version} is already listed with another "
            "manifest; a changed dataset needs a new version"
        )
    # Check the terms before anything is logged: a refused manifest leaves no log entry.
    row = _listing_row(signed, principal.account_id, -1, now)
    row.royalties = resolve_royalties(session, signed.manifest)
    parsed = Statement.from_payload(signed.envelope.payload)  # verified above
    result = append_records(
        log, [(DATASET_MANIFEST_RECORD, signed.envelope, parsed)], connection=session.connection()
    )
    row.log_index = result.indexes[0]
    session.add(row)
    session.flush()
    return row, True


def revoke_listing(
    session: Session,
    log: TransparencyLog,
    key: SigningKey,
    principal: Principal,
    dataset_id: str,
    *,
    reason: str,
    now: datetime,
) -> Listing:
    """Delist every listed version of the caller's dataset and log the revocation."""
    principal.require("creator")
    rows = list(
        session.exec(
            select(Listing)
            .where(Listing.dataset_id == dataset_id, Listing.account_id == principal.account_id)
            .order_by(col(Listing.version).desc())
            .with_for_update()
        )
    )
    if not rows:
        raise NotFound(f"you have no dataset {dataset_id!r} in the catalog")
    latest = rows[0]
    for row in rows:
        if row.status != LISTED:
            continue
        row.revocation_log_index = log_signed_record(
            session,
            log,
            key,
            record_type=DATASET_REVOCATION_RECORD,
            subject=(subject_name(row.dataset_id, row.version), row.manifest_digest),
            predicate_type_uri=DATASET_REVOCATION_PREDICATE,
            predicate={
                "dataset_id": row.dataset_id,
                "version": row.version,
                "manifest_digest": row.manifest_digest,
                "creator": row.creator_did,
                "requested_by": principal.account_id,
                "reason": reason,
                "revoked_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        )
        row.status = DELISTED
        row.revoked_at = now
        row.revoke_reason = reason
        session.add(row)
    session.flush()
    return latest


def search_catalog(session: Session, query: CatalogFilter) -> tuple[list[Listing], int]:
    """Listings matching ``query`` (cheapest first), and how many match in all."""
    conditions: list[Any] = []
    if not query.include_revoked:
        conditions.append(Listing.status == LISTED)
    if query.text:
        conditions.append(func.lower(Listing.title).contains(query.text.lower(), autoescape=True))
    for column, value in (
        (Listing.modality, query.modality),
        (Listing.license, query.license),
        (Listing.currency, query.currency),
        (Listing.creator_did, query.creator),
    ):
        if value is not None:
            conditions.append(column == value)
    if query.use is not None:
        uses = "," + col(Listing.allowed_uses) + ","
        conditions.append(uses.contains(f",{query.use},", autoescape=True))
    if query.max_price is not None:
        conditions.append(col(Listing.price_value) <= float(query.max_price))
    if query.min_rows is not None:
        conditions.append(col(Listing.rows) >= query.min_rows)
    if query.max_rows is not None:
        conditions.append(col(Listing.rows) <= query.max_rows)
    if query.min_bytes is not None:
        conditions.append(col(Listing.total_bytes) >= query.min_bytes)
    if query.max_bytes is not None:
        conditions.append(col(Listing.total_bytes) <= query.max_bytes)
    if query.min_lifetime_epsilon is not None:
        conditions.append(col(Listing.lifetime_epsilon_value) >= query.min_lifetime_epsilon)
    if query.min_epsilon_per_job is not None:
        per_job = col(Listing.max_epsilon_per_job_value)
        conditions.append(per_job.is_(None) | (per_job >= query.min_epsilon_per_job))
    if query.max_delta is not None:
        conditions.append(col(Listing.delta_value) <= query.max_delta)
    total = session.exec(select(func.count()).select_from(Listing).where(*conditions)).one()
    statement = (
        select(Listing)
        .where(*conditions)
        .order_by(col(Listing.price_value), col(Listing.dataset_id), col(Listing.version))
        .offset(query.offset)
        .limit(min(query.limit, MAX_PAGE))
    )
    return list(session.exec(statement)), int(total)


def get_listing(
    session: Session, dataset_id: str, version: int | None = None, *, lock: bool = False
) -> Listing:
    """The newest (or the given) version of a dataset in the catalog, revoked or not.

    With ``lock`` the row is locked until the transaction ends (PostgreSQL; SQLite's
    write transactions hold the whole database already).
    """
    statement = select(Listing).where(Listing.dataset_id == dataset_id)
    if version is not None:
        statement = statement.where(Listing.version == version)
    if lock:
        statement = statement.with_for_update()
    row = session.exec(statement.order_by(col(Listing.version).desc())).first()
    if row is None:
        raise NotFound(f"no dataset {dataset_id!r} in the catalog")
    return row


def host_attestations(session: Session, rows: list[Listing]) -> dict[str, HostWorker]:
    """The registered worker of each listing's host, by host DID (one query)."""
    dids = sorted({row.creator_did for row in rows})
    if not dids:
        return {}
    hosts = session.exec(select(HostWorker).where(col(HostWorker.host_did).in_(dids)))
    return {host.host_did: host for host in hosts}


def listing_views(
    session: Session,
    rows: list[Listing],
    *,
    log: TransparencyLog,
    development_mode: bool,
    proofs: bool,
) -> list[dict[str, Any]]:
    """``listing_view`` of each of ``rows`` with its host's attestation (one query for all),
    and with a tlog-proof of its manifest record when ``proofs`` (all against one signed
    checkpoint)."""
    hosts = host_attestations(session, rows)
    views = [
        listing_view(row, development_mode=development_mode, host=hosts.get(row.creator_did))
        for row in rows
    ]
    if proofs and rows:
        size = log.size
        for row, view in zip(rows, views, strict=True):
            view["proof"] = {
                "index": row.log_index,
                "tree_size": size,
                "tlog_proof": log.tlog_proof(row.log_index, size).to_bytes().decode("utf-8"),
            }
    return views


def listing_view(
    row: Listing, *, development_mode: bool, host: HostWorker | None
) -> dict[str, Any]:
    """JSON form of a listing, as search results and the CLI show it, with the attestation
    of the host that serves it (insecure when that host's evidence is ``dev``)."""
    return {
        "dataset_id": row.dataset_id,
        "version": row.version,
        "manifest_digest": row.manifest_digest,
        "title": row.title,
        "creator": row.creator_did,
        "modality": row.modality,
        "format": row.data_format,
        "license": row.license,
        "allowed_uses": row.allowed_uses.split(","),
        "price": {"per_sample": row.price_per_sample, "currency": row.currency},
        "royalties": royalties_view(row),
        "rows": row.rows,
        "total_bytes": row.total_bytes,
        "privacy": {
            "lifetime_epsilon": row.lifetime_epsilon,
            "max_epsilon_per_job": row.max_epsilon_per_job,
            "delta": row.delta,
        },
        "redacted": row.redacted,
        "pii_findings": row.pii_findings,
        "status": row.status,
        "listed_at": row.listed_at.isoformat(),
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
        "revoke_reason": row.revoke_reason,
        "log": {"index": row.log_index, "revocation_index": row.revocation_log_index},
        "development_mode": development_mode,
        "attestation": None
        if host is None
        else {"evidence_type": host.evidence_type, "insecure": host.insecure},
    }


def manifest_predicate(row: Listing) -> dict[str, Any]:
    """The signed predicate of a listing's manifest (from its stored envelope)."""
    envelope = Envelope.from_json(row.envelope)
    data: dict[str, Any] = json.loads(envelope.payload)["predicate"]
    return data
