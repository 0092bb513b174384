"""AWS Nitro Enclaves attestation documents: authenticate them and read the bound worker key.

Follows AWS's "Verifying the root of trust" (Nitro Enclaves user guide) and the NSM API's
attestation process: a COSE_Sign1 (ES384) over a CBOR attestation document, signed by a
leaf certificate whose chain, given root first in the document's ``cabundle``, must start
at a *pinned* root. The enclave puts the worker's Ed25519 key in ``public_key``; that is
the key the claims bind, and ``PCR0``... are the measurements of the code.

This module must never trust a root that the document supplies unless it is byte-for-byte
a pinned one, never look at a field before its type and size are checked, and never go to
the network (no CRL or OCSP; AWS's process uses neither).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from importlib import resources
from typing import Any

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import (
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from provenance.attestation.base import (
    MAX_BOUND_DATA_BYTES,
    AttestationClaims,
    AttestationPolicy,
)
from provenance.canonical import sha256_hex
from provenance.errors import AttestationError
from provenance.keys import ED25519_PUBLIC_KEY_SIZE

NITRO_EVIDENCE_TYPE = "aws-nitro"
#: Largest document accepted (bytes). The NSM driver returns at most 12 KiB and the
#: specification bounds the COSE payload at 16 KiB; real documents are about 5 KiB.
MAX_NITRO_DOCUMENT_BYTES = 16 * 1024
COSE_ALG_ES384 = -35
ES384_SIGNATURE_BYTES = 96
#: SHA-256 of the DER of AWS_NitroEnclaves_Root-G1 (CN=aws.nitro-enclaves).
AWS_NITRO_ROOT_G1_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
_ROOT_RESOURCE = "roots/aws_nitro_root_g1.pem"
_MAX_CERTIFICATE_BYTES = 1024
_MAX_CABUNDLE = 16
_PCR_SIZES = (32, 48, 64)
_CODE_PCRS = (0, 1, 2)
_MAX_TIMESTAMP_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_REQUIRED_FIELDS = ("module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle")
_OPTIONAL_FIELDS = ("public_key", "user_data", "nonce")


@dataclass(frozen=True)
class NitroDocument:
    """The fields of an attestation document whose signature and chain have been verified."""

    module_id: str
    digest: str
    timestamp: datetime
    pcrs: Mapping[int, bytes]
    certificate: bytes
    cabundle: tuple[bytes, ...]
    public_key: bytes | None
    user_data: bytes | None
    nonce: bytes | None


@lru_cache(maxsize=1)
def aws_nitro_root_der() -> bytes:
    """The shipped AWS Nitro Enclaves Root-G1 certificate (DER), checked against its pin."""
    pem = resources.files("provenance.attestation").joinpath(_ROOT_RESOURCE).read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    if sha256_hex(der) != AWS_NITRO_ROOT_G1_SHA256:
        raise AttestationError(f"the shipped {_ROOT_RESOURCE} does not match its SHA-256 pin")
    return der


def certificates_from_pem(pem: bytes) -> tuple[bytes, ...]:
    """Read every certificate in ``pem`` as DER, e.g. to pin roots in ``AttestationPolicy``."""
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise AttestationError(f"not a PEM certificate bundle: {exc}") from exc
    return tuple(cert.public_bytes(serialization.Encoding.DER) for cert in certificates)


def _decode_cbor(data: bytes, *, what: str) -> Any:
    stream = io.BytesIO(data)
    # The NSM writes the payload as an indefinite-length map, so those must be allowed;
    # the input is already bounded by MAX_NITRO_DOCUMENT_BYTES.
    decoder = cbor2.CBORDecoder(stream, max_depth=4, allow_duplicate_keys=False)
    try:
        value = decoder.decode()
    except (cbor2.CBORError, ValueError, TypeError, OverflowError) as exc:
        raise AttestationError(f"nitro: {what}: not valid CBOR: {exc}") from exc
    if stream.tell() != len(data):
        raise AttestationError(f"nitro: {what}: {len(data) - stream.tell()} bytes after the CBOR")
    return value


def _bytes_field(value: Any, what: str, low: int, high: int) -> bytes:
    if not isinstance(value, bytes):
        raise AttestationError(f"nitro: {what} must be a byte string, got {type(value).__name__}")
    if not low <= len(value) <= high:
        raise AttestationError(f"nitro: {what} is {len(value)} bytes; allowed: {low} to {high}")
    return value


def _parse_cose_sign1(document: bytes) -> tuple[bytes, bytes, bytes]:
    """Return (protected header bytes, payload, raw signature) of a COSE_Sign1 document."""
    if not 0 < len(document) <= MAX_NITRO_DOCUMENT_BYTES:
        raise AttestationError(
            f"nitro: size: document is {len(document)} bytes, "
            f"over the limit of {MAX_NITRO_DOCUMENT_BYTES}"
        )
    value = _decode_cbor(document, what="COSE_Sign1")
    if isinstance(value, cbor2.CBORTag):
        if value.tag != 18:
            raise AttestationError(f"nitro: COSE_Sign1: CBOR tag {value.tag}, expected 18")
        value = value.value
    # Inside a tag, cbor2 returns an immutable tuple (and frozendict maps).
    if not isinstance(value, list | tuple) or len(value) != 4:
        raise AttestationError("nitro: COSE_Sign1 must be a CBOR array of 4 items")
    protected_raw, unprotected, payload, signature = value
    protected_raw = _bytes_field(protected_raw, "COSE_Sign1: protected header", 1, 64)
    header = _decode_cbor(protected_raw, what="COSE_Sign1: protected header")
    if not isinstance(header, dict) or any(type(label) is not int for label in header):
        raise AttestationError("nitro: COSE_Sign1: protected header must be a map of int labels")
    alg = header.get(1)
    if type(alg) is not int or alg != COSE_ALG_ES384:
        raise AttestationError(
            f"nitro: COSE_Sign1: protected header alg is {alg!r}, expected -35 (ES384)"
        )
    if set(header) != {1}:
        extra = sorted(label for label in header if label != 1)
        raise AttestationError(f"nitro: COSE_Sign1: unsupported protected header labels {extra}")
    if not isinstance(unprotected, Mapping):
        raise AttestationError("nitro: COSE_Sign1: unprotected header must be a map")
    payload = _bytes_field(payload, "COSE_Sign1: payload", 1, MAX_NITRO_DOCUMENT_BYTES)
    signature = _bytes_field(
        signature, "COSE_Sign1: signature", ES384_SIGNATURE_BYTES, ES384_SIGNATURE_BYTES
    )
    return protected_raw, payload, signature


def _optional_bytes(fields: dict[str, Any], name: str, low: int) -> bytes | None:
    value = fields.get(name)
    if value is None:  # absent, or null as the NSM writes unset fields
        return None
    return _bytes_field(value, f"payload: field {name!r}", low, MAX_BOUND_DATA_BYTES)


def _parse_payload(payload: bytes) -> NitroDocument:
    """Check every field's presence, type and size (the NSM's syntactical validation)."""
    fields = _decode_cbor(payload, what="payload")
    if not isinstance(fields, dict) or any(not isinstance(key, str) for key in fields):
        raise AttestationError("nitro: payload must be a CBOR map with text keys")
    for name in _REQUIRED_FIELDS:
        if fields.get(name) is None:
            raise AttestationError(f"nitro: payload: missing field {name!r}")
    unknown = set(fields) - set(_REQUIRED_FIELDS) - set(_OPTIONAL_FIELDS)
    if unknown:
        raise AttestationError(f"nitro: payload: unknown fields {sorted(unknown)}")
    module_id, digest, timestamp = fields["module_id"], fields["digest"], fields["timestamp"]
    if not isinstance(module_id, str) or not 0 < len(module_id) <= 256:
        raise AttestationError("nitro: payload: field 'module_id' must be non-empty text")
    if digest != "SHA384":
        raise AttestationError(f"nitro: payload: field 'digest' is {digest!r}, expected 'SHA384'")
    if type(timestamp) is not int or not 0 < timestamp <= _MAX_TIMESTAMP_MS:
        raise AttestationError(
            "nitro: payload: field 'timestamp' must be a positive integer of milliseconds, "
            f"got {type(timestamp).__name__}"
        )
    pcrs = fields["pcrs"]
    if not isinstance(pcrs, dict) or not 1 <= len(pcrs) <= 32:
        raise AttestationError("nitro: payload: field 'pcrs' must be a map of 1 to 32 entries")
    for index, value in pcrs.items():
        if type(index) is not int or not 0 <= index < 32:
            raise AttestationError(f"nitro: payload: PCR index {index!r} is not in 0..31")
        if not isinstance(value, bytes) or len(value) not in _PCR_SIZES:
            raise AttestationError(f"nitro: payload: PCR{index} must be 32, 48 or 64 bytes")
    certificate = _bytes_field(
        fields["certificate"], "payload: field 'certificate'", 1, _MAX_CERTIFICATE_BYTES
    )
    cabundle = fields["cabundle"]
    if not isinstance(cabundle, list) or not 1 <= len(cabundle) <= _MAX_CABUNDLE:
        raise AttestationError(
            f"nitro: payload: field 'cabundle' must be an array of 1 to {_MAX_CABUNDLE} items"
        )
    bundle = tuple(
        _bytes_field(item, f"payload: cabundle[{position}]", 1, _MAX_CERTIFICATE_BYTES)
        for position, item in enumerate(cabundle)
    )
    return NitroDocument(
        module_id=module_id,
        digest=digest,
        timestamp=_EPOCH + timedelta(milliseconds=timestamp),
        pcrs=dict(sorted(pcrs.items())),
        certificate=certificate,
        cabundle=bundle,
        public_key=_optional_bytes(fields, "public_key", 1),
        user_data=_optional_bytes(fields, "user_data", 0),
        nonce=_optional_bytes(fields, "nonce", 0),
    )


def _describe(name: str, cert: x509.Certificate) -> str:
    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return f"{name} ({common_names[0].value!s})" if common_names else name


def _load_certificate(der: bytes, name: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise AttestationError(f"nitro: certificate chain: {name} is not DER: {exc}") from exc


def _extension(cert: x509.Certificate, kind: type[Any]) -> Any:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _check_ca(name: str, cert: x509.Certificate, below: int) -> None:
    """Check that ``cert`` may issue certificates, with ``below`` CA certificates under it."""
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        raise AttestationError(f"nitro: certificate chain: {name} is not a CA certificate")
    if constraints.path_length is not None and below > constraints.path_length:
        raise AttestationError(
            f"nitro: certificate chain: {name} allows a path length of "
            f"{constraints.path_length} but has {below} CA certificates below it"
        )
    usage = _extension(cert, x509.KeyUsage)
    if usage is None or not usage.key_cert_sign:
        raise AttestationError(f"nitro: certificate chain: {name} may not sign certificates")


def _ordered_chain(
    document: NitroDocument, roots: Sequence[bytes]
) -> list[tuple[str, x509.Certificate]]:
    """Return [leaf, intermediate N, ..., intermediate 1, root], named for error messages.

    ``cabundle[0]`` must be byte-for-byte one of the pinned ``roots``.
    """
    if not roots:
        raise AttestationError("nitro: certificate chain: the policy pins no Nitro roots")
    if document.cabundle[0] not in roots:
        bundle_root = _load_certificate(document.cabundle[0], "cabundle[0]")
        raise AttestationError(
            "nitro: certificate chain: the document is not issued by a pinned root: "
            f"{_describe('cabundle[0]', bundle_root)} is not pinned"
        )
    chain = [("leaf certificate", _load_certificate(document.certificate, "leaf certificate"))]
    for position in range(len(document.cabundle) - 1, 0, -1):
        name = f"intermediate {position}"
        chain.append((name, _load_certificate(document.cabundle[position], name)))
    chain.append(("root certificate", _load_certificate(document.cabundle[0], "root")))
    return chain


def _check_links(chain: list[tuple[str, x509.Certificate]], at: datetime) -> None:
    """Each certificate is valid at ``at`` and signed by the next; all but the leaf are CAs."""
    for depth, (name, cert) in enumerate(chain):
        label = _describe(name, cert)
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            raise AttestationError(
                f"nitro: certificate chain: {label} is not valid at {at.isoformat()}; "
                f"it is valid from {cert.not_valid_before_utc.isoformat()} "
                f"to {cert.not_valid_after_utc.isoformat()}"
            )
        issuer_name, issuer = chain[min(depth + 1, len(chain) - 1)]  # the root signs itself
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, _CryptoInvalidSignature) as exc:
            raise AttestationError(
                f"nitro: certificate chain: {label} is not signed by "
                f"{_describe(issuer_name, issuer)}: {exc or 'bad signature'}"
            ) from exc
        if depth > 0:
            _check_ca(label, cert, below=depth - 1)
    leaf = chain[0][1]
    constraints = _extension(leaf, x509.BasicConstraints)
    usage = _extension(leaf, x509.KeyUsage)
    if (constraints is not None and constraints.ca) or usage is None or not usage.digital_signature:
        raise AttestationError(
            "nitro: certificate chain: the leaf certificate must be an end-entity certificate "
            "with the digitalSignature key usage"
        )


def _validate_path(chain: list[tuple[str, x509.Certificate]], at: datetime) -> None:
    """RFC 5280 path validation by ``cryptography``, as a second, independent check.

    It also refuses critical extensions that nothing understands. Nitro leaves carry no
    SAN and no authority key identifier, so the end-entity policy checks only what is there.
    """
    certificates = [cert for _, cert in chain]
    verifier = (
        PolicyBuilder()
        .store(Store([certificates[-1]]))
        .time(at)
        .max_chain_depth(len(certificates))
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ExtensionPolicy.permit_all()
        )
        .build_client_verifier()
    )
    try:
        verifier.verify(certificates[0], certificates[1:-1])
    except VerificationError as exc:
        raise AttestationError(f"nitro: certificate chain: path validation failed: {exc}") from exc


def _verify_chain(
    document: NitroDocument, roots: Sequence[bytes], at: datetime
) -> x509.Certificate:
    """Verify leaf -> cabundle (reversed) -> pinned root at time ``at``; return the leaf."""
    chain = _ordered_chain(document, roots)
    _check_links(chain, at)
    _validate_path(chain, at)
    return chain[0][1]


def _verify_signature(
    leaf: x509.Certificate, protected: bytes, payload: bytes, signature: bytes
) -> None:
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        raise AttestationError("nitro: signature: the leaf certificate's key is not P-384")
    to_be_signed = cbor2.dumps(["Signature1", protected, b"", payload])
    half = ES384_SIGNATURE_BYTES // 2
    der_signature = encode_dss_signature(
        int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
    )
    try:
        key.verify(der_signature, to_be_signed, ec.ECDSA(hashes.SHA384()))
    except _CryptoInvalidSignature as exc:
        raise AttestationError(
            "nitro: signature: the COSE_Sign1 signature does not verify with the leaf "
            "certificate's key"
        ) from exc


def authenticate_nitro_document(document: bytes, roots: Sequence[bytes]) -> NitroDocument:
    """Parse ``document`` and verify its chain to one of ``roots`` (DER) and its signature.

    Steps: size, COSE_Sign1 structure and ES384 header, payload fields, certificate chain
    (valid at the document's own timestamp; freshness is the policy's ``max_age``), and
    the COSE signature. Binds nothing: see ``NitroEvidenceVerifier`` for the worker key.
    """
    protected, payload, signature = _parse_cose_sign1(document)
    parsed = _parse_payload(payload)
    leaf = _verify_chain(parsed, roots, parsed.timestamp)
    _verify_signature(leaf, protected, payload, signature)
    return parsed


def _worker_key(public_key: bytes | None) -> bytes:
    if public_key is None:
        raise AttestationError(
            "nitro: worker key binding: the document has no public_key; the enclave must "
            "put the worker's Ed25519 public key there"
        )
    if len(public_key) == ED25519_PUBLIC_KEY_SIZE:
        return public_key
    try:
        key = serialization.load_der_public_key(public_key)
    except (ValueError, TypeError) as exc:
        raise AttestationError(
            f"nitro: worker key binding: public_key ({len(public_key)} bytes) is neither a raw "
            "Ed25519 key nor a DER SubjectPublicKeyInfo"
        ) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise AttestationError(
            "nitro: worker key binding: public_key holds a key of another type "
            f"({type(key).__name__}), not Ed25519"
        )
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _debug_reason(pcrs: Mapping[int, bytes]) -> str:
    missing = [f"PCR{index}" for index in _CODE_PCRS if index not in pcrs]
    if missing:
        raise AttestationError(f"nitro: measurements: the document lacks {', '.join(missing)}")
    zero = [f"PCR{index}" for index in _CODE_PCRS if not any(pcrs[index])]
    if not zero:
        return ""
    return (
        f"debug-mode enclave: {', '.join(zero)} all zero, so the measurements say nothing "
        "about the code and the host can read the enclave's memory"
    )


class NitroEvidenceVerifier:
    """Checks ``aws-nitro`` evidence against the policy's pinned roots (default: AWS's).

    After ``authenticate_nitro_document``: the worker key binding (``public_key`` holds
    the raw 32-byte Ed25519 key or its DER SubjectPublicKeyInfo) and the measurements
    (``PCR<n>`` as hex). Documents from debug-mode enclaves are marked insecure.
    """

    type = NITRO_EVIDENCE_TYPE

    def verify(
        self, document: bytes, policy: AttestationPolicy, now: datetime
    ) -> AttestationClaims:
        """Check a Nitro document and return its claims (``now`` is left to the policy)."""
        roots = policy.nitro_roots if policy.nitro_roots is not None else (aws_nitro_root_der(),)
        parsed = authenticate_nitro_document(document, roots)
        worker_key = _worker_key(parsed.public_key)
        reason = _debug_reason(parsed.pcrs)
        return AttestationClaims(
            type=NITRO_EVIDENCE_TYPE,
            worker_public_key=worker_key,
            measurements={f"PCR{index}": value.hex() for index, value in parsed.pcrs.items()},
            nonce=parsed.nonce,
            user_data=parsed.user_data,
            timestamp=parsed.timestamp,
            insecure=bool(reason),
            evidence_digest=sha256_hex(document),
            insecure_reason=reason,
        )
