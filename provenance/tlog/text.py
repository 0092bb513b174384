"""Shared parsing of the C2SP text formats that put hash lines before a checkpoint.

tlog-proof files and tlog-witness add-checkpoint requests both have an ASCII header,
one base64 SHA-256 hash per line, a blank line, then a checkpoint note. This module
splits and checks those parts; it never interprets the checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence

from provenance.encoding import b64decode_strict
from provenance.errors import ProvenanceError
from provenance.merkle import HASH_SIZE, MAX_PROOF_HASHES


def split_header(
    data: bytes, *, what: str, error: type[ProvenanceError]
) -> tuple[list[str], bytes]:
    """Split ``data`` into its ASCII header lines and the checkpoint after the blank line."""
    head, separator, checkpoint = data.partition(b"\n\n")
    if not separator:
        raise error(f"{what} has no blank line before its checkpoint")
    if not checkpoint:
        raise error(f"{what} has no checkpoint after the blank line")
    try:
        return head.decode("ascii").split("\n"), checkpoint
    except UnicodeDecodeError as exc:
        raise error(f"{what} header is not ASCII") from exc


def parse_hash_lines(
    lines: Sequence[str], *, what: str, error: type[ProvenanceError]
) -> tuple[bytes, ...]:
    """Decode proof hash lines: canonical base64 of 32 bytes each, at most a tree's depth."""
    if len(lines) > MAX_PROOF_HASHES:
        raise error(f"{what} has {len(lines)} hashes, more than any tree needs")
    hashes = []
    for number, line in enumerate(lines):
        value = b64decode_strict(line, what=f"{what} hash {number}", error=error)
        if len(value) != HASH_SIZE:
            raise error(f"{what} hash {number} is {len(value)} bytes, expected {HASH_SIZE}")
        hashes.append(value)
    return tuple(hashes)
