"""Capability tokens: the coordinator's short-lived permission for one job on one dataset.

A capability token is an EdDSA (Ed25519) JWS in compact form, issued by the coordinator
for one (job, dataset) pair and checked by the data host *before* it opens any data.
Its claims name the coordinator (``iss``), the data host (``sub``), the audience, a
lifetime of at most ``MAX_LIFETIME``, a ``jti`` for replay defence, the scope (job,
dataset digest, operation, rounds, ε and δ budget) and, in ``cnf.jkt``, the RFC 7638
thumbprint of the attested worker key the token is bound to.

Verification is a pipeline of explicit steps (size, header, signature, payload, claims,
issuer, audience, expiry, issued-at, not-before, lifetime, confirmation, scope); each
failure is a ``CapabilityError`` that names its step. The header is checked *before*
any signature work, so ``alg: none``, HMAC and every other algorithm are refused
outright rather than negotiated.

This module must never return claims from a token whose signature, issuer, audience,
lifetime or worker binding it has not checked, and raw key bytes never leave it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from joserfc import jwk, jws
from joserfc.errors import InvalidKeyCurveError, JoseError
from joserfc.jwa import JWSAlgModel
from joserfc.jwk import OKPKey
from joserfc.jws import JWSRegistry

from provenance.canonical import canonical_json, parse_json
from provenance.errors import CapabilityError
from provenance.keys import PublicKey, SigningKey

#: The JWS header ``typ`` of a capability token.
CAPABILITY_TOKEN_TYPE = "tallystick-capability+jwt"  # noqa: S105 - a media type, not a secret
#: The largest token (in bytes) a verifier reads at all.
MAX_TOKEN_BYTES = 8192
#: What a capability may allow a data host to do with a dataset.
OPERATIONS = frozenset({"train", "evaluate"})
#: The longest lifetime (``exp - iat``) a capability token may have.
MAX_LIFETIME = timedelta(hours=1)

_ALGORITHM = "EdDSA"
_HEADER_FIELDS = frozenset({"alg", "typ", "kid"})
_MAX_HEADER_BYTES = 512
_REQUIRED_CLAIMS = frozenset(
    {"iss", "sub", "aud", "iat", "exp", "jti", "scope", "cnf", "tallystick_insecure_attestation"}
)
_OPTIONAL_CLAIMS = frozenset({"nbf"})
_SCOPE_FIELDS = frozenset({"job_id", "dataset_digest", "operation", "rounds", "epsilon", "delta"})
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_JTI = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_JKT = re.compile(r"^[A-Za-z0-9_-]{43}$")
_JOB_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Plain decimals, optionally with an exponent (``repr`` of a small float gives ``1e-05``).
_DECIMAL = re.compile(r"^(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]{1,3})?$")
_MAX_DECIMAL_CHARS = 32
_MAX_TEXT_CHARS = 512
_MAX_ROUNDS = 2**53 - 1
# NumericDate bounds: the epoch up to the end of year 9999, so datetime can hold it.
_MAX_NUMERIC_DATE = 253_402_300_799


class _Ed25519Only(JWSAlgModel):
    """JWS ``EdDSA`` restricted to Ed25519 OKP keys.

    RFC 9864 deprecates the polymorphic ``EdDSA`` name (joserfc warns on every use); the
    protocol fixes ``EdDSA`` with Ed25519 keys, which is exactly what this class allows.
    """

    name = _ALGORITHM
    description = "EdDSA with Ed25519 keys only"
    key_type = "OKP"

    def check_key(self, key: Any) -> None:
        super().check_key(key)
        if not isinstance(key, OKPKey) or key.curve_name != "Ed25519":
            raise InvalidKeyCurveError("capability tokens are signed with Ed25519 keys only")

    def sign(self, msg: bytes, key: OKPKey) -> bytes:
        private = key.get_op_key("sign")
        if not isinstance(private, Ed25519PrivateKey):
            raise InvalidKeyCurveError("capability tokens are signed with Ed25519 keys only")
        return private.sign(msg)

    def verify(self, msg: bytes, sig: bytes, key: OKPKey) -> bool:
        public = key.get_op_key("verify")
        if not isinstance(public, Ed25519PublicKey):
            raise InvalidKeyCurveError("capability tokens are signed with Ed25519 keys only")
        try:
            public.verify(sig, msg)
        except _CryptoInvalidSignature:
            return False
        return True


class _CapabilityRegistry(JWSRegistry):
    """A JWS registry that knows exactly one algorithm, so nothing else can be negotiated."""

    algorithms: dict[str, JWSAlgModel] = {_ALGORITHM: _Ed25519Only()}  # noqa: RUF012
    recommended: list[str] = [_ALGORITHM]  # noqa: RUF012
    max_header_length = _MAX_HEADER_BYTES
    max_payload_length = MAX_TOKEN_BYTES
    max_signature_length = 128


_REGISTRY = _CapabilityRegistry(algorithms=[_ALGORITHM])


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _refuse(step: str, detail: str) -> CapabilityError:
    return CapabilityError(f"capability token refused at step '{step}': {detail}")


def _b64url_decode_strict(text: str, what: str, step: str) -> bytes:
    """Decode unpadded base64url, refusing padding, other alphabets and non-canonical bits."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise _refuse(step, f"{what} is not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise _refuse(step, f"{what} is not unpadded base64url") from exc
    if _b64url_encode(raw) != text:
        raise _refuse(step, f"{what} is not canonical base64url")
    return raw


def _public_jwk(key: PublicKey) -> dict[str, str]:
    return {"crv": "Ed25519", "kty": "OKP", "x": _b64url_encode(key.raw)}


def jwk_thumbprint(key: PublicKey) -> str:
    """Return the RFC 7638 SHA-256 thumbprint (base64url, unpadded) of ``key``'s OKP JWK.

    The JWK is ``{"crv": "Ed25519", "kty": "OKP", "x": …}``; this is the value a token's
    ``cnf.jkt`` carries to bind it to one worker key (RFC 7800).
    """
    return jwk.thumbprint(dict(_public_jwk(key)))


def _check_decimal(value: str, field: str) -> Decimal:
    if len(value) > _MAX_DECIMAL_CHARS or not _DECIMAL.fullmatch(value):
        raise CapabilityError(
            f"scope field {field} {value[:40]!r} is not a decimal number "
            "(digits, optional fraction and exponent, no sign)"
        )
    try:
        number = Decimal(value)
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
        raise CapabilityError(f"scope field {field} {value!r} is not a decimal number") from exc
    if not number.is_finite():  # pragma: no cover - the pattern admits only finite numbers
        raise CapabilityError(f"scope field {field} {value!r} is not finite")
    return number


@dataclass(frozen=True)
class CapabilityScope:
    """What a capability allows: one operation on one dataset, for one job, within a budget.

    ``dataset_digest`` is the lowercase hex SHA-256 of the dataset manifest payload;
    ``epsilon`` (> 0) and ``delta`` (0 < δ < 1) are decimal strings, so that no float
    rounding changes the budget between issuer and host.
    """

    job_id: str
    dataset_digest: str
    operation: str
    rounds: int
    epsilon: str
    delta: str

    def __post_init__(self) -> None:
        if not isinstance(self.job_id, str) or not _JOB_ID.fullmatch(self.job_id):
            raise CapabilityError(
                f"scope field job_id {str(self.job_id)[:40]!r} is malformed: expected 1 to 128 "
                "characters from A-Z a-z 0-9 . _ : -"
            )
        if not isinstance(self.dataset_digest, str) or not _HEX64.fullmatch(self.dataset_digest):
            raise CapabilityError(
                f"scope field dataset_digest {str(self.dataset_digest)[:80]!r} is malformed: "
                "expected 64 lowercase hex digits (SHA-256 of the manifest payload)"
            )
        if self.operation not in OPERATIONS:
            raise CapabilityError(
                f"scope field operation {str(self.operation)[:40]!r} is not allowed: "
                f"expected one of {', '.join(sorted(OPERATIONS))}"
            )
        if (
            not isinstance(self.rounds, int)
            or isinstance(self.rounds, bool)
            or not 1 <= self.rounds <= _MAX_ROUNDS
        ):
            raise CapabilityError(
                f"scope field rounds {self.rounds!r} is invalid: expected an integer >= 1"
            )
        if not isinstance(self.epsilon, str):
            raise CapabilityError("scope field epsilon must be a decimal string")
        if _check_decimal(self.epsilon, "epsilon") <= 0:
            raise CapabilityError(f"scope field epsilon {self.epsilon!r} must be greater than 0")
        if not isinstance(self.delta, str):
            raise CapabilityError("scope field delta must be a decimal string")
        if not 0 < _check_decimal(self.delta, "delta") < 1:
            raise CapabilityError(f"scope field delta {self.delta!r} must lie strictly in (0, 1)")

    def to_dict(self) -> dict[str, Any]:
        """The scope as the JSON object carried in the token's ``scope`` claim."""
        return {
            "job_id": self.job_id,
            "dataset_digest": self.dataset_digest,
            "operation": self.operation,
            "rounds": self.rounds,
            "epsilon": self.epsilon,
            "delta": self.delta,
        }

    @classmethod
    def from_dict(cls, data: Any) -> CapabilityScope:
        """Parse a ``scope`` object strictly: exactly the known keys, each typed and in range."""
        if not isinstance(data, dict):
            raise CapabilityError("scope must be a JSON object")
        missing = _SCOPE_FIELDS - set(data)
        if missing:
            raise CapabilityError(f"scope lacks fields: {', '.join(sorted(missing))}")
        unknown = set(data) - _SCOPE_FIELDS
        if unknown:
            names = ", ".join(sorted(str(name)[:40] for name in unknown))
            raise CapabilityError(f"scope has unknown fields: {names}")
        for name in ("job_id", "dataset_digest", "operation", "epsilon", "delta"):
            if not isinstance(data[name], str):
                raise CapabilityError(f"scope field {name} must be a string")
        rounds = data["rounds"]
        if not isinstance(rounds, int) or isinstance(rounds, bool):
            raise CapabilityError("scope field rounds must be an integer")
        return cls(
            job_id=data["job_id"],
            dataset_digest=data["dataset_digest"],
            operation=data["operation"],
            rounds=rounds,
            epsilon=data["epsilon"],
            delta=data["delta"],
        )


def _whole_utc_seconds(value: datetime, field: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise CapabilityError(f"claim {field} must be a timezone-aware datetime (UTC)")
    return value.astimezone(UTC).replace(microsecond=0)


def _check_text(value: Any, field: str, *, prefix: str = "") -> None:
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_TEXT_CHARS:
        raise CapabilityError(f"claim {field} must be a string of 1 to {_MAX_TEXT_CHARS} chars")
    if prefix and not value.startswith(prefix):
        raise CapabilityError(f"claim {field} {value[:80]!r} must start with {prefix!r}")


@dataclass(frozen=True)
class CapabilityClaims:
    """The claims of a capability token, typed.

    Times are aware UTC datetimes kept to whole seconds, as the token carries them
    (``iat``/``exp`` are integer seconds); sub-second parts are dropped on construction.
    """

    issuer: str
    subject: str
    audience: str
    issued_at: datetime
    expires_at: datetime
    jti: str
    scope: CapabilityScope
    worker_jkt: str
    insecure_attestation: bool

    def __post_init__(self) -> None:
        _check_text(self.issuer, "iss (issuer)", prefix="did:key:")
        _check_text(self.subject, "sub (subject)", prefix="did:")
        _check_text(self.audience, "aud (audience)")
        object.__setattr__(self, "issued_at", _whole_utc_seconds(self.issued_at, "iat"))
        object.__setattr__(self, "expires_at", _whole_utc_seconds(self.expires_at, "exp"))
        if not isinstance(self.jti, str) or not _JTI.fullmatch(self.jti):
            raise CapabilityError(
                "claim jti is malformed: expected 16 to 128 characters from A-Z a-z 0-9 _ -"
            )
        if not isinstance(self.scope, CapabilityScope):
            raise CapabilityError("claim scope must be a CapabilityScope")
        if not isinstance(self.worker_jkt, str) or not _JKT.fullmatch(self.worker_jkt):
            raise CapabilityError(
                "claim cnf.jkt is malformed: expected a 43-character base64url SHA-256 "
                "JWK thumbprint (see jwk_thumbprint)"
            )
        if not isinstance(self.insecure_attestation, bool):
            raise CapabilityError("claim tallystick_insecure_attestation must be true or false")

    def to_claims(self) -> dict[str, Any]:
        """The JWT claims set (JSON object) this token carries."""
        return {
            "iss": self.issuer,
            "sub": self.subject,
            "aud": self.audience,
            "iat": int(self.issued_at.timestamp()),
            "exp": int(self.expires_at.timestamp()),
            "jti": self.jti,
            "scope": self.scope.to_dict(),
            "cnf": {"jkt": self.worker_jkt},
            "tallystick_insecure_attestation": self.insecure_attestation,
        }


def new_jti() -> str:
    """Return a fresh random token id (32 base64url characters, 192 bits)."""
    return secrets.token_urlsafe(24)


def issue_capability(key: SigningKey, claims: CapabilityClaims) -> str:
    """Sign ``claims`` with the coordinator's ``key`` and return the compact JWS.

    Refuses (``CapabilityError``) claims whose issuer is not ``key``'s did:key, whose
    ``exp`` is not after ``iat``, or whose lifetime exceeds ``MAX_LIFETIME``.
    """
    did = key.public_key.did
    if claims.issuer != did:
        raise CapabilityError(
            f"claim iss {claims.issuer!r} is not the signing key's did:key {did!r}; "
            "issue with the key the issuer names"
        )
    if claims.expires_at <= claims.issued_at:
        raise CapabilityError(
            f"claim exp {claims.expires_at.isoformat()} must be after iat "
            f"{claims.issued_at.isoformat()}"
        )
    lifetime = claims.expires_at - claims.issued_at
    if lifetime > MAX_LIFETIME:
        raise CapabilityError(
            f"token lifetime {lifetime} exceeds the maximum of {MAX_LIFETIME}; "
            "issue a shorter-lived token"
        )
    header = {"alg": _ALGORITHM, "typ": CAPABILITY_TOKEN_TYPE, "kid": did}
    payload = canonical_json(claims.to_claims())
    private = OKPKey.import_key(key.private_pem())
    token = jws.serialize_compact(header, payload, private, registry=_REGISTRY)
    if len(token) > MAX_TOKEN_BYTES:
        raise CapabilityError(
            f"token is {len(token)} bytes, over MAX_TOKEN_BYTES ({MAX_TOKEN_BYTES}); "
            "shorten the audience, subject or job id"
        )
    return token


def _split(token: Any) -> tuple[str, str, str]:
    """Step 'size': bounded, ASCII, exactly three canonical base64url segments."""
    if not isinstance(token, str):
        raise _refuse("size", "the token must be text")
    if len(token) > MAX_TOKEN_BYTES:
        raise _refuse("size", f"the token is longer than {MAX_TOKEN_BYTES} bytes")
    if not token.isascii():
        raise _refuse("size", "the token contains non-ASCII characters")
    parts = token.split(".")
    if len(parts) != 3:
        raise _refuse("size", f"a compact JWS has 3 dot-separated parts, this one has {len(parts)}")
    header, payload, signature = parts
    return header, payload, signature


def _check_header(segment: str, issuer: PublicKey) -> None:
    """Step 'header': exactly alg EdDSA, our typ, and the issuer's did:key as kid."""
    raw = _b64url_decode_strict(segment, "the header", "header")
    try:
        header = parse_json(
            raw, max_bytes=_MAX_HEADER_BYTES, max_depth=2, what="header", error=CapabilityError
        )
    except CapabilityError as exc:
        raise _refuse("header", str(exc)) from exc
    if not isinstance(header, dict):
        raise _refuse("header", "the header is not a JSON object")
    alg = header.get("alg")
    if alg != _ALGORITHM:
        raise _refuse("header", f"alg {str(alg)[:20]!r} is not allowed; only {_ALGORITHM!r} is")
    if set(header) != _HEADER_FIELDS:
        names = ", ".join(sorted(str(name)[:20] for name in header))
        raise _refuse("header", f"the header must hold exactly alg, kid, typ; it holds {names}")
    if header["typ"] != CAPABILITY_TOKEN_TYPE:
        raise _refuse("header", f"typ {str(header['typ'])[:60]!r} is not {CAPABILITY_TOKEN_TYPE!r}")
    if header["kid"] != issuer.did:
        raise _refuse(
            "header",
            f"kid {str(header['kid'])[:80]!r} does not name the expected issuer {issuer.did}",
        )


def _check_signature(token: str, issuer: PublicKey) -> bytes:
    """Step 'signature': the JWS verifies under ``issuer``; returns the payload bytes."""
    public = OKPKey.import_key(dict(_public_jwk(issuer)))
    try:
        signed = jws.deserialize_compact(token, public, registry=_REGISTRY)
    except (JoseError, ValueError) as exc:
        raise _refuse("signature", f"the signature does not verify for {issuer.did}") from exc
    return signed.payload


def _numeric_date(claims: dict[str, Any], name: str) -> datetime:
    value = claims[name]
    if not isinstance(value, int) or isinstance(value, bool):
        raise _refuse("claims", f"claim {name} must be an integer number of seconds")
    if not 0 <= value <= _MAX_NUMERIC_DATE:
        raise _refuse("claims", f"claim {name} {value} is out of range")
    return datetime.fromtimestamp(value, UTC)


def verify_capability(
    token: str,
    issuer: PublicKey,
    *,
    audience: str,
    worker_key: PublicKey,
    now: datetime | None = None,
    leeway: timedelta = timedelta(seconds=30),
) -> CapabilityClaims:
    """Verify a capability token and return its claims.

    ``issuer`` is the coordinator key the host trusts, ``audience`` the value this host
    expects in ``aud``, ``worker_key`` the attested worker key the token must be bound
    to. ``now`` defaults to the current UTC time; ``leeway`` allows for clock skew.

    Steps, in order, each raising ``CapabilityError`` naming the step: size, header,
    signature, payload, claims, issuer, audience, expiry, issued-at, not-before,
    lifetime, confirmation, scope.
    """
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None or now.utcoffset() is None:
        raise CapabilityError("now must be a timezone-aware datetime (UTC)")
    if leeway < timedelta(0):
        raise CapabilityError(f"leeway must not be negative, got {leeway}")

    header_segment, payload_segment, signature_segment = _split(token)
    _check_header(header_segment, issuer)
    _b64url_decode_strict(signature_segment, "the signature", "signature")
    _b64url_decode_strict(payload_segment, "the payload", "payload")
    payload = _check_signature(token, issuer)

    try:
        claims = parse_json(
            payload,
            max_bytes=MAX_TOKEN_BYTES,
            max_depth=4,
            what="claims JSON",
            error=CapabilityError,
        )
    except CapabilityError as exc:
        raise _refuse("payload", str(exc)) from exc
    if not isinstance(claims, dict):
        raise _refuse("payload", "the claims are not a JSON object")

    missing = _REQUIRED_CLAIMS - set(claims)
    if missing:
        raise _refuse("claims", f"required claims are missing: {', '.join(sorted(missing))}")
    unknown = set(claims) - _REQUIRED_CLAIMS - _OPTIONAL_CLAIMS
    if unknown:
        names = ", ".join(sorted(str(name)[:40] for name in unknown))
        raise _refuse("claims", f"unknown claims are not accepted: {names}")
    issued_at = _numeric_date(claims, "iat")
    expires_at = _numeric_date(claims, "exp")
    not_before = _numeric_date(claims, "nbf") if "nbf" in claims else None

    if claims["iss"] != issuer.did:
        raise _refuse(
            "issuer", f"iss {str(claims['iss'])[:80]!r} is not the expected issuer {issuer.did}"
        )
    aud = claims["aud"]
    if not isinstance(aud, str):
        raise _refuse("audience", "aud must be a single string")
    if aud != audience:
        raise _refuse("audience", f"aud {aud[:80]!r} is not this host's audience {audience!r}")
    if expires_at <= now - leeway:
        raise _refuse("expiry", f"the token expired at {expires_at.isoformat()}")
    if issued_at > now + leeway:
        raise _refuse("issued-at", f"iat {issued_at.isoformat()} lies in the future")
    if not_before is not None and not_before > now + leeway:
        raise _refuse("not-before", f"the token is not valid before {not_before.isoformat()}")
    if expires_at <= issued_at or expires_at - issued_at > MAX_LIFETIME:
        raise _refuse(
            "lifetime",
            f"exp - iat is {expires_at - issued_at}; it must be positive and at most "
            f"{MAX_LIFETIME}",
        )

    cnf = claims["cnf"]
    if not isinstance(cnf, dict) or set(cnf) != {"jkt"} or not isinstance(cnf["jkt"], str):
        raise _refuse("confirmation", 'cnf must be {"jkt": <worker key thumbprint>}')
    expected_jkt = jwk_thumbprint(worker_key)
    if not hmac.compare_digest(cnf["jkt"].encode("utf-8"), expected_jkt.encode("ascii")):
        raise _refuse(
            "confirmation",
            f"the token is bound to another worker key, not {worker_key.did}",
        )

    try:
        scope = CapabilityScope.from_dict(claims["scope"])
    except CapabilityError as exc:
        raise _refuse("scope", str(exc)) from exc

    try:
        return CapabilityClaims(
            issuer=claims["iss"],
            subject=claims["sub"],
            audience=aud,
            issued_at=issued_at,
            expires_at=expires_at,
            jti=claims["jti"],
            scope=scope,
            worker_jkt=cnf["jkt"],
            insecure_attestation=claims["tallystick_insecure_attestation"],
        )
    except CapabilityError as exc:
        raise _refuse("claims", str(exc)) from exc
