"""PII findings: the finder and redactor contracts, per-column counts, and span rewriting.

A ``PiiFinder`` is supplied by the caller (the node wires in ``privacy``'s detectors); the
format readers hand it raw text and attribute each span it returns to a column. This module
checks what a finder returns and what a redactor produces before either is used, counts
findings, and rewrites a buffer with each finding replaced.

It must never decide what is PII (that is the finder's job), nor keep the text it is shown:
findings are counts per kind and column, not the matched values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from data_host.errors import DataHostError

#: Finds PII in a buffer: (kind, start, end) byte offsets into it. Must be thread-safe.
PiiFinder = Callable[[bytes], Sequence[tuple[str, int, int]]]
#: The replacement for one finding of a kind: no quote, comma, backslash or control byte,
#: so that it is safe inside a CSV field and a JSON string.
Redactor = Callable[[str], bytes]

_UNSAFE_IN_TOKEN = frozenset(b'",\\') | frozenset(range(0x20)) | {0x7F}


@dataclass
class PiiFindings:
    """What the PII scan of a dataset found.

    ``counts`` maps a finding kind to the columns (keys, arrays) it was found in and how
    often; ``scanned_bytes`` is how much text the finder was shown; ``not_scanned`` names
    what was not shown to it and why (numeric arrays, images).
    """

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    scanned_bytes: int = 0
    not_scanned: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Findings of every kind in every column."""
        return sum(sum(columns.values()) for columns in self.counts.values())

    def add(self, kind: str, column: str, count: int = 1) -> None:
        """Count ``count`` more findings of ``kind`` in ``column``."""
        if count:
            columns = self.counts.setdefault(kind, {})
            columns[column] = columns.get(column, 0) + count

    def merge(self, other: PiiFindings) -> None:
        """Add everything ``other`` found and scanned to this tally."""
        for kind, columns in other.counts.items():
            for column, count in columns.items():
                self.add(kind, column, count)
        self.scanned_bytes += other.scanned_bytes
        self.not_scanned.extend(other.not_scanned)

    def to_dict(self) -> dict[str, Any]:
        """The findings as a JSON object with sorted keys."""
        return {
            "counts": {
                kind: dict(sorted(self.counts[kind].items())) for kind in sorted(self.counts)
            },
            "scanned_bytes": self.scanned_bytes,
            "not_scanned": list(self.not_scanned),
            "total": self.total,
        }


@dataclass(frozen=True)
class Spans:
    """A finder's result on one buffer, checked: kinds, and start/end offsets as arrays.

    Spans are sorted by start offset.
    """

    kinds: tuple[str, ...]
    starts: NDArray[np.int64]
    ends: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.kinds)

    def starting_before(self, size: int) -> Spans:
        """The spans that start before offset ``size``."""
        keep = int(np.searchsorted(self.starts, size, side="left"))
        if keep == len(self.kinds):
            return self
        return Spans(self.kinds[:keep], self.starts[:keep], self.ends[:keep])


_NO_SPANS = Spans((), np.zeros(0, np.int64), np.zeros(0, np.int64))


def find_spans(finder: PiiFinder, data: bytes) -> Spans:
    """Run ``finder`` on ``data`` and check what it returns.

    Raises ``DataHostError`` if the finder breaks its contract (a span that is not a
    ``(str, int, int)`` triple inside the buffer, or is empty).
    """
    found = finder(data)
    if not found:
        return _NO_SPANS
    size = len(data)
    triples: list[tuple[int, int, str]] = []
    for item in found:
        try:
            kind, start, end = item
        except (TypeError, ValueError) as exc:
            raise DataHostError(
                f"the PII finder returned {item!r}; it must return (kind, start, end) triples"
            ) from exc
        if (
            not isinstance(kind, str)
            or not kind
            or isinstance(start, bool)
            or isinstance(end, bool)
            or not isinstance(start, int)
            or not isinstance(end, int)
            or not 0 <= start < end <= size
        ):
            raise DataHostError(
                f"the PII finder returned {item!r} for a buffer of {size} bytes; a finding "
                f"is (kind, start, end) with a non-empty kind and 0 <= start < end <= {size}"
            )
        triples.append((start, end, kind))
    triples.sort()
    return Spans(
        tuple(kind for _, _, kind in triples),
        np.fromiter((start for start, _, _ in triples), np.int64, len(triples)),
        np.fromiter((end for _, end, _ in triples), np.int64, len(triples)),
    )


def tally(spans: Spans, columns: NDArray[np.int64], names: Sequence[str]) -> PiiFindings:
    """Count findings per kind and column; ``columns[i]`` is the index in ``names`` of the
    column span ``i`` lies in."""
    findings = PiiFindings()
    if not len(spans):
        return findings
    kinds = np.array(spans.kinds, dtype=object)
    for kind in sorted(set(spans.kinds)):
        per_column = np.bincount(columns[kinds == kind], minlength=len(names))
        for index in np.flatnonzero(per_column):
            findings.add(kind, names[int(index)], int(per_column[index]))
    return findings


class Tokens:
    """The redactor's token for each kind, asked for once per kind and checked."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._tokens: dict[str, bytes] = {}

    def __call__(self, kind: str) -> bytes:
        """The checked replacement for a finding of ``kind``."""
        token = self._tokens.get(kind)
        if token is None:
            token = self._redactor(kind)
            if not isinstance(token, bytes):
                raise DataHostError(
                    f"the redactor returned {type(token).__name__} for kind {kind!r}; "
                    f"it must return bytes"
                )
            try:
                token.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataHostError(
                    f"the redactor's token for kind {kind!r} is not UTF-8: {exc}"
                ) from exc
            unsafe = sorted(set(token) & _UNSAFE_IN_TOKEN)
            if unsafe:
                raise DataHostError(
                    f"the redactor's token {token!r} for kind {kind!r} holds the bytes "
                    f"{bytes(unsafe)!r}; a token must be safe inside CSV fields and JSON "
                    f"strings (no quote, comma, backslash or control character)"
                )
            self._tokens[kind] = token
        return token


def merged(spans: Spans) -> list[tuple[str, int, int]]:
    """The spans with overlapping ones joined (the first one's kind names the union)."""
    result: list[tuple[str, int, int]] = []
    for kind, start, end in zip(
        spans.kinds, spans.starts.tolist(), spans.ends.tolist(), strict=True
    ):
        if result and start < result[-1][2]:
            last_kind, last_start, last_end = result[-1]
            result[-1] = (last_kind, last_start, max(last_end, end))
        else:
            result.append((kind, start, end))
    return result


def replace_spans(
    data: bytes | memoryview, spans: Sequence[tuple[str, int, int]], tokens: Tokens
) -> bytes | memoryview:
    """``data`` with each (non-overlapping, sorted) span replaced by its kind's token
    (``data`` itself if there are none)."""
    if not spans:
        return data
    parts: list[bytes | memoryview] = []
    position = 0
    for kind, start, end in spans:
        parts.append(data[position:start])
        parts.append(tokens(kind))
        position = end
    parts.append(data[position:])
    return b"".join(parts)
