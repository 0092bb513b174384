"""The coordinator's FastAPI application: routers, error mapping and request-size limits.

``create_app`` wires a ``Coordinator`` into the routers. Every domain error becomes one
status code and a JSON body ``{"detail", "field"}``; any other exception is a 500 that
names nothing internal. Bodies over the limit are refused with 413 before they are read
in full.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from coordinator.api.routes import accounts, catalog, jobs, log
from coordinator.api.schemas import Health, Info, ModelsOut, Problem
from coordinator.coordinator_info import models_payload
from coordinator.errors import (
    Conflict,
    CoordinatorError,
    Forbidden,
    InvalidRequest,
    NotAuthenticated,
    NotFound,
    PaymentRequired,
)
from coordinator.service import Coordinator
from provenance.errors import ProvenanceError

logger = logging.getLogger("tallystick.coordinator")

#: The largest body any route accepts, and the larger limit for manifest uploads.
MAX_BODY_BYTES = 256 * 1024
MAX_MANIFEST_BODY_BYTES = 16 * 1024 * 1024

_STATUS: list[tuple[type[CoordinatorError], int]] = [
    (InvalidRequest, 422),
    (NotAuthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (PaymentRequired, 402),
]
_ERRORS = {status: {"model": Problem} for status in (401, 402, 403, 404, 409, 413)}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """Refuse request bodies over the limit with 413, counting bytes as they arrive."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = MAX_MANIFEST_BODY_BYTES if scope["path"] == "/v1/catalog" else MAX_BODY_BYTES
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _too_large(send, limit)
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge as exc:
            await _too_large(send, exc.limit)


class _BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


async def _too_large(send: Send, limit: int) -> None:
    body = JSONResponse({"detail": f"request body is over the {limit}-byte limit"}).body
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _status_of(error: CoordinatorError) -> int:
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500


def create_app(coordinator: Coordinator) -> FastAPI:
    """The API application serving ``coordinator``."""
    app = FastAPI(
        title="Tallystick coordinator",
        version="1",
        description=(
            "Accounts and roles, the dataset catalog, jobs and quotes, capability tokens and "
            "the public transparency log of a Tallystick coordinator."
        ),
        responses=_ERRORS,  # type: ignore[arg-type]
    )
    app.state.coordinator = coordinator

    @app.exception_handler(CoordinatorError)
    async def _domain_error(_request: Request, exc: CoordinatorError) -> JSONResponse:
        status = _status_of(exc)
        if status == 500:
            logger.error("coordinator error: %s", exc)
            return JSONResponse({"detail": "internal error"}, status_code=500)
        body: dict[str, Any] = {"detail": str(exc)}
        field = getattr(exc, "field", None)
        if field is not None:
            body["field"] = field
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(ProvenanceError)
    async def _record_error(_request: Request, exc: ProvenanceError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.get("/healthz", response_model=Health, tags=["meta"])
    def healthz() -> dict[str, Any]:
        """Liveness: the process answers; says how the supervised SuperLink is doing."""
        state = coordinator.superlink_state
        return {
            "status": "ok",
            "development_mode": coordinator.development_mode,
            "superlink": state() if state is not None else "not supervised",
        }

    @app.get("/v1/info", response_model=Info, tags=["meta"])
    def info() -> dict[str, Any]:
        """The coordinator's name, public keys, log origin, audience and policy."""
        return coordinator.info()

    @app.get("/v1/models", response_model=ModelsOut, tags=["meta"])
    def models() -> dict[str, Any]:
        """The vetted model architectures and the aggregation strategies a job may name."""
        return models_payload()

    for module in (accounts, catalog, jobs, log):
        app.include_router(module.router)
    app.add_middleware(BodyLimit)
    return app
