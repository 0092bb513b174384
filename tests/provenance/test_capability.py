"""Capability tokens: issue, verify, and every way a token must be refused.

Forged tokens are built by hand here (base64url + JSON + a raw signature or HMAC), not
with the module under test, so that a bug in its encoder cannot hide a bug in its checks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from provenance.capability import (
    CAPABILITY_TOKEN_TYPE,
    MAX_LIFETIME,
    MAX_TOKEN_BYTES,
    CapabilityClaims,
    CapabilityScope,
    issue_capability,
    jwk_thumbprint,
    new_jti,
    verify_capability,
)
from provenance.errors import CapabilityError, ProvenanceError
from provenance.keys import PublicKey, SigningKey

NOW = datetime(2030, 5, 17, 12, 0, 0, tzinfo=UTC)
AUDIENCE = "tallystick-data-host"
HOST_DID = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
COORDINATOR = SigningKey.from_seed(b"\x01" * 32)
WORKER = SigningKey.from_seed(b"\x02" * 32).public_key
OTHER = SigningKey.from_seed(b"\x03" * 32)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _scope(**changes: Any) -> CapabilityScope:
    scope = CapabilityScope(
        job_id="job_01hx5v7",
        dataset_digest=hashlib.sha256(b"manifest payload").hexdigest(),
        operation="train",
        rounds=5,
        epsilon="2.5",
        delta="1e-05",
    )
    return replace(scope, **changes)


def _claims(**changes: Any) -> CapabilityClaims:
    claims = CapabilityClaims(
        issuer=COORDINATOR.public_key.did,
        subject=HOST_DID,
        audience=AUDIENCE,
        issued_at=NOW,
        expires_at=NOW + timedelta(minutes=15),
        jti=new_jti(),
        scope=_scope(),
        worker_jkt=jwk_thumbprint(WORKER),
        insecure_attestation=False,
    )
    return replace(claims, **changes)


def _verify(token: str, **overrides: Any) -> CapabilityClaims:
    arguments: dict[str, Any] = {
        "issuer": COORDINATOR.public_key,
        "audience": AUDIENCE,
        "worker_key": WORKER,
        "now": NOW,
    }
    arguments.update(overrides)
    issuer = arguments.pop("issuer")
    return verify_capability(token, issuer, **arguments)


def _hand_token(
    header: dict[str, Any],
    claims: dict[str, Any] | bytes,
    sign: Callable[[bytes], bytes] = COORDINATOR.sign,
) -> str:
    """A compact JWS built without the module under test."""
    payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(payload)}"
    return f"{signing_input}.{_b64url(sign(signing_input.encode('ascii')))}"


def _good_header() -> dict[str, Any]:
    return {"alg": "EdDSA", "typ": CAPABILITY_TOKEN_TYPE, "kid": COORDINATOR.public_key.did}


def _refused(step: str, detail: str = "") -> Any:
    """Expect a refusal at ``step`` whose message contains ``detail``."""
    return pytest.raises(CapabilityError, match=f"refused at step '{step}': .*{re.escape(detail)}")


# --- round trip -------------------------------------------------------------------------


@pytest.mark.parametrize("insecure", [False, True])
def test_issued_token_verifies_to_the_same_claims(insecure: bool) -> None:
    claims = _claims(insecure_attestation=insecure)
    token = issue_capability(COORDINATOR, claims)
    verified = _verify(token)
    assert verified == claims
    assert verified.insecure_attestation is insecure
    assert verified.scope.operation == "train"
    assert verified.scope.epsilon == "2.5"


def test_token_header_and_claims_on_the_wire() -> None:
    claims = _claims()
    token = issue_capability(COORDINATOR, claims)
    header_segment, payload_segment, _ = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(header_segment + "=="))
    payload = json.loads(base64.urlsafe_b64decode(payload_segment + "=="))
    assert header == {
        "alg": "EdDSA",
        "typ": "tallystick-capability+jwt",
        "kid": COORDINATOR.public_key.did,
    }
    assert payload["aud"] == AUDIENCE
    assert payload["iat"] == int(NOW.timestamp())
    assert payload["exp"] == int(NOW.timestamp()) + 15 * 60
    assert payload["cnf"] == {"jkt": jwk_thumbprint(WORKER)}
    assert payload["scope"]["dataset_digest"] == claims.scope.dataset_digest
    assert payload["tallystick_insecure_attestation"] is False


def test_sub_second_times_are_kept_to_whole_seconds() -> None:
    claims = _claims(issued_at=NOW.replace(microsecond=999_999))
    assert claims.issued_at == NOW
    assert _verify(issue_capability(COORDINATOR, claims)) == claims


def test_new_jti_is_unique_and_well_formed() -> None:
    first, second = new_jti(), new_jti()
    assert first != second
    assert len(first) >= 22
    assert _claims(jti=first).jti == first


# --- issuing refusals -------------------------------------------------------------------


def test_issuer_must_be_the_signing_key() -> None:
    with pytest.raises(CapabilityError, match="not the signing key's did:key"):
        issue_capability(OTHER, _claims())


def test_expiry_must_follow_issue_time() -> None:
    with pytest.raises(CapabilityError, match="must be after iat"):
        issue_capability(COORDINATOR, _claims(expires_at=NOW))


def test_lifetime_is_capped() -> None:
    at_cap = _claims(expires_at=NOW + MAX_LIFETIME)
    assert _verify(issue_capability(COORDINATOR, at_cap)) == at_cap
    with pytest.raises(CapabilityError, match="exceeds the maximum"):
        issue_capability(COORDINATOR, _claims(expires_at=NOW + MAX_LIFETIME + timedelta(seconds=1)))


def test_claims_refuse_malformed_fields() -> None:
    with pytest.raises(CapabilityError, match="jti is malformed"):
        _claims(jti="short")
    with pytest.raises(CapabilityError, match="cnf.jkt is malformed"):
        _claims(worker_jkt="not-a-thumbprint")
    with pytest.raises(CapabilityError, match="timezone-aware"):
        _claims(issued_at=datetime(2030, 1, 1))  # naive on purpose
    with pytest.raises(CapabilityError, match="rounds"):
        _scope(rounds=0)


# --- time -------------------------------------------------------------------------------


def test_expired_token_is_refused_after_the_leeway() -> None:
    token = issue_capability(COORDINATOR, _claims())
    expiry = NOW + timedelta(minutes=15)
    assert _verify(token, now=expiry + timedelta(seconds=29)).jti
    with _refused("expiry"):
        _verify(token, now=expiry + timedelta(seconds=30))
    with _refused("expiry"):
        _verify(token, now=expiry, leeway=timedelta(0))


def test_token_issued_in_the_future_is_refused() -> None:
    token = issue_capability(COORDINATOR, _claims())
    with _refused("issued-at"):
        _verify(token, now=NOW - timedelta(minutes=5))


def test_not_before_in_the_future_is_refused() -> None:
    claims = _claims().to_claims()
    claims["nbf"] = int(NOW.timestamp()) + 600
    token = _hand_token(_good_header(), claims)
    with _refused("not-before"):
        _verify(token)
    assert _verify(token, now=NOW + timedelta(minutes=10)).jti == claims["jti"]


def test_lifetime_over_the_cap_is_refused_even_when_signed() -> None:
    claims = _claims().to_claims()
    claims["exp"] = claims["iat"] + int(MAX_LIFETIME.total_seconds()) + 1
    with _refused("lifetime"):
        _verify(_hand_token(_good_header(), claims))


def test_naive_now_is_refused() -> None:
    token = issue_capability(COORDINATOR, _claims())
    with pytest.raises(CapabilityError, match="timezone-aware"):
        _verify(token, now=datetime(2030, 5, 17, 12, 0))  # naive on purpose


# --- who -------------------------------------------------------------------------------


def test_wrong_audience_is_refused() -> None:
    token = issue_capability(COORDINATOR, _claims())
    with _refused("audience"):
        _verify(token, audience="another-data-host")


def test_list_audience_is_refused() -> None:
    claims = _claims().to_claims()
    claims["aud"] = [AUDIENCE]
    with _refused("audience"):
        _verify(_hand_token(_good_header(), claims))


def test_wrong_issuer_key_is_refused() -> None:
    token = issue_capability(COORDINATOR, _claims())
    with _refused("header", "expected issuer"):
        _verify(token, issuer=OTHER.public_key)


def test_token_signed_by_another_key_under_the_issuers_kid_is_refused() -> None:
    token = _hand_token(_good_header(), _claims().to_claims(), sign=OTHER.sign)
    with _refused("signature"):
        _verify(token)


def test_iss_claim_must_name_the_issuer() -> None:
    claims = _claims().to_claims()
    claims["iss"] = OTHER.public_key.did
    with _refused("issuer"):
        _verify(_hand_token(_good_header(), claims))


def test_token_for_another_worker_key_is_refused() -> None:
    token = issue_capability(COORDINATOR, _claims())
    with _refused("confirmation"):
        _verify(token, worker_key=OTHER.public_key)


def test_cnf_with_extra_members_is_refused() -> None:
    claims = _claims().to_claims()
    claims["cnf"]["jwk"] = {"kty": "OKP"}
    with _refused("confirmation"):
        _verify(_hand_token(_good_header(), claims))


# --- header and signature ---------------------------------------------------------------


def test_alg_none_is_refused() -> None:
    header = {"alg": "none", "typ": CAPABILITY_TOKEN_TYPE, "kid": COORDINATOR.public_key.did}
    token = _hand_token(header, _claims().to_claims(), sign=lambda _: b"")
    with _refused("header", "alg 'none' is not allowed"):
        _verify(token)


def test_hmac_with_the_public_key_as_secret_is_refused() -> None:
    secret = COORDINATOR.public_key.raw
    header = {"alg": "HS256", "typ": CAPABILITY_TOKEN_TYPE, "kid": COORDINATOR.public_key.did}
    token = _hand_token(
        header,
        _claims().to_claims(),
        sign=lambda data: hmac.new(secret, data, hashlib.sha256).digest(),
    )
    with _refused("header", "alg 'HS256' is not allowed"):
        _verify(token)


def test_wrong_typ_is_refused() -> None:
    header = {**_good_header(), "typ": "JWT"}
    with _refused("header", "typ 'JWT'"):
        _verify(_hand_token(header, _claims().to_claims()))


@pytest.mark.parametrize(
    ("name", "value"),
    [("b64", False), ("crit", ["b64"]), ("jwk", {"kty": "OKP"}), ("x5u", "https://x.test")],
)
def test_extra_header_parameters_are_refused(name: str, value: Any) -> None:
    header = {**_good_header(), name: value}
    with _refused("header"):
        _verify(_hand_token(header, _claims().to_claims()))


def test_tampered_payload_is_refused() -> None:
    token = issue_capability(COORDINATOR, _claims())
    header, payload, signature = token.split(".")
    middle = len(payload) // 2
    flipped = "B" if payload[middle] != "B" else "C"
    tampered = f"{header}.{payload[:middle]}{flipped}{payload[middle + 1 :]}.{signature}"
    with _refused("signature"):
        _verify(tampered)


def test_non_canonical_signature_encoding_is_refused() -> None:
    token = issue_capability(COORDINATOR, _claims())
    head, _, signature = token.rpartition(".")
    # 64 bytes -> 86 characters; the last one carries 4 unused bits that must be zero.
    last = signature[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    sibling = alphabet[alphabet.index(last) ^ 1]
    with _refused("signature"):
        _verify(f"{head}.{signature[:-1]}{sibling}")


# --- size and shape ---------------------------------------------------------------------


def test_oversize_token_is_refused_before_anything_else() -> None:
    claims = _claims().to_claims()
    claims["sub"] = "did:web:" + "x" * MAX_TOKEN_BYTES
    with _refused("size"):
        _verify(_hand_token(_good_header(), claims))


@pytest.mark.parametrize(
    "token",
    ["", "a.b", "a.b.c.d", "é.b.c"],
)
def test_malformed_compact_form_is_refused(token: str) -> None:
    with _refused("size"):
        _verify(token)


def test_duplicate_claim_keys_are_refused() -> None:
    claims = _claims().to_claims()
    body = json.dumps(claims)[:-1] + ', "aud": "another-data-host"}'
    with _refused("payload"):
        _verify(_hand_token(_good_header(), body.encode()))


def test_unknown_claim_is_refused() -> None:
    claims = _claims().to_claims()
    claims["admin"] = True
    with _refused("claims", "admin"):
        _verify(_hand_token(_good_header(), claims))


@pytest.mark.parametrize("name", ["jti", "cnf", "scope", "tallystick_insecure_attestation"])
def test_missing_required_claim_is_refused(name: str) -> None:
    claims = _claims().to_claims()
    del claims[name]
    with _refused("claims", name):
        _verify(_hand_token(_good_header(), claims))


def test_non_integer_times_are_refused() -> None:
    claims = _claims().to_claims()
    claims["exp"] = float(claims["exp"])
    with _refused("claims", "exp"):
        _verify(_hand_token(_good_header(), claims))


# --- scope ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("dataset_digest", "A" * 64, "dataset_digest"),
        ("dataset_digest", "ab" * 16, "dataset_digest"),
        ("operation", "exfiltrate", "operation 'exfiltrate' is not allowed"),
        ("rounds", 0, "rounds"),
        ("rounds", True, "rounds"),
        ("rounds", "5", "rounds"),
        ("epsilon", "0", "epsilon '0' must be greater than 0"),
        ("epsilon", "-1", "epsilon '-1' is not a decimal"),
        ("epsilon", "abc", "epsilon 'abc' is not a decimal"),
        ("epsilon", "NaN", "epsilon 'NaN' is not a decimal"),
        ("epsilon", 1.5, "epsilon must be a string"),
        ("delta", "1", "delta '1' must lie strictly in"),
        ("delta", "0", "delta '0' must lie strictly in"),
        ("job_id", "", "job_id"),
    ],
)
def test_malformed_scope_is_refused(field: str, value: Any, message: str) -> None:
    claims = _claims().to_claims()
    claims["scope"][field] = value
    with _refused("scope", message):
        _verify(_hand_token(_good_header(), claims))


def test_scope_with_unknown_or_missing_fields_is_refused() -> None:
    data = _scope().to_dict()
    assert CapabilityScope.from_dict(data) == _scope()
    with pytest.raises(CapabilityError, match="unknown fields: budget_override"):
        CapabilityScope.from_dict({**data, "budget_override": "100"})
    del data["delta"]
    with pytest.raises(CapabilityError, match="lacks fields: delta"):
        CapabilityScope.from_dict(data)
    with pytest.raises(CapabilityError, match="JSON object"):
        CapabilityScope.from_dict(["train"])


def test_scope_accepts_evaluate_and_small_deltas() -> None:
    scope = _scope(operation="evaluate", delta="0.00001", epsilon="8")
    assert CapabilityScope.from_dict(scope.to_dict()) == scope


# --- thumbprint -------------------------------------------------------------------------


def test_thumbprint_matches_rfc8037_appendix_a3() -> None:
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    key = PublicKey(base64.urlsafe_b64decode(x + "="))
    assert jwk_thumbprint(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_capability_error_is_a_provenance_error() -> None:
    assert issubclass(CapabilityError, ProvenanceError)
