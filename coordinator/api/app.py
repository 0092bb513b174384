"""The coordinator's FastAPI application: routers, error mapping and request-size limits.

``create_app`` wires a ``Coordinator`` into the routers. Every domain error becomes one
status code and a JSON body ``{"detail", "field"}``; any other exception is a 500 that
names nothing internal. Bodies over the limit are refused with 413 before they are read
in full.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from coordinator.api.deps import CurrentPrincipal
from coordinator.api.read_through import ReadThrough
from coordinator.api.routes import accounts, billing, catalog, jobs, log, training
from coordinator.api.schemas import Health, Info, InvalidProblem, ModelsOut, Problem
from coordinator.coordinator_info import models_payload
from coordinator.errors import (
    Conflict,
    CoordinatorError,
    Forbidden,
    InvalidRequest,
    NotAuthenticated,
    NotFound,
    PaymentRequired,
    UpstreamError,
)
from coordinator.service import Coordinator
from provenance.errors import LogError, ProvenanceError

logger = logging.getLogger("tallystick.coordinator")

#: The largest body any route accepts, and the larger limit for manifest uploads.
MAX_BODY_BYTES = 256 * 1024
MAX_MANIFEST_BODY_BYTES = 16 * 1024 * 1024

#: How many reasons a 422 for a malformed body lists.
MAX_VALIDATION_ITEMS = 32

_STATUS: list[tuple[type[CoordinatorError], int]] = [
    (InvalidRequest, 422),
    (NotAuthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (PaymentRequired, 402),
    (UpstreamError, 503),
]
_ERRORS: dict[int | str, dict[str, Any]] = {
    **{status: {"model": Problem} for status in (401, 402, 403, 404, 409, 413, 503)},
    422: {"model": InvalidProblem},
}

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
        # Read the body here, counting, so that a body without Content-Length (chunked)
        # is refused with 413 too; the app then reads the buffered body.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                await _too_large(send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        del chunks
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


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


#: Threads that run the API's (blocking) route functions at once. More threads than cores
#: only add contention: each database call hands Python's GIL back and forth, and with 40
#: threads (AnyIO's default) a request cost 3x the CPU it costs alone (BENCHMARKS.md).
ROUTE_THREADS = 4


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    anyio.to_thread.current_default_thread_limiter().total_tokens = ROUTE_THREADS
    yield


def create_app(coordinator: Coordinator) -> FastAPI:
    """The API application serving ``coordinator``."""
    app = FastAPI(
        lifespan=_lifespan,
        title="Tallystick coordinator",
        version="1",
        description=(
            "Accounts and roles, the dataset catalog, jobs and quotes, capability tokens and "
            "the public transparency log of a Tallystick coordinator."
        ),
        responses=_ERRORS,
    )
    app.state.coordinator = coordinator
    app.state.reads = ReadThrough(coordinator.reads)

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

    @app.exception_handler(RequestValidationError)
    async def _invalid_body(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # Only where and why: never the input back (it can be a secret, or a NaN that JSON
        # cannot even carry).
        items = [
            {
                "loc": [part if isinstance(part, int) else str(part) for part in error["loc"]],
                "msg": str(error["msg"])[:300],
                "type": str(error["type"]),
            }
            for error in exc.errors()[:MAX_VALIDATION_ITEMS]
        ]
        return JSONResponse({"detail": items}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # FastAPI could not read the body at all
            return JSONResponse(
                {"detail": "the request body is not valid JSON (UTF-8)", "field": "body"},
                status_code=422,
            )
        return await http_exception_handler(request, exc)

    @app.exception_handler(IntegrityError)
    async def _race(_request: Request, _exc: IntegrityError) -> JSONResponse:
        return JSONResponse(
            {"detail": "a concurrent request changed the same record; retry the request"},
            status_code=409,
        )

    @app.exception_handler(LogError)
    async def _log_fault(_request: Request, exc: LogError) -> JSONResponse:
        # The routes turn the log's expected refusals into 404/422 themselves; one that
        # reaches here means the log's storage is inconsistent: a server fault.
        logger.error("transparency log error: %s", exc)
        return JSONResponse({"detail": "internal error"}, status_code=500)

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
    def models(_caller: CurrentPrincipal) -> dict[str, Any]:
        """The vetted model architectures and the aggregation strategies a job may name
        (any account)."""
        return models_payload()

    # The most read routes first: a request is matched against the routes in this order.
    for module in (catalog, jobs, training, billing, accounts, log):
        app.include_router(module.router)
    app.add_middleware(BodyLimit)
    return app
