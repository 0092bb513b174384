"""The catalog: publish, search, show and revoke dataset listings."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import JSONResponse
from sqlmodel import Session

from coordinator.api.deps import CoordinatorDep, CurrentPrincipal, SessionDep
from coordinator.api.idempotency import run_idempotent
from coordinator.api.schemas import (
    DECIMAL_PATTERN,
    ListingDetail,
    ListingOut,
    ListingPage,
    ManifestSubmission,
    Revocation,
)
from coordinator.catalog import (
    MAX_PAGE,
    CatalogFilter,
    get_listing,
    listing_view,
    publish_manifest,
    revoke_listing,
    search_catalog,
)
from coordinator.database import writing
from coordinator.errors import InvalidRequest
from provenance.dsse import Envelope
from provenance.errors import ProvenanceError

router = APIRouter(tags=["catalog"])
DatasetPath = Annotated[str, Path(pattern=r"^ds_[0-9a-f]{26}$")]
Text = Annotated[str | None, Query(max_length=128)]


@router.post(
    "/v1/catalog",
    status_code=201,
    response_model=ListingOut,
    responses={200: {"model": ListingOut, "description": "This manifest was already listed"}},
)
def post_manifest(
    body: ManifestSubmission,
    coordinator: CoordinatorDep,
    principal: CurrentPrincipal,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
) -> JSONResponse:
    """Publish a creator-signed dataset manifest: verified, logged, then listed."""
    principal.require("creator")
    try:
        envelope = Envelope.from_dict(body.envelope.model_dump())
    except ProvenanceError as exc:
        raise InvalidRequest(f"envelope: {exc}", field="envelope") from exc

    def action(session: Session) -> tuple[int, Any]:
        row, created = publish_manifest(
            session, coordinator.log, principal, envelope, now=coordinator.now()
        )
        view = listing_view(row, development_mode=coordinator.development_mode)
        return (201 if created else 200), view

    return run_idempotent(
        coordinator,
        principal,
        idempotency_key,
        method="POST",
        path="/v1/catalog",
        body=body.model_dump_json(),
        action=action,
    )


@router.get("/v1/catalog", response_model=ListingPage)
def get_catalog(
    coordinator: CoordinatorDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    q: Text = None,
    modality: Annotated[str | None, Query(pattern=r"^(tabular|image|text)$")] = None,
    license: Text = None,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
    use: Annotated[str | None, Query(pattern=r"^(train|evaluate)$")] = None,
    creator: Text = None,
    max_price: Annotated[str | None, Query(pattern=DECIMAL_PATTERN, max_length=40)] = None,
    min_rows: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    max_rows: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    min_bytes: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    max_bytes: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    min_lifetime_epsilon: Annotated[float | None, Query(ge=0, le=1e6)] = None,
    min_epsilon_per_job: Annotated[float | None, Query(ge=0, le=1e6)] = None,
    max_delta: Annotated[float | None, Query(ge=0, le=1)] = None,
    include_revoked: bool = False,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    """Search the catalog (any role). Cheapest first."""
    query = CatalogFilter(
        text=q,
        modality=modality,
        license=license,
        currency=currency,
        use=use,
        creator=creator,
        max_price=None if max_price is None else Decimal(max_price),
        min_rows=min_rows,
        max_rows=max_rows,
        min_bytes=min_bytes,
        max_bytes=max_bytes,
        min_lifetime_epsilon=min_lifetime_epsilon,
        min_epsilon_per_job=min_epsilon_per_job,
        max_delta=max_delta,
        include_revoked=include_revoked,
        limit=limit,
        offset=offset,
    )
    rows, total = search_catalog(session, query)
    dev = coordinator.development_mode
    return {
        "items": [listing_view(row, development_mode=dev) for row in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.get("/v1/catalog/{dataset_id}", response_model=ListingDetail)
def get_catalog_entry(
    dataset_id: DatasetPath,
    coordinator: CoordinatorDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    version: Annotated[int | None, Query(ge=1, le=2**31)] = None,
) -> dict[str, Any]:
    """A listing with its signed manifest and a C2SP tlog-proof of its log entry."""
    row = get_listing(session, dataset_id, version)
    proof = coordinator.log.tlog_proof(row.log_index)
    return {
        "listing": listing_view(row, development_mode=coordinator.development_mode),
        "manifest": Envelope.from_json(row.envelope).to_dict(),
        "proof": {
            "index": row.log_index,
            "tree_size": coordinator.log.size,
            "tlog_proof": proof.to_bytes().decode("utf-8"),
        },
    }


@router.post("/v1/catalog/{dataset_id}/revoke", response_model=ListingOut)
def post_revoke(
    dataset_id: DatasetPath,
    body: Revocation,
    coordinator: CoordinatorDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    """Withdraw your dataset from the catalog; the revocation is logged."""
    with writing(coordinator.engine) as session:
        row = revoke_listing(
            session,
            coordinator.log,
            coordinator.signing_key,
            principal,
            dataset_id,
            reason=body.reason,
            now=coordinator.now(),
        )
        view = listing_view(row, development_mode=coordinator.development_mode)
    coordinator.logged()
    return view
