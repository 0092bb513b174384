"""C2SP tlog-proof: one offline-verifiable file proving an entry is in a log.

Format (c2sp.org/tlog-proof@v1): the header line, an optional ``extra <base64>`` line,
``index <N>``, the inclusion proof hashes (base64, leaf's sibling first), a blank line,
then the log's checkpoint verbatim, witness cosignatures included. ``verify`` checks
the checkpoint's signatures (log key, then the witness quorum) before the inclusion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from provenance.encoding import b64decode_strict, b64encode, parse_uint64
from provenance.errors import NoteError, ProofError
from provenance.merkle import verify_inclusion
from provenance.note import CosignatureVerifier, Ed25519NoteVerifier
from provenance.tlog.checkpoint import (
    VerifiedCheckpoint,
    open_checkpoint,
    require_cosignatures,
)
from provenance.tlog.text import parse_hash_lines, split_header

HEADER = "c2sp.org/tlog-proof@v1"
#: Largest tlog-proof this module parses.
MAX_PROOF_BYTES = 1024 * 1024


@dataclass(frozen=True)
class TlogProof:
    """An entry's index, its inclusion proof, and the checkpoint it is proven against."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: bytes
    extra: bytes | None = None

    def to_bytes(self) -> bytes:
        """Serialise in the C2SP text format."""
        lines = [HEADER]
        if self.extra is not None:
            lines.append(f"extra {b64encode(self.extra)}")
        lines.append(f"index {self.index}")
        lines.extend(b64encode(item) for item in self.hashes)
        return ("\n".join(lines) + "\n\n").encode("ascii") + self.checkpoint

    @classmethod
    def parse(cls, data: bytes) -> TlogProof:
        """Parse a tlog-proof file, checking its syntax (not its signatures)."""
        if len(data) > MAX_PROOF_BYTES:
            raise NoteError(f"tlog-proof is {len(data)} bytes, over the limit of {MAX_PROOF_BYTES}")
        lines, checkpoint = split_header(data, what="tlog-proof", error=NoteError)
        if lines[0] != HEADER:
            raise NoteError(f"tlog-proof first line is {lines[0][:40]!r}, expected {HEADER!r}")
        position = 1
        extra = None
        if position < len(lines) and lines[position].startswith("extra "):
            extra = b64decode_strict(
                lines[position][len("extra ") :], what="tlog-proof extra", error=NoteError
            )
            position += 1
        if position >= len(lines) or not lines[position].startswith("index "):
            raise NoteError("tlog-proof has no 'index N' line")
        index = parse_uint64(
            lines[position][len("index ") :], what="tlog-proof index", error=NoteError
        )
        hashes = parse_hash_lines(lines[position + 1 :], what="tlog-proof", error=NoteError)
        return cls(index, hashes, checkpoint, extra)

    def verify(
        self,
        leaf: bytes,
        log_key: Ed25519NoteVerifier,
        *,
        origin: str | None = None,
        witnesses: Sequence[CosignatureVerifier] = (),
        min_witnesses: int = 0,
    ) -> VerifiedCheckpoint:
        """Verify that the entry with RFC 9162 leaf hash ``leaf`` is in the checkpointed tree.

        Steps, each failing with its own message: the log's signature and origin, the
        witness quorum, then the inclusion proof against the checkpoint's root.
        """
        verified = open_checkpoint(self.checkpoint, log_key, origin=origin, witnesses=witnesses)
        if min_witnesses:
            require_cosignatures(verified, witnesses, min_witnesses)
        checkpoint = verified.checkpoint
        try:
            verify_inclusion(leaf, self.index, checkpoint.size, self.hashes, checkpoint.root_hash)
        except ProofError as exc:
            raise ProofError(f"inclusion: {exc}") from exc
        return verified
