"""AWS Nitro evidence: real AWS documents, synthetic chains, and one broken thing at a time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from importlib import resources
from typing import Any

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from nitro_fixtures import (
    AT,
    AWS_DOCUMENT_2022,
    AWS_DOCUMENT_2022_TIME,
    AWS_DOCUMENT_2026,
    AWS_DOCUMENT_2026_TIME,
    NitroPki,
    ed25519_spki,
    es384_raw_signature,
    issue,
    make_pki,
    payload_fields,
    sign_document,
)

from provenance.attestation import (
    AWS_NITRO_ROOT_G1_SHA256,
    AttestationPolicy,
    AttestationPolicyError,
    Evidence,
    authenticate_nitro_document,
    aws_nitro_root_der,
    certificates_from_pem,
    verify_evidence,
)
from provenance.errors import AttestationError
from provenance.keys import SigningKey

WORKER = SigningKey.from_seed(b"\x07" * 32).public_key
NOW = AT + timedelta(seconds=30)
BEFORE, AFTER = AT - timedelta(days=1), AT + timedelta(days=1)


@pytest.fixture(scope="module")
def pki() -> NitroPki:
    return make_pki()


def _evidence(document: bytes) -> Evidence:
    return Evidence(type="aws-nitro", document=document)


def _valid_document(pki: NitroPki, **overrides: Any) -> bytes:
    fields = payload_fields(pki, public_key=WORKER.raw, **overrides)
    return sign_document(pki, fields)


def _verify(pki: NitroPki, document: bytes, **policy: Any) -> Any:
    return verify_evidence(_evidence(document), pki.policy(**policy), now=NOW)


# --- the shipped root and real AWS documents -------------------------------------------


def test_shipped_root_fingerprint() -> None:
    pem = (
        resources.files("provenance.attestation")
        .joinpath("roots/aws_nitro_root_g1.pem")
        .read_bytes()
    )
    root = x509.load_pem_x509_certificate(pem)
    fingerprint = root.fingerprint(hashes.SHA256()).hex(":").upper()
    assert fingerprint == (
        "64:1A:03:21:A3:E2:44:EF:E4:56:46:31:95:D6:06:31:"
        "7E:D7:CD:CC:3C:17:56:E0:98:93:F3:C6:8F:79:BB:5B"
    )
    assert root.subject.rfc4514_string() == "CN=aws.nitro-enclaves,OU=AWS,O=Amazon,C=US"
    assert fingerprint.replace(":", "").lower() == AWS_NITRO_ROOT_G1_SHA256
    assert aws_nitro_root_der() == root.public_bytes(serialization.Encoding.DER)
    assert certificates_from_pem(pem) == (aws_nitro_root_der(),)


def test_real_aws_document_verifies_against_the_shipped_root() -> None:
    # The default policy pins the real AWS root; the chain is checked at the document's time.
    now = AWS_DOCUMENT_2022_TIME + timedelta(seconds=5)
    result = verify_evidence(
        _evidence(AWS_DOCUMENT_2022), AttestationPolicy(max_age=timedelta(minutes=5)), now=now
    )
    assert result.insecure is False
    assert result.timestamp == AWS_DOCUMENT_2022_TIME
    assert result.worker_public_key.hex() == (
        "15db1c67adc9fce91f7da323c708b6e639f0585af8a4a091127f2dfdcfeaf808"
    )
    assert result.measurements["PCR0"].startswith("ea4212ee889ba1b4dbfe744aadecca8b")
    assert len(result.measurements) == 16
    assert result.nonce is not None
    assert len(result.nonce) == 12
    assert result.evidence_digest == _evidence(AWS_DOCUMENT_2022).digest


def test_real_aws_document_is_stale_a_day_later() -> None:
    with pytest.raises(AttestationPolicyError, match=r"is 86400 s old, older than the maximum"):
        verify_evidence(
            _evidence(AWS_DOCUMENT_2022),
            AttestationPolicy(max_age=timedelta(hours=1)),
            now=AWS_DOCUMENT_2022_TIME + timedelta(days=1),
        )


def test_real_aws_document_without_public_key_binds_no_worker() -> None:
    parsed = authenticate_nitro_document(AWS_DOCUMENT_2026, [aws_nitro_root_der()])
    assert parsed.timestamp == AWS_DOCUMENT_2026_TIME
    assert parsed.public_key is None
    assert len(parsed.cabundle) == 4
    with pytest.raises(
        AttestationError, match="worker key binding: the document has no public_key"
    ):
        verify_evidence(_evidence(AWS_DOCUMENT_2026), AttestationPolicy(allow_insecure=True))


def test_real_aws_document_with_a_flipped_signature_bit_fails() -> None:
    tampered = bytearray(AWS_DOCUMENT_2022)
    tampered[-1] ^= 0x01
    with pytest.raises(AttestationError, match="nitro: signature: the COSE_Sign1 signature"):
        verify_evidence(_evidence(bytes(tampered)), AttestationPolicy())


def test_real_aws_document_refused_under_a_synthetic_root(pki: NitroPki) -> None:
    with pytest.raises(AttestationError, match="not issued by a pinned root"):
        verify_evidence(_evidence(AWS_DOCUMENT_2022), pki.policy())


# --- a valid synthetic document ---------------------------------------------------------


@pytest.mark.parametrize("tagged", [False, True])
def test_valid_document_verifies(pki: NitroPki, tagged: bool) -> None:
    fields = payload_fields(pki, public_key=WORKER.raw, nonce=b"n" * 32, user_data=b"hello")
    document = sign_document(pki, fields, tagged=tagged)
    result = _verify(pki, document, expected_nonce=b"n" * 32, max_age=timedelta(minutes=5))
    assert result.type == "aws-nitro"
    assert result.worker_public_key == WORKER.raw
    assert result.worker_key == WORKER
    assert result.measurements["PCR0"] == "01" * 48
    assert result.measurements["PCR8"] == "09" * 48
    assert result.measurements["PCR15"] == "00" * 48
    assert result.nonce == b"n" * 32
    assert result.user_data == b"hello"
    assert result.timestamp == AT
    assert result.insecure is False
    assert result.insecure_reason == ""


def test_public_key_may_be_a_der_subject_public_key_info(pki: NitroPki) -> None:
    document = sign_document(pki, payload_fields(pki, public_key=ed25519_spki(WORKER.raw)))
    assert _verify(pki, document).worker_public_key == WORKER.raw


def test_expected_pcrs_that_match_are_accepted(pki: NitroPki) -> None:
    expected = {"PCR0": "01" * 48, "PCR1": "02" * 48, "PCR2": ("03" * 48).upper()}
    assert _verify(pki, _valid_document(pki), expected_measurements=expected).measurements


# --- the chain ---------------------------------------------------------------------------


def test_default_policy_pins_the_real_aws_root(pki: NitroPki) -> None:
    with pytest.raises(AttestationError, match=r"not issued by a pinned root: cabundle\[0\]"):
        verify_evidence(_evidence(_valid_document(pki)), AttestationPolicy(), now=NOW)


def test_another_pinned_root_is_refused(pki: NitroPki) -> None:
    other = make_pki(intermediates=1)
    policy = AttestationPolicy(nitro_roots=(other.root.der,))
    with pytest.raises(AttestationError, match="not issued by a pinned root"):
        verify_evidence(_evidence(_valid_document(pki)), policy, now=NOW)


def test_policy_pinning_no_roots_is_refused(pki: NitroPki) -> None:
    with pytest.raises(AttestationError, match="the policy pins no Nitro roots"):
        verify_evidence(_evidence(_valid_document(pki)), AttestationPolicy(nitro_roots=()), now=NOW)


def test_pinned_root_copied_into_a_foreign_bundle_is_refused(pki: NitroPki) -> None:
    # An attacker's chain with the genuine root's bytes put in front of it.
    attacker = make_pki()
    fields = payload_fields(attacker, public_key=WORKER.raw)
    fields["cabundle"][0] = pki.root.der
    document = sign_document(attacker, fields)
    with pytest.raises(
        AttestationError, match=r"intermediate 1 \(intermediate-1\.test.*\) is not signed by root"
    ):
        _verify(pki, document)


def test_expired_leaf_is_refused() -> None:
    expired = make_pki(leaf_not_after=AT - timedelta(seconds=1))
    with pytest.raises(
        AttestationError,
        match=r"nitro: certificate chain: leaf certificate \(i-0123.*\) is not valid at 2026-03-01",
    ):
        _verify(expired, _valid_document(expired))


def test_intermediate_not_yet_valid_is_refused() -> None:
    early = make_pki(first_intermediate_not_before=AT + timedelta(hours=1))
    with pytest.raises(AttestationError, match=r"intermediate 1 \(.*\) is not valid at"):
        _verify(early, _valid_document(early))


def test_bundle_in_the_wrong_order_is_refused(pki: NitroPki) -> None:
    fields = payload_fields(pki, public_key=WORKER.raw)
    fields["cabundle"] = [pki.root.der, pki.intermediates[1].der, pki.intermediates[0].der]
    with pytest.raises(AttestationError, match="is not signed by"):
        _verify(pki, sign_document(pki, fields))


def test_intermediate_that_is_not_a_ca_is_refused(pki: NitroPki) -> None:
    not_ca = issue(
        "not-a-ca",
        pki.root,
        ca=False,
        not_before=AT - timedelta(days=1),
        not_after=AT + timedelta(days=1),
        key_usage="ca",
    )
    leaf = issue(
        "leaf",
        not_ca,
        ca=False,
        not_before=AT - timedelta(hours=1),
        not_after=AT + timedelta(hours=1),
    )
    bad = NitroPki(pki.root, (not_ca,), leaf)
    with pytest.raises(AttestationError, match=r"intermediate 1 \(not-a-ca\) is not a CA"):
        _verify(bad, _valid_document(bad))


def test_path_length_is_enforced(pki: NitroPki) -> None:
    tight = issue("tight", pki.root, ca=True, path_length=0, not_before=BEFORE, not_after=AFTER)
    below = issue("below", tight, ca=True, path_length=0, not_before=BEFORE, not_after=AFTER)
    leaf = issue("leaf", below, ca=False, not_before=BEFORE, not_after=AFTER)
    bad = NitroPki(pki.root, (tight, below), leaf)
    with pytest.raises(
        AttestationError, match=r"intermediate 1 \(tight\) allows a path length of 0"
    ):
        _verify(bad, _valid_document(bad))


def test_leaf_without_digital_signature_usage_is_refused(pki: NitroPki) -> None:
    leaf = issue(
        "leaf",
        pki.intermediates[-1],
        ca=False,
        key_usage="none",
        not_before=BEFORE,
        not_after=AFTER,
    )
    bad = replace(pki, leaf=leaf)
    with pytest.raises(AttestationError, match="must be an end-entity certificate"):
        _verify(bad, _valid_document(bad))


def test_leaf_that_is_a_ca_is_refused(pki: NitroPki) -> None:
    leaf = issue(
        "leaf",
        pki.intermediates[-1],
        ca=True,
        path_length=0,
        key_usage="leaf",
        not_before=BEFORE,
        not_after=AFTER,
    )
    bad = replace(pki, leaf=leaf)
    with pytest.raises(AttestationError, match="must be an end-entity certificate"):
        _verify(bad, _valid_document(bad))


@pytest.mark.parametrize("where", ["leaf", "intermediate"])
def test_unknown_critical_extension_is_refused(pki: NitroPki, where: str) -> None:
    # Only the RFC 5280 path validation step looks at critical extensions it does not know.
    if where == "leaf":
        leaf = issue(
            "leaf",
            pki.intermediates[-1],
            ca=False,
            not_before=BEFORE,
            not_after=AFTER,
            unknown_critical_extension=True,
        )
        bad = replace(pki, leaf=leaf)
    else:
        odd = issue(
            "odd",
            pki.root,
            ca=True,
            not_before=BEFORE,
            not_after=AFTER,
            unknown_critical_extension=True,
        )
        leaf = issue("leaf", odd, ca=False, not_before=BEFORE, not_after=AFTER)
        bad = NitroPki(pki.root, (odd,), leaf)
    with pytest.raises(
        AttestationError,
        match="certificate chain: path validation failed: .*unaccounted-for critical extensions",
    ):
        _verify(bad, _valid_document(bad))


def test_leaf_key_that_is_not_p384_is_refused(pki: NitroPki) -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "p256")]))
        .issuer_name(pki.intermediates[-1].cert.subject)
        .public_key(p256.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(AT - timedelta(hours=1))
        .not_valid_after(AT + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .sign(pki.intermediates[-1].key, hashes.SHA384())
    )
    fields = payload_fields(pki, public_key=WORKER.raw)
    fields["certificate"] = cert.public_bytes(serialization.Encoding.DER)
    with pytest.raises(AttestationError, match="leaf certificate's key is not P-384"):
        _verify(pki, sign_document(pki, fields))


# --- the COSE signature and header ------------------------------------------------------


def test_tampered_payload_byte_is_refused(pki: NitroPki) -> None:
    document = bytearray(_valid_document(pki))
    offset = document.index(b"i-0123456789abcdef0-enc")
    document[offset + 2] = ord("9")  # still valid CBOR text, different module_id
    with pytest.raises(AttestationError, match="nitro: signature: the COSE_Sign1 signature"):
        _verify(pki, bytes(document))


def test_tampered_signature_is_refused(pki: NitroPki) -> None:
    document = bytearray(_valid_document(pki))
    document[-10] ^= 0x40
    with pytest.raises(AttestationError, match="nitro: signature"):
        _verify(pki, bytes(document))


def test_document_signed_by_another_key_is_refused(pki: NitroPki) -> None:
    fields = payload_fields(pki, public_key=WORKER.raw)
    document = sign_document(pki, fields, signing_key=ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(AttestationError, match="nitro: signature"):
        _verify(pki, document)


@pytest.mark.parametrize(
    ("protected", "message"),
    [
        ({1: -7}, r"protected header alg is -7, expected -35 \(ES384\)"),
        ({}, r"protected header alg is None"),
        ({1: -35, 4: b"kid"}, r"unsupported protected header labels \[4\]"),
        ({True: -35}, r"protected header must be a map of int labels"),
    ],
)
def test_protected_header_must_say_es384(
    pki: NitroPki, protected: dict[Any, Any], message: str
) -> None:
    fields = payload_fields(pki, public_key=WORKER.raw)
    with pytest.raises(AttestationError, match=message):
        _verify(pki, sign_document(pki, fields, protected=protected))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (cbor2.dumps(cbor2.CBORTag(98, [])), "CBOR tag 98, expected 18"),
        (cbor2.dumps([b"", {}, b""]), "must be a CBOR array of 4 items"),
        (cbor2.dumps({"a": 1}), "must be a CBOR array of 4 items"),
        (b"\xff\x00", "COSE_Sign1: not valid CBOR"),
        (cbor2.dumps([cbor2.dumps({1: -35}), {}, b"x", b"\x00" * 64]), "signature is 64 bytes"),
        (cbor2.dumps([cbor2.dumps({1: -35}), [], b"x", b"\x00" * 96]), "unprotected header"),
        (cbor2.dumps([cbor2.dumps({1: -35}), {}, "text", b"\x00" * 96]), "payload must be a byte"),
    ],
)
def test_malformed_cose_is_refused(pki: NitroPki, document: bytes, message: str) -> None:
    with pytest.raises(AttestationError, match=message):
        _verify(pki, document)


def test_trailing_bytes_are_refused(pki: NitroPki) -> None:
    with pytest.raises(AttestationError, match="COSE_Sign1: 1 bytes after the CBOR"):
        _verify(pki, _valid_document(pki) + b"\x00")


def test_oversized_document_is_refused(pki: NitroPki) -> None:
    document = _valid_document(pki)
    padded = document + b"\x00" * (16 * 1024 + 1 - len(document))
    with pytest.raises(AttestationError, match="nitro: size: document is 16385 bytes, over the"):
        _verify(pki, padded)


# --- payload fields -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle"]
)
def test_missing_field_is_refused(pki: NitroPki, name: str) -> None:
    fields = payload_fields(pki, public_key=WORKER.raw)
    del fields[name]
    with pytest.raises(AttestationError, match=f"nitro: payload: missing field '{name}'"):
        _verify(pki, sign_document(pki, fields))


def _set(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(fields: dict[str, Any]) -> None:
        fields[name] = value

    return change


def _set_pcr(index: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(fields: dict[str, Any]) -> None:
        fields["pcrs"][index] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("timestamp", "2026-03-01"), "field 'timestamp' must be a positive integer"),
        (_set("timestamp", True), "field 'timestamp' must be a positive integer"),
        (_set("timestamp", 0), "field 'timestamp' must be a positive integer"),
        (_set("module_id", ""), "field 'module_id' must be non-empty text"),
        (_set("module_id", b"bytes"), "field 'module_id' must be non-empty text"),
        (_set("digest", "SHA256"), "field 'digest' is 'SHA256', expected 'SHA384'"),
        (_set("pcrs", [b"\x01" * 48]), "field 'pcrs' must be a map of 1 to 32 entries"),
        (_set("pcrs", {}), "field 'pcrs' must be a map of 1 to 32 entries"),
        (_set_pcr(0, b"\x01" * 47), "PCR0 must be 32, 48 or 64 bytes"),
        (_set_pcr(32, b"\x01" * 48), "PCR index 32 is not in 0..31"),
        (_set_pcr("0", b"\x01" * 48), "PCR index '0' is not in 0..31"),
        (_set("certificate", "PEM"), "field 'certificate' must be a byte string, got str"),
        (_set("certificate", b"\x30" * 1025), "field 'certificate' is 1025 bytes"),
        (_set("cabundle", b"der"), "field 'cabundle' must be an array of 1 to 16 items"),
        (_set("cabundle", []), "field 'cabundle' must be an array of 1 to 16 items"),
        (_set("cabundle", ["x"]), r"cabundle\[0\] must be a byte string"),
        (_set("public_key", "key"), "field 'public_key' must be a byte string"),
        (_set("public_key", b""), "field 'public_key' is 0 bytes"),
        (_set("user_data", b"u" * 1025), "field 'user_data' is 1025 bytes"),
        (_set("nonce", 7), "field 'nonce' must be a byte string, got int"),
        (_set("extra", 1), r"unknown fields \['extra'\]"),
    ],
)
def test_malformed_field_is_refused(
    pki: NitroPki, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    fields = payload_fields(pki, public_key=WORKER.raw)
    change(fields)
    with pytest.raises(AttestationError, match=message):
        _verify(pki, sign_document(pki, fields))


def test_duplicate_payload_keys_are_refused(pki: NitroPki) -> None:
    fields = payload_fields(pki, public_key=WORKER.raw)
    payload = cbor2.dumps(fields)
    # Append a second "digest" entry by hand: bump the map length and add the pair.
    assert payload[0] == 0xA9
    duplicated = bytes([0xAA]) + payload[1:] + cbor2.dumps("digest") + cbor2.dumps("SHA384")
    protected = cbor2.dumps({1: -35})
    signature = es384_raw_signature(
        pki.leaf.key, cbor2.dumps(["Signature1", protected, b"", duplicated])
    )
    document = cbor2.dumps([protected, {}, duplicated, signature])
    with pytest.raises(AttestationError, match="payload: not valid CBOR.*[Dd]uplicate"):
        _verify(pki, document)


# --- worker key binding ------------------------------------------------------------------


def test_missing_public_key_is_refused(pki: NitroPki) -> None:
    document = sign_document(pki, payload_fields(pki, public_key=None))
    with pytest.raises(
        AttestationError, match="worker key binding: the document has no public_key"
    ):
        _verify(pki, document)


def test_public_key_of_another_type_is_refused(pki: NitroPki) -> None:
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = p256.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    document = sign_document(pki, payload_fields(pki, public_key=spki))
    with pytest.raises(AttestationError, match="worker key binding: public_key holds a key of"):
        _verify(pki, document)


def test_public_key_that_is_no_key_is_refused(pki: NitroPki) -> None:
    document = sign_document(pki, payload_fields(pki, public_key=b"\x01" * 33))
    with pytest.raises(AttestationError, match=r"public_key \(33 bytes\) is neither a raw Ed25519"):
        _verify(pki, document)


# --- measurements, debug mode and policy ----------------------------------------------------


def test_pcr_mismatch_names_the_pcr(pki: NitroPki) -> None:
    expected = {"PCR0": "01" * 48, "PCR2": "ff" * 48}
    with pytest.raises(
        AttestationPolicyError,
        match=f"measurement PCR2 does not match: expected {'ff' * 48}, got {'03' * 48}",
    ):
        _verify(pki, _valid_document(pki), expected_measurements=expected)


def test_expected_pcr_that_is_absent_is_refused(pki: NitroPki) -> None:
    pcrs = {index: bytes([index + 1]) * 48 for index in range(3)}
    document = _valid_document(pki, pcrs=pcrs)
    with pytest.raises(AttestationPolicyError, match="measurement PCR4 is expected but the evid"):
        _verify(pki, document, expected_measurements={"PCR4": "05" * 48})


def test_document_without_code_pcrs_is_refused(pki: NitroPki) -> None:
    document = _valid_document(pki, pcrs={3: b"\x01" * 48})
    with pytest.raises(AttestationError, match="measurements: the document lacks PCR0, PCR1, PCR2"):
        _verify(pki, document)


def test_debug_mode_enclave_is_insecure_and_refused(pki: NitroPki) -> None:
    pcrs = {index: bytes(48) for index in range(16)}
    document = _valid_document(pki, pcrs=pcrs)
    with pytest.raises(
        AttestationPolicyError,
        match=r"evidence is insecure \(debug-mode enclave: PCR0, PCR1, PCR2 all zero",
    ):
        _verify(pki, document)
    result = _verify(pki, document, allow_insecure=True)
    assert result.insecure is True
    assert "debug-mode enclave" in result.insecure_reason


def test_nonce_mismatch_is_refused(pki: NitroPki) -> None:
    document = _valid_document(pki, nonce=b"a" * 16)
    with pytest.raises(AttestationPolicyError, match="nonce does not match the expected nonce"):
        _verify(pki, document, expected_nonce=b"b" * 16)


def test_missing_nonce_is_refused_when_one_is_expected(pki: NitroPki) -> None:
    with pytest.raises(AttestationPolicyError, match="a nonce is expected but the evidence"):
        _verify(pki, _valid_document(pki), expected_nonce=b"b" * 16)


def test_old_document_is_refused(pki: NitroPki) -> None:
    document = _valid_document(pki)
    with pytest.raises(AttestationPolicyError, match="evidence is 600 s old, older than the max"):
        verify_evidence(
            _evidence(document),
            pki.policy(max_age=timedelta(minutes=5)),
            now=AT + timedelta(minutes=10),
        )


def test_document_from_the_future_is_refused(pki: NitroPki) -> None:
    with pytest.raises(AttestationPolicyError, match="is in the future"):
        verify_evidence(
            _evidence(_valid_document(pki)), pki.policy(), now=AT - timedelta(minutes=10)
        )


def test_unknown_evidence_type_is_refused(pki: NitroPki) -> None:
    evidence = Evidence(type="sev-snp", document=_valid_document(pki))
    with pytest.raises(
        AttestationError, match="unknown evidence type 'sev-snp'; known types: aws-nitro, dev"
    ):
        verify_evidence(evidence, pki.policy(), now=NOW)
