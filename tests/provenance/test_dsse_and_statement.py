"""DSSE envelopes and in-toto Statements: exact PAE, verification, hostile input."""

from __future__ import annotations

import base64
import json

import pytest

from provenance.dsse import Envelope, pae, sign_envelope, verify_envelope
from provenance.errors import EnvelopeError, StatementError
from provenance.keys import SigningKey
from provenance.statement import (
    PAYLOAD_TYPE,
    Statement,
    Subject,
    predicate_type,
    sign_statement,
    verify_statement,
)

CREATOR = SigningKey.from_seed(b"\x01" * 32)
OTHER = SigningKey.from_seed(b"\x02" * 32)


def test_pae_matches_the_dsse_spec_example() -> None:
    # From the DSSE protocol document: PAE("http://example.com/HelloWorld", "hello world").
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae("", b"") == b"DSSEv1 0  0 "
    assert pae("t\u00e9", b"\x00") == b"DSSEv1 3 t\xc3\xa9 1 \x00"


def test_sign_and_verify_round_trip_through_json() -> None:
    envelope = sign_envelope(b'{"a":1}', "application/json", [CREATOR, OTHER])
    parsed = Envelope.from_json(json.dumps(envelope.to_dict()))
    verified = verify_envelope(parsed, [CREATOR.public_key, OTHER.public_key], threshold=2)
    assert verified.payload == b'{"a":1}'
    assert {key.did for key in verified.signers} == {CREATOR.public_key.did, OTHER.public_key.did}


def test_url_safe_and_unpadded_base64_are_accepted() -> None:
    payload = bytes(range(250, 256)) * 3  # encodes with '+' / '/' characters
    envelope = sign_envelope(payload, "application/octet-stream", [CREATOR])
    document = envelope.to_dict()
    document["payload"] = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    document["signatures"][0]["sig"] = base64.urlsafe_b64encode(envelope.signatures[0].sig).decode()
    verified = verify_envelope(Envelope.from_dict(document), [CREATOR.public_key])
    assert verified.payload == payload


def test_tampered_payload_fails() -> None:
    envelope = sign_envelope(b"pay 10", "text/plain", [CREATOR])
    forged = Envelope(envelope.payload_type, b"pay 99", envelope.signatures)
    with pytest.raises(EnvelopeError, match="0 valid signature.*1 required"):
        verify_envelope(forged, [CREATOR.public_key])


def test_changed_payload_type_fails() -> None:
    envelope = sign_envelope(b"x", "text/plain", [CREATOR])
    forged = Envelope("application/json", envelope.payload, envelope.signatures)
    with pytest.raises(EnvelopeError, match="0 valid signature"):
        verify_envelope(forged, [CREATOR.public_key])
    with pytest.raises(EnvelopeError, match="payloadType is 'text/plain', expected"):
        verify_envelope(envelope, [CREATOR.public_key], payload_type="application/json")


def test_one_key_counts_once_toward_a_threshold() -> None:
    envelope = sign_envelope(b"x", "text/plain", [CREATOR])
    doubled = Envelope(envelope.payload_type, envelope.payload, envelope.signatures * 2)
    with pytest.raises(EnvelopeError, match="1 valid signature.*2 required"):
        verify_envelope(doubled, [CREATOR.public_key, OTHER.public_key], threshold=2)


def test_untrusted_signer_and_misleading_keyid() -> None:
    envelope = sign_envelope(b"x", "text/plain", [OTHER])
    with pytest.raises(EnvelopeError, match="0 valid signature"):
        verify_envelope(envelope, [CREATOR.public_key])
    lying = Envelope(
        envelope.payload_type,
        envelope.payload,
        (type(envelope.signatures[0])(envelope.signatures[0].sig, CREATOR.public_key.did),),
    )
    with pytest.raises(EnvelopeError, match="0 valid signature"):
        verify_envelope(lying, [CREATOR.public_key])


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("[]", "must be a JSON object"),
        ('{"payload":"eA==","signatures":[{"sig":"AA=="}]}', "'payloadType' must be"),
        ('{"payloadType":"t","signatures":[{"sig":"AA=="}]}', "'payload' is missing"),
        ('{"payload":"eA==","payloadType":"t","signatures":[]}', "non-empty list"),
        ('{"payload":"e!A=","payloadType":"t","signatures":[{"sig":"AA=="}]}', "not valid base64"),
        ('{"payload":"eA==","payloadType":"t","signatures":[{"sig":"A+_A"}]}', "mixes"),
        (
            '{"payload":"eA==","payloadType":"t","signatures":[{}]}',
            r"signatures\[0\].sig is missing",
        ),
        ('{"payload":"eA==","payloadType":"t","signatures":[{"sig":"AA==","keyid":1}]}', "keyid"),
        (
            '{"payload":"eA==","payloadType":"t","signatures":[{"sig":"AA=="}],"x":1}',
            "unknown fields: x",
        ),
        ('{"payload":"eA==","payload":"eA==","payloadType":"t","signatures":[]}', "more than once"),
    ],
)
def test_malformed_envelopes_name_the_field(document: str, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        Envelope.from_json(document)


def test_too_many_signatures_and_oversized_envelopes() -> None:
    many = {"payload": "eA==", "payloadType": "t", "signatures": [{"sig": "AA=="}] * 17}
    with pytest.raises(EnvelopeError, match="17 signatures, more than 16"):
        Envelope.from_dict(many)
    with pytest.raises(EnvelopeError, match="over the limit"):
        Envelope.from_json(b" " * (8 * 1024 * 1024 + 1))


def statement() -> Statement:
    return Statement(
        (Subject("model.safetensors", {"sha256": "ab" * 32}),),
        predicate_type("round-proof"),
        {"round": 3, "epsilon": "0.5"},
    )


def test_statement_round_trip() -> None:
    envelope = sign_statement(statement(), [CREATOR])
    assert envelope.payload_type == PAYLOAD_TYPE
    parsed = verify_statement(
        envelope, [CREATOR.public_key], predicate_type=predicate_type("round-proof")
    )
    assert parsed == statement()
    assert json.loads(envelope.payload)["_type"] == "https://in-toto.io/Statement/v1"


def test_statement_predicate_type_is_enforced() -> None:
    envelope = sign_statement(statement(), [CREATOR])
    with pytest.raises(
        StatementError, match="expected 'https://tallystick.dev/attestation/usage-receipt/v1'"
    ):
        verify_statement(
            envelope, [CREATOR.public_key], predicate_type=predicate_type("usage-receipt")
        )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"_type":"https://in-toto.io/Statement/v0.1"}', "_type is"),
        (b'{"_type":"https://in-toto.io/Statement/v1","subject":[]}', "non-empty list"),
        (b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a"}]}', "'digest' map"),
        (
            b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"AB"}}],"predicateType":"p"}',
            "lowercase hex",
        ),
        (
            b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"ab"}}],"predicateType":"p"}',
            "2 hex digits, expected 64",
        ),
        (
            b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha1":"ab"}}]}',
            "predicateType",
        ),
        (
            b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha1":"ab"}}],"predicateType":"p","predicate":[]}',
            "'predicate' must be an object",
        ),
    ],
)
def test_malformed_statements_are_rejected(payload: bytes, message: str) -> None:
    with pytest.raises(StatementError, match=message):
        Statement.from_payload(payload)


def test_predicate_names_are_checked() -> None:
    assert (
        predicate_type("dataset-manifest")
        == "https://tallystick.dev/attestation/dataset-manifest/v1"
    )
    with pytest.raises(StatementError, match="lowercase words"):
        predicate_type("Round Proof")
