"""A C2SP witness: cosign a log's checkpoints only after checking they extend what it saw.

Implements the logic of tlog-witness ``add-checkpoint``: the request carries the size the
client thinks the witness last saw, a consistency proof from that size, and the new
checkpoint. The witness checks the log's signature, that ``old`` is its own latest size
(else a conflict naming its size), and the consistency proof, then records the new size
and returns a tlog-cosignature/v1 line. It never cosigns a smaller tree or a fork.
HTTP status mapping is the caller's business; each failure is its own exception type.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from provenance.encoding import b64encode, parse_uint64
from provenance.errors import NoteError, ProofError
from provenance.merkle import EMPTY_ROOT, verify_consistency
from provenance.note import CosignatureSigner, Ed25519NoteVerifier, NoteSignature
from provenance.tlog.checkpoint import open_checkpoint
from provenance.tlog.text import parse_hash_lines, split_header

#: Largest add-checkpoint request body accepted.
MAX_REQUEST_BYTES = 64 * 1024


class WitnessError(NoteError):
    """The witness refused a checkpoint."""


class MalformedRequest(WitnessError):
    """The add-checkpoint request could not be parsed (HTTP 400)."""


class UnknownLog(WitnessError):
    """The checkpoint's origin or key is not one this witness follows (HTTP 404)."""


class SignatureRejected(WitnessError):
    """The checkpoint is not validly signed by the log (HTTP 403)."""


class ConsistencyRejected(WitnessError):
    """The consistency proof does not verify (HTTP 422)."""


class StaleSize(WitnessError):
    """``old`` is not the witness's latest size for the log (HTTP 409)."""

    def __init__(self, known_size: int) -> None:
        super().__init__(f"the witness's latest size for this log is {known_size}")
        self.known_size = known_size


@dataclass(frozen=True)
class AddCheckpointRequest:
    """The body of a tlog-witness add-checkpoint request."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: bytes

    def to_bytes(self) -> bytes:
        """Serialise as the request body."""
        lines = [f"old {self.old_size}", *(b64encode(item) for item in self.proof)]
        return ("\n".join(lines) + "\n\n").encode("ascii") + self.checkpoint

    @classmethod
    def parse(cls, body: bytes) -> AddCheckpointRequest:
        """Parse a request body with limits."""
        if len(body) > MAX_REQUEST_BYTES:
            raise MalformedRequest(f"request is {len(body)} bytes, over {MAX_REQUEST_BYTES}")
        lines, checkpoint = split_header(body, what="request", error=MalformedRequest)
        if not lines[0].startswith("old "):
            raise MalformedRequest("request does not start with 'old N'")
        old_size = parse_uint64(lines[0][len("old ") :], what="old size", error=MalformedRequest)
        proof = parse_hash_lines(lines[1:], what="proof", error=MalformedRequest)
        return cls(old_size, proof, checkpoint)


class WitnessState(Protocol):
    """Where a witness keeps the latest (size, root) it cosigned per log origin."""

    def latest(self, origin: str) -> tuple[int, bytes] | None:
        """The latest (size, root hash) cosigned for ``origin``, if any."""

    def advance(self, origin: str, expected_size: int, size: int, root: bytes) -> None:
        """Record (size, root) if the stored size is still ``expected_size``; else raise
        ``StaleSize``."""


class JsonFileWitnessState:
    """Witness state in a JSON file, updated under an exclusive lock by atomic rename."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock_path = path.with_suffix(path.suffix + ".lock")

    def _read(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(self._path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        if not isinstance(data, dict):
            raise WitnessError(f"witness state {self._path} is not a JSON object")
        return data

    def latest(self, origin: str) -> tuple[int, bytes] | None:
        """The latest (size, root hash) cosigned for ``origin``, if any."""
        entry = self._read().get(origin)
        if entry is None:
            return None
        return int(str(entry["size"])), bytes.fromhex(str(entry["root"]))

    def advance(self, origin: str, expected_size: int, size: int, root: bytes) -> None:
        """Record (size, root) if the stored size is still ``expected_size``."""
        with open(self._lock_path, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._read()
            current = data.get(origin)
            current_size = int(str(current["size"])) if current else 0
            if current_size != expected_size:
                raise StaleSize(current_size)
            data[origin] = {"size": size, "root": root.hex()}
            temporary = self._path.with_suffix(self._path.suffix + ".tmp")
            temporary.write_text(json.dumps(data, indent=2, sort_keys=True), "utf-8")
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
            temporary.replace(self._path)
            directory = os.open(self._path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)  # the rename itself must survive a power cut
            finally:
                os.close(directory)


class MemoryWitnessState:
    """Witness state in memory (tests and single-process demos)."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[int, bytes]] = {}

    def latest(self, origin: str) -> tuple[int, bytes] | None:
        """The latest (size, root hash) cosigned for ``origin``, if any."""
        return self._data.get(origin)

    def advance(self, origin: str, expected_size: int, size: int, root: bytes) -> None:
        """Record (size, root) if the stored size is still ``expected_size``."""
        current = self._data.get(origin, (0, b""))[0]
        if current != expected_size:
            raise StaleSize(current)
        self._data[origin] = (size, root)


class Witness:
    """Cosigns checkpoints of the logs it follows, enforcing append-only growth."""

    def __init__(
        self,
        signer: CosignatureSigner,
        logs: Mapping[str, Ed25519NoteVerifier] | Sequence[Ed25519NoteVerifier],
        state: WitnessState,
    ) -> None:
        """Follow ``logs``: a mapping origin -> log key, or log keys whose name is the origin."""
        self.signer = signer
        pairs = list(logs.items()) if isinstance(logs, Mapping) else [(v.name, v) for v in logs]
        self._logs: dict[str, Ed25519NoteVerifier] = {}
        for origin, verifier in pairs:
            if origin in self._logs:
                raise WitnessError(f"log origin {origin!r} is configured twice")
            if verifier.name == signer.name:
                raise WitnessError(f"log key name {verifier.name!r} is the witness's own name")
            self._logs[origin] = verifier
        self._state = state

    def add_checkpoint(
        self, request: AddCheckpointRequest, *, now: int | None = None
    ) -> NoteSignature:
        """Check ``request`` and return this witness's cosignature of its checkpoint."""
        origin = request.checkpoint.split(b"\n", 1)[0].decode("utf-8", errors="replace")
        log_key = self._logs.get(origin)
        if log_key is None:
            raise UnknownLog(f"this witness does not follow a log with origin {origin!r}")
        try:
            verified = open_checkpoint(request.checkpoint, log_key, origin=origin)
        except NoteError as exc:
            raise SignatureRejected(f"checkpoint rejected: {exc}") from exc
        checkpoint = verified.checkpoint
        if request.old_size > checkpoint.size:
            raise MalformedRequest(
                f"old size {request.old_size} is larger than the checkpoint size {checkpoint.size}"
            )
        latest = self._state.latest(origin)
        known_size, known_root = latest if latest else (0, EMPTY_ROOT)
        if request.old_size != known_size:
            raise StaleSize(known_size)
        if checkpoint.size < known_size:
            raise ConsistencyRejected(
                f"checkpoint size {checkpoint.size} is smaller than the witnessed {known_size}"
            )
        try:
            verify_consistency(
                known_size, checkpoint.size, known_root, checkpoint.root_hash, request.proof
            )
        except ProofError as exc:
            raise ConsistencyRejected(f"consistency proof rejected: {exc}") from exc
        self._state.advance(origin, known_size, checkpoint.size, checkpoint.root_hash)
        timestamp = int(time.time()) if now is None else now
        return self.signer.sign(verified.note.text, timestamp)
