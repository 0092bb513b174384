"""``dev`` attestation evidence: a software statement signed by a local Ed25519 key.

INSECURE BY DESIGN. A dev statement says "this worker key runs this code" only because
whoever holds the dev attestation key says so; nothing isolates the worker or measures
its code. It exists so that the whole flow (receipts, proofs, audit) can run on one
machine. Its claims are therefore always ``insecure=True``, and ``verify_evidence``
refuses them unless the policy sets ``allow_insecure``.

This module must never mark dev evidence as secure, and never accept a statement whose
signature does not cover its exact bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from provenance.attestation.base import (
    MAX_BOUND_DATA_BYTES,
    AttestationClaims,
    AttestationPolicy,
    Evidence,
    check_measurements,
    format_utc,
    parse_utc,
)
from provenance.canonical import canonical_json, parse_json, sha256_hex
from provenance.encoding import b64decode_strict, b64encode
from provenance.errors import (
    AttestationError,
    InvalidSignature,
    KeyFormatError,
)
from provenance.keys import PublicKey, SigningKey

DEV_EVIDENCE_TYPE = "dev"
DEV_STATEMENT_TYPE = "tallystick-dev-attestation/v1"
#: Prefix of every signed message, so that a dev attestation key's signature over a
#: statement can never be mistaken for a signature over anything else.
DEV_SIGNING_CONTEXT = b"tallystick dev attestation v1\x00"
#: Largest dev evidence document (bytes).
MAX_DEV_DOCUMENT_BYTES = 16 * 1024
DEV_INSECURE_REASON = (
    "dev evidence is a software statement signed by a local key; "
    "nothing isolates the worker or measures its code"
)

_DOCUMENT_FIELDS = {"statement", "signature"}
_STATEMENT_FIELDS = {
    "type",
    "worker_public_key",
    "measurements",
    "nonce",
    "user_data",
    "timestamp",
    "attester",
}


def _optional_b64(value: bytes | None) -> str | None:
    return None if value is None else b64encode(value)


def create_dev_evidence(
    attester_key: SigningKey,
    worker_public_key: PublicKey,
    measurements: Mapping[str, str],
    nonce: bytes | None = None,
    user_data: bytes | None = None,
    now: datetime | None = None,
) -> Evidence:
    """Sign an INSECURE dev statement binding ``worker_public_key`` to ``measurements``.

    ``measurements`` maps names (e.g. ``"code"``) to lowercase hex digests. The timestamp
    is ``now`` (default: the current UTC time) at second precision.
    """
    checked = check_measurements(measurements, what="dev: statement")
    if not checked:
        raise AttestationError("dev: statement: at least one measurement is needed")
    for name, value in (("nonce", nonce), ("user_data", user_data)):
        if value is not None and len(value) > MAX_BOUND_DATA_BYTES:
            raise AttestationError(
                f"dev: statement: {name} is {len(value)} bytes, over {MAX_BOUND_DATA_BYTES}"
            )
    statement = canonical_json(
        {
            "attester": attester_key.public_key.did,
            "measurements": checked,
            "nonce": _optional_b64(nonce),
            "timestamp": format_utc(now if now is not None else datetime.now(UTC)),
            "type": DEV_STATEMENT_TYPE,
            "user_data": _optional_b64(user_data),
            "worker_public_key": worker_public_key.did,
        }
    )
    signature = attester_key.sign(DEV_SIGNING_CONTEXT + statement)
    document = canonical_json(
        {"signature": b64encode(signature), "statement": b64encode(statement)}
    )
    return Evidence(type=DEV_EVIDENCE_TYPE, document=document)


def _parse_document(document: bytes) -> tuple[bytes, bytes]:
    if len(document) > MAX_DEV_DOCUMENT_BYTES:
        raise AttestationError(
            f"dev: document: {len(document)} bytes, over the limit of {MAX_DEV_DOCUMENT_BYTES}"
        )
    parsed = parse_json(
        document, max_bytes=MAX_DEV_DOCUMENT_BYTES, what="dev: document", error=AttestationError
    )
    if not isinstance(parsed, dict) or set(parsed) != _DOCUMENT_FIELDS:
        raise AttestationError("dev: document must be an object with 'statement' and 'signature'")
    parts = []
    for name in ("statement", "signature"):
        if not isinstance(parsed[name], str):
            raise AttestationError(f"dev: document: {name!r} must be a base64 string")
        parts.append(
            b64decode_strict(parsed[name], what=f"dev: document: {name!r}", error=AttestationError)
        )
    return parts[0], parts[1]


def _parse_statement(statement: bytes) -> dict[str, Any]:
    parsed = parse_json(
        statement, max_bytes=MAX_DEV_DOCUMENT_BYTES, what="dev: statement", error=AttestationError
    )
    if not isinstance(parsed, dict):
        raise AttestationError("dev: statement must be a JSON object")
    missing = _STATEMENT_FIELDS - set(parsed)
    if missing:
        raise AttestationError(f"dev: statement lacks fields: {', '.join(sorted(missing))}")
    unknown = set(parsed) - _STATEMENT_FIELDS
    if unknown:
        raise AttestationError(f"dev: statement has unknown fields: {', '.join(sorted(unknown))}")
    if parsed["type"] != DEV_STATEMENT_TYPE:
        raise AttestationError(
            f"dev: statement type is {parsed['type']!r}, expected {DEV_STATEMENT_TYPE!r}"
        )
    if canonical_json(parsed) != statement:
        raise AttestationError("dev: statement is not canonical JSON")
    return parsed


def _did_field(statement: dict[str, Any], name: str) -> PublicKey:
    value = statement[name]
    if not isinstance(value, str):
        raise AttestationError(f"dev: statement: {name} must be a did:key string")
    try:
        return PublicKey.from_did(value)
    except KeyFormatError as exc:
        raise AttestationError(f"dev: statement: {name}: {exc}") from exc


def _bound_data(statement: dict[str, Any], name: str) -> bytes | None:
    value = statement[name]
    if value is None:
        return None
    if not isinstance(value, str):
        raise AttestationError(f"dev: statement: {name} must be base64 or null")
    raw = b64decode_strict(value, what=f"dev: statement: {name}", error=AttestationError)
    if len(raw) > MAX_BOUND_DATA_BYTES:
        raise AttestationError(
            f"dev: statement: {name} is {len(raw)} bytes, over {MAX_BOUND_DATA_BYTES}"
        )
    return raw


class DevEvidenceVerifier:
    """Checks ``dev`` evidence. Its claims are always insecure (see the module docstring).

    Steps: document format; statement format and canonical form; the attester is one of
    the policy's ``trusted_dev_attesters`` (when any are configured); the attester's
    signature over the exact statement bytes; the statement's fields.
    """

    type = DEV_EVIDENCE_TYPE

    def verify(
        self, document: bytes, policy: AttestationPolicy, now: datetime
    ) -> AttestationClaims:
        """Check a dev document and return its (insecure) claims."""
        statement_bytes, signature = _parse_document(document)
        statement = _parse_statement(statement_bytes)
        attester = _did_field(statement, "attester")
        if policy.trusted_dev_attesters and attester.did not in policy.trusted_dev_attesters:
            raise AttestationError(
                f"dev: attester: {attester.did} is not one of the policy's trusted dev attesters"
            )
        try:
            attester.verify(signature, DEV_SIGNING_CONTEXT + statement_bytes)
        except InvalidSignature as exc:
            raise AttestationError(f"dev: signature: {exc}") from exc
        worker = _did_field(statement, "worker_public_key")
        measurements = statement["measurements"]
        if not isinstance(measurements, dict) or not measurements:
            raise AttestationError("dev: statement: measurements must be a non-empty object")
        return AttestationClaims(
            type=DEV_EVIDENCE_TYPE,
            worker_public_key=worker.raw,
            measurements=check_measurements(measurements, what="dev: statement"),
            nonce=_bound_data(statement, "nonce"),
            user_data=_bound_data(statement, "user_data"),
            timestamp=parse_utc(statement["timestamp"], what="dev: statement: timestamp"),
            insecure=True,
            evidence_digest=sha256_hex(document),
            insecure_reason=DEV_INSECURE_REASON,
        )
