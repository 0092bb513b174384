"""Accounts, API keys, identities and hosts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse
from sqlmodel import Session

from coordinator.accounts import (
    create_account,
    get_account,
    issue_api_key,
    list_accounts,
    list_api_keys,
    require_self_or_admin,
    revoke_api_key,
)
from coordinator.api.deps import CoordinatorDep, CurrentPrincipal, SessionDep
from coordinator.api.idempotency import run_idempotent
from coordinator.api.schemas import (
    AccountCreate,
    AccountCreated,
    AccountList,
    AccountOut,
    EarningsOut,
    HostOut,
    HostRegistration,
    IdentityLink,
    IdentityOut,
    KeyCreate,
    KeyCreated,
    KeyList,
    KeyOut,
    Me,
)
from coordinator.api.views import account_view, identity_view, key_view
from coordinator.database import writing
from coordinator.earnings import creator_earnings
from coordinator.errors import InvalidRequest
from coordinator.hosts import get_host, host_view, register_host
from coordinator.identity import identities_of, link_identity
from provenance.dsse import Envelope
from provenance.errors import ProvenanceError

router = APIRouter(tags=["accounts"])
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]


@router.post("/v1/accounts", status_code=201, response_model=AccountCreated)
def post_account(
    body: AccountCreate,
    coordinator: CoordinatorDep,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Create an account with its first API key (admins). The key is shown only here."""
    principal.require("admin")

    def action(session: Session) -> tuple[int, Any]:
        account = create_account(session, body.name, body.role)
        issued = issue_api_key(session, account.id, label="initial")
        return 201, {
            "account": account_view(account),
            "api_key": issued.token,
            "key_id": issued.key.id,
        }

    return run_idempotent(
        coordinator,
        principal,
        idempotency_key,
        method="POST",
        path="/v1/accounts",
        body=body.model_dump_json(),
        action=action,
    )


@router.get("/v1/accounts", response_model=AccountList)
def get_accounts(
    session: SessionDep,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    """List accounts (admins and auditors)."""
    principal.require("admin", "auditor")
    return {"items": [account_view(a) for a in list_accounts(session, limit=limit, offset=offset)]}


@router.get("/v1/accounts/me", response_model=Me)
def get_me(session: SessionDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """The caller's own account and linked identities."""
    account = get_account(session, principal, principal.account_id)
    return {
        "account": account_view(account),
        "identities": [identity_view(i) for i in identities_of(session, account.id)],
    }


@router.get("/v1/accounts/{account_id}", response_model=AccountOut)
def get_one_account(
    account_id: str,
    session: SessionDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    """One account: your own; any for admins and auditors."""
    return account_view(get_account(session, principal, account_id))


@router.post("/v1/accounts/{account_id}/keys", status_code=201, response_model=KeyCreated)
def post_key(
    account_id: str,
    body: KeyCreate,
    coordinator: CoordinatorDep,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Make another API key for an account (its owner or an admin). Shown only here."""
    require_self_or_admin(principal, account_id)

    def action(session: Session) -> tuple[int, Any]:
        get_account(session, principal, account_id)
        issued = issue_api_key(session, account_id, label=body.label)
        return 201, {**key_view(issued.key), "api_key": issued.token}

    return run_idempotent(
        coordinator,
        principal,
        idempotency_key,
        method="POST",
        path=f"/v1/accounts/{account_id}/keys",
        body=body.model_dump_json(),
        action=action,
    )


@router.get("/v1/accounts/{account_id}/keys", response_model=KeyList)
def get_keys(account_id: str, session: SessionDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """An account's API keys (metadata only)."""
    get_account(session, principal, account_id)
    return {"items": [key_view(key) for key in list_api_keys(session, account_id)]}


@router.post("/v1/accounts/{account_id}/keys/{key_id}/revoke", response_model=KeyOut)
def post_revoke_key(
    account_id: str, key_id: str, coordinator: CoordinatorDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Revoke an API key (its owner or an admin); it stops working at once."""
    require_self_or_admin(principal, account_id)
    with writing(coordinator.engine) as session:
        return key_view(revoke_api_key(session, account_id, key_id))


def _envelope(data: dict[str, Any], field: str) -> Envelope:
    try:
        return Envelope.from_dict(data)
    except ProvenanceError as exc:
        raise InvalidRequest(f"{field}: {exc}", field=field) from exc


@router.post(
    "/v1/identities",
    status_code=201,
    response_model=IdentityOut,
    responses={200: {"model": IdentityOut, "description": "Already linked"}},
)
def post_identity(
    body: IdentityLink,
    coordinator: CoordinatorDep,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Link a did:key to your creator account with a proof signed by that key."""
    principal.require("creator")
    envelope = _envelope(body.proof.model_dump(), "proof")

    def action(session: Session) -> tuple[int, Any]:
        identity, created = link_identity(
            session,
            principal,
            envelope,
            audience=coordinator.config.audience,
            now=coordinator.now(),
        )
        return (201 if created else 200), identity_view(identity)

    return run_idempotent(
        coordinator,
        principal,
        idempotency_key,
        method="POST",
        path="/v1/identities",
        body=body.model_dump_json(),
        action=action,
    )


@router.post("/v1/hosts", status_code=201, response_model=HostOut)
def post_host(
    body: HostRegistration,
    coordinator: CoordinatorDep,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Register a data host's attested worker key (its creator). Evidence is verified first."""
    principal.require("creator")
    evidence = body.evidence.model_dump_json().encode("utf-8")

    def action(session: Session) -> tuple[int, Any]:
        row = register_host(
            session,
            principal,
            body.host_did,
            evidence,
            policy=coordinator.attestation_policy(),
            now=coordinator.now(),
        )
        return 201, host_view(row)

    return run_idempotent(
        coordinator,
        principal,
        idempotency_key,
        method="POST",
        path="/v1/hosts",
        body=body.model_dump_json(),
        action=action,
    )


@router.get("/v1/hosts/{host_did}", response_model=HostOut)
def get_one_host(host_did: str, session: SessionDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """A registered host: its owner, admins and auditors."""
    return host_view(get_host(session, principal, host_did))


@router.get("/v1/earnings", response_model=EarningsOut)
def get_earnings(
    session: SessionDep,
    principal: CurrentPrincipal,
    account_id: Annotated[
        str | None, Query(pattern=r"^acct_[0-9a-f]{26}$", description="Admins and auditors.")
    ] = None,
) -> dict[str, Any]:
    """Your datasets' share of every job funded on them (creators; admins and auditors may
    name any creator's account)."""
    return creator_earnings(session, principal, account_id=account_id)
