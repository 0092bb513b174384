"""C2SP tlog-checkpoint: the signed statement of a log's size and root hash.

Body (c2sp.org/tlog-checkpoint): origin line, decimal tree size, base64 root hash, then
optional extension lines; it is the text of a signed note. ``open_checkpoint`` accepts a
checkpoint only when the log's own key signed it and its origin is the expected one;
witness cosignatures are then counted against a quorum with ``require_cosignatures``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from provenance.encoding import b64decode_strict, b64encode, parse_uint64
from provenance.errors import NoteError
from provenance.merkle import HASH_SIZE
from provenance.note import (
    CosignatureVerifier,
    Ed25519NoteVerifier,
    Note,
    NoteSigner,
    VerifiedNote,
    check_note_text,
    open_note,
    split_cosignature,
)

MAX_TREE_SIZE = 2**64 - 1


@dataclass(frozen=True)
class Checkpoint:
    """A log's origin, tree size and root hash (plus extension lines)."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise NoteError("checkpoint origin must be one non-empty line")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteError(f"checkpoint size {self.size} is out of range")
        if len(self.root_hash) != HASH_SIZE:
            raise NoteError(f"checkpoint root hash is {len(self.root_hash)} bytes, expected 32")
        for extension in self.extensions:
            if not extension or "\n" in extension:
                raise NoteError("checkpoint extension lines must be non-empty single lines")

    def body(self) -> str:
        """The checkpoint as note text."""
        lines = [self.origin, str(self.size), b64encode(self.root_hash), *self.extensions]
        text = "\n".join(lines) + "\n"
        check_note_text(text)
        return text

    @classmethod
    def from_body(cls, text: str) -> Checkpoint:
        """Parse checkpoint note text."""
        if not text.endswith("\n"):
            raise NoteError("checkpoint does not end in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("checkpoint needs origin, size and root hash lines")
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise NoteError("checkpoint origin line is empty")
        size = parse_uint64(size_text, what="checkpoint size", error=NoteError)
        root = b64decode_strict(root_text, what="checkpoint root hash", error=NoteError)
        if len(root) != HASH_SIZE:
            raise NoteError(f"checkpoint root hash is {len(root)} bytes, expected 32")
        if any(not extension for extension in extensions):
            raise NoteError("checkpoint has an empty extension line")
        return cls(origin, size, root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> bytes:
    """Sign ``checkpoint`` as its log; return the signed note bytes."""
    text = checkpoint.body()
    return Note(text, (signer.sign(text),)).to_bytes()


@dataclass(frozen=True)
class VerifiedCheckpoint:
    """A checkpoint its log signed, with the note it came in."""

    checkpoint: Checkpoint
    note: VerifiedNote
    raw: bytes


def open_checkpoint(
    data: bytes,
    log_key: Ed25519NoteVerifier,
    *,
    origin: str | None = None,
    witnesses: Sequence[CosignatureVerifier] = (),
) -> VerifiedCheckpoint:
    """Verify a signed checkpoint.

    The log key must have signed it; ``origin`` defaults to the log key's name, as C2SP
    recommends. Witness cosignatures present in the note are verified too (a bad one is
    an error) but not required: use ``require_cosignatures`` for a quorum.
    """
    if any(witness.name == log_key.name for witness in witnesses):
        raise NoteError(f"witness key name {log_key.name!r} is the log's own key name")
    note = open_note(data, [log_key, *witnesses])
    if not any(
        (signature.name, signature.key_id) == (log_key.name, log_key.key_id)
        for signature in note.verified
    ):
        raise NoteError(f"checkpoint is not signed by the log key {log_key.name!r}")
    checkpoint = Checkpoint.from_body(note.text)
    expected = origin if origin is not None else log_key.name
    if checkpoint.origin != expected:
        raise NoteError(f"checkpoint origin is {checkpoint.origin!r}, expected {expected!r}")
    return VerifiedCheckpoint(checkpoint, note, data)


def require_cosignatures(
    verified: VerifiedCheckpoint, witnesses: Iterable[CosignatureVerifier], minimum: int
) -> list[tuple[str, int]]:
    """Raise ``NoteError`` unless at least ``minimum`` of ``witnesses`` cosigned.

    Returns (witness name, timestamp) for each valid cosignature.
    """
    by_identity = {(w.name, w.key_id): w for w in witnesses}
    found: list[tuple[str, int]] = []
    for signature in verified.note.verified:
        if (signature.name, signature.key_id) in by_identity:
            timestamp, _ = split_cosignature(signature.signature)
            found.append((signature.name, timestamp))
    if len(found) < minimum:
        raise NoteError(
            f"checkpoint has {len(found)} valid witness cosignature(s), {minimum} required"
        )
    return found
