"""Identity links: a creator proves that it holds the did:key its manifests are signed with.

The proof is a DSSE envelope (payload type ``IDENTITY_LINK_PAYLOAD_TYPE``) whose canonical
JSON payload names the account, the DID, this coordinator's audience and the time, signed
by the DID's own key. A DID belongs to one account; linking it again to the same account
is a no-op. This module must never link a DID whose key did not sign the proof.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from coordinator.accounts import Principal
from coordinator.errors import Conflict, InvalidRequest
from coordinator.tables import Identity
from provenance.attestation.base import format_utc, parse_utc
from provenance.canonical import canonical_json, parse_json
from provenance.dsse import Envelope, sign_envelope, verify_envelope
from provenance.errors import KeyFormatError, ProvenanceError
from provenance.keys import PublicKey, SigningKey

IDENTITY_LINK_PAYLOAD_TYPE = "application/vnd.tallystick.identity-link+json"
#: How far a proof's time may be from the coordinator's clock.
MAX_PROOF_SKEW = timedelta(minutes=10)
_FIELDS = {"type", "account", "did", "audience", "issued_at"}
_TYPE = "tallystick-identity-link/v1"


def sign_identity_link(
    key: SigningKey, *, account_id: str, audience: str, now: datetime | None = None
) -> Envelope:
    """The proof that ``key``'s DID belongs to ``account_id`` at coordinator ``audience``."""
    payload = canonical_json(
        {
            "type": _TYPE,
            "account": account_id,
            "did": key.public_key.did,
            "audience": audience,
            "issued_at": format_utc(now or datetime.now(UTC)),
        }
    )
    return sign_envelope(payload, IDENTITY_LINK_PAYLOAD_TYPE, [key])


def verify_identity_link(
    envelope: Envelope, *, account_id: str, audience: str, now: datetime
) -> str:
    """Check a proof for ``account_id`` at ``audience``; return the DID it proves."""
    try:
        data: Any = parse_json(envelope.payload, max_bytes=4096, what="identity proof")
    except ProvenanceError as exc:
        raise InvalidRequest(f"identity proof: {exc}", field="proof") from exc
    if not isinstance(data, dict) or set(data) != _FIELDS or data.get("type") != _TYPE:
        raise InvalidRequest(
            f"identity proof payload must have exactly {sorted(_FIELDS)} with type {_TYPE}",
            field="proof",
        )
    did = data["did"]
    try:
        key = PublicKey.from_did(str(did))
    except KeyFormatError as exc:
        raise InvalidRequest(f"identity proof did: {exc}", field="proof.did") from exc
    try:
        verify_envelope(envelope, [key], payload_type=IDENTITY_LINK_PAYLOAD_TYPE)
    except ProvenanceError as exc:
        raise InvalidRequest(
            f"identity proof is not signed by {did}: {exc}", field="proof"
        ) from exc
    if data["account"] != account_id:
        raise InvalidRequest(
            f"identity proof names account {data['account']!r}, not yours ({account_id})",
            field="proof.account",
        )
    if data["audience"] != audience:
        raise InvalidRequest(
            f"identity proof is for {data['audience']!r}, not this coordinator ({audience})",
            field="proof.audience",
        )
    try:
        issued = parse_utc(data["issued_at"], what="identity proof issued_at")
    except ProvenanceError as exc:
        raise InvalidRequest(str(exc), field="proof.issued_at") from exc
    if abs(now - issued) > MAX_PROOF_SKEW:
        raise InvalidRequest(
            f"identity proof was made at {format_utc(issued)}, more than "
            f"{int(MAX_PROOF_SKEW.total_seconds() // 60)} minutes from now; make a new one",
            field="proof.issued_at",
        )
    return str(did)


def link_identity(
    session: Session, principal: Principal, envelope: Envelope, *, audience: str, now: datetime
) -> tuple[Identity, bool]:
    """Link the DID the proof proves to the caller's (creator) account.

    Returns the identity and whether it was new.
    """
    principal.require("creator")
    did = verify_identity_link(
        envelope, account_id=principal.account_id, audience=audience, now=now
    )
    existing = session.get(Identity, did)
    if existing is not None:
        if existing.account_id != principal.account_id:
            raise Conflict(f"{did} is already linked to another account")
        return existing, False
    identity = Identity(did=did, account_id=principal.account_id, linked_at=now)
    session.add(identity)
    session.flush()
    return identity, True


def identities_of(session: Session, account_id: str) -> list[Identity]:
    """The DIDs linked to ``account_id``."""
    return list(session.exec(select(Identity).where(Identity.account_id == account_id)))
