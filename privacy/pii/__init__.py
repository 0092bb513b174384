"""PII detection for a creator's datasets: the scanner, and the tally and policy a manifest holds.

A data host scans every dataset before it is listed (``PiiScanner``), counts the findings
per kind and column (``PiiTally``), writes those counts into the signed dataset manifest
(``PiiTally.to_dict``), and applies the creator's policy (``enforce_policy``): ``block``
refuses the dataset, ``redact`` has a copy made with every finding replaced by
``redaction_token(kind)``, ``allow`` lists it as it is, with the counts on record.

The tally holds counts only: this package must never store, log, or put into a manifest
or an error message, the PII values it found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from privacy.errors import PiiBlocked, PiiError
from privacy.pii.patterns import PiiKind
from privacy.pii.scanner import PiiMatch, PiiScanner, redaction_token

__all__ = [
    "PiiKind",
    "PiiMatch",
    "PiiPolicy",
    "PiiScanner",
    "PiiTally",
    "enforce_policy",
    "redaction_token",
]


class PiiPolicy(StrEnum):
    """What a data host does with a dataset in which the scan found PII."""

    BLOCK = "block"
    REDACT = "redact"
    ALLOW = "allow"


def _policy(value: PiiPolicy | str) -> PiiPolicy:
    try:
        return PiiPolicy(value)
    except ValueError:
        known = ", ".join(member.value for member in PiiPolicy)
        raise PiiError(f"unknown PII policy {value!r}; the policies are: {known}") from None


@dataclass
class PiiTally:
    """Findings counted per kind and column, for a dataset manifest.

    ``column`` is the column name for tabular data, or whatever names the place a finding
    was made in (a file's relative path, a JSON field). Kinds are ``PiiKind`` values.
    """

    _counts: dict[str, dict[str, int]] = field(default_factory=dict, init=False)

    def add(self, kind: str, column: str, count: int = 1) -> None:
        """Count ``count`` findings of ``kind`` in ``column``.

        Raises ``PiiError`` for an unknown kind or a negative or non-integer count.
        """
        try:
            value = PiiKind(kind).value
        except ValueError:
            known = ", ".join(member.value for member in PiiKind)
            raise PiiError(
                f"cannot tally unknown PII kind {kind!r} (column {column!r}); kinds are: {known}"
            ) from None
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise PiiError(
                f"PII count for {value} in column {column!r} must be a non-negative integer, "
                f"not {count!r}"
            )
        if count == 0:
            return
        columns = self._counts.setdefault(value, {})
        columns[column] = columns.get(column, 0) + count

    def merge(self, other: PiiTally) -> None:
        """Add every count of ``other`` to this tally (``other`` is left as it is)."""
        for kind, columns in other.counts().items():  # a copy: ``other`` may be ``self``
            for column, count in columns.items():
                self.add(kind, column, count)

    @property
    def total(self) -> int:
        """All findings, of every kind and column."""
        return sum(sum(columns.values()) for columns in self._counts.values())

    def counts(self) -> dict[str, dict[str, int]]:
        """A copy of the counts, kind -> column -> count, both levels sorted by name."""
        return {
            kind: {column: self._counts[kind][column] for column in sorted(self._counts[kind])}
            for kind in sorted(self._counts)
        }

    def to_dict(
        self,
        *,
        policy: PiiPolicy,
        engine: str,
        scanned_bytes: int,
        not_scanned: Sequence[str],
    ) -> dict[str, Any]:
        """The manifest's ``pii`` record: JSON-able and the same for the same findings.

        ``not_scanned`` names what the scan skipped (binary columns, image files); it is
        sorted. Raises ``PiiError`` for a negative ``scanned_bytes``.
        """
        if isinstance(scanned_bytes, bool) or not isinstance(scanned_bytes, int):
            raise PiiError(f"scanned_bytes must be an integer, not {scanned_bytes!r}")
        if scanned_bytes < 0:
            raise PiiError(f"scanned_bytes must not be negative, got {scanned_bytes}")
        if isinstance(not_scanned, str):
            raise PiiError("not_scanned must be a sequence of names, not one string")
        return {
            "policy": _policy(policy).value,
            "engine": engine,
            "scanned_bytes": scanned_bytes,
            "total": self.total,
            "findings": self.counts(),
            "not_scanned": sorted(not_scanned),
        }


def enforce_policy(tally: PiiTally, policy: PiiPolicy, *, dataset: str) -> None:
    """Refuse ``dataset`` when ``policy`` is ``block`` and the tally holds any finding.

    Raises ``PiiBlocked`` whose message names every kind and column with its count (never
    a value). ``redact`` and ``allow`` never raise here: redaction is the caller's next step.
    """
    if _policy(policy) is not PiiPolicy.BLOCK or tally.total == 0:
        return
    parts = [
        f"{kind} in column {column!r}: {count}"
        for kind, columns in tally.counts().items()
        for column, count in columns.items()
    ]
    raise PiiBlocked(
        f"dataset {dataset!r} holds {tally.total} PII finding(s) and its policy is 'block' "
        f"({'; '.join(parts)}); remove them, or choose the 'redact' or 'allow' policy"
    )
