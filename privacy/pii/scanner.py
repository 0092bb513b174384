"""The PII scanner: finds validated PII in a byte buffer and redacts it.

One RE2 program holds every selected detector (see ``patterns``); the scanner walks its
matches left to right, reads which detector's group matched, runs that detector's check
(``validators``) on the candidate alone, and keeps the findings that pass. RE2 runs in time
linear in the input, releases the GIL while it searches, and keeps no per-call state in
the compiled program, so one scanner serves many threads.

This module must never decode the scanned bytes as text, never keep the scanned data or
the findings after a call returns, and never report two findings that overlap.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import re2
from re2 import _re2

from privacy.errors import PiiError
from privacy.pii.patterns import PiiKind, combined_pattern, select
from privacy.pii.validators import Check, accept_all

Engine = Literal["re2", "re"]
ByteData = bytes | bytearray | memoryview
"""What the scanner reads: ``bytes``, or a buffer over bytes (a memory-mapped file's view)."""

# RE2 caches DFA states within this budget; a program as large as ours needs more than the
# default 8 MiB to keep its DFA from being rebuilt (and falling back to the slow NFA) on
# inputs that visit many states, such as PII-dense text.
_RE2_MAX_MEM = 64 << 20


_KIND_VALUES: dict[PiiKind, str] = {kind: kind.value for kind in PiiKind}


@dataclass(frozen=True)
class PiiMatch:
    """One finding: its kind and its byte offsets in the scanned buffer (end exclusive)."""

    kind: PiiKind
    start: int
    end: int


def redaction_token(kind: PiiKind | str) -> bytes:
    """The bytes that replace a finding of ``kind``: ``b"[PII:email]"`` and so on.

    The token holds only ASCII letters, ``_``, ``:``, ``[`` and ``]``, so it is safe inside a
    CSV field or a JSON string and never needs quoting or escaping.
    """
    try:
        value = PiiKind(kind).value
    except ValueError:
        raise PiiError(f"unknown PII kind {kind!r}; no redaction token exists for it") from None
    return b"[PII:" + value.encode("ascii") + b"]"


Spans = Sequence[tuple[int, int]]
"""The spans of a match: index 0 the whole match, index *i* group *i*, (-1, -1) if unset."""


def _byte_view(data: ByteData) -> ByteData:
    """``data`` with offsets in bytes: a memoryview of wider items is cast to one of bytes."""
    if isinstance(data, memoryview) and (data.itemsize != 1 or data.ndim != 1):
        try:
            return data.cast("B")
        except TypeError as exc:
            raise PiiError(f"cannot scan a non-contiguous memoryview: {exc}") from None
    return data


def _compile(pattern: bytes, engine: Engine) -> Callable[[ByteData, int], Spans | None]:
    """``search(data, pos)``: the spans of the leftmost match at or after ``pos``, or None.

    RE2 is called through its native binding (``re2._re2``), which returns every span in one
    call and releases the GIL while it searches; ``re2``'s ``re``-style Match object costs
    several microseconds more per finding, which dominated scans of PII-dense data.
    """
    if engine == "re2":
        options = re2.Options()
        options.encoding = re2.Options.Encoding.LATIN1
        options.max_mem = _RE2_MAX_MEM
        native = _re2.RE2(pattern, options)
        if not native.ok():
            raise PiiError(f"RE2 cannot compile the PII pattern: {native.error()}")
        unanchored = _re2.RE2.Anchor.UNANCHORED
        native_match = native.Match

        def search_re2(data: ByteData, position: int) -> Spans | None:
            spans: Spans = native_match(unanchored, data, position, len(data))
            return None if spans[0][0] < 0 else spans

        return search_re2
    if engine == "re":
        compiled = re.compile(pattern)

        def search_re(data: ByteData, position: int) -> Spans | None:
            match = compiled.search(data, position)
            return None if match is None else match.regs

        return search_re
    raise PiiError(f"unknown regex engine {engine!r}; use 're2' (or 're' to compare)")


class PiiScanner:
    """Finds validated PII in bytes: emails, phones, cards, IBANs, SSNs, IPs and secrets."""

    engine: str
    """The regex engine, as reported in dataset manifests: ``"re2"``."""

    def __init__(self, kinds: Iterable[PiiKind] | None = None, *, engine: Engine = "re2") -> None:
        """Compile the detectors for ``kinds`` (every kind for ``None``) once.

        ``engine="re"`` runs the same patterns on Python's ``re``; it is for benchmarks and
        cross-checks only (backtracking: some 100x slower on numeric data). Raises
        ``PiiError`` for an unknown kind, an empty selection or an unknown engine.
        """
        fragments = select(kinds)
        self._search = _compile(combined_pattern(fragments), engine)
        # Group i's (kind, check), i from 1; check None where the pattern alone decides.
        self._detectors: tuple[tuple[PiiKind, Check | None], ...] = (
            (PiiKind.SECRET, None),  # group 0 is the whole match, never looked up
            *(
                (fragment.kind, None if fragment.check is accept_all else fragment.check)
                for fragment in fragments
            ),
        )
        self.kinds: frozenset[PiiKind] = frozenset(fragment.kind for fragment in fragments)
        self.engine = engine

    def scan(self, data: ByteData) -> list[PiiMatch]:
        """Every validated finding in ``data``, sorted by start, none overlapping another.

        ``data`` is untrusted: any bytes, UTF-8 or not (``bytearray`` and ``memoryview``
        work too). Time is linear in ``len(data)``; the scanner is safe to share by threads.
        """
        return [PiiMatch(kind, start, end) for kind, start, end in self._locate(data)]

    def find(self, data: ByteData) -> list[tuple[str, int, int]]:
        """``scan`` as plain tuples: (kind value, start, end)."""
        values = _KIND_VALUES
        return [(values[kind], start, end) for kind, start, end in self._locate(data)]

    def _locate(self, data: ByteData) -> list[tuple[PiiKind, int, int]]:
        data = _byte_view(data)
        search = self._search
        detectors = self._detectors
        found: list[tuple[PiiKind, int, int]] = []
        position = 0
        size = len(data)
        while position < size:
            spans = search(data, position)
            if spans is None:
                break
            # The one group that took part in the match names the detector.
            index = 1
            while spans[index][0] < 0:
                index += 1
            start, end = spans[index]
            kind, check = detectors[index]
            if check is None:
                found.append((kind, start, end))
            else:
                length = check(bytes(data[start:end]))
                if length:
                    end = start + length
                    found.append((kind, start, end))
            # Resume where the finding or rejected candidate ends, not after its trailing
            # boundary byte: that byte may be the next candidate's leading boundary.
            position = end
        return found

    def redact(self, data: ByteData, matches: Sequence[PiiMatch] | None = None) -> bytes:
        """``data`` with every finding replaced by ``redaction_token(kind)``.

        ``matches`` are findings from ``scan`` on this same ``data``; they are scanned for when
        omitted. Raises ``PiiError`` if they are unsorted, overlap or lie outside ``data``.
        """
        data = _byte_view(data)
        if matches is None:
            matches = self.scan(data)
        pieces: list[ByteData] = []
        position = 0
        for match in matches:
            if not position <= match.start < match.end <= len(data):
                raise PiiError(
                    f"finding {match.kind.value} at bytes {match.start}-{match.end} does not fit "
                    f"a {len(data)}-byte buffer after the previous finding (ending at "
                    f"{position}); pass the sorted findings that scan() returned for this data"
                )
            pieces.append(data[position : match.start])
            pieces.append(redaction_token(match.kind))
            position = match.end
        pieces.append(data[position:])
        return b"".join(pieces)
