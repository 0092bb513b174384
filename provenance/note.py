"""C2SP signed notes: text plus signature lines, verifier keys, Ed25519 and cosignatures.

Format (c2sp.org/signed-note): UTF-8 text ending in a newline, a blank line, then
signature lines ``— <name> <base64(key ID || signature)>``. A key ID is the first four
bytes of SHA-256(name || 0x0A || type || public key); a verifier key string is
``name+hex(key ID)+base64(type || public key)``. Type 0x01 is Ed25519 over the note
text; type 0x04 is a tlog-cosignature/v1 (Ed25519 over a timestamped message).

Opening a note fails closed: a malformed line, a signature by a known key that does not
verify, or no verified signature at all raises ``NoteError``. Signatures by unknown keys
are kept (they may be someone else's) but never count.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from provenance.encoding import b64decode_strict, b64encode
from provenance.errors import InvalidSignature, KeyFormatError, NoteError
from provenance.keys import ED25519_SIGNATURE_SIZE, PublicKey, SigningKey

SIG_TYPE_ED25519 = 0x01
SIG_TYPE_COSIGNATURE_V1 = 0x04
#: Largest note this module parses.
MAX_NOTE_BYTES = 1024 * 1024
#: Most signature lines in one note (as golang.org/x/mod/sumdb/note).
MAX_NOTE_SIGNATURES = 100
_SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_SIGNATURE_SPLIT = "\n\n"
_COSIGNATURE_HEADER = "cosignature/v1\ntime "
_KNOWN_TYPES = {SIG_TYPE_ED25519: "Ed25519", SIG_TYPE_COSIGNATURE_V1: "cosignature/v1"}


def check_key_name(name: str) -> None:
    """Raise ``NoteError`` unless ``name`` is a valid key name (non-empty, no space or '+')."""
    if not name:
        raise NoteError("key name is empty")
    if "+" in name or any(char.isspace() for char in name):
        raise NoteError(f"key name {name!r} contains '+' or whitespace")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in name):
        raise NoteError(f"key name {name!r} contains a control character")


def key_id(name: str, key_type: int, public_key: bytes) -> bytes:
    """The 4-byte key ID: SHA-256(name || '\\n' || type || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([key_type]) + public_key).digest()[
        :4
    ]


def format_verifier_key(name: str, key_type: int, public_key: bytes) -> str:
    """The verifier key string ``name+hex(key ID)+base64(type || public key)``."""
    check_key_name(name)
    return "+".join(
        [
            name,
            key_id(name, key_type, public_key).hex(),
            b64encode(bytes([key_type]) + public_key),
        ]
    )


class NoteVerifier(Protocol):
    """Checks one key's signatures on notes."""

    @property
    def name(self) -> str:
        """The key name as it appears on signature lines."""

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID."""

    def verify(self, text: bytes, signature: bytes) -> None:
        """Raise ``InvalidSignature`` unless ``signature`` (key ID stripped) signs ``text``."""


@dataclass(frozen=True)
class Ed25519NoteVerifier:
    """A type 0x01 verifier: plain Ed25519 over the note text."""

    name: str
    public_key: PublicKey

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID."""
        return key_id(self.name, SIG_TYPE_ED25519, self.public_key.raw)

    @property
    def vkey(self) -> str:
        """The verifier key string."""
        return format_verifier_key(self.name, SIG_TYPE_ED25519, self.public_key.raw)

    def verify(self, text: bytes, signature: bytes) -> None:
        """Raise ``InvalidSignature`` unless ``signature`` signs ``text``."""
        self.public_key.verify(signature, text)


def cosignature_message(text: bytes, timestamp: int) -> bytes:
    """The message a tlog-cosignature/v1 signs: header, time line, then the checkpoint."""
    return f"{_COSIGNATURE_HEADER}{timestamp}\n".encode("ascii") + text


@dataclass(frozen=True)
class CosignatureVerifier:
    """A type 0x04 verifier: a witness's tlog-cosignature/v1 over a checkpoint."""

    name: str
    public_key: PublicKey

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID."""
        return key_id(self.name, SIG_TYPE_COSIGNATURE_V1, self.public_key.raw)

    @property
    def vkey(self) -> str:
        """The verifier key string."""
        return format_verifier_key(self.name, SIG_TYPE_COSIGNATURE_V1, self.public_key.raw)

    def verify(self, text: bytes, signature: bytes) -> None:
        """Raise ``InvalidSignature`` unless ``signature`` (timestamp || sig) cosigns ``text``."""
        timestamp, raw = split_cosignature(signature)
        self.public_key.verify(raw, cosignature_message(text, timestamp))


def split_cosignature(signature: bytes) -> tuple[int, bytes]:
    """Split a cosignature body (key ID stripped) into its timestamp and Ed25519 signature."""
    if len(signature) != 8 + ED25519_SIGNATURE_SIZE:
        raise InvalidSignature(
            f"a cosignature is {8 + ED25519_SIGNATURE_SIZE} bytes after the key ID, "
            f"got {len(signature)}"
        )
    (timestamp,) = struct.unpack(">Q", signature[:8])
    return timestamp, signature[8:]


def parse_verifier_key(vkey: str) -> Ed25519NoteVerifier | CosignatureVerifier:
    """Parse a verifier key string; the key ID in it must match the key."""
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        raise NoteError(f"verifier key {vkey!r} is not of the form name+keyid+key")
    name, id_hex, key_b64 = parts
    check_key_name(name)
    if len(id_hex) != 8 or any(char not in "0123456789abcdef" for char in id_hex):
        raise NoteError(f"verifier key {name!r}: key ID {id_hex!r} is not 8 lowercase hex digits")
    key_bytes = b64decode_strict(key_b64, what=f"verifier key {name!r}", error=NoteError)
    if not key_bytes:
        raise NoteError(f"verifier key {name!r} has no key bytes")
    key_type, public = key_bytes[0], key_bytes[1:]
    if key_type not in _KNOWN_TYPES:
        raise NoteError(f"verifier key {name!r} has unknown signature type 0x{key_type:02x}")
    try:
        public_key = PublicKey(public)
    except KeyFormatError as exc:
        raise NoteError(f"verifier key {name!r}: {exc}") from exc
    if key_id(name, key_type, public) != bytes.fromhex(id_hex):
        raise NoteError(f"verifier key {name!r}: key ID {id_hex} does not match the key")
    if key_type == SIG_TYPE_ED25519:
        return Ed25519NoteVerifier(name, public_key)
    return CosignatureVerifier(name, public_key)


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, key ID, and the signature bytes after the key ID."""

    name: str
    key_id: bytes
    signature: bytes

    def to_line(self) -> str:
        """The signature line, with its trailing newline."""
        return f"{_SIGNATURE_PREFIX}{self.name} {b64encode(self.key_id + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    """A parsed, *unverified* signed note."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def to_bytes(self) -> bytes:
        """The note as it travels: text, blank line, signature lines."""
        lines = "".join(signature.to_line() for signature in self.signatures)
        return (self.text + "\n" + lines).encode("utf-8")


def check_note_text(text: str) -> None:
    """Raise ``NoteError`` unless ``text`` may be the text of a note."""
    if not text.endswith("\n"):
        raise NoteError("note text does not end in a newline")
    for char in text:
        if (ord(char) < 0x20 and char != "\n") or ord(char) == 0x7F:
            raise NoteError(f"note text contains the control character U+{ord(char):04X}")


def parse_note(data: bytes) -> Note:
    """Split a signed note into text and signature lines, checking syntax only."""
    if len(data) > MAX_NOTE_BYTES:
        raise NoteError(f"note is {len(data)} bytes, over the limit of {MAX_NOTE_BYTES}")
    try:
        message = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError("note is not valid UTF-8") from exc
    split = message.rfind(_SIGNATURE_SPLIT)
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    text, block = message[: split + 1], message[split + 2 :]
    check_note_text(text)
    if not block.endswith("\n"):
        raise NoteError("note signature block does not end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_NOTE_SIGNATURES:
        raise NoteError(f"note has {len(lines)} signatures, more than {MAX_NOTE_SIGNATURES}")
    signatures = []
    for number, line in enumerate(lines, start=1):
        if not line.startswith(_SIGNATURE_PREFIX):
            raise NoteError(f"note signature line {number} does not start with '\u2014 '")
        name, space, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
        if not space or not encoded or " " in encoded:
            raise NoteError(f"note signature line {number} is not '\u2014 name signature'")
        check_key_name(name)
        raw = b64decode_strict(encoded, what=f"note signature line {number}", error=NoteError)
        if len(raw) < 5:
            raise NoteError(f"note signature line {number} is too short to hold a key ID")
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    return Note(text, tuple(signatures))


@dataclass(frozen=True)
class VerifiedNote:
    """A note whose text at least one trusted key signed."""

    text: str
    verified: tuple[NoteSignature, ...]
    verified_by: tuple[str, ...]
    unverified: tuple[NoteSignature, ...]


def open_note(data: bytes, verifiers: Iterable[NoteVerifier]) -> VerifiedNote:
    """Parse and verify a note against ``verifiers``.

    Raises ``NoteError`` when a signature by a known key does not verify or when no known
    key signed at all. Repeated lines by one key count once.
    """
    note = parse_note(data)
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for verifier in verifiers:
        identity = (verifier.name, verifier.key_id)
        if identity in known and known[identity] != verifier:
            raise NoteError(f"ambiguous key {verifier.name}+{verifier.key_id.hex()}")
        known[identity] = verifier
    text = note.text.encode("utf-8")
    verified: list[NoteSignature] = []
    names: list[str] = []
    unverified: list[NoteSignature] = []
    seen: set[tuple[str, bytes]] = set()
    for signature in note.signatures:
        identity = (signature.name, signature.key_id)
        if identity not in known:
            unverified.append(signature)
            continue
        verifier = known[identity]
        if identity in seen:
            continue  # a key's repeated line counts once, as in golang.org/x/mod/sumdb/note
        seen.add(identity)
        try:
            verifier.verify(text, signature.signature)
        except InvalidSignature as exc:
            raise NoteError(f"signature by key {signature.name!r} does not verify: {exc}") from exc
        verified.append(signature)
        names.append(signature.name)
    if not verified:
        present = ", ".join(sorted({s.name for s in note.signatures}))
        raise NoteError(f"note has no signature by a trusted key (signed by: {present})")
    return VerifiedNote(note.text, tuple(verified), tuple(names), tuple(unverified))


@dataclass(frozen=True)
class NoteSigner:
    """Signs note text with an Ed25519 key under a key name (type 0x01)."""

    name: str
    key: SigningKey

    def __post_init__(self) -> None:
        check_key_name(self.name)

    @property
    def verifier(self) -> Ed25519NoteVerifier:
        """The matching verifier."""
        return Ed25519NoteVerifier(self.name, self.key.public_key)

    def sign(self, text: str) -> NoteSignature:
        """Sign ``text`` (which must be valid note text)."""
        check_note_text(text)
        return NoteSignature(self.name, self.verifier.key_id, self.key.sign(text.encode("utf-8")))


@dataclass(frozen=True)
class CosignatureSigner:
    """Cosigns checkpoints as a witness (tlog-cosignature/v1, type 0x04)."""

    name: str
    key: SigningKey

    def __post_init__(self) -> None:
        check_key_name(self.name)

    @property
    def verifier(self) -> CosignatureVerifier:
        """The matching verifier."""
        return CosignatureVerifier(self.name, self.key.public_key)

    def sign(self, text: str, timestamp: int) -> NoteSignature:
        """Cosign checkpoint ``text`` at ``timestamp`` (seconds since the Unix epoch)."""
        check_note_text(text)
        if not 0 <= timestamp < 2**63:
            raise NoteError(f"cosignature timestamp {timestamp} is out of range")
        raw = self.key.sign(cosignature_message(text.encode("utf-8"), timestamp))
        body = struct.pack(">Q", timestamp) + raw
        return NoteSignature(self.name, self.verifier.key_id, body)


def sign_note(text: str, signers: Sequence[NoteSigner]) -> bytes:
    """Sign ``text`` with every signer; return the note bytes."""
    if not signers:
        raise NoteError("at least one signer is needed")
    return Note(text, tuple(signer.sign(text) for signer in signers)).to_bytes()


def add_signatures(note: bytes, signatures: Iterable[NoteSignature]) -> bytes:
    """Append signature lines to a note (for example witness cosignatures)."""
    parsed = parse_note(note)
    merged = list(parsed.signatures)
    for signature in signatures:
        if all(
            (existing.name, existing.key_id) != (signature.name, signature.key_id)
            for existing in merged
        ):
            merged.append(signature)
    return Note(parsed.text, tuple(merged)).to_bytes()
