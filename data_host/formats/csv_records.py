"""CSV record structure of one block, found with vectorised numpy operations.

A block (see ``blocks``) holds whole CSV records: comma-separated fields, records ended by
``\\n`` (a ``\\r`` before it belongs to the last field and is tolerated). Fields may be
double-quoted (RFC 4180): a quoted field may hold commas, newlines and doubled quotes; a
quote may open a field only at its start and must close it just before a comma, the end
of the record or another quote (a doubled quote).

Without quotes, records end at every newline and fields at every comma: the positions of
newlines come from ``np.flatnonzero`` and the number of commas before any position from a
bit-packed comma mask and its popcounts (``Rank``), so counting every record's fields
costs a few passes over the block and no Python per record. With quotes, a running XOR of
the quote mask tells which bytes lie inside quotes; the same counting then runs on the
commas and newlines outside them.

This module must never accept a record whose field count differs from the header's, a
blank record in a table of several columns, a record longer than the line limit, or a
stray or unclosed quote: each is a ``Problem`` with the block-relative line it is on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import numpy as np
from numpy.typing import NDArray

from data_host.formats.limits import MAX_LINE_BYTES

_NEWLINE, _CARRIAGE_RETURN, _QUOTE, _COMMA = 0x0A, 0x0D, 0x22, 0x2C

_Int64s = NDArray[np.int64]
_Words = NDArray[np.uint64]


def _popcount_swar(words: _Words) -> _Words:
    """Set bits in each 64-bit word (for numpy releases without ``bitwise_count``)."""
    m1, m2, m4 = (
        np.uint64(0x5555555555555555),
        np.uint64(0x3333333333333333),
        np.uint64(0x0F0F0F0F0F0F0F0F),
    )
    x = words - ((words >> np.uint64(1)) & m1)
    x = (x & m2) + ((x >> np.uint64(2)) & m2)
    x = (x + (x >> np.uint64(4))) & m4
    return cast(_Words, (x * np.uint64(0x0101010101010101)) >> np.uint64(56))


_popcount: Callable[[_Words], NDArray[np.integer]] = getattr(np, "bitwise_count", _popcount_swar)


#: Bytes of a block each vectorised pass covers at a time in the unquoted path: small
#: enough that its masks stay in the core's cache between passes (measured on 8 MiB
#: blocks: 4.1 ms per block with 1 MiB windows, 5.9 ms with one 8 MiB window).
WINDOW_BYTES = 1 << 20


class _Scratch(threading.local):
    """Per-thread work arrays of ``WINDOW_BYTES`` elements, reused from window to window.

    Fresh multi-megabyte temporaries cost page faults on every block (measured: a
    subtract-compare-count pass over 8 MiB takes 4.3 ms with temporaries, 1.4 ms with
    reused arrays), so the large passes write into these instead.
    """

    def __init__(self) -> None:
        self.first = np.empty(WINDOW_BYTES, np.bool_)
        self.second = np.empty(WINDOW_BYTES, np.bool_)
        self.bytes = np.empty(WINDOW_BYTES, np.uint8)


_scratch = _Scratch()


def _words_of(packed: NDArray[np.uint8], size: int) -> _Words:
    """Packed mask bytes as little-endian 64-bit words (bit ``i % 64`` of word ``i // 64``
    is byte ``i``), with two spare zero words at the end."""
    words = np.zeros(size // 64 + 2, dtype=np.dtype("<u8"))
    words.view(np.uint8)[: len(packed)] = packed
    return words


class Rank:
    """How many marked bytes of a block lie before each of a set of positions.

    Built from the block's mask packed into 64-bit words (bit ``i % 64`` of word
    ``i // 64`` marks byte ``i``).
    """

    def __init__(self, words: _Words) -> None:
        counts = _popcount(words).astype(np.int64)
        self._words = words
        self._before = np.cumsum(counts) - counts

    @classmethod
    def of_mask(cls, mask: NDArray[np.bool_]) -> Rank:
        """The rank of a boolean mask."""
        return cls(_words_of(np.packbits(mask, bitorder="little"), len(mask)))

    def __call__(self, positions: _Int64s) -> _Int64s:
        """Marked bytes strictly before each of ``positions`` (0 <= position <= len(mask))."""
        index = positions >> 6
        below = (np.uint64(1) << (positions & 63).astype(np.uint64)) - np.uint64(1)
        return cast(_Int64s, self._before[index] + _popcount(self._words[index] & below))


@dataclass(frozen=True)
class Problem:
    """Something wrong on block-relative line ``line`` (0 = the block's first line)."""

    line: int
    message: str


@dataclass(frozen=True)
class Records:
    """The records of a block: where each starts and ends, and where its fields are."""

    #: The block's bytes (it may run on past the last record's end; see ``blocks.Block``).
    data: bytes
    #: Offset of each record's first byte.
    starts: _Int64s
    #: Offset of each record's ending newline (the block's size for an unterminated last
    #: one).
    ends: _Int64s
    #: Newlines in the block, those inside quoted fields included.
    newlines: int
    #: Whether the block holds quotes (then records and lines may differ).
    quoted: bool
    #: Bytes outside ``+`` .. ``9`` (43 .. 57), newlines included; None for quoted blocks.
    outside_numeric: int | None
    _separators: Rank

    def record_of(self, positions: _Int64s) -> _Int64s:
        """Index of the record each position lies in (a record's newline is part of it)."""
        return np.searchsorted(self.ends, positions, side="left")

    def column_of(self, positions: _Int64s, records: _Int64s) -> _Int64s:
        """Index of the field each position lies in, given its record."""
        return self._separators(positions) - self._separators(self.starts[records])

    def line_of(self, record: int) -> int:
        """Block-relative line on which record ``record`` starts."""
        if not self.quoted:
            return record
        return self.data.count(b"\n", 0, int(self.starts[record]))


def find_records(data: bytes, size: int, fields: int) -> Records | Problem:
    """The records of ``data[:size]``, each checked to hold exactly ``fields`` fields.

    Returns the first ``Problem`` instead if a record has another number of fields, is
    blank (when ``fields > 1``), is longer than ``MAX_LINE_BYTES``, has a stray or
    unclosed quote, or a carriage return that does not end its line.
    """
    array = np.frombuffer(data, dtype=np.uint8, count=size)
    problems: list[Problem] = []
    outside: int | None = None
    if data.find(b'"', 0, size) >= 0:
        ends, separators, newline_count, problem = _quoted(data, array)
        if problem is not None:
            problems.append(problem)
    else:
        ends, separators, outside = _unquoted(array)
        newline_count = len(ends)
    if data.find(b"\r", 0, size) >= 0:
        problem = _bare_carriage_return(data, array, ends)
        if problem is not None:
            problems.append(problem)
    if size and (not len(ends) or ends[-1] != size - 1):
        ends = np.append(ends, size)
    starts = np.empty_like(ends)
    if len(ends):
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    records = Records(data, starts, ends, newline_count, outside is None, outside, separators)
    # A record's ending newline is not a comma, so the commas before the next record's
    # start are those before this record's end: one rank per record suffices.
    per_record = np.diff(separators(ends), prepend=0)
    wrong = np.flatnonzero(per_record != fields - 1)
    if len(wrong):
        first = int(wrong[0])
        length = int(ends[first] - starts[first])
        blank = length == 0 or (length == 1 and array[starts[first]] == _CARRIAGE_RETURN)
        if blank:
            message = f"the line is blank; every row needs {fields} fields (remove blank lines)"
        else:
            message = f"{int(per_record[first]) + 1} fields, the header has {fields}"
        problems.append(Problem(records.line_of(first), message))
    lengths = ends - starts
    too_long = np.flatnonzero(lengths > MAX_LINE_BYTES)
    if len(too_long):
        first = int(too_long[0])
        problems.append(
            Problem(
                records.line_of(first),
                f"the record is {int(lengths[first])} bytes long, over the limit of "
                f"{MAX_LINE_BYTES} (1 MiB); split the value or shorten it",
            )
        )
    if problems:
        return min(problems, key=lambda problem: problem.line)
    return records


def _unquoted(array: NDArray[np.uint8]) -> tuple[_Int64s, Rank, int]:
    """Newline offsets, the rank of commas, and the count of bytes outside ``+`` .. ``9``,
    in one sweep of cache-sized windows."""
    size = len(array)
    commas = np.empty((size + 7) // 8, dtype=np.uint8)
    newlines = np.empty((size + 7) // 8, dtype=np.uint8)
    outside = 0
    work = _scratch
    for start in range(0, size, WINDOW_BYTES):
        window = array[start : start + WINDOW_BYTES]
        length = len(window)
        mask, other, shifted = work.first[:length], work.second[:length], work.bytes[:length]
        packed = slice(start // 8, (start + length + 7) // 8)
        newlines[packed] = np.packbits(np.equal(window, _NEWLINE, out=mask), bitorder="little")
        commas[packed] = np.packbits(np.equal(window, _COMMA, out=mask), bitorder="little")
        # 43 .. 57 map to 0 .. 14; everything else wraps above 14.
        np.subtract(window, np.uint8(43), out=shifted)
        outside += int(np.count_nonzero(np.greater(shifted, 14, out=other)))
    ends = _set_bits(_words_of(newlines, size))
    return ends, Rank(_words_of(commas, size)), outside


def _set_bits(words: _Words) -> _Int64s:
    """Offsets of the set bits of a packed mask, ascending.

    Cheaper than ``np.flatnonzero`` on the byte mask when bits are sparse (newlines in
    a table: measured 2.0 ms against 2.6 ms per 8 MiB): most words hold one bit, whose
    offset is read from the exponent of the word as a float; words with several bits are
    unpacked.
    """
    index = np.flatnonzero(words)
    selected = words[index]
    counts = _popcount(selected).astype(np.int64)
    single = counts == 1
    base = index * 64
    if single.all():
        return base + _only_bit(selected)
    slots = np.cumsum(counts) - counts
    offsets = np.empty(int(slots[-1] + counts[-1]), dtype=np.int64)
    offsets[slots[single]] = base[single] + _only_bit(selected[single])
    several = ~single
    bits = np.unpackbits(selected[several].view(np.uint8), bitorder="little").reshape(-1, 64)
    rows, columns = np.nonzero(bits)
    counts_of_several = counts[several]
    first_of_row = np.cumsum(counts_of_several) - counts_of_several
    order_in_row = np.arange(len(rows), dtype=np.int64) - first_of_row[rows]
    offsets[slots[several][rows] + order_in_row] = base[several][rows] + columns
    return offsets


def _only_bit(words: _Words) -> _Int64s:
    """The offset of the one set bit of each word (a power of two is exact as a float)."""
    return cast(_Int64s, (words.astype(np.float64).view(np.int64) >> 52) - 1023)


def _quoted(data: bytes, array: NDArray[np.uint8]) -> tuple[_Int64s, Rank, int, Problem | None]:
    """Record ends, the rank of separating commas, the newline count and the first quoting
    problem of a block with quotes."""
    quotes = array == _QUOTE
    inside = np.bitwise_xor.accumulate(quotes.view(np.uint8)).view(np.bool_)
    outside = ~inside
    newline_mask = array == _NEWLINE
    ends = np.flatnonzero(newline_mask & outside).astype(np.int64, copy=False)
    separators = Rank.of_mask((array == _COMMA) & outside)
    problem = _quote_problem(data, array, quotes, inside)
    return ends, separators, int(np.count_nonzero(newline_mask)), problem


def _bare_carriage_return(data: bytes, array: NDArray[np.uint8], ends: _Int64s) -> Problem | None:
    """The first carriage return outside quotes that does not end a line (CSV readers
    disagree on what it means, so it is refused)."""
    returns = np.flatnonzero(array == _CARRIAGE_RETURN)
    following = array[np.minimum(returns + 1, len(array) - 1)]
    bare = returns[(following != _NEWLINE) | (returns + 1 == len(array))]
    if len(bare) and data.find(b'"', 0, len(array)) >= 0:
        # Inside a quoted field a carriage return is data: keep those outside quotes, i.e.
        # with an even number of quotes between the record's start and it.
        quotes = np.flatnonzero(array == _QUOTE)
        record = np.searchsorted(ends, bare, side="left")
        record_start = np.where(record > 0, ends[np.maximum(record - 1, 0)] + 1, 0)
        inside = (np.searchsorted(quotes, bare) - np.searchsorted(quotes, record_start)) % 2
        bare = bare[inside == 0]
    if not len(bare):
        return None
    return Problem(
        data.count(b"\n", 0, int(bare[0])),
        "a carriage return that does not end the line; use \\n or \\r\\n line ends only, "
        "or quote the field",
    )


def _quote_problem(
    data: bytes, array: NDArray[np.uint8], quotes: NDArray[np.bool_], inside: NDArray[np.bool_]
) -> Problem | None:
    """The first quote that breaks RFC 4180 quoting, or an unclosed quote at the end."""
    positions = np.flatnonzero(quotes)
    opening = inside[positions]
    size = len(array)
    # An opening quote starts a field (block start, after a comma or newline) or doubles
    # the quote that just closed.
    previous = array[np.maximum(positions - 1, 0)]
    opening_ok = (
        (positions == 0) | (previous == _COMMA) | (previous == _NEWLINE) | (previous == _QUOTE)
    )
    # A closing quote ends the field (comma, newline, CR LF, end of block) or is doubled.
    following = array[np.minimum(positions + 1, size - 1)]
    after_next = array[np.minimum(positions + 2, size - 1)]
    at_end = positions == size - 1
    closing_ok = (
        at_end
        | (following == _COMMA)
        | (following == _NEWLINE)
        | (following == _QUOTE)
        | ((following == _CARRIAGE_RETURN) & ((positions + 2 >= size) | (after_next == _NEWLINE)))
    )
    bad = np.flatnonzero(np.where(opening, ~opening_ok, ~closing_ok))
    found: list[Problem] = []
    if len(bad):
        where = int(positions[bad[0]])
        if opening[bad[0]]:
            message = (
                "a quote inside an unquoted field; quote the whole field and double the "
                "quotes inside it"
            )
        else:
            message = (
                "text follows the closing quote of a field; a quoted field must end at a "
                "comma or the end of the line (double a quote that is part of the value)"
            )
        found.append(Problem(data.count(b"\n", 0, where), message))
    if len(positions) and inside[-1]:
        where = int(positions[opening][-1])
        found.append(
            Problem(
                data.count(b"\n", 0, where),
                "a quoted field starts here and is never closed",
            )
        )
    return min(found, key=lambda problem: problem.line) if found else None
