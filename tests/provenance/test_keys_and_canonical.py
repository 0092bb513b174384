"""Keys on disk, did:key, canonical JSON and bounded parsing."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from provenance.canonical import canonical_json, digest_of, parse_json
from provenance.errors import CanonicalizationError, InvalidSignature, KeyFormatError
from provenance.keys import (
    PublicKey,
    SigningKey,
    load_public_key,
    load_signing_key,
    write_public_key,
    write_signing_key,
)


def test_private_key_file_is_owner_only_and_round_trips(tmp_path: Path) -> None:
    key = SigningKey.generate()
    path = tmp_path / "worker.key"
    write_signing_key(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_signing_key(path).public_key == key.public_key
    with pytest.raises(KeyFormatError, match="refusing to overwrite"):
        write_signing_key(SigningKey.generate(), path)


def test_private_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "leaky.key"
    write_signing_key(SigningKey.generate(), path)
    path.chmod(0o644)
    with pytest.raises(KeyFormatError, match="mode 0644.*chmod 600"):
        load_signing_key(path)


def test_key_repr_never_shows_private_bytes() -> None:
    key = SigningKey.from_seed(b"\x07" * 32)
    assert "did:key:" in repr(key)
    assert (b"\x07" * 32).hex() not in repr(key)


def test_did_key_matches_the_w3c_example() -> None:
    # did:key spec test vector (Ed25519, from the did-key test suite).
    did = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
    key = PublicKey.from_did(did)
    assert key.did == did
    assert len(key.raw) == 32


def test_did_key_rejections() -> None:
    with pytest.raises(KeyFormatError, match="not a base58btc did:key"):
        PublicKey.from_did("did:web:example.com")
    with pytest.raises(KeyFormatError, match="not base58btc"):
        PublicKey.from_did("did:key:z0OIl")
    with pytest.raises(KeyFormatError, match="not an Ed25519 did:key"):
        PublicKey.from_did("did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme")


def test_public_key_files_pem_and_did(tmp_path: Path) -> None:
    key = SigningKey.generate().public_key
    write_public_key(key, tmp_path / "a.pub")
    (tmp_path / "b.did").write_text(key.did + "\n")
    assert load_public_key(tmp_path / "a.pub") == key
    assert load_public_key(tmp_path / "b.did") == key
    (tmp_path / "c.txt").write_text("hello")
    with pytest.raises(KeyFormatError, match="neither a PEM public key nor a did:key"):
        load_public_key(tmp_path / "c.txt")


def test_signature_verification() -> None:
    key = SigningKey.generate()
    signature = key.sign(b"message")
    key.public_key.verify(signature, b"message")
    with pytest.raises(InvalidSignature, match="does not verify"):
        key.public_key.verify(signature, b"messagE")
    with pytest.raises(InvalidSignature, match="64 bytes"):
        key.public_key.verify(signature[:63], b"message")


def test_canonical_json_follows_rfc8785() -> None:
    assert (
        canonical_json({"b": [1, "é"], "a": 1.0, "c": None})
        == '{"a":1,"b":[1,"é"],"c":null}'.encode()
    )
    assert digest_of({"a": 1}) == digest_of({"a": 1.0})
    with pytest.raises(CanonicalizationError):
        canonical_json({"n": 2**60})
    with pytest.raises(CanonicalizationError):
        canonical_json({"f": float("nan")})


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b'{"a":1,"a":2}', "key 'a' more than once"),
        (b'{"a":NaN}', "non-finite"),
        (b'{"a":', "not valid JSON"),
        (b"\xff{}", "not valid UTF-8"),
        (b"[" * 70 + b"]" * 70, "deeper than 64"),
        (b" " * 2000, "over the limit of 1000"),
    ],
)
def test_parse_json_limits(document: bytes, message: str) -> None:
    with pytest.raises(CanonicalizationError, match=message):
        parse_json(document, max_bytes=1000)


def test_overlong_integer_literals_are_a_clean_error() -> None:
    with pytest.raises(CanonicalizationError, match="too long to read"):
        parse_json(b'{"n":' + b"1" * 5000 + b"}")
