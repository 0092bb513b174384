"""Request dependencies: the coordinator, a read session and the authenticated caller.

Every route that needs a caller declares ``CurrentPrincipal``; there is no way to reach a
service without passing authentication first. A key that was checked moments ago is taken
from the coordinator's read cache (by its SHA-256; any write in this process, such as a
revocation, empties that cache), so most requests skip the database for authentication.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from functools import partial
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from coordinator.accounts import Principal, authenticate
from coordinator.api.read_through import ReadThrough
from coordinator.database import reading
from coordinator.errors import NotAuthenticated
from coordinator.service import Coordinator

_bearer = HTTPBearer(auto_error=False, description="An API key: tally_<id>_<secret>")


async def get_coordinator(request: Request) -> Coordinator:
    """The coordinator this app serves (``async``: a plain function would be run on the
    thread pool, a thread hop on every request)."""
    coordinator: Coordinator = request.app.state.coordinator
    return coordinator


CoordinatorDep = Annotated[Coordinator, Depends(get_coordinator)]


async def get_reads(request: Request) -> ReadThrough:
    """The app's read-through cache over its coordinator's read cache."""
    reads: ReadThrough = request.app.state.reads
    return reads


ReadsDep = Annotated[ReadThrough, Depends(get_reads)]


def read_session(coordinator: CoordinatorDep) -> Iterator[Session]:
    """A session for reads, closed after the response."""
    with reading(coordinator.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(read_session)]


def _authenticate(coordinator: Coordinator, token: str) -> Principal:
    with reading(coordinator.engine) as session:
        return authenticate(session, token)


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from ``Authorization: Bearer <API key>``."""
    # The coordinator and the read cache come from the app directly, not as dependencies
    # of their own: every request resolves this one, and each dependency costs.
    if credentials is None:
        raise NotAuthenticated("send your API key as 'Authorization: Bearer tally_…'")
    coordinator: Coordinator = request.app.state.coordinator
    reads: ReadThrough = request.app.state.reads
    token = credentials.credentials
    cache_key = ("api-key", hashlib.sha256(token.encode("utf-8", "replace")).digest())
    principal = await reads.get(cache_key, partial(_authenticate, coordinator, token))
    if not isinstance(principal, Principal):  # pragma: no cover - only Principals are stored
        raise TypeError(f"the read cache holds {type(principal).__name__} for an API key")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
