"""NumPy datasets: ``.npy`` arrays and ``.npz`` archives, without ever unpickling.

* One ``.npy`` file is one array feature named by the file's stem; a folder of ``.npy``
  files is a set of named arrays (like an ``.npz``): every array shares its first axis.
* One ``.npz`` archive holds named arrays sharing their first axis; a folder of ``.npz``
  files holds shards of one dataset: the same arrays (names, kinds, per-row shapes) in
  each, rows added up.

Rows are the length of the first axis; 0-d arrays, empty arrays, object arrays (they need
pickle), structured arrays and files whose size does not match their header are refused.
``.npy`` files are opened with ``numpy.load(..., allow_pickle=False, mmap_mode="r")``;
``.npz`` members are read as streams after their header is checked, so that every byte is
read once (the zip CRC is verified) and memory stays bounded. String arrays (``U``/``S``)
are shown to the PII finder as their elements joined by ``\\n``; other arrays are listed in
``not_scanned``. The label is the array named by ``label`` or, by default, one named
``y``, ``label``, ``labels`` or ``target``.

This module must never call ``numpy.load`` with ``allow_pickle=True``, read an array
before its header has been checked, or trust an archive's member count: errors name the
file and the array.
"""

from __future__ import annotations

import math
import os
import shutil
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from data_host.errors import DatasetFormatError
from data_host.formats.blocks import open_regular
from data_host.formats.detect import DatasetLayout
from data_host.formats.findings import PiiFinder, PiiFindings, Tokens, find_spans, merged
from data_host.formats.limits import MAX_ARRAYS, MAX_NPY_HEADER_BYTES, SCAN_BYTES
from data_host.formats.schema import (
    ARRAY_LABELS,
    DatasetFormat,
    DatasetSchema,
    Feature,
    choose_label,
)

_STREAM_BYTES = 1 << 20
_NUMERIC_KINDS = frozenset("biufc")
_TEXT_KINDS = frozenset("US")
_ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class ArrayHeader:
    """A checked ``.npy`` header: what the array holds and where its data starts."""

    name: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    fortran_order: bool
    #: Bytes of magic and header before the data.
    data_offset: int

    @property
    def is_text(self) -> bool:
        """Whether the array holds strings (scanned for PII)."""
        return self.dtype.kind in _TEXT_KINDS

    @property
    def data_bytes(self) -> int:
        """Bytes of array data after the header."""
        return math.prod(self.shape) * self.dtype.itemsize

    def dtype_name(self) -> str:
        """numpy's name for numbers (``float32``), ``U<n>``/``S<n>`` for strings."""
        if self.dtype.kind == "U":
            return f"U{self.dtype.itemsize // 4}"
        if self.dtype.kind == "S":
            return f"S{self.dtype.itemsize}"
        return self.dtype.name


def read_header(stream: IO[bytes], name: str, where: str, total_size: int) -> ArrayHeader:
    """Read and check the ``.npy`` header at the start of ``stream`` (``total_size`` bytes
    long); ``where`` names the file or member in errors."""
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(
                stream, max_header_size=MAX_NPY_HEADER_BYTES
            )
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(
                stream, max_header_size=MAX_NPY_HEADER_BYTES
            )
        else:
            raise DatasetFormatError(
                f"{where}: .npy format version {version[0]}.{version[1]} is not supported; "
                f"save it with numpy.save"
            )
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise DatasetFormatError(f"{where} is not a readable .npy array: {exc}") from exc
    header = ArrayHeader(name, dtype, tuple(shape), bool(fortran_order), stream.tell())
    if dtype.hasobject:
        raise DatasetFormatError(
            f"{where} holds Python objects (dtype {dtype}), which only pickle can load; "
            f"pickles are never loaded on a data host. Save numeric or string arrays"
        )
    if dtype.names is not None or dtype.kind == "V":
        raise DatasetFormatError(
            f"{where} is a structured array (dtype {dtype}); save each field as its own array"
        )
    if not header.shape:
        raise DatasetFormatError(
            f"{where} is a 0-d array (a single value); a dataset array needs one row per "
            f"example along its first axis"
        )
    if header.shape[0] == 0:
        raise DatasetFormatError(f"{where} has no rows (its first axis is empty)")
    if header.data_offset + header.data_bytes != total_size:
        raise DatasetFormatError(
            f"{where} is {total_size} bytes, but its header describes "
            f"{header.data_offset + header.data_bytes} (shape {header.shape}, dtype {dtype}); "
            f"the file is truncated or has trailing data"
        )
    return header


def _text_of(values: list[Any], kind: str) -> list[bytes]:
    if kind == "U":
        return [value.encode("utf-8", "surrogatepass") for value in values]
    return list(values)


def _joined(values: list[bytes]) -> tuple[bytes, np.ndarray[Any, np.dtype[np.int64]]]:
    """The values joined by ``\\n`` and where each starts (plus one past the end)."""
    lengths = np.fromiter((len(value) + 1 for value in values), np.int64, len(values))
    starts = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    return b"\n".join(values), starts


def _scan_values(
    values: list[Any], kind: str, name: str, finder: PiiFinder, findings: PiiFindings
) -> None:
    text, _ = _joined(_text_of(values, kind))
    spans = find_spans(finder, text)
    findings.scanned_bytes += len(text)
    for span_kind in spans.kinds:
        findings.add(span_kind, name)


def _elements(stream: IO[bytes], header: ArrayHeader, where: str) -> Iterator[list[Any]]:
    """The elements of a string array, a chunk at a time, in storage order."""
    itemsize = header.dtype.itemsize
    per_chunk = max(1, SCAN_BYTES // itemsize) * itemsize
    remaining = header.data_bytes
    while remaining:
        chunk = _read_exactly(stream, min(per_chunk, remaining), where)
        remaining -= len(chunk)
        yield np.frombuffer(chunk, dtype=header.dtype).tolist()


def _read_exactly(stream: IO[bytes], size: int, where: str) -> bytes:
    parts: list[bytes] = []
    wanted = size
    try:
        while wanted:
            part = stream.read(wanted)
            if not part:
                raise DatasetFormatError(f"{where} ends before its data does; it is truncated")
            parts.append(part)
            wanted -= len(part)
    except (zipfile.BadZipFile, zlib.error, OSError) as exc:
        raise DatasetFormatError(f"{where} is damaged: {exc}") from exc
    return b"".join(parts)


def _drain(stream: IO[bytes], size: int, where: str) -> None:
    """Read ``size`` bytes and the end of the member (which checks its CRC)."""
    remaining = size
    while remaining:
        remaining -= len(_read_exactly(stream, min(_STREAM_BYTES, remaining), where))
    try:
        extra = stream.read(1)
    except (zipfile.BadZipFile, zlib.error, OSError) as exc:
        raise DatasetFormatError(f"{where} is damaged: {exc}") from exc
    if extra:
        raise DatasetFormatError(f"{where} holds data past its array")


# --- listing arrays ---------------------------------------------------------------------


def _npy_header(path: Path, where: str) -> ArrayHeader:
    with os.fdopen(open_regular(path), "rb") as stream:
        return read_header(stream, path.stem, f"file {where}", os.fstat(stream.fileno()).st_size)


@contextmanager
def _open_archive(path: Path, where: str) -> Iterator[zipfile.ZipFile]:
    """The ``.npz`` archive at ``path`` with its member list checked; closed (with the file)
    after."""
    with os.fdopen(open_regular(path), "rb") as source:
        try:
            archive = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise DatasetFormatError(f"file {where} is not a readable .npz archive: {exc}") from exc
        with archive:
            problem = _member_problem(archive.infolist())
            if problem is not None:
                raise DatasetFormatError(f"file {where} {problem}")
            yield archive


def _member_problem(members: list[zipfile.ZipInfo]) -> str | None:
    if len(members) > MAX_ARRAYS:
        return f"holds {len(members)} members, over the limit of {MAX_ARRAYS}"
    if not members:
        return "holds no arrays"
    names = [member.filename for member in members]
    odd = [name for name in names if not name.endswith(".npy") or name.endswith("/")]
    if odd:
        return f"holds members that are not .npy arrays: {odd[:5]}"
    unsafe = [
        name
        for name in names
        if "/" in name or "\\" in name or name.startswith(".") or "\x00" in name
    ]
    if unsafe:
        return f"holds members with path-like or hidden names: {unsafe[:5]}"
    encrypted = [member.filename for member in members if member.flag_bits & 0x1]
    if encrypted:
        return f"holds encrypted members: {encrypted[:5]}"
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        return f"holds the members {repeated[:5]} more than once"
    return None


def _member_where(where: str, member: zipfile.ZipInfo) -> str:
    return f"file {where}, array {member.filename[:-4]!r}"


def _check_archive(
    archive: zipfile.ZipFile,
    where: str,
    finder: PiiFinder | None,
    findings: PiiFindings,
) -> list[ArrayHeader]:
    """Check every member of an archive, reading it through; scan string arrays."""
    headers: list[ArrayHeader] = []
    for member in archive.infolist():
        member_where = _member_where(where, member)
        try:
            stream = archive.open(member)
        except (zipfile.BadZipFile, NotImplementedError, OSError, ValueError) as exc:
            raise DatasetFormatError(f"{member_where} cannot be read: {exc}") from exc
        with stream:
            header = read_header(stream, member.filename[:-4], member_where, member.file_size)
            if header.is_text and finder is not None:
                for values in _elements(stream, header, member_where):
                    _scan_values(values, header.dtype.kind, header.name, finder, findings)
                _drain(stream, 0, member_where)
            else:
                _drain(stream, header.data_bytes, member_where)
        headers.append(header)
    return headers


def _same_rows(headers: list[ArrayHeader], where: str) -> int:
    rows = {header.shape[0] for header in headers}
    if len(rows) > 1:
        listed = ", ".join(f"{header.name!r} has {header.shape[0]}" for header in headers[:10])
        raise DatasetFormatError(
            f"{where}: the arrays differ in length along the first axis ({listed}); every "
            f"array needs one entry per example"
        )
    return rows.pop()


def _same_arrays(headers: list[ArrayHeader], first: list[ArrayHeader], where: str) -> None:
    def signature(header: ArrayHeader) -> tuple[str, str, tuple[int, ...]]:
        kind = header.dtype.kind if header.is_text else header.dtype.str
        return header.name, kind, header.shape[1:]

    if [signature(header) for header in headers] != [signature(header) for header in first]:
        raise DatasetFormatError(
            f"{where}: its arrays ({_described(headers)}) differ from those of the first "
            f"archive ({_described(first)}); every archive of the dataset holds the same "
            f"arrays with the same dtypes and per-row shapes"
        )


def _described(headers: list[ArrayHeader]) -> str:
    return ", ".join(f"{h.name} {h.dtype_name()} {h.shape[1:]}" for h in headers[:10])


def _features(shards: list[list[ArrayHeader]]) -> tuple[Feature, ...]:
    features: list[Feature] = []
    for index, header in enumerate(shards[0]):
        widest = max(shards, key=lambda shard: shard[index].dtype.itemsize)[index]
        features.append(Feature(header.name, widest.dtype_name(), header.shape[1:]))
    return tuple(features)


def analyse_numpy(
    layout: DatasetLayout,
    *,
    label: str | None,
    finder: PiiFinder | None,
    progress: _ProgressCallback | None,
    workers: int,
) -> tuple[DatasetSchema, PiiFindings]:
    """Validate an ``.npy``/``.npz`` dataset and read its schema; scan its string arrays
    with ``finder`` if given. ``workers`` is accepted for a uniform interface."""
    findings = PiiFindings()
    root = f"{layout.root}"
    if layout.format is DatasetFormat.NPY:
        names = [path.stem for path in layout.files]
        repeated = sorted(name for name, count in Counter(names).items() if count > 1)
        if repeated:
            raise DatasetFormatError(f"{root} holds several arrays named {repeated[:5]}")
        if len(names) > MAX_ARRAYS:
            raise DatasetFormatError(f"{root} holds more than {MAX_ARRAYS} arrays")
        chosen = choose_label(names, label, root, ARRAY_LABELS)
        headers: list[ArrayHeader] = []
        for path in layout.files:
            where = layout.relative(path)
            header = _npy_header(path, where)
            # numpy checks the file as well (memory-mapped: no data is read here).
            array = _load_npy(path)
            if header.is_text and finder is not None:
                _scan_npy(array, header, finder, findings)
            del array
            headers.append(header)
            if progress is not None:
                progress(header.data_offset + header.data_bytes)
        rows = _same_rows(headers, root)
        shards = [headers]
    else:
        shards = []
        rows = 0
        for path in layout.files:
            where = layout.relative(path)
            with _open_archive(path, where) as archive:
                if not shards:
                    names = [member.filename[:-4] for member in archive.infolist()]
                    chosen = choose_label(names, label, root, ARRAY_LABELS)
                headers = _check_archive(archive, where, finder, findings)
            rows += _same_rows(headers, f"file {where}")
            if shards:
                _same_arrays(headers, shards[0], f"file {where}")
            shards.append(headers)
            if progress is not None:
                progress(path.stat().st_size)
    first = shards[0]
    for header in first:
        if not header.is_text:
            kind = "numeric" if header.dtype.kind in _NUMERIC_KINDS else "not text"
            findings.not_scanned.append(f"{header.name}: {kind} ({header.dtype_name()})")
    schema = DatasetSchema(layout.format, _features(shards), chosen, rows, len(layout.files))
    return schema, findings


def _scan_npy(
    array: np.ndarray[Any, Any], header: ArrayHeader, finder: PiiFinder, findings: PiiFindings
) -> None:
    flat = array.reshape(-1, order="A")
    step = max(1, SCAN_BYTES // header.dtype.itemsize)
    for start in range(0, len(flat), step):
        _scan_values(
            flat[start : start + step].tolist(), header.dtype.kind, header.name, finder, findings
        )


def _load_npy(path: Path) -> np.ndarray[Any, Any]:
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r")  # type: ignore[no-any-return]
    except (ValueError, OSError) as exc:
        raise DatasetFormatError(f"file {path.name} cannot be loaded: {exc}") from exc


# --- redaction --------------------------------------------------------------------------


def _redacted(
    array: np.ndarray[Any, Any], name: str, finder: PiiFinder, tokens: Tokens, where: str
) -> np.ndarray[Any, Any] | None:
    """A copy of a string array with every finding replaced, or None if it has none."""
    kind = array.dtype.kind
    values = array.reshape(-1).tolist()
    texts = _text_of(values, kind)
    text, starts = _joined(texts)
    spans = find_spans(finder, text)
    if not len(spans):
        return None
    edits: dict[int, list[tuple[str, int, int]]] = {}
    for span_kind, start, end in merged(spans):
        index = int(np.searchsorted(starts, start, side="right")) - 1
        if end > int(starts[index + 1]) - 1:
            raise DatasetFormatError(
                f"{where}, array {name!r}, element {index}: a finding of kind {span_kind!r} "
                f"runs past the end of the element"
            )
        base = int(starts[index])
        edits.setdefault(index, []).append((span_kind, start - base, end - base))
    for index, changes in edits.items():
        raw = texts[index]
        parts: list[bytes] = []
        position = 0
        for span_kind, start, end in changes:
            parts.extend((raw[position:start], tokens(span_kind)))
            position = end
        parts.append(raw[position:])
        joined = b"".join(parts)
        try:
            values[index] = joined.decode("utf-8", "surrogatepass") if kind == "U" else joined
        except UnicodeDecodeError as exc:
            raise DatasetFormatError(
                f"{where}, array {name!r}, element {index}: a finding splits a character"
            ) from exc
    return np.array(values, dtype=kind).reshape(array.shape)


def redact_numpy(
    layout: DatasetLayout, finder: PiiFinder, tokens: Tokens, destination: Path
) -> None:
    """Write each file of an ``.npy``/``.npz`` dataset under ``destination`` (same
    relative paths) with every finding in a string array replaced; other arrays and files
    without findings are copied unchanged. A string array with findings is held in memory
    while it is rewritten."""
    for path in layout.files:
        where = layout.relative(path)
        target = destination / where
        target.parent.mkdir(parents=True, exist_ok=True)
        if layout.format is DatasetFormat.NPY:
            header = _npy_header(path, where)
            replaced = (
                _redacted(np.asarray(_load_npy(path)), header.name, finder, tokens, f"file {where}")
                if header.is_text
                else None
            )
            if replaced is None:
                _copy(path, target)
            else:
                with target.open("xb") as out:
                    np.lib.format.write_array(out, replaced, allow_pickle=False)
            continue
        with _open_archive(path, where) as archive, zipfile.ZipFile(target, "x") as out_zip:
            for member in archive.infolist():
                member_where = _member_where(where, member)
                with archive.open(member) as stream:
                    header = read_header(
                        stream, member.filename[:-4], member_where, member.file_size
                    )
                replaced = None
                if header.is_text:
                    with archive.open(member) as stream:
                        array = np.lib.format.read_array(
                            stream, allow_pickle=False, max_header_size=MAX_NPY_HEADER_BYTES
                        )
                    replaced = _redacted(array, header.name, finder, tokens, f"file {where}")
                entry = zipfile.ZipInfo(member.filename, date_time=member.date_time)
                entry.compress_type = member.compress_type
                with out_zip.open(entry, "w", force_zip64=True) as sink:
                    if replaced is not None:
                        np.lib.format.write_array(sink, replaced, allow_pickle=False)
                    else:
                        with archive.open(member) as stream:
                            shutil.copyfileobj(stream, sink, _STREAM_BYTES)


def _copy(source: Path, target: Path) -> None:
    with os.fdopen(open_regular(source), "rb") as reader, target.open("xb") as writer:
        shutil.copyfileobj(reader, writer, _STREAM_BYTES)
