"""The catalog: publish, search, show and revoke dataset listings."""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlmodel import Session

from coordinator.api.deps import CoordinatorDep, CurrentPrincipal, ReadsDep, SessionDep
from coordinator.api.idempotency import run_idempotent
from coordinator.api.query import parse_query, query_parameters
from coordinator.api.schemas import (
    CatalogQuery,
    ListingDetail,
    ListingOut,
    ListingPage,
    ManifestSubmission,
    Revocation,
)
from coordinator.api.views import served
from coordinator.catalog import (
    CatalogFilter,
    get_listing,
    listing_views,
    publish_manifest,
    revoke_listing,
    search_catalog,
)
from coordinator.database import reading, writing
from coordinator.errors import InvalidRequest
from coordinator.service import Coordinator
from coordinator.tables import Listing
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
        [view] = _views(session, coordinator, [row], proofs=False)
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


@router.get(
    "/v1/catalog",
    response_model=ListingPage,
    openapi_extra={"parameters": query_parameters(CatalogQuery)},
)
async def get_catalog(
    request: Request, coordinator: CoordinatorDep, reads: ReadsDep, principal: CurrentPrincipal
) -> Response:
    """Search the catalog (any role). Cheapest first."""
    # The query is one model, validated at once: FastAPI's per-parameter handling cost
    # more than the (cached) search itself with eighteen parameters.
    asked = parse_query(CatalogQuery, request)
    proofs = asked.proofs
    query = CatalogFilter(
        text=asked.q,
        modality=asked.modality,
        license=asked.license,
        currency=asked.currency,
        use=asked.use,
        creator=asked.creator,
        max_price=None if asked.max_price is None else Decimal(asked.max_price),
        min_rows=asked.min_rows,
        max_rows=asked.max_rows,
        min_bytes=asked.min_bytes,
        max_bytes=asked.max_bytes,
        min_lifetime_epsilon=asked.min_lifetime_epsilon,
        min_epsilon_per_job=asked.min_epsilon_per_job,
        max_delta=asked.max_delta,
        include_revoked=asked.include_revoked,
        limit=asked.limit,
        offset=asked.offset,
    )
    body = await reads.get(
        ("catalog", query, proofs), partial(_search_page, coordinator, query, proofs)
    )
    return Response(body, media_type="application/json")


def _search_page(coordinator: Coordinator, query: CatalogFilter, proofs: bool) -> bytes:
    """One page of search results as served."""
    with reading(coordinator.engine) as session:
        rows, total = search_catalog(session, query)
        page = {
            "items": _views(session, coordinator, rows, proofs=proofs),
            "total": total,
            "limit": query.limit,
            "offset": query.offset,
        }
    return served(ListingPage, page)


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
    [view] = _views(session, coordinator, [row], proofs=True)
    proof = view.pop("proof")
    return {
        "listing": view,
        "manifest": Envelope.from_json(row.envelope).to_dict(),
        "proof": proof,
    }


def _views(
    session: Session, coordinator: Coordinator, rows: list[Listing], *, proofs: bool
) -> list[dict[str, Any]]:
    return listing_views(
        session,
        rows,
        log=coordinator.log,
        development_mode=coordinator.development_mode,
        proofs=proofs,
    )


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
        [view] = _views(session, coordinator, [row], proofs=False)
    coordinator.logged()
    return view
