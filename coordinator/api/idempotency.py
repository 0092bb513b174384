"""Idempotent creation: a POST retried with the same ``Idempotency-Key`` gets the first answer.

The stored answer is written in the same transaction as whatever the request created, so
a request either created something and recorded its answer, or did neither. The same key
with a different body is refused: the client reused a key by mistake.

Some answers hold secrets shown once (a new API key, a capability token), so the database
never holds an answer in the clear: a record is found by an HMAC of the Idempotency-Key
under the coordinator's own secret, and its answer is sealed with AES-256-GCM under a key
derived (HKDF) from the Idempotency-Key, the caller's account and that secret. Only a
client holding the key can have the answer replayed, and someone who reads the database
cannot open it even by guessing a weak key, without the coordinator's private key too.
Records expire after ``RETENTION`` (as Stripe's do): a key used again after that runs the
request anew, and expired records are deleted as new ones are written.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete

from coordinator.accounts import Principal
from coordinator.database import reading, writing
from coordinator.errors import InvalidRequest
from coordinator.service import Coordinator
from coordinator.tables import IdempotencyRecord

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
#: How long a stored answer can be replayed.
RETENTION = timedelta(hours=24)
_NONCE_BYTES = 12
#: A service action: runs in the write session, returns (status code, JSON body).
Action = Callable[[Session], tuple[int, Any]]


def _lookup(secret: bytes, key: str) -> str:
    """The stored form of an Idempotency-Key: an HMAC of it, never the key itself."""
    return hmac.new(secret, b"lookup v1\x00" + key.encode("ascii"), hashlib.sha256).hexdigest()


def _sealing_key(secret: bytes, account_id: str, key: str) -> AESGCM:
    derived = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=secret,
        info=b"tally idempotency answer v1\x00" + account_id.encode("utf-8"),
    ).derive(key.encode("ascii"))
    return AESGCM(derived)


def _seal(secret: bytes, account_id: str, key: str, lookup: str, payload: Any) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    plain = json.dumps(payload).encode("utf-8")
    sealing = _sealing_key(secret, account_id, key)
    return nonce + sealing.encrypt(nonce, plain, lookup.encode("ascii"))


def _open(secret: bytes, record: IdempotencyRecord, key: str) -> Any:
    sealed = bytes(record.response_body)
    nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    try:
        plain = _sealing_key(secret, record.account_id, key).decrypt(
            nonce, ciphertext, record.key.encode("ascii")
        )
    except InvalidTag as exc:  # pragma: no cover - only a corrupted or altered database
        raise RuntimeError("a stored idempotent answer does not decrypt") from exc
    return json.loads(plain)


def _forget_expired(session: Session, now: datetime) -> None:
    """Delete the records no key can replay any more."""
    session.execute(
        delete(IdempotencyRecord).where(col(IdempotencyRecord.created_at) <= now - RETENTION)
    )


def _expired(record: IdempotencyRecord, now: datetime) -> bool:
    return now - record.created_at >= RETENTION


def _stored(
    secret: bytes, record: IdempotencyRecord, key: str, method: str, path: str, digest: str
) -> JSONResponse:
    if (record.method, record.path, record.request_sha256) != (method, path, digest):
        raise InvalidRequest(
            "this Idempotency-Key was already used for a different request; use a new key",
            field="Idempotency-Key",
        )
    return JSONResponse(
        _open(secret, record, key),
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
    account_id = principal.account_id
    secret = coordinator.idempotency_secret
    lookup = _lookup(secret, key) if key is not None else None
    if key is not None:
        with reading(coordinator.engine) as session:
            record = session.get(IdempotencyRecord, (account_id, lookup))
            if record is not None and not _expired(record, coordinator.now()):
                return _stored(secret, record, key, method, path, digest)
    try:
        with writing(coordinator.engine) as session:
            if key is not None and lookup is not None:
                record = session.get(IdempotencyRecord, (account_id, lookup))
                if record is not None:
                    if not _expired(record, coordinator.now()):
                        return _stored(secret, record, key, method, path, digest)
                    session.delete(record)
                    session.flush()
            status, payload = action(session)
            if key is not None and lookup is not None:
                _forget_expired(session, coordinator.now())
                session.add(
                    IdempotencyRecord(
                        account_id=account_id,
                        key=lookup,
                        method=method,
                        path=path,
                        request_sha256=digest,
                        status_code=status,
                        response_body=_seal(secret, account_id, key, lookup, payload),
                        created_at=coordinator.now(),
                    )
                )
    except IntegrityError:
        # Another request with the same key won the race (PostgreSQL); answer as it did.
        if key is None:
            raise
        with reading(coordinator.engine) as session:
            record = session.get(IdempotencyRecord, (account_id, lookup))
            if record is None:
                raise
            return _stored(secret, record, key, method, path, digest)
    coordinator.logged()
    return JSONResponse(payload, status_code=status)
