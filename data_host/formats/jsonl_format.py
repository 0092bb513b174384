"""JSON Lines datasets: validation, schema inference, PII scan and redaction.

A JSON Lines dataset is one ``.jsonl``/``.ndjson`` file or a folder of them. Every
non-blank line is one JSON object with the same key set as the dataset's first object;
values are scalars (string, number, boolean, null) or lists of numbers. Lines are parsed
one by one with ``provenance.canonical.parse_json`` (no duplicate keys, no NaN, bounded
nesting), and a line over ``MAX_LINE_BYTES`` is an error.

Dtypes per key: ``int64``, ``float64``, ``bool``, ``string`` or ``null`` for scalars, with
the same widening as CSV (``int64`` -> ``float64``, any other mix -> ``string``); a key
holding lists of numbers is an array feature: ``int64``/``float64`` with ``shape (n,)``
when every list has ``n`` numbers, else ``list<int64>``/``list<float64>`` with shape
``()``. A key that holds lists on some lines and scalars on others is an error.

PII: each raw block of lines goes to the finder; a finding is attributed to the top-level
key whose member (name and value) it starts in. JSON parsing holds the GIL, so blocks are
read and checked on the calling thread.

This module must never accept a line that is not a JSON object, a changed key set, nested
objects, or a line it could not bound: errors name the file, the line and the key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from data_host.errors import DatasetFormatError
from data_host.formats.blocks import Block, Overlong, read_blocks
from data_host.formats.detect import DatasetLayout
from data_host.formats.findings import (
    PiiFinder,
    PiiFindings,
    Spans,
    Tokens,
    find_spans,
    merged,
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
from provenance.canonical import parse_json
from provenance.errors import ProvenanceError

DEFAULT_BLOCK_SIZE = 8 << 20

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_WHITESPACE = " \t\r\n"
_DECODER = json.JSONDecoder()
_ProgressCallback = Callable[[int], None]


class _LineError(Exception):
    """A problem on the line being read; the caller adds the file and line number."""


@dataclass
class _KeyType:
    """What the values of one key have been so far."""

    scalar: str = NULL
    #: Element dtype of list values, or None while the key has held no list.
    element: str | None = None
    #: Length shared by every list so far; -1 once lengths differ.
    length: int | None = None

    def feature(self, name: str) -> Feature:
        """The key as a feature."""
        if self.element is None:
            return Feature(name, self.scalar)
        if self.length is not None and self.length >= 0:
            return Feature(name, self.element, (self.length,))
        return Feature(name, f"list<{self.element}>")

    def add(self, value: Any) -> None:
        """Take in one value; raise ``_LineError`` if it is not allowed or does not fit."""
        if isinstance(value, list):
            if self.scalar != NULL:
                raise _LineError(f"a list, but earlier lines hold {self.scalar} values")
            element = NULL
            for item in value:
                element = widen(element, _number_dtype(item))
            self.element = element if self.element is None else widen(self.element, element)
            if self.length is None:
                self.length = len(value)
            elif self.length != len(value):
                self.length = -1
            return
        dtype = _scalar_dtype(value)
        if self.element is not None and dtype != NULL:
            raise _LineError(f"a {dtype} value, but earlier lines hold lists")
        self.scalar = widen(self.scalar, dtype)


def _number_dtype(item: Any) -> str:
    if isinstance(item, bool) or not isinstance(item, int | float):
        raise _LineError(
            f"a list holding {type(item).__name__} values; lists may hold numbers only"
        )
    return _scalar_dtype(item)


def _scalar_dtype(value: Any) -> str:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise _LineError("an integer outside the int64 range; write it as a string")
        return INT64
    if isinstance(value, float):
        return FLOAT64
    if isinstance(value, str):
        return STRING
    raise _LineError(f"a nested {_kind(value)}; values must be scalars or lists of numbers")


@dataclass
class _State:
    """What the lines read so far have established."""

    keys: tuple[str, ...] | None = None
    first: str = ""
    types: dict[str, _KeyType] | None = None
    rows: int = 0
    #: Checks the label against the keys as soon as the first object is read.
    on_keys: Callable[[tuple[str, ...]], None] | None = None


def _check_line(line: bytes, state: _State) -> None:
    """Check one non-blank line and fold it into ``state``; raise ``_LineError``."""
    if len(line) > MAX_LINE_BYTES:
        raise _LineError(
            f"the line is {len(line)} bytes long, over the limit of {MAX_LINE_BYTES} bytes"
        )
    try:
        value = parse_json(line, max_bytes=MAX_LINE_BYTES, what="the line")
    except ProvenanceError as exc:
        raise _LineError(str(exc)) from exc
    if not isinstance(value, dict):
        raise _LineError(f"a JSON {_kind(value)} where a JSON object is expected")
    if state.keys is None or state.types is None:
        if not value:
            raise _LineError("an empty object; every line needs the dataset's keys")
        if len(value) > MAX_COLUMNS:
            raise _LineError(f"an object with {len(value)} keys, over the limit of {MAX_COLUMNS}")
        state.keys = tuple(value)
        state.types = {key: _KeyType() for key in value}
        if state.on_keys is not None:
            state.on_keys(state.keys)
    elif value.keys() != state.types.keys():
        missing = [key for key in state.keys if key not in value]
        unexpected = [key for key in value if key not in state.types]
        raise _LineError(
            f"the keys differ from those of {state.first}: missing {missing}, unexpected "
            f"{unexpected}"
        )
    for key, item in value.items():
        try:
            state.types[key].add(item)
        except _LineError as exc:
            raise _LineError(f"key {key!r} holds {exc}") from None
    state.rows += 1


def _kind(value: Any) -> str:
    return {list: "array", dict: "object", str: "string", bool: "boolean"}.get(type(value), "value")


# --- attribution ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Member:
    """One top-level member of a line's object, as byte offsets in the line."""

    key: str
    start: int
    value_start: int
    end: int


def _members(line: bytes) -> list[_Member]:
    """The top-level members of a line already checked to be a JSON object."""
    text = line.decode("utf-8")
    ascii_only = len(text) == len(line)

    def at(index: int) -> int:
        return index if ascii_only else len(text[:index].encode("utf-8"))

    members: list[_Member] = []
    index = _skip(text, _skip(text, 0) + 1)
    while index < len(text) and text[index] == '"':
        key, after_key = json.decoder.scanstring(text, index + 1)  # type: ignore[attr-defined]
        value_start = _skip(text, _skip(text, after_key) + 1)
        _, end = _DECODER.raw_decode(text, value_start)
        members.append(_Member(key, at(index), at(value_start), at(end)))
        index = _skip(text, end)
        if index < len(text) and text[index] == ",":
            index = _skip(text, index + 1)
        else:
            break
    return members


def _skip(text: str, index: int) -> int:
    while index < len(text) and text[index] in _WHITESPACE:
        index += 1
    return index


def _member_at(members: list[_Member], offset: int) -> _Member:
    """The member a finding at byte ``offset`` of the line is attributed to."""
    chosen = members[0]
    for member in members:
        if member.start <= offset:
            chosen = member
    return chosen


@dataclass(frozen=True)
class _Lines:
    """Where the lines of a block start and end (ends exclude the newline)."""

    starts: np.ndarray[Any, np.dtype[np.int64]]
    ends: np.ndarray[Any, np.dtype[np.int64]]

    @classmethod
    def of(cls, data: bytes) -> _Lines:
        newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 0x0A).astype(np.int64)
        ends = (
            newlines
            if len(newlines) and newlines[-1] == len(data) - 1
            else np.append(newlines, len(data))
        )
        starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
        return cls(starts, ends.astype(np.int64))


def _block_findings(data: bytes, spans: Spans, lines: _Lines, keys: tuple[str, ...]) -> PiiFindings:
    """Findings of one block, counted per key."""
    index_of = {key: index for index, key in enumerate(keys)}
    line_numbers = np.searchsorted(lines.ends, spans.starts, side="left")
    columns = np.zeros(len(spans), dtype=np.int64)
    cache: dict[int, list[_Member]] = {}
    for position, (line, start) in enumerate(
        zip(line_numbers.tolist(), spans.starts.tolist(), strict=True)
    ):
        members = cache.get(line)
        line_start = int(lines.starts[line])
        if members is None:
            members = cache[line] = _members(data[line_start : int(lines.ends[line])])
        columns[position] = index_of[_member_at(members, start - line_start).key]
    return tally(spans, columns, keys)


# --- reading ----------------------------------------------------------------------------


def _lines_of(path: Path, where: str, block_size: int) -> Iterator[tuple[Block, int, list[bytes]]]:
    """Each block of the file (holding only its own bytes), the number of its first line,
    and its lines."""
    line_number = 1
    for item in read_blocks(path, 0, block_size, quoted=False, max_record=MAX_LINE_BYTES):
        if isinstance(item, Overlong):
            raise DatasetFormatError(
                f"file {where}, line {line_number}: the line is longer than {MAX_LINE_BYTES} "
                f"bytes (1 MiB); split the record"
            )
        content = item.content()
        lines = content.split(b"\n")
        if lines and not lines[-1]:
            lines.pop()
        yield Block(item.offset, content, len(content)), line_number, lines
        line_number += len(lines)


def _read_file(
    path: Path,
    where: str,
    state: _State,
    finder: PiiFinder | None,
    progress: _ProgressCallback | None,
    block_size: int,
    rewrite: Callable[[Block, int, list[bytes], Spans], None] | None = None,
) -> PiiFindings:
    findings = PiiFindings()
    for block, first_line, lines in _lines_of(path, where, block_size):
        for offset, line in enumerate(lines):
            if not line.strip(_WHITESPACE.encode()):
                continue
            if state.keys is None:
                state.first = f"line {first_line + offset} of {where}"
            try:
                _check_line(line, state)
            except _LineError as exc:
                raise DatasetFormatError(
                    f"file {where}, line {first_line + offset}: {exc}"
                ) from None
        if finder is not None:
            spans = find_spans(finder, block.data)
            findings.scanned_bytes += len(block.data)
            if len(spans) and state.keys is not None:
                findings.merge(
                    _block_findings(block.data, spans, _Lines.of(block.data), state.keys)
                )
            if rewrite is not None:
                rewrite(block, first_line, lines, spans)
        if progress is not None:
            progress(len(block.data))
    return findings


def analyse_jsonl(
    layout: DatasetLayout,
    *,
    label: str | None,
    finder: PiiFinder | None,
    progress: _ProgressCallback | None,
    workers: int,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> tuple[DatasetSchema, PiiFindings]:
    """Validate a JSON Lines dataset and infer its schema; scan it with ``finder`` if
    given. ``workers`` is accepted for a uniform interface; lines are parsed on the calling
    thread."""
    chosen: list[str | None] = []

    def check_label(keys: tuple[str, ...]) -> None:
        chosen.append(choose_label(keys, label, f"{layout.root}", TABULAR_LABELS))

    state = _State(on_keys=check_label)
    findings = PiiFindings()
    for path in layout.files:
        where = layout.relative(path)
        rows_before = state.rows
        findings.merge(_read_file(path, where, state, finder, progress, block_size))
        if state.rows == rows_before:
            raise DatasetFormatError(f"file {where} holds no JSON objects (only blank lines)")
    if state.keys is None or state.types is None:  # pragma: no cover - checked per file
        raise DatasetFormatError(f"{layout.root} holds no JSON objects")
    features = tuple(state.types[key].feature(key) for key in state.keys)
    schema = DatasetSchema(DatasetFormat.JSONL, features, chosen[0], state.rows, len(layout.files))
    return schema, findings


# --- redaction --------------------------------------------------------------------------


def _redacted_line(line: bytes, spans: list[tuple[str, int, int]], tokens: Tokens) -> bytes:
    """``line`` with each (merged, line-relative) span replaced; raise ``_LineError`` where
    a finding cannot be replaced without changing the object's keys or structure."""
    members = _members(line)
    edits: list[tuple[int, int, bytes]] = []
    for kind, start, end in spans:
        member = _member_at(members, start)
        if end > member.end or start < member.value_start:
            raise _LineError(
                f"a finding of kind {kind!r} lies in or across key names ({member.key!r}); "
                f"only values can be redacted"
            )
        token = tokens(kind)
        opening = line[member.value_start : member.value_start + 1]
        if opening == b'"':
            if start <= member.value_start or end >= member.end:
                raise _LineError(
                    f"a finding of kind {kind!r} covers the quotes of the value of key "
                    f"{member.key!r}"
                )
            edits.append((start, end, token))
        elif opening == b"[":
            raise _LineError(
                f"a finding of kind {kind!r} in the list of key {member.key!r}; lists of "
                f"numbers cannot be redacted"
            )
        elif edits and edits[-1][0] == member.value_start:
            continue  # the whole value is replaced already
        else:
            edits.append((member.value_start, member.end, b'"' + token + b'"'))
    parts: list[bytes] = []
    position = 0
    for start, end, replacement in edits:
        parts.append(line[position:start])
        parts.append(replacement)
        position = end
    parts.append(line[position:])
    result = b"".join(parts)
    try:
        rewritten = parse_json(result, max_bytes=MAX_LINE_BYTES + len(result), what="the line")
        original = parse_json(line, max_bytes=MAX_LINE_BYTES, what="the line")
    except ProvenanceError as exc:
        raise _LineError(
            f"replacing its findings would break the line's JSON ({exc}); the finder must "
            f"match within string values"
        ) from exc
    if not isinstance(rewritten, dict) or list(rewritten) != list(original):
        raise _LineError("replacing its findings would change the line's keys")
    return result


class _Rewriter:
    """Writes the blocks of one file with their findings replaced."""

    def __init__(self, out: BinaryIO, where: str, tokens: Tokens) -> None:
        self._out = out
        self._where = where
        self._tokens = tokens

    def __call__(self, block: Block, first_line: int, lines: list[bytes], spans: Spans) -> None:
        """Write ``block`` (split into ``lines``) with the ``spans`` found in it replaced."""
        if not len(spans):
            self._out.write(block.data)
            return
        bounds = _Lines.of(block.data)
        by_line: dict[int, list[tuple[str, int, int]]] = {}
        for kind, start, end in merged(spans):
            line = int(np.searchsorted(bounds.ends, start, side="left"))
            offset = int(bounds.starts[line])
            if end > int(bounds.ends[line]):
                raise DatasetFormatError(
                    f"file {self._where}, line {first_line + line}: a finding of kind {kind!r} "
                    f"runs past the end of the line"
                )
            by_line.setdefault(line, []).append((kind, start - offset, end - offset))
        for index, line_bytes in enumerate(lines):
            if index in by_line:
                try:
                    line_bytes = _redacted_line(line_bytes, by_line[index], self._tokens)
                except _LineError as exc:
                    raise DatasetFormatError(
                        f"file {self._where}, line {first_line + index}: {exc}"
                    ) from None
            self._out.write(line_bytes)
            if index < len(lines) - 1 or block.data.endswith(b"\n"):
                self._out.write(b"\n")


def redact_jsonl(
    layout: DatasetLayout,
    finder: PiiFinder,
    tokens: Tokens,
    destination: Path,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> None:
    """Write each file of a JSON Lines dataset under ``destination`` (same relative paths),
    with every finding replaced by its token."""
    state = _State()
    for path in layout.files:
        where = layout.relative(path)
        target = destination / where
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("xb") as out:
            rewriter = _Rewriter(out, where, tokens)
            _read_file(path, where, state, finder, None, block_size, rewriter)
