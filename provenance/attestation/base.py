"""Attestation evidence in general: the record, the claims, the policy, and dispatch by type.

Evidence binds a worker's Ed25519 public key to the code that runs it. Each evidence type
(``dev``, ``aws-nitro``, ...) registers an ``EvidenceVerifier`` that checks the mechanics
(signatures, certificate chains, formats) and returns ``AttestationClaims``. Only
``verify_evidence`` turns claims into a ``VerifiedAttestation``, by applying an
``AttestationPolicy`` (insecure evidence, measurements, nonce, age) that is the same for
every type.

This module must never hand out a ``VerifiedAttestation`` that skipped the policy, and never
signal a failure with ``False`` or ``None``: every refusal is an ``AttestationError``.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol

from provenance.canonical import canonical_json, parse_json, sha256_hex
from provenance.encoding import b64decode_strict, b64encode
from provenance.errors import AttestationError, KeyFormatError
from provenance.keys import PublicKey

#: Largest evidence document of any type (bytes); each type may set a lower limit.
MAX_EVIDENCE_DOCUMENT_BYTES = 64 * 1024
#: Largest JSON form of one ``Evidence`` record (bytes).
MAX_EVIDENCE_JSON_BYTES = 128 * 1024
#: Largest nonce or user_data any evidence type may carry (bytes).
MAX_BOUND_DATA_BYTES = 1024

_TYPE_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_MEASUREMENT_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_HEX_PATTERN = re.compile(r"(?:[0-9a-f]{2}){1,128}")
_RFC3339_UTC_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


class AttestationPolicyError(AttestationError):
    """Evidence is authentic but not acceptable under the policy (insecure, wrong code, stale)."""


def format_utc(moment: datetime) -> str:
    """Write an aware datetime as RFC 3339 UTC with second precision (``2026-01-02T03:04:05Z``)."""
    if moment.tzinfo is None:
        raise AttestationError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: Any, *, what: str) -> datetime:
    """Parse the exact form ``format_utc`` writes; ``what`` names the field in errors."""
    if not isinstance(text, str) or not _RFC3339_UTC_PATTERN.fullmatch(text):
        raise AttestationError(f"{what} must be an RFC 3339 UTC time like 2026-01-02T03:04:05Z")
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise AttestationError(f"{what} is not a valid time: {text!r}") from exc


def check_measurements(measurements: Mapping[str, str], *, what: str) -> dict[str, str]:
    """Return ``measurements`` as a plain dict after checking names and lowercase-hex values."""
    result: dict[str, str] = {}
    for name, value in measurements.items():
        if not isinstance(name, str) or not _MEASUREMENT_NAME_PATTERN.fullmatch(name):
            raise AttestationError(f"{what}: measurement name {name!r} is not allowed")
        if not isinstance(value, str) or not _HEX_PATTERN.fullmatch(value):
            raise AttestationError(
                f"{what}: measurement {name} must be lowercase hex of 1 to 128 bytes"
            )
        result[name] = value
    return result


@dataclass(frozen=True)
class Evidence:
    """Attestation evidence as it travels: a type name and that type's opaque document.

    Nothing in an ``Evidence`` is trusted until ``verify_evidence`` has checked it.
    """

    type: str
    document: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not _TYPE_PATTERN.fullmatch(self.type):
            raise AttestationError(
                f"evidence type {self.type!r} must be 1-63 lowercase letters, digits or '-'"
            )
        if not isinstance(self.document, bytes) or not self.document:
            raise AttestationError("evidence document must be non-empty bytes")
        if len(self.document) > MAX_EVIDENCE_DOCUMENT_BYTES:
            raise AttestationError(
                f"evidence document is {len(self.document)} bytes, "
                f"over the limit of {MAX_EVIDENCE_DOCUMENT_BYTES}"
            )

    @property
    def digest(self) -> str:
        """Lowercase hex SHA-256 of the document: how logs and receipts name this evidence."""
        return sha256_hex(self.document)

    def to_dict(self) -> dict[str, str]:
        """The JSON form: ``{"type": ..., "document": <standard base64>}``."""
        return {"document": b64encode(self.document), "type": self.type}

    def to_json(self) -> bytes:
        """The JSON form as canonical JSON bytes."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any) -> Evidence:
        """Parse the JSON form, checking that exactly the two fields are present and well typed."""
        if not isinstance(data, dict):
            raise AttestationError("evidence must be a JSON object")
        unknown = set(data) - {"type", "document"}
        if unknown:
            raise AttestationError(f"evidence has unknown fields: {', '.join(sorted(unknown))}")
        for name in ("type", "document"):
            if not isinstance(data.get(name), str):
                raise AttestationError(f"evidence field {name!r} must be a string")
        document = b64decode_strict(
            data["document"], what="evidence field 'document'", error=AttestationError
        )
        return cls(type=data["type"], document=document)

    @classmethod
    def from_json(cls, data: bytes | str) -> Evidence:
        """Parse untrusted evidence JSON, with size and depth limits."""
        parsed = parse_json(
            data, max_bytes=MAX_EVIDENCE_JSON_BYTES, what="evidence", error=AttestationError
        )
        return cls.from_dict(parsed)


@dataclass(frozen=True)
class AttestationClaims:
    """What a type's mechanics established about a document, before any policy was applied.

    ``worker_public_key`` is the raw 32-byte Ed25519 key the evidence binds; ``measurements``
    are lowercase hex (``PCR0``... for Nitro, ``code``... for dev). ``insecure`` is true
    when the evidence proves nothing about isolation or code (dev evidence, debug enclaves);
    ``insecure_reason`` then says why.
    """

    type: str
    worker_public_key: bytes
    measurements: dict[str, str]
    nonce: bytes | None
    user_data: bytes | None
    timestamp: datetime
    insecure: bool
    evidence_digest: str
    insecure_reason: str = ""

    def __post_init__(self) -> None:
        try:
            PublicKey(self.worker_public_key)
        except KeyFormatError as exc:
            raise AttestationError(f"{self.type}: worker key binding: {exc}") from exc
        if self.timestamp.tzinfo is None:
            raise AttestationError(f"{self.type}: the evidence timestamp must be timezone-aware")
        if self.insecure and not self.insecure_reason:
            raise AttestationError(f"{self.type}: insecure claims must say why")

    @property
    def worker_key(self) -> PublicKey:
        """The bound worker key as a ``PublicKey``."""
        return PublicKey(self.worker_public_key)


@dataclass(frozen=True)
class VerifiedAttestation(AttestationClaims):
    """Claims that passed both their type's mechanics and an ``AttestationPolicy``.

    Made only by ``verify_evidence``; a function that needs attested worker keys should
    ask for this type, never for ``AttestationClaims``.
    """


@dataclass(frozen=True)
class AttestationPolicy:
    """What a verifier accepts. Mechanics decide whether evidence is genuine; this decides
    whether genuine evidence is good enough.

    - ``allow_insecure``: accept evidence whose claims are marked insecure (dev evidence,
      debug-mode enclaves). Never set it outside development and tests.
    - ``expected_measurements``: every named measurement must be present and equal.
    - ``expected_nonce``: the evidence must carry exactly this nonce.
    - ``max_age``: the evidence timestamp may be at most this old. Leave it ``None`` only
      when auditing historical evidence; a live check should always bound the age.
    - ``max_clock_skew``: how far in the future a timestamp may be.
    - ``trusted_dev_attesters``: did:keys whose dev statements are accepted; empty accepts
      any self-consistent attester (dev evidence is insecure either way).
    - ``nitro_roots``: DER certificates pinned as AWS Nitro roots; ``None`` pins the AWS
      Nitro Enclaves Root-G1 certificate shipped with this package.
    """

    allow_insecure: bool = False
    expected_measurements: Mapping[str, str] = field(default_factory=dict)
    expected_nonce: bytes | None = None
    max_age: timedelta | None = None
    max_clock_skew: timedelta = timedelta(minutes=5)
    trusted_dev_attesters: frozenset[str] = frozenset()
    nitro_roots: tuple[bytes, ...] | None = None

    def __post_init__(self) -> None:
        lowered = {
            name: value.lower() if isinstance(value, str) else value
            for name, value in self.expected_measurements.items()
        }
        checked = check_measurements(lowered, what="policy")
        object.__setattr__(self, "expected_measurements", MappingProxyType(checked))
        object.__setattr__(self, "trusted_dev_attesters", frozenset(self.trusted_dev_attesters))
        for did in self.trusted_dev_attesters:
            try:
                PublicKey.from_did(did)
            except KeyFormatError as exc:
                raise AttestationError(f"policy: trusted dev attester {did!r}: {exc}") from exc
        if self.max_age is not None and self.max_age <= timedelta(0):
            raise AttestationError("policy: max_age must be positive")
        if self.max_clock_skew < timedelta(0):
            raise AttestationError("policy: max_clock_skew must not be negative")
        if self.nitro_roots is not None:
            if isinstance(self.nitro_roots, bytes) or not all(
                isinstance(root, bytes) for root in self.nitro_roots
            ):
                raise AttestationError("policy: nitro_roots must be a sequence of DER certificates")
            object.__setattr__(self, "nitro_roots", tuple(self.nitro_roots))


class EvidenceVerifier(Protocol):
    """The mechanics of one evidence type.

    ``verify`` receives the untrusted document bytes, the policy (for its trust roots
    only) and the verification time, and returns the claims the document establishes,
    or raises ``AttestationError`` naming the step that failed. It must not apply the
    policy's acceptance rules: ``verify_evidence`` does that for every type alike.
    """

    @property
    def type(self) -> str:
        """The evidence type this verifier handles, e.g. ``"aws-nitro"``."""
        ...

    def verify(
        self, document: bytes, policy: AttestationPolicy, now: datetime
    ) -> AttestationClaims:
        """Check ``document`` and return its claims; raise ``AttestationError`` otherwise."""
        ...


_VERIFIERS: dict[str, EvidenceVerifier] = {}


def register_verifier(verifier: EvidenceVerifier, *, replace: bool = False) -> None:
    """Make ``verifier`` handle its evidence type; refuse to replace one silently."""
    if not _TYPE_PATTERN.fullmatch(verifier.type):
        raise AttestationError(f"cannot register evidence type {verifier.type!r}: bad name")
    if verifier.type in _VERIFIERS and not replace:
        raise AttestationError(f"evidence type {verifier.type!r} already has a verifier")
    _VERIFIERS[verifier.type] = verifier


def registered_types() -> tuple[str, ...]:
    """The evidence types that ``verify_evidence`` can check, sorted."""
    return tuple(sorted(_VERIFIERS))


def apply_policy(
    claims: AttestationClaims, policy: AttestationPolicy, now: datetime
) -> VerifiedAttestation:
    """Accept ``claims`` under ``policy`` at time ``now``, or raise ``AttestationPolicyError``.

    Steps, in order: insecure evidence, expected measurements, expected nonce, timestamp
    not in the future, timestamp not older than ``max_age``.
    """
    label = claims.type
    if claims.insecure and not policy.allow_insecure:
        raise AttestationPolicyError(
            f"{label}: policy: evidence is insecure ({claims.insecure_reason or 'no reason'}) "
            "and the policy does not allow insecure evidence"
        )
    for name in sorted(policy.expected_measurements):
        expected = policy.expected_measurements[name]
        actual = claims.measurements.get(name)
        if actual is None:
            raise AttestationPolicyError(
                f"{label}: policy: measurement {name} is expected but the evidence has none"
            )
        if not hmac.compare_digest(actual, expected):
            raise AttestationPolicyError(
                f"{label}: policy: measurement {name} does not match: "
                f"expected {expected}, got {actual}"
            )
    if policy.expected_nonce is not None:
        if claims.nonce is None:
            raise AttestationPolicyError(
                f"{label}: policy: a nonce is expected but the evidence carries none"
            )
        if not hmac.compare_digest(claims.nonce, policy.expected_nonce):
            raise AttestationPolicyError(
                f"{label}: policy: nonce does not match the expected nonce"
            )
    if claims.timestamp > now + policy.max_clock_skew:
        raise AttestationPolicyError(
            f"{label}: policy: evidence timestamp {format_utc(claims.timestamp)} is in the "
            f"future (now {format_utc(now)})"
        )
    if policy.max_age is not None and now - claims.timestamp > policy.max_age:
        age = int((now - claims.timestamp).total_seconds())
        raise AttestationPolicyError(
            f"{label}: policy: evidence is {age} s old, older than the maximum of "
            f"{int(policy.max_age.total_seconds())} s"
        )
    values = {item.name: getattr(claims, item.name) for item in fields(AttestationClaims)}
    values["measurements"] = dict(claims.measurements)
    return VerifiedAttestation(**values)


def verify_evidence(
    evidence: Evidence, policy: AttestationPolicy, *, now: datetime | None = None
) -> VerifiedAttestation:
    """Verify ``evidence`` with its type's verifier, then accept it under ``policy``.

    ``now`` (timezone-aware; default: the current UTC time) is the time of the check.
    Raises ``AttestationError`` when the evidence is malformed or not genuine, and its
    subclass ``AttestationPolicyError`` when it is genuine but not acceptable.
    """
    verifier = _VERIFIERS.get(evidence.type)
    if verifier is None:
        known = ", ".join(registered_types()) or "none"
        raise AttestationError(f"unknown evidence type {evidence.type!r}; known types: {known}")
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        raise AttestationError("verification time 'now' must be timezone-aware")
    claims = verifier.verify(evidence.document, policy, now)
    if claims.type != evidence.type:
        raise AttestationError(
            f"verifier for {evidence.type!r} returned claims of type {claims.type!r}"
        )
    if claims.evidence_digest != evidence.digest:
        raise AttestationError(f"verifier for {evidence.type!r} returned a wrong evidence digest")
    return apply_policy(claims, policy, now)
