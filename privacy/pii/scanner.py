"""The PII scanner: finds validated PII in a byte buffer and redacts it.

One RE2 program holds every selected detector (see ``patterns``). RE2 finds the next match
without submatches (its cheapest search), and the scanner tells which detector matched
from the bytes around the match: each detector declares its possible first bytes, a byte
its candidates must contain, and whether they end in a word byte (``patterns.Fragment``).
Where that leaves one detector, the candidate's end is the match's last word byte; where
it leaves several, each is tried in priority order on the match's bytes alone. The winner's
check (``validators``) then runs on the candidate, and the findings that pass are kept.
The result is what one search with submatches would give, at a fraction of the calls.
RE2 runs in time linear in the input, releases the GIL while it searches, and keeps no
per-call state in the compiled program, so one scanner serves many threads.

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
from privacy.pii.patterns import WORD_BYTES, Fragment, PiiKind, combined_pattern, select
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


def _re2_program(pattern: bytes) -> _re2.RE2:
    """``pattern`` compiled by RE2 for bytes (Latin-1), with room for a large DFA."""
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1
    options.max_mem = _RE2_MAX_MEM
    native = _re2.RE2(pattern, options)
    if not native.ok():
        raise PiiError(f"RE2 cannot compile the PII pattern: {native.error()}")
    return native


def _compile(pattern: bytes, engine: Engine) -> Callable[[ByteData, int], Spans | None]:
    """``search(data, pos)``: the spans of the leftmost match at or after ``pos``, or None.

    RE2 is called through its native binding (``re2._re2``), which returns every span in one
    call and releases the GIL while it searches; ``re2``'s ``re``-style Match object costs
    several microseconds more per finding, which dominated scans of PII-dense data.
    """
    if engine == "re2":
        unanchored = _re2.RE2.Anchor.UNANCHORED
        native_match = _re2_program(pattern).Match

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


_SHORT_MATCH = 64
"""Matches up to this many bytes are told apart by Python's ``re`` on the match alone (work
bounded by this length); longer ones by one RE2 search with submatches."""

# A lead is empty or ``(?:^|[class])``: at any offset but 0 it is exactly one byte.
_ONE_BYTE_LEAD = re.compile(rb"\(\?:\^\|(\[(?:[^\\\]]|\\.)*\])\)")


def _byte_table(byte_class: bytes) -> list[bool]:
    """Which of the 256 byte values the regex ``byte_class`` matches."""
    compiled = re.compile(byte_class)
    return [compiled.fullmatch(bytes([value])) is not None for value in range(256)]


def _python_pattern(fragment: Fragment, *, at_end: bool) -> re.Pattern[bytes]:
    """``fragment`` as one Python ``re`` pattern, with ``$`` meaning RE2's end of the buffer.

    ``fullmatch(data, start, end)`` then agrees with RE2 on ``data[start:end]`` in context:
    ``^`` matches only at offset 0, and ``$`` at ``end`` only where ``end`` is the buffer's
    end (``at_end``), never before a final newline.
    """
    pattern = fragment.lead + b"(" + fragment.candidate + b")" + fragment.tail
    if pattern.count(b"$") != pattern.count(b"(?:$|"):
        raise PiiError(f"PII pattern {fragment.name!r} uses '$' outside a boundary")
    return re.compile(pattern.replace(b"(?:$|", b"(?:\\Z|" if at_end else b"(?:(?!)|"))


class _Re2Locator:
    """Finds the candidates of ``fragments`` with RE2 searches that ask for no submatches.

    ``locate`` gives what the reference loop over a search with submatches gives:
    (fragment index, candidate start, candidate end) for each match, left to right.
    """

    def __init__(self, fragments: Sequence[Fragment]) -> None:
        self._search = _re2_program(combined_pattern(fragments, capture=False)).Match
        self._submatch = _re2_program(combined_pattern(fragments)).Match
        self._word = _byte_table(WORD_BYTES)
        self._all = (1 << len(fragments)) - 1
        # Per byte value, the fragments whose lead accepts it / whose candidate may start with
        # it / whose candidate starts at the match's first byte (an empty lead).
        self._lead = [0] * 256
        self._first = [0] * 256
        self._empty_lead = [0] * 256
        # The fragment alone in a mask, where it ends in a word byte (its end is then known).
        self._single: dict[int, int] = {}
        required: dict[int, int] = {}
        for index, fragment in enumerate(fragments):
            bit = 1 << index
            firsts = _byte_table(fragment.first)
            if fragment.lead:
                lead = _ONE_BYTE_LEAD.fullmatch(fragment.lead)
                if lead is None:
                    raise PiiError(f"PII pattern {fragment.name!r}: lead is not '(?:^|[...])'")
                for value, accepted in enumerate(_byte_table(lead.group(1))):
                    self._lead[value] |= bit if accepted else 0
                    self._first[value] |= bit if firsts[value] else 0
                if fragment.ends_in_word:
                    self._single[bit] = index
            else:
                for value in range(256):
                    self._empty_lead[value] |= bit if firsts[value] else 0
            for needle in fragment.required:
                required[needle] = required.get(needle, 0) | bit
        self._required = tuple((bytes([needle]), bits) for needle, bits in required.items())
        self._inner = tuple(_python_pattern(fragment, at_end=False) for fragment in fragments)
        self._at_end = tuple(_python_pattern(fragment, at_end=True) for fragment in fragments)
        self._plans: dict[int, tuple[tuple[tuple[bytes, int], ...], int]] = {}
        self._orders: dict[int, tuple[int, ...]] = {}

    def refine(self, mask: int, span: bytes) -> int:
        """``mask`` less the fragments whose required byte ``span`` (the match) lacks."""
        plan = self._plans.get(mask)
        if plan is None:
            needles = tuple((needle, bits & mask) for needle, bits in self._required if bits & mask)
            needy = 0
            for _needle, bits in needles:
                needy |= bits
            plan = self._plans[mask] = (needles, needy)
        needles, needy = plan
        satisfied = 0
        for needle, bits in needles:
            if needle in span:
                satisfied |= bits
        return mask & ~(needy & ~satisfied)

    def resolve(self, mask: int, data: ByteData, start: int, end: int) -> tuple[int, int, int]:
        """Which of ``mask``'s fragments RE2 matched at ``data[start:end]``, and its candidate.

        The first fragment (in priority order) that can match there at all is the one the
        combined program chose, so the first whose whole pattern matches the span wins.
        """
        if end - start <= _SHORT_MATCH:
            order = self._orders.get(mask)
            if order is None:
                order = tuple(i for i in range(self._all.bit_length()) if mask >> i & 1)
                self._orders[mask] = order
            programs = self._at_end if end == len(data) else self._inner
            for index in order:
                match = programs[index].fullmatch(data, start, end)
                if match is not None:
                    first, last = match.span(1)
                    return index, first, last
        spans = self._submatch(_re2.RE2.Anchor.ANCHOR_BOTH, data, start, end)
        group = 1
        while spans[group][0] < 0:
            group += 1
        first, last = spans[group]
        return group - 1, first, last


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
        self._locator = _Re2Locator(fragments) if engine == "re2" else None
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
        if self._locator is None:
            return self._locate_reference(data)
        locator = self._locator
        search = locator._search
        unanchored = _re2.RE2.Anchor.UNANCHORED
        lead_masks, first_masks, empty_lead = locator._lead, locator._first, locator._empty_lead
        single, word, refine, resolve = (
            locator._single,
            locator._word,
            locator.refine,
            locator.resolve,
        )
        detectors = self._detectors[1:]
        found: list[tuple[PiiKind, int, int]] = []
        position = 0
        size = len(data)
        while position < size:
            start, end = search(unanchored, data, position, size)[0]
            if start < 0:
                break
            index = None
            if start:
                # At an offset > 0 every lead is one byte or none (a private key's).
                lead = data[start]
                mask = lead_masks[lead] & first_masks[data[start + 1]] | empty_lead[lead]
                index = single.get(mask)
                if index is None:
                    mask = refine(mask, bytes(data[start:end]))
                    index = single.get(mask)
            else:
                mask = locator._all
            if index is None:
                index, first, last = resolve(mask, data, start, end)
            else:
                # The candidate ends in a word byte and the tail (at most two bytes) has none.
                first = start + 1
                last = end if word[data[end - 1]] else end - 1 if word[data[end - 2]] else end - 2
            kind, check = detectors[index]
            if check is None:
                found.append((kind, first, last))
            else:
                length = check(bytes(data[first:last]))
                if length:
                    last = first + length
                    found.append((kind, first, last))
            # Resume where the finding or rejected candidate ends, not after its trailing
            # boundary byte: that byte may be the next candidate's leading boundary.
            position = last
        return found

    def _locate_reference(self, data: ByteData) -> list[tuple[PiiKind, int, int]]:
        """``_locate`` by one search with submatches per match (Python's ``re`` engine)."""
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
