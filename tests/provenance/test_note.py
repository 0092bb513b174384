"""C2SP signed notes against the Go reference's own test vectors, plus our rejections."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from provenance.errors import NoteError
from provenance.keys import SigningKey
from provenance.note import (
    CosignatureSigner,
    CosignatureVerifier,
    Ed25519NoteVerifier,
    NoteSigner,
    add_signatures,
    open_note,
    parse_note,
    parse_verifier_key,
    sign_note,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "signed_note.json").read_text("utf-8")
)
PETER = VECTORS["verifier_list_cases"]["peter"]
ENOCH = VECTORS["verifier_list_cases"]["enoch"]
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)


@pytest.mark.parametrize("key", VECTORS["keys"], ids=lambda key: key["name"])
def test_verifier_keys_parse_and_format_identically(key: dict[str, Any]) -> None:
    verifier = parse_verifier_key(key["vkey"])
    assert verifier.name == key["name"]
    assert verifier.key_id.hex() == key["key_id_hex"]
    assert verifier.public_key.raw.hex() == key["public_key_hex"]
    assert verifier.vkey == key["vkey"]
    if "ed25519_seed_hex" in key:
        signing = SigningKey.from_seed(bytes.fromhex(key["ed25519_seed_hex"]))
        assert signing.public_key == verifier.public_key


def test_signing_reproduces_the_reference_signature_line() -> None:
    peter = next(key for key in VECTORS["keys"] if key["name"] == "PeterNeumann")
    signer = NoteSigner(
        "PeterNeumann", SigningKey.from_seed(bytes.fromhex(peter["ed25519_seed_hex"]))
    )
    note = VECTORS["notes"][0]
    assert sign_note(note["text"], [signer]).decode("utf-8") == note["message"]


def test_reference_notes_open_with_the_expected_signers() -> None:
    single = VECTORS["notes"][0]
    opened = open_note(single["message"].encode(), [parse_verifier_key(PETER)])
    assert opened.text == single["text"]
    assert opened.verified_by == ("PeterNeumann",)
    both = VECTORS["notes"][1]
    for case in both["cases"]:
        verifiers = [parse_verifier_key(v) for v in case["verifier_keys"]]
        if case["expect"] == "error":
            with pytest.raises(NoteError, match="no signature by a trusted key"):
                open_note(both["message"].encode(), verifiers)
            continue
        opened = open_note(both["message"].encode(), verifiers)
        assert [f"{s.name}+{s.key_id.hex()}" for s in opened.verified] == case["Sigs"]
        assert [f"{s.name}+{s.key_id.hex()}" for s in opened.unverified] == case.get(
            "UnverifiedSigs", []
        )


def test_reference_invalid_signature_is_rejected() -> None:
    case = next(c for c in VECTORS["negative"] if c["id"] == "invalid-signature")
    with pytest.raises(NoteError):
        open_note(bytes.fromhex(case["message_hex"]), [parse_verifier_key(PETER)])


def test_more_than_100_signatures_is_malformed() -> None:
    line = VECTORS["notes"][0]["signature_line"]
    with pytest.raises(NoteError, match="more than 100"):
        open_note((TEXT + "\n" + line * 101).encode(), [parse_verifier_key(PETER)])


def test_ambiguous_verifiers_are_refused() -> None:
    enoch = parse_verifier_key(ENOCH)
    impostor = Ed25519NoteVerifier(enoch.name, SigningKey.generate().public_key)
    object.__setattr__(impostor, "name", enoch.name)
    message = VECTORS["notes"][1]["message"].encode()

    # Same name and key ID but a different key cannot happen by chance; simulate it.
    class Colliding(Ed25519NoteVerifier):
        @property
        def key_id(self) -> bytes:
            return enoch.key_id

    with pytest.raises(NoteError, match="ambiguous key EnochRoot\\+af0cfe78"):
        open_note(message, [enoch, Colliding(enoch.name, impostor.public_key)])


@pytest.mark.parametrize(
    "vkey",
    [
        case["vkey"]
        for entry in VECTORS["vkey_negative"]
        for case in ([entry] if "vkey" in entry else entry.get("cases", []))
    ],
)
def test_reference_bad_verifier_keys_are_rejected(vkey: str) -> None:
    with pytest.raises(NoteError):
        parse_verifier_key(vkey)


def test_every_truncation_and_increment_of_a_vkey_is_rejected() -> None:
    for end in range(len(PETER)):
        with pytest.raises(NoteError):
            parse_verifier_key(PETER[:end])
    for position in range(len(PETER)):
        changed = PETER[:position] + chr(ord(PETER[position]) + 1) + PETER[position + 1 :]
        with pytest.raises(NoteError):
            parse_verifier_key(changed)


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("bad name+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "whitespace"),
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "lowercase hex"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TX", "does not match"),
        (
            "PeterNeumann+c74f20a3+BRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "unknown signature type 0x05",
        ),
    ],
)
def test_bad_verifier_keys_name_the_problem(vkey: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        parse_verifier_key(vkey)


@pytest.mark.parametrize(
    ("note", "message"),
    [
        ("no blank line\n\u2014 a AAAA\n".encode(), "no blank line"),
        (b"text\n\n- PeterNeumann AAAAAA==\n", "does not start with"),
        ("text\n\n\u2014 PeterNeumann\n".encode(), "name signature"),
        ("text\n\n\u2014 PeterNeumann x08go/ZJ!!\n".encode(), "not valid base64"),
        ("text\n\n\u2014 PeterNeumann x08g\n".encode(), "too short"),
        ("text\n\n\u2014 PeterNeumann x08go/ZJkuBS9UG/Sffcv=\n".encode(), "base64"),
        ("te\x07xt\n\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFup\n".encode(), "control"),
        (b"text\n\n\xff\n", "UTF-8"),
        (
            VECTORS["notes"][0]["message"].replace("JnAM=", "JnAN=").encode(),
            "not canonical base64",
        ),
        ("text\n\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFup".encode(), "newline"),
        (b"x" * (1024 * 1024 + 1), "over the limit"),
    ],
)
def test_malformed_notes_are_rejected_precisely(note: bytes, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        parse_note(note)


def test_unknown_signers_only_means_unverified() -> None:
    message = VECTORS["notes"][0]["message"].encode()
    with pytest.raises(NoteError, match="no signature by a trusted key .signed by: PeterNeumann"):
        open_note(message, [parse_verifier_key(ENOCH)])


def test_text_with_blank_lines_splits_at_the_last_one() -> None:
    example = VECTORS["format_only_examples"][0]
    note = parse_note(example["message"].encode())
    assert note.text == example["text"]
    assert note.signatures[0].key_id.hex() == "367ba04b"


def test_tampered_text_fails_for_a_known_key() -> None:
    signer = NoteSigner("example.com/log", SigningKey.generate())
    data = sign_note("origin\n1\n", [signer]).replace(b"1\n\n", b"2\n\n")
    with pytest.raises(NoteError, match="does not verify"):
        open_note(data, [signer.verifier])


def test_repeated_signature_lines_by_one_key_count_once() -> None:
    signer = NoteSigner("example.com/log", SigningKey.generate())
    data = sign_note("hello\n", [signer])
    line = data.split(b"\n\n")[1]
    opened = open_note(data + line, [signer.verifier])
    assert opened.verified_by == ("example.com/log",)


def test_cosignatures_round_trip_and_bind_the_timestamp() -> None:
    log = NoteSigner("example.com/log", SigningKey.generate())
    witness = CosignatureSigner("witness.example", SigningKey.generate())
    note = sign_note("example.com/log\n3\n" + base64.b64encode(b"r" * 32).decode() + "\n", [log])
    cosigned = add_signatures(note, [witness.sign(parse_note(note).text, 1_700_000_000)])
    verifier = parse_verifier_key(witness.verifier.vkey)
    assert isinstance(verifier, CosignatureVerifier)
    assert verifier.vkey.split("+")[2].startswith("B")  # type byte 0x04
    opened = open_note(cosigned, [log.verifier, verifier])
    assert opened.verified_by == ("example.com/log", "witness.example")
    signature = opened.verified[1].signature
    moved = signature[:7] + bytes([signature[7] ^ 1]) + signature[8:]
    tampered = parse_note(cosigned)
    forged = add_signatures(
        sign_note(tampered.text, [log]),
        [type(opened.verified[1])("witness.example", verifier.key_id, moved)],
    )
    with pytest.raises(NoteError, match="witness.example.*does not verify"):
        open_note(forged, [log.verifier, verifier])
