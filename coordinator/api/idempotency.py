"""Idempotent creation: a POST retried with the same ``Idempotency-Key`` gets the first answer.

The stored answer is written in the same transaction as whatever the request created, so
a request either created something and recorded its answer, or did neither. The same key
with a different body is refused: the client reused a key by mistake.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from coordinator.accounts import Principal
from coordinator.database import reading, writing
from coordinator.errors import InvalidRequest
from coordinator.service import Coordinator
from coordinator.tables import IdempotencyRecord

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
#: A service action: runs in the write session, returns (status code, JSON body).
Action = Callable[[Session], tuple[int, Any]]


def _stored(record: IdempotencyRecord, method: str, path: str, digest: str) -> JSONResponse:
    if (record.method, record.path, record.request_sha256) != (method, path, digest):
        raise InvalidRequest(
            "this Idempotency-Key was already used for a different request; use a new key",
            field="Idempotency-Key",
        )
    return JSONResponse(
        json.loads(record.response_body),
        status_code=record.status_code,
        headers={"Idempotent-Replayed": "true"},
    )


def run_idempotent(
    coordinator: Coordinator,
    principal: Principal,
    key: str | None,
    *,
    method: str,
    path: str,
    body: str,
    action: Action,
) -> JSONResponse:
    """Run ``action`` once per (caller, key); replay the stored answer afterwards."""
    if key is not None and not _KEY.fullmatch(key):
        raise InvalidRequest(
            "Idempotency-Key must be 1-255 visible ASCII characters", field="Idempotency-Key"
        )
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    if key is not None:
        with reading(coordinator.engine) as session:
            record = session.get(IdempotencyRecord, (principal.account_id, key))
            if record is not None:
                return _stored(record, method, path, digest)
    try:
        with writing(coordinator.engine) as session:
            if key is not None:
                record = session.get(IdempotencyRecord, (principal.account_id, key))
                if record is not None:
                    return _stored(record, method, path, digest)
            status, payload = action(session)
            if key is not None:
                session.add(
                    IdempotencyRecord(
                        account_id=principal.account_id,
                        key=key,
                        method=method,
                        path=path,
                        request_sha256=digest,
                        status_code=status,
                        response_body=json.dumps(payload).encode("utf-8"),
                        created_at=coordinator.now(),
                    )
                )
    except IntegrityError:
        # Another request with the same key won the race (PostgreSQL); answer as it did.
        if key is None:
            raise
        with reading(coordinator.engine) as session:
            record = session.get(IdempotencyRecord, (principal.account_id, key))
            if record is None:
                raise
            return _stored(record, method, path, digest)
    coordinator.logged()
    return JSONResponse(payload, status_code=status)
