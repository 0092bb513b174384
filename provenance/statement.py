"""in-toto Statement v1: build, sign into DSSE, and parse after verification.

A Statement says "these subjects (by digest) have this predicate". Tallystick's
predicate types live under one project-owned, versioned URI prefix. Parsing happens
only on payload bytes that ``verify_envelope`` returned; there is no path from an
unverified envelope to a ``Statement``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from provenance.canonical import canonical_json, parse_json
from provenance.dsse import Envelope, sign_envelope, verify_envelope
from provenance.errors import StatementError
from provenance.keys import PublicKey, SigningKey

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
PREDICATE_TYPE_PREFIX = "https://tallystick.dev/attestation/"
#: Largest Statement payload this module parses.
MAX_STATEMENT_BYTES = 4 * 1024 * 1024
_HEX = re.compile(r"^[0-9a-f]+$")
_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


def predicate_type(name: str, version: int = 1) -> str:
    """The project's predicate type URI for ``name`` at ``version``, e.g. ``…/round-proof/v1``."""
    if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
        raise StatementError(f"predicate name {name!r} must be lowercase words joined by '-'")
    return f"{PREDICATE_TYPE_PREFIX}{name}/v{version}"


@dataclass(frozen=True)
class Subject:
    """A Statement subject: a name and its digests (algorithm -> lowercase hex)."""

    name: str
    digest: Mapping[str, str]

    def __post_init__(self) -> None:
        if not self.digest:
            raise StatementError(f"subject {self.name!r} has no digest")
        for algorithm, value in self.digest.items():
            expected = _DIGEST_LENGTHS.get(algorithm)
            if not isinstance(value, str) or not _HEX.match(value):
                raise StatementError(
                    f"subject {self.name!r} digest {algorithm!r} must be lowercase hex"
                )
            if expected is not None and len(value) != expected:
                raise StatementError(
                    f"subject {self.name!r} digest {algorithm!r} is {len(value)} hex digits, "
                    f"expected {expected}"
                )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"name": self.name, "digest": dict(self.digest)}


@dataclass(frozen=True)
class Statement:
    """An in-toto Statement v1."""

    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.subjects:
            raise StatementError("a Statement needs at least one subject")
        if not self.predicate_type:
            raise StatementError("a Statement needs a predicateType")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "_type": STATEMENT_TYPE,
            "subject": [subject.to_dict() for subject in self.subjects],
            "predicateType": self.predicate_type,
            "predicate": dict(self.predicate),
        }

    def to_payload(self) -> bytes:
        """Canonical JSON bytes: the DSSE payload."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_payload(cls, payload: bytes, *, predicate_type: str | None = None) -> Statement:
        """Parse verified payload bytes; check the type and, if given, the predicate type."""
        data = parse_json(
            payload, max_bytes=MAX_STATEMENT_BYTES, what="statement", error=StatementError
        )
        if not isinstance(data, dict):
            raise StatementError("statement must be a JSON object")
        if data.get("_type") != STATEMENT_TYPE:
            raise StatementError(
                f"statement _type is {data.get('_type')!r}, expected {STATEMENT_TYPE!r}"
            )
        raw_subjects = data.get("subject")
        if not isinstance(raw_subjects, list) or not raw_subjects:
            raise StatementError("statement field 'subject' must be a non-empty list")
        subjects = []
        for position, item in enumerate(raw_subjects):
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("name", ""), str)
                or not isinstance(item.get("digest"), dict)
            ):
                raise StatementError(
                    f"statement subject[{position}] must have a string 'name' and a 'digest' map"
                )
            subjects.append(Subject(name=item.get("name", ""), digest=item["digest"]))
        found_type = data.get("predicateType")
        if not isinstance(found_type, str) or not found_type:
            raise StatementError("statement field 'predicateType' must be a non-empty string")
        if predicate_type is not None and found_type != predicate_type:
            raise StatementError(
                f"statement predicateType is {found_type!r}, expected {predicate_type!r}"
            )
        predicate = data.get("predicate", {})
        if not isinstance(predicate, dict):
            raise StatementError("statement field 'predicate' must be an object")
        return cls(tuple(subjects), found_type, predicate)


def sign_statement(statement: Statement, keys: Sequence[SigningKey]) -> Envelope:
    """Sign ``statement`` into a DSSE envelope with every key in ``keys``."""
    return sign_envelope(statement.to_payload(), PAYLOAD_TYPE, keys)


def verify_statement(
    envelope: Envelope,
    trusted_keys: Iterable[PublicKey],
    *,
    predicate_type: str | None = None,
    threshold: int = 1,
) -> Statement:
    """Verify ``envelope`` against ``trusted_keys`` and parse the Statement it carries."""
    verified = verify_envelope(
        envelope, trusted_keys, threshold=threshold, payload_type=PAYLOAD_TYPE
    )
    return Statement.from_payload(verified.payload, predicate_type=predicate_type)
