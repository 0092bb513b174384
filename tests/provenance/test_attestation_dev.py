"""Dev evidence (always insecure), the Evidence record, the policy, and the verifier registry."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from provenance.attestation import (
    AttestationClaims,
    AttestationPolicy,
    AttestationPolicyError,
    DevEvidenceVerifier,
    Evidence,
    VerifiedAttestation,
    create_dev_evidence,
    register_verifier,
    registered_types,
    verify_evidence,
)
from provenance.attestation import base as attestation_base
from provenance.attestation.dev import DEV_SIGNING_CONTEXT
from provenance.canonical import canonical_json
from provenance.errors import AttestationError
from provenance.keys import SigningKey

ATTESTER = SigningKey.from_seed(b"\x11" * 32)
OTHER = SigningKey.from_seed(b"\x12" * 32)
WORKER = SigningKey.from_seed(b"\x13" * 32).public_key
CODE = {"code": "ab" * 32}
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
INSECURE_OK = AttestationPolicy(allow_insecure=True)


def _evidence(**overrides: Any) -> Evidence:
    arguments: dict[str, Any] = {
        "attester_key": ATTESTER,
        "worker_public_key": WORKER,
        "measurements": CODE,
        "now": T0,
    }
    arguments.update(overrides)
    return create_dev_evidence(**arguments)


def _parts(evidence: Evidence) -> tuple[dict[str, Any], bytes]:
    document = json.loads(evidence.document)
    statement = json.loads(base64.b64decode(document["statement"]))
    return statement, base64.b64decode(document["signature"])


def _repack(statement_bytes: bytes, signature: bytes) -> Evidence:
    document = canonical_json(
        {
            "signature": base64.b64encode(signature).decode(),
            "statement": base64.b64encode(statement_bytes).decode(),
        }
    )
    return Evidence(type="dev", document=document)


def _signed(statement: dict[str, Any], key: SigningKey = ATTESTER) -> Evidence:
    statement_bytes = canonical_json(statement)
    return _repack(statement_bytes, key.sign(DEV_SIGNING_CONTEXT + statement_bytes))


# --- dev evidence ---------------------------------------------------------------------------


def test_round_trip_through_json() -> None:
    evidence = _evidence(nonce=b"\x00nonce", user_data=b"round 3")
    parsed = Evidence.from_json(evidence.to_json())
    assert parsed == evidence
    result = verify_evidence(parsed, INSECURE_OK, now=T0 + timedelta(seconds=5))
    assert isinstance(result, VerifiedAttestation)
    assert result.type == "dev"
    assert result.worker_public_key == WORKER.raw
    assert result.worker_key == WORKER
    assert result.measurements == CODE
    assert result.nonce == b"\x00nonce"
    assert result.user_data == b"round 3"
    assert result.timestamp == T0
    assert result.evidence_digest == evidence.digest


def test_statement_has_the_documented_shape() -> None:
    statement, _ = _parts(_evidence(nonce=b"n"))
    assert statement == {
        "attester": ATTESTER.public_key.did,
        "measurements": CODE,
        "nonce": "bg==",
        "timestamp": "2026-03-01T12:00:00Z",
        "type": "tallystick-dev-attestation/v1",
        "user_data": None,
        "worker_public_key": WORKER.did,
    }


def test_dev_evidence_is_always_insecure_and_refused_by_default() -> None:
    evidence = _evidence()
    trusting = AttestationPolicy(trusted_dev_attesters=frozenset({ATTESTER.public_key.did}))
    for policy in (AttestationPolicy(), trusting):
        with pytest.raises(
            AttestationPolicyError, match=r"dev: policy: evidence is insecure \(dev evidence is"
        ):
            verify_evidence(evidence, policy, now=T0)
    allowed = AttestationPolicy(
        allow_insecure=True, trusted_dev_attesters=frozenset({ATTESTER.public_key.did})
    )
    result = verify_evidence(evidence, allowed, now=T0)
    assert result.insecure is True
    assert "software statement signed by a local key" in result.insecure_reason


def test_tampered_statement_is_refused() -> None:
    evidence = _evidence()
    statement, signature = _parts(evidence)
    statement["measurements"] = {"code": "cd" * 32}
    with pytest.raises(AttestationError, match="dev: signature: signature does not verify"):
        verify_evidence(_repack(canonical_json(statement), signature), INSECURE_OK, now=T0)


def test_tampered_signature_is_refused() -> None:
    evidence = _evidence()
    statement, signature = _parts(evidence)
    forged = bytes([signature[0] ^ 1]) + signature[1:]
    with pytest.raises(AttestationError, match="dev: signature"):
        verify_evidence(_repack(canonical_json(statement), forged), INSECURE_OK, now=T0)


def test_statement_signed_by_someone_else_than_its_attester_is_refused() -> None:
    statement, _ = _parts(_evidence())
    with pytest.raises(AttestationError, match="dev: signature"):
        verify_evidence(_signed(statement, key=OTHER), INSECURE_OK, now=T0)


def test_signature_without_the_signing_context_is_refused() -> None:
    statement, _ = _parts(_evidence())
    statement_bytes = canonical_json(statement)
    evidence = _repack(statement_bytes, ATTESTER.sign(statement_bytes))
    with pytest.raises(AttestationError, match="dev: signature"):
        verify_evidence(evidence, INSECURE_OK, now=T0)


def test_untrusted_attester_is_refused() -> None:
    policy = AttestationPolicy(
        allow_insecure=True, trusted_dev_attesters=frozenset({OTHER.public_key.did})
    )
    with pytest.raises(
        AttestationError,
        match=f"dev: attester: {ATTESTER.public_key.did} is not one of the policy's trusted",
    ):
        verify_evidence(_evidence(), policy, now=T0)
    assert verify_evidence(_evidence(attester_key=OTHER), policy, now=T0).insecure


def test_stale_timestamp_is_refused() -> None:
    policy = AttestationPolicy(allow_insecure=True, max_age=timedelta(minutes=10))
    assert verify_evidence(_evidence(), policy, now=T0 + timedelta(minutes=9))
    with pytest.raises(AttestationPolicyError, match="dev: policy: evidence is 660 s old"):
        verify_evidence(_evidence(), policy, now=T0 + timedelta(minutes=11))


def test_future_timestamp_is_refused() -> None:
    with pytest.raises(AttestationPolicyError, match="2026-03-01T12:00:00Z is in the future"):
        verify_evidence(_evidence(), INSECURE_OK, now=T0 - timedelta(minutes=6))


def test_measurement_mismatch_names_the_measurement() -> None:
    policy = AttestationPolicy(allow_insecure=True, expected_measurements={"code": "cd" * 32})
    with pytest.raises(
        AttestationPolicyError,
        match=f"measurement code does not match: expected {'cd' * 32}, got {'ab' * 32}",
    ):
        verify_evidence(_evidence(), policy, now=T0)


def test_nonce_must_match() -> None:
    policy = AttestationPolicy(allow_insecure=True, expected_nonce=b"round-7")
    assert verify_evidence(_evidence(nonce=b"round-7"), policy, now=T0).nonce == b"round-7"
    with pytest.raises(AttestationPolicyError, match="nonce does not match"):
        verify_evidence(_evidence(nonce=b"round-6"), policy, now=T0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "other/v1"}, "statement type is 'other/v1'"),
        ({"extra": 1}, "statement has unknown fields: extra"),
        ({"worker_public_key": "did:web:example.com"}, "worker_public_key: 'did:web"),
        ({"worker_public_key": 5}, "worker_public_key must be a did:key string"),
        ({"measurements": {}}, "measurements must be a non-empty object"),
        ({"measurements": {"code": "ABCD"}}, "measurement code must be lowercase hex"),
        ({"measurements": {"bad name": "ab"}}, "measurement name 'bad name' is not allowed"),
        ({"nonce": "not base64!"}, "nonce is not valid base64"),
        ({"user_data": 12}, "user_data must be base64 or null"),
        ({"nonce": base64.b64encode(b"n" * 1025).decode()}, "nonce is 1025 bytes"),
        ({"timestamp": "2026-03-01T12:00:00+00:00"}, "timestamp must be an RFC 3339 UTC time"),
        ({"timestamp": "2026-02-30T12:00:00Z"}, "timestamp is not a valid time"),
    ],
)
def test_malformed_statement_is_refused(change: dict[str, Any], message: str) -> None:
    statement, _ = _parts(_evidence())
    statement.update(change)
    with pytest.raises(AttestationError, match=message):
        verify_evidence(_signed(statement), INSECURE_OK, now=T0)


def test_missing_statement_field_is_refused() -> None:
    statement, _ = _parts(_evidence())
    del statement["attester"]
    with pytest.raises(AttestationError, match="dev: statement lacks fields: attester"):
        verify_evidence(_signed(statement), INSECURE_OK, now=T0)


def test_non_canonical_statement_is_refused() -> None:
    statement, _ = _parts(_evidence())
    spaced = json.dumps(statement, indent=1).encode()
    evidence = _repack(spaced, ATTESTER.sign(DEV_SIGNING_CONTEXT + spaced))
    with pytest.raises(AttestationError, match="dev: statement is not canonical JSON"):
        verify_evidence(evidence, INSECURE_OK, now=T0)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"not json", "dev: document is not valid JSON"),
        (b'{"statement": "e30="}', "must be an object with 'statement' and 'signature'"),
        (b'{"statement": 1, "signature": "AA=="}', "'statement' must be a base64 string"),
        (b'{"statement": "e30", "signature": "AA=="}', "'statement' is not valid base64"),
        (b"[" * 20000, "dev: document: 20000 bytes, over the limit"),
    ],
)
def test_malformed_document_is_refused(document: bytes, message: str) -> None:
    with pytest.raises(AttestationError, match=message):
        verify_evidence(Evidence(type="dev", document=document), INSECURE_OK, now=T0)


def test_create_refuses_bad_measurements() -> None:
    with pytest.raises(AttestationError, match="at least one measurement is needed"):
        _evidence(measurements={})
    with pytest.raises(AttestationError, match="measurement code must be lowercase hex"):
        _evidence(measurements={"code": "xyz"})
    with pytest.raises(AttestationError, match="user_data is 2000 bytes"):
        _evidence(user_data=b"u" * 2000)


# --- the Evidence record --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[]", "evidence must be a JSON object"),
        (b'{"type": "dev"}', "evidence field 'document' must be a string"),
        (b'{"type": 1, "document": "AA=="}', "evidence field 'type' must be a string"),
        (b'{"type": "dev", "document": "AA==", "x": 1}', "evidence has unknown fields: x"),
        (b'{"type": "dev", "document": "AB=="}', "'document' is not canonical base64"),
        (b'{"type": "dev", "document": "A_=="}', "'document' is not valid base64"),
        (b'{"type": "dev", "document": ""}', "evidence document must be non-empty"),
        (b'{"type": "Dev!", "document": "AA=="}', "evidence type 'Dev!' must be"),
        (b'{"type": "dev", "type": "x", "document": "AA=="}', "more than once"),
    ],
)
def test_malformed_evidence_json_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(AttestationError, match=message):
        Evidence.from_json(data)


def test_oversized_evidence_is_refused() -> None:
    with pytest.raises(AttestationError, match="evidence document is 65537 bytes, over the limit"):
        Evidence(type="dev", document=b"x" * (64 * 1024 + 1))


# --- policy and registry --------------------------------------------------------------------


def test_policy_checks_its_own_fields() -> None:
    with pytest.raises(AttestationError, match="policy: measurement PCR0 must be lowercase hex"):
        AttestationPolicy(expected_measurements={"PCR0": "not hex"})
    with pytest.raises(AttestationError, match="policy: trusted dev attester 'did:key:nope'"):
        AttestationPolicy(trusted_dev_attesters=frozenset({"did:key:nope"}))
    with pytest.raises(AttestationError, match="policy: max_age must be positive"):
        AttestationPolicy(max_age=timedelta(0))
    with pytest.raises(AttestationError, match="policy: nitro_roots must be a sequence of DER"):
        AttestationPolicy(nitro_roots=b"one DER root, not a tuple")  # type: ignore[arg-type]
    policy = AttestationPolicy(expected_measurements={"code": "AB"})
    assert dict(policy.expected_measurements) == {"code": "ab"}
    with pytest.raises(TypeError):
        policy.expected_measurements["code"] = "cd"  # type: ignore[index]


def test_naive_now_is_refused() -> None:
    with pytest.raises(AttestationError, match="'now' must be timezone-aware"):
        verify_evidence(_evidence(), INSECURE_OK, now=datetime(2026, 3, 1, 12, 0))


def test_unknown_type_names_the_type() -> None:
    with pytest.raises(
        AttestationError, match="unknown evidence type 'tdx'; known types: aws-nitro"
    ):
        verify_evidence(Evidence(type="tdx", document=b"x"), INSECURE_OK, now=T0)


def test_registry_refuses_silent_replacement() -> None:
    assert registered_types() == ("aws-nitro", "dev")
    with pytest.raises(AttestationError, match="evidence type 'dev' already has a verifier"):
        register_verifier(DevEvidenceVerifier())


def test_a_verifier_that_lies_about_its_type_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # Register on a copy of the registry, so that no other test sees this verifier.
    monkeypatch.setattr(attestation_base, "_VERIFIERS", dict(attestation_base._VERIFIERS))

    class Liar:
        type = "liar"

        def verify(
            self, document: bytes, policy: AttestationPolicy, now: datetime
        ) -> AttestationClaims:
            return AttestationClaims(
                type="aws-nitro",
                worker_public_key=WORKER.raw,
                measurements={},
                nonce=None,
                user_data=None,
                timestamp=now,
                insecure=False,
                evidence_digest="",
            )

    register_verifier(Liar())
    with pytest.raises(AttestationError, match="returned claims of type 'aws-nitro'"):
        verify_evidence(Evidence(type="liar", document=b"x"), AttestationPolicy(), now=T0)
