"""Log leaves for signed records: small canonical records pointing at stored envelopes.

A leaf is the canonical JSON of ``{"type", "envelope", "subjects"}``: the record type
(for example ``dataset-manifest``), the SHA-256 of the DSSE envelope's JSON, and the
Statement's subject digests. The envelope itself is stored content-addressed beside the
log, in the same transaction as its leaf. Callers log only envelopes they have verified.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from provenance.canonical import canonical_json, parse_json, sha256_hex
from provenance.dsse import Envelope
from provenance.errors import LogError
from provenance.statement import Statement
from provenance.tlog.log import AppendResult, Blob, TransparencyLog

ENVELOPE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
_RECORD_TYPE = re.compile(r"^[a-z][a-z0-9-]{0,63}$")


@dataclass(frozen=True)
class LogRecord:
    """What one leaf says: a record type, an envelope digest and the subjects' digests."""

    record_type: str
    envelope_sha256: str
    subjects: tuple[str, ...]

    def __post_init__(self) -> None:
        if not _RECORD_TYPE.match(self.record_type):
            raise LogError(f"record type {self.record_type!r} must be a lowercase word")

    def to_entry(self) -> bytes:
        """The leaf bytes (canonical JSON)."""
        return canonical_json(
            {
                "type": self.record_type,
                "envelope": f"sha256:{self.envelope_sha256}",
                "subjects": list(self.subjects),
            }
        )

    @classmethod
    def from_entry(cls, entry: bytes) -> LogRecord:
        """Parse leaf bytes; they must be exactly canonical."""
        data = parse_json(entry, max_bytes=65535, what="log record", error=LogError)
        if not isinstance(data, dict) or set(data) != {"type", "envelope", "subjects"}:
            raise LogError("log record must have exactly 'type', 'envelope' and 'subjects'")
        envelope = data["envelope"]
        subjects = data["subjects"]
        if not isinstance(envelope, str) or not envelope.startswith("sha256:"):
            raise LogError("log record 'envelope' must be 'sha256:<hex>'")
        if not isinstance(subjects, list) or not all(isinstance(s, str) for s in subjects):
            raise LogError("log record 'subjects' must be a list of strings")
        record = cls(str(data["type"]), envelope.removeprefix("sha256:"), tuple(subjects))
        if record.to_entry() != entry:
            raise LogError("log record is not in canonical form")
        return record


def envelope_bytes(envelope: Envelope) -> bytes:
    """The stored form of an envelope: its canonical JSON."""
    return envelope.to_json()


def record_for(
    record_type: str, envelope: Envelope, statement: Statement
) -> tuple[LogRecord, Blob]:
    """The leaf and blob for a verified envelope and the Statement it carries."""
    data = envelope_bytes(envelope)
    subjects = tuple(
        f"{algorithm}:{value}"
        for subject in statement.subjects
        for algorithm, value in sorted(subject.digest.items())
    )
    return LogRecord(record_type, sha256_hex(data), subjects), Blob(data, ENVELOPE_MEDIA_TYPE)


def append_records(
    log: TransparencyLog,
    items: Sequence[tuple[str, Envelope, Statement]],
    *,
    connection: Connection | None = None,
) -> AppendResult:
    """Append verified envelopes as records, storing the envelopes in the same transaction
    (the caller's, when ``connection`` is given: see ``TransparencyLog.append``)."""
    pairs = [
        record_for(record_type, envelope, statement) for record_type, envelope, statement in items
    ]
    return log.append(
        [record.to_entry() for record, _ in pairs],
        blobs=[blob for _, blob in pairs],
        connection=connection,
    )
