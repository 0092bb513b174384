"""CSV datasets: validation, schema inference, PII scan and redaction, block by block.

A CSV dataset is one ``.csv`` file or a folder of them sharing one header. Each file is
UTF-8 (a leading byte-order mark is skipped), comma-separated, with a header of unique,
non-empty names and at least one data row; every record has exactly as many fields as the
header (RFC 4180 quoting; see ``csv_records``).

How much is checked, and how:

* Structure, exactly and everywhere: every record's field count, record length, quoting
  and UTF-8, with vectorised numpy passes per block (``csv_records``).
* Dtypes (``int64``, ``float64``, ``bool``, ``string``; ``null`` for a column with no
  value): pyarrow infers them on the whole first block (4 MiB by default). Every later
  block is then either parsed in full by pyarrow (when the schema has a non-numeric column
  or the block has quotes) or, when every column is ``int64``/``float64``, *screened*:
  the block may hold only digits, signs, ``.``, ``e``/``E``, commas and line ends (no
  ``.`` or exponent at all when every column is ``int64``), and its first 64 KiB of
  records are parsed by pyarrow with the known types. A block that fails either check is
  parsed in full. A value that breaks a column's dtype widens it (``int64`` ->
  ``float64`` -> ``string``; see ``schema.widen``) rather than failing. What the screen
  cannot see, past each block's sample: an ``int64`` column gaining a decimal point in a
  table that also has ``float64`` columns, and values made only of those characters that
  are still not numbers (``1-2``). Parsing every value would run at pyarrow's speed
  (about 200 MB/s here) instead of the screen's (over 1 GB/s).
* PII: each raw block goes to the finder; a finding is attributed to the column it starts
  in. The header is scanned as well.

Blocks are processed on ``workers`` threads (numpy, pyarrow and RE2 release the GIL);
``progress`` is called from the calling thread only. This module must never parse values
in Python per field, register anything, or keep going past the first error: errors name
the file, the line (counting from 1, the header's first line) and what to change.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from data_host.errors import DatasetFormatError
from data_host.formats.blocks import Block, Overlong, in_order, open_regular, read_blocks
from data_host.formats.csv_records import Problem, Records, find_records
from data_host.formats.detect import DatasetLayout
from data_host.formats.findings import (
    PiiFinder,
    PiiFindings,
    Spans,
    Tokens,
    find_spans,
    merged,
    replace_spans,
    tally,
)
from data_host.formats.limits import MAX_COLUMNS, MAX_LINE_BYTES
from data_host.formats.schema import (
    BOOL,
    FLOAT64,
    INT64,
    NULL,
    STRING,
    TABULAR_LABELS,
    DatasetFormat,
    DatasetSchema,
    Feature,
    choose_label,
    widen,
)

#: Bytes read per block. Measured with two workers on a numeric CSV (this machine, same
#: run): 2 MiB 590 MB/s, 4 MiB 593 MB/s, 8 MiB 574 MB/s, 16 MiB 526 MB/s; smaller blocks
#: stay in the shared cache between the reading thread and the workers.
DEFAULT_BLOCK_SIZE = 4 << 20
#: Bytes of records at the start of each screened block that pyarrow parses in full.
SAMPLE_BYTES = 64 << 10

_BOM = b"\xef\xbb\xbf"
_NUMERIC = frozenset({INT64, FLOAT64})
_ARROW_TYPES: dict[str, pa.DataType] = {
    INT64: pa.int64(),
    FLOAT64: pa.float64(),
    BOOL: pa.bool_(),
    STRING: pa.string(),
}
_ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class CsvHeader:
    """A file's header: column names, and the bytes it takes at the start of the file."""

    names: tuple[str, ...]
    #: The header record as in the file, newline included, byte-order mark excluded.
    raw: bytes
    #: Offset of the first data byte (after the byte-order mark and the header).
    end: int
    #: Lines the header takes (more than one if a quoted name holds a newline).
    lines: int


def read_header(path: Path, where: str) -> CsvHeader:
    """Read and check the header of the CSV file at ``path`` (``where`` names it)."""
    descriptor = open_regular(path)
    try:
        head = os.pread(descriptor, MAX_LINE_BYTES + len(_BOM) + 1, 0)
        size = os.fstat(descriptor).st_size
    except OSError as exc:
        raise DatasetFormatError(f"cannot read {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(descriptor)
    start = len(_BOM) if head.startswith(_BOM) else 0
    end = _first_record_end(head, start)
    if end < 0:
        if len(head) >= size:
            raise DatasetFormatError(
                f"file {where} has a header but no data rows; a CSV dataset needs at least "
                f"one row under its header"
            )
        raise DatasetFormatError(
            f"file {where}, line 1: the header is longer than {MAX_LINE_BYTES} bytes (1 MiB)"
        )
    raw = head[start:end]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetFormatError(
            f"file {where}, line 1: the header is not valid UTF-8 ({exc.reason} at byte "
            f"{exc.start}); save the file as UTF-8"
        ) from exc
    names = _parse_row(text, where)
    if len(names) > MAX_COLUMNS:
        raise DatasetFormatError(
            f"file {where}, line 1: the header has {len(names)} columns, more than the "
            f"limit of {MAX_COLUMNS}"
        )
    for index, name in enumerate(names):
        if not name.strip():
            raise DatasetFormatError(
                f"file {where}, line 1: column {index + 1} of the header has no name; "
                f"name every column"
            )
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise DatasetFormatError(
            f"file {where}, line 1: the header names {', '.join(map(repr, repeated))} more "
            f"than once; column names must be unique"
        )
    checked = find_records(raw, len(raw), len(names))
    if isinstance(checked, Problem):
        raise DatasetFormatError(f"file {where}, line {checked.line + 1}: {checked.message}")
    return CsvHeader(tuple(names), raw, end, raw.count(b"\n"))


def _first_record_end(head: bytes, start: int) -> int:
    """Offset after the first record-ending newline at or after ``start``, or -1."""
    position = start
    quotes = 0
    while True:
        newline = head.find(b"\n", position)
        if newline < 0:
            return -1
        quotes += head.count(b'"', position, newline)
        if quotes % 2 == 0:
            return newline + 1
        position = newline + 1


def _parse_row(text: str, where: str) -> list[str]:
    body = text[:-1] if text.endswith("\n") else text
    body = body[:-1] if body.endswith("\r") else body
    try:
        rows = list(csv.reader(io.StringIO(body, newline=""), strict=True))
    except csv.Error as exc:
        raise DatasetFormatError(f"file {where}, line 1: the header is malformed: {exc}") from exc
    if len(rows) != 1:
        raise DatasetFormatError(f"file {where}, line 1: the header is empty; name every column")
    return rows[0]


# --- dtypes ---------------------------------------------------------------------------


def _dtype_of(arrow_type: pa.DataType) -> str:
    if pa.types.is_integer(arrow_type):
        return INT64
    if pa.types.is_floating(arrow_type):
        return FLOAT64
    if pa.types.is_boolean(arrow_type):
        return BOOL
    if pa.types.is_null(arrow_type):
        return NULL
    return STRING


def _read_table(
    view: memoryview, names: Sequence[str], types: dict[str, pa.DataType], quoted: bool
) -> pa.Table:
    return pacsv.read_csv(
        pa.BufferReader(pa.py_buffer(view)),
        read_options=pacsv.ReadOptions(
            column_names=list(names), use_threads=False, block_size=max(len(view) + 1, 1 << 16)
        ),
        parse_options=pacsv.ParseOptions(newlines_in_values=quoted, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(column_types=types, check_utf8=False),
    )


def _parsed_types(
    view: memoryview, names: Sequence[str], known: tuple[str, ...] | None, quoted: bool
) -> tuple[str, ...] | Problem:
    """The dtypes of every column over all of ``view``, widened from ``known``."""
    fixed = {} if known is None else _fixed_types(names, known)
    try:
        table = _read_table(view, names, fixed, quoted)
    except pa.ArrowInvalid:
        # A value does not fit a dtype known so far: infer this block's dtypes afresh.
        strings = {}
        if known is not None:
            strings = {
                name: pa.string()
                for name, dtype in zip(names, known, strict=True)
                if dtype == STRING
            }
        try:
            table = _read_table(view, names, strings, quoted)
        except pa.ArrowInvalid as exc:  # pragma: no cover - find_records accepted the block
            return Problem(0, f"pyarrow cannot read the block starting here: {exc}")
    seen = tuple(_dtype_of(column.type) for column in table.schema)
    if known is None:
        return seen
    return tuple(widen(before, now) for before, now in zip(known, seen, strict=True))


def _fixed_types(names: Sequence[str], known: tuple[str, ...]) -> dict[str, pa.DataType]:
    return {
        name: _ARROW_TYPES[dtype]
        for name, dtype in zip(names, known, strict=True)
        if dtype in _ARROW_TYPES
    }


def _screened(
    data: bytes, size: int, records: Records, names: Sequence[str], known: tuple[str, ...]
) -> bool:
    """Whether ``data[:size]`` holds only characters of numbers of the ``known`` dtypes,
    and its first ``SAMPLE_BYTES`` of records parse with them."""
    any_float = FLOAT64 in known
    # Bytes outside '+' .. '9' (43 .. 57: + , - . / and digits) may only be line ends and,
    # for floats, exponent markers.
    outside = records.outside_numeric
    allowed = records.newlines
    if outside is None:
        return False
    if outside != allowed and data.find(b"\r", 0, size) >= 0:
        returns = data.count(b"\r", 0, size)
        if data.count(b"\r\n", 0, size) != returns:
            return False
        allowed += returns
    if outside != allowed and any_float:
        array = np.frombuffer(data, dtype=np.uint8, count=size)
        for letter in b"eE":
            if data.find(bytes((letter,)), 0, size) >= 0:
                allowed += int(np.count_nonzero(array == letter))
    if outside != allowed:
        return False
    if data.find(b"/", 0, size) >= 0 or (not any_float and data.find(b".", 0, size) >= 0):
        return False
    ends = records.ends
    last = int(np.searchsorted(ends, SAMPLE_BYTES))
    sample_end = int(ends[last]) + 1 if last < len(ends) else size
    try:
        _read_table(memoryview(data)[:sample_end], names, _fixed_types(names, known), False)
    except pa.ArrowInvalid:
        return False
    return True


# --- one block --------------------------------------------------------------------------


@dataclass
class _Plan:
    """What every block of a file is checked against; ``known`` grows as blocks come in."""

    names: tuple[str, ...]
    finder: PiiFinder | None
    known: tuple[str, ...] | None = None
    check_types: bool = True
    tokens: Tokens | None = None


@dataclass
class _BlockResult:
    rows: int = 0
    newlines: int = 0
    types: tuple[str, ...] | None = None
    findings: PiiFindings = field(default_factory=PiiFindings)
    problem: Problem | None = None
    redacted: bytes | memoryview = b""


def _check_block(item: Block | Overlong, plan: _Plan) -> _BlockResult:
    if isinstance(item, Overlong):
        return _BlockResult(
            problem=Problem(
                0,
                f"a record runs on for more than {MAX_LINE_BYTES} bytes (1 MiB) without "
                f"ending; look for an unclosed quote",
            )
        )
    data, size = item.data, item.size
    view = memoryview(data)[:size]
    array = np.frombuffer(data, dtype=np.uint8, count=size)
    problems: list[Problem] = []
    if size and int(array.max()) >= 0x80:
        try:
            str(view, "utf-8")
        except UnicodeDecodeError as exc:
            problems.append(
                Problem(
                    data.count(b"\n", 0, exc.start),
                    f"not valid UTF-8 ({exc.reason}, byte {data[exc.start]:#04x}); save the "
                    f"file as UTF-8",
                )
            )
    found = find_records(data, size, len(plan.names))
    if isinstance(found, Problem):
        problems.append(found)
    if problems:
        return _BlockResult(problem=min(problems, key=lambda problem: problem.line))
    records = cast(Records, found)
    result = _BlockResult(rows=len(records.ends), newlines=records.newlines)
    if plan.check_types:
        known = plan.known
        if (
            known is not None
            and not records.quoted
            and _NUMERIC.issuperset(known)
            and _screened(data, size, records, plan.names, known)
        ):
            result.types = known
        else:
            types = _parsed_types(view, plan.names, known, records.quoted)
            if isinstance(types, Problem):
                result.problem = types
                return result
            result.types = types
    if plan.finder is None:
        return result
    # The finder sees the whole read, which may run into the next block's first record;
    # findings starting there belong to the next block.
    spans = find_spans(plan.finder, data).starting_before(size)
    result.findings.scanned_bytes = size
    if len(spans):
        columns = records.column_of(spans.starts, records.record_of(spans.starts))
        result.findings.merge(tally(spans, columns, plan.names))
    if plan.tokens is not None:
        result.problem = _unsplittable(data, size, records, spans) if len(spans) else None
        if result.problem is None:
            result.redacted = replace_spans(view, merged(spans), plan.tokens)
    return result


def _unsplittable(data: bytes, size: int, records: Records, spans: Spans) -> Problem | None:
    """The first finding that does not lie inside one field: it spans a separator, a
    record's newline or a quote, and cannot be replaced without changing the table."""
    last = np.minimum(spans.ends - 1, size - 1)
    first_records = records.record_of(spans.starts)
    last_records = records.record_of(last)
    crossing = (first_records != last_records) | (
        records.column_of(spans.starts, first_records) != records.column_of(last, last_records)
    )
    crossing |= (records.ends[last_records] == last) | (spans.ends > size)
    for index in range(len(spans)):
        start, end = int(spans.starts[index]), int(spans.ends[index])
        if crossing[index] or b'"' in data[start:end]:
            return Problem(
                records.line_of(int(first_records[index])),
                f"a finding of kind {spans.kinds[index]!r} spans more than one field or a "
                f"quote; the finder must match within one field for it to be redacted",
            )
    return None


# --- whole files ------------------------------------------------------------------------


def _header_findings(
    header: CsvHeader, where: str, plan: _Plan
) -> tuple[PiiFindings, bytes | memoryview]:
    """Findings in the header line, attributed to the column they are the name of."""
    findings = PiiFindings()
    if plan.finder is None:
        return findings, header.raw
    spans = find_spans(plan.finder, header.raw)
    findings.scanned_bytes = len(header.raw)
    if not len(spans):
        return findings, header.raw
    size = len(header.raw)
    found = find_records(header.raw, size, len(plan.names))
    records = cast(Records, found)  # read_header parsed the same bytes
    columns = records.column_of(spans.starts, records.record_of(spans.starts))
    findings.merge(tally(spans, columns, plan.names))
    redacted: bytes | memoryview = header.raw
    if plan.tokens is not None:
        problem = _unsplittable(header.raw, size, records, spans)
        if problem is not None:
            raise DatasetFormatError(f"file {where}, line {problem.line + 1}: {problem.message}")
        redacted = replace_spans(header.raw, merged(spans), plan.tokens)
    return findings, redacted


def _blocks(
    path: Path, where: str, header: CsvHeader, plan: _Plan, workers: int, block_size: int
) -> Iterator[tuple[Block | Overlong, _BlockResult]]:
    """Every block of the file with its result; the first is checked before the others
    start, so that they are screened against its dtypes."""
    items = read_blocks(path, header.end, block_size, quoted=True, max_record=MAX_LINE_BYTES)
    first = next(items, None)
    if first is None:
        raise DatasetFormatError(
            f"file {where} has a header but no data rows; a CSV dataset needs at least one "
            f"row under its header"
        )
    yield first, _check_block(first, plan)
    yield from in_order(items, lambda item: _check_block(item, plan), workers)


def _scan_file(
    path: Path,
    where: str,
    header: CsvHeader,
    plan: _Plan,
    workers: int,
    block_size: int,
    progress: _ProgressCallback | None,
    write: Callable[[bytes | memoryview], object] | None = None,
) -> tuple[int, PiiFindings]:
    """Check every block of one file; return its data rows and findings."""
    findings, header_bytes = _header_findings(header, where, plan)
    if write is not None:
        write(header_bytes)
    if progress is not None:
        progress(header.end)
    line = header.lines
    rows = 0
    for block, result in _blocks(path, where, header, plan, workers, block_size):
        if result.problem is not None:
            raise DatasetFormatError(
                f"file {where}, line {line + result.problem.line + 1}: {result.problem.message}"
            )
        line += result.newlines
        rows += result.rows
        if result.types is not None:
            known = plan.known
            plan.known = (
                result.types
                if known is None
                else tuple(
                    widen(before, now) for before, now in zip(known, result.types, strict=True)
                )
            )
        findings.merge(result.findings)
        if write is not None:
            write(result.redacted)
        if progress is not None and isinstance(block, Block):
            progress(block.size)
    return rows, findings


def _headers(layout: DatasetLayout) -> Iterator[tuple[Path, str, CsvHeader]]:
    """Each file's header, checked to be the first file's."""
    first: tuple[str, CsvHeader] | None = None
    for path in layout.files:
        where = layout.relative(path)
        header = read_header(path, where)
        if first is None:
            first = (where, header)
        elif header.names != first[1].names:
            raise DatasetFormatError(
                f"file {where}: its header {_shown(header.names)} differs from the header of "
                f"{first[0]} {_shown(first[1].names)}; all files of a CSV dataset share one "
                f"header"
            )
        yield path, where, header


def _shown(names: Sequence[str]) -> str:
    listed = ",".join(names[:20])
    return f"({listed}{',...' if len(names) > 20 else ''})"


def analyse_csv(
    layout: DatasetLayout,
    *,
    label: str | None,
    finder: PiiFinder | None,
    progress: _ProgressCallback | None,
    workers: int,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> tuple[DatasetSchema, PiiFindings]:
    """Validate a CSV dataset and infer its schema; scan it with ``finder`` if given.

    ``block_size`` is the bytes read per block (tests shrink it to cross block boundaries
    on small files). Raises ``DatasetFormatError`` naming the file and line of the first
    problem.
    """
    _check_block_size(block_size)
    plan: _Plan | None = None
    chosen: str | None = None
    rows = 0
    findings = PiiFindings()
    for path, where, header in _headers(layout):
        if plan is None:
            chosen = choose_label(header.names, label, f"{layout.root}", TABULAR_LABELS)
            plan = _Plan(header.names, finder)
        file_rows, file_findings = _scan_file(
            path, where, header, plan, workers, block_size, progress
        )
        rows += file_rows
        findings.merge(file_findings)
    if plan is None or plan.known is None:  # pragma: no cover - layouts list at least one file
        raise DatasetFormatError(f"{layout.root} holds no CSV file")
    features = tuple(
        Feature(name, dtype) for name, dtype in zip(plan.names, plan.known, strict=True)
    )
    schema = DatasetSchema(DatasetFormat.CSV, features, chosen, rows, len(layout.files))
    return schema, findings


def redact_csv(
    layout: DatasetLayout,
    finder: PiiFinder,
    tokens: Tokens,
    destination: Path,
    *,
    workers: int = 1,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> None:
    """Write each file of a CSV dataset under ``destination`` (same relative paths), with
    every finding replaced by its token. Byte-order marks and line ends are kept."""
    _check_block_size(block_size)
    for path, where, header in _headers(layout):
        plan = _Plan(header.names, finder, check_types=False, tokens=tokens)
        target = destination / where
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("xb") as out:
            if header.end > len(header.raw):
                out.write(_BOM)
            _scan_file(path, where, header, plan, workers, block_size, None, out.write)


def _check_block_size(block_size: int) -> None:
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise DatasetFormatError(f"block_size must be a positive integer, got {block_size!r}")
