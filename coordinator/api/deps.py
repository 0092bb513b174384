"""Request dependencies: the coordinator, a read session and the authenticated caller.

Every route that needs a caller declares ``CurrentPrincipal``; there is no way to reach a
service without passing authentication first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from coordinator.accounts import Principal, authenticate
from coordinator.errors import NotAuthenticated
from coordinator.service import Coordinator

_bearer = HTTPBearer(auto_error=False, description="An API key: tally_<id>_<secret>")


def get_coordinator(request: Request) -> Coordinator:
    """The coordinator this app serves."""
    coordinator: Coordinator = request.app.state.coordinator
    return coordinator


CoordinatorDep = Annotated[Coordinator, Depends(get_coordinator)]


def read_session(coordinator: CoordinatorDep) -> Iterator[Session]:
    """A session for reads, closed after the response."""
    with Session(coordinator.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(read_session)]


def current_principal(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from ``Authorization: Bearer <API key>``."""
    if credentials is None:
        raise NotAuthenticated("send your API key as 'Authorization: Bearer tally_…'")
    principal = authenticate(session, credentials.credentials)
    session.rollback()  # end the read transaction before the route runs
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
