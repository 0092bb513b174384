"""DSSE envelopes: sign a payload, verify an envelope, hand back only verified bytes.

Implements the DSSE v1 protocol exactly: signatures cover
``PAE(payloadType, payload) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``.
A caller never reads ``payload`` from an envelope directly: ``verify_envelope`` returns
the payload bytes only after enough trusted keys have verified them. Signatures are
Ed25519; the ``keyid`` is the signer's did:key (a hint only, never trusted by itself).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from provenance.canonical import canonical_json, parse_json
from provenance.encoding import b64decode_any_alphabet, b64encode
from provenance.errors import EnvelopeError, InvalidSignature
from provenance.keys import PublicKey, SigningKey

#: Largest envelope this module parses (bytes of JSON).
MAX_ENVELOPE_BYTES = 8 * 1024 * 1024
#: Most signatures one envelope may carry.
MAX_SIGNATURES = 16


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding of ``payload_type`` and ``payload``."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


@dataclass(frozen=True)
class Signature:
    """One DSSE signature: raw signature bytes and the optional key id hint."""

    sig: bytes
    keyid: str = ""


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope as it travels. Its payload is *unverified* until ``verify_envelope``."""

    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def to_dict(self) -> dict[str, Any]:
        """The envelope's standard JSON form (standard base64)."""
        return {
            "payload": b64encode(self.payload),
            "payloadType": self.payload_type,
            "signatures": [
                {"keyid": signature.keyid, "sig": b64encode(signature.sig)}
                for signature in self.signatures
            ],
        }

    def to_json(self) -> bytes:
        """The envelope's JSON form as canonical JSON bytes (how it is stored and sent)."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any) -> Envelope:
        """Parse the JSON form, checking every field's presence and type."""
        if not isinstance(data, dict):
            raise EnvelopeError("envelope must be a JSON object")
        unknown = set(data) - {"payload", "payloadType", "signatures"}
        if unknown:
            raise EnvelopeError(f"envelope has unknown fields: {', '.join(sorted(unknown))}")
        payload_type = data.get("payloadType")
        if not isinstance(payload_type, str) or not payload_type:
            raise EnvelopeError("envelope field 'payloadType' must be a non-empty string")
        if "payload" not in data:
            raise EnvelopeError("envelope field 'payload' is missing")
        payload = b64decode_any_alphabet(
            data["payload"], what="envelope field 'payload'", error=EnvelopeError
        )
        raw_signatures = data.get("signatures")
        if not isinstance(raw_signatures, list) or not raw_signatures:
            raise EnvelopeError("envelope field 'signatures' must be a non-empty list")
        if len(raw_signatures) > MAX_SIGNATURES:
            raise EnvelopeError(
                f"envelope has {len(raw_signatures)} signatures, more than {MAX_SIGNATURES}"
            )
        signatures = []
        for position, item in enumerate(raw_signatures):
            what = f"envelope signatures[{position}]"
            if not isinstance(item, dict):
                raise EnvelopeError(f"{what} must be an object")
            keyid = item.get("keyid", "")
            if not isinstance(keyid, str):
                raise EnvelopeError(f"{what}.keyid must be a string")
            if "sig" not in item:
                raise EnvelopeError(f"{what}.sig is missing")
            sig = b64decode_any_alphabet(item["sig"], what=f"{what}.sig", error=EnvelopeError)
            signatures.append(Signature(sig=sig, keyid=keyid))
        return cls(payload_type, payload, tuple(signatures))

    @classmethod
    def from_json(cls, data: bytes | str) -> Envelope:
        """Parse an envelope from untrusted JSON text, with size and depth limits."""
        parsed = parse_json(
            data, max_bytes=MAX_ENVELOPE_BYTES, what="envelope", error=EnvelopeError
        )
        return cls.from_dict(parsed)


@dataclass(frozen=True)
class VerifiedPayload:
    """What a verified envelope says, and which trusted keys vouched for it."""

    payload_type: str
    payload: bytes
    signers: tuple[PublicKey, ...]


def sign_envelope(payload: bytes, payload_type: str, keys: Sequence[SigningKey]) -> Envelope:
    """Sign ``payload`` with every key in ``keys`` (at least one)."""
    if not keys:
        raise EnvelopeError("at least one signing key is needed")
    message = pae(payload_type, payload)
    signatures = tuple(Signature(sig=key.sign(message), keyid=key.public_key.did) for key in keys)
    return Envelope(payload_type, payload, signatures)


def verify_envelope(
    envelope: Envelope,
    trusted_keys: Iterable[PublicKey],
    *,
    threshold: int = 1,
    payload_type: str | None = None,
) -> VerifiedPayload:
    """Verify ``envelope`` and return its payload if ``threshold`` distinct trusted keys signed.

    Each trusted key counts once, however many signatures name it. When a signature's
    keyid names a trusted key only that key is tried; otherwise every trusted key is.
    If ``payload_type`` is given the envelope must carry exactly that type.
    """
    if threshold < 1:
        raise EnvelopeError("the signature threshold must be at least 1")
    if payload_type is not None and envelope.payload_type != payload_type:
        raise EnvelopeError(
            f"envelope payloadType is {envelope.payload_type!r}, expected {payload_type!r}"
        )
    keys = list(dict.fromkeys(trusted_keys))
    if not keys:
        raise EnvelopeError("no trusted keys were given to verify the envelope against")
    by_id = {key.did: key for key in keys}
    message = pae(envelope.payload_type, envelope.payload)
    verified: dict[bytes, PublicKey] = {}
    for signature in envelope.signatures:
        candidates = [by_id[signature.keyid]] if signature.keyid in by_id else keys
        for key in candidates:
            if key.raw in verified:
                continue
            try:
                key.verify(signature.sig, message)
            except InvalidSignature:
                continue
            verified[key.raw] = key
            break
    if len(verified) < threshold:
        raise EnvelopeError(
            f"envelope has {len(verified)} valid signature(s) from trusted keys, "
            f"{threshold} required"
        )
    return VerifiedPayload(envelope.payload_type, envelope.payload, tuple(verified.values()))
