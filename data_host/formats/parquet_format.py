"""Parquet datasets: schema and row count from the footer, PII scan of the string columns.

A Parquet dataset is one ``.parquet``/``.pq`` file or a folder of them sharing one Arrow
schema. The footer gives the schema and the row count (checked against the row groups);
string columns (``string``, ``large_string``, dictionaries of strings) are read batch by
batch and shown to the finder as their values joined by ``\\n``, so that a finding never
spans two values. Other columns are listed in ``not_scanned``.

Feature dtypes are numpy-style names for numbers (``int32``, ``float64``), ``bool``,
``string``, ``binary``; a fixed-size list of numbers is an array feature with ``shape``;
other types keep Arrow's name (``timestamp[ms]``, ``list<item: double>``).

This module must never load a whole file into memory for scanning (it streams record
batches), or accept a file pyarrow cannot read: errors name the file and say why.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data_host.errors import DatasetFormatError
from data_host.formats.blocks import open_regular
from data_host.formats.detect import DatasetLayout
from data_host.formats.findings import PiiFinder, PiiFindings, Tokens, find_spans, merged
from data_host.formats.limits import MAX_COLUMNS, SCAN_BYTES
from data_host.formats.schema import (
    TABULAR_LABELS,
    DatasetFormat,
    DatasetSchema,
    Feature,
    choose_label,
)

#: Rows per record batch read for scanning (smaller batches if values are long).
_BATCH_ROWS = 65_536
_FLOAT_NAMES = {"halffloat": "float16", "float": "float32", "double": "float64"}
#: Footer compression names that pyarrow's writer spells differently.
_COMPRESSION = {"uncompressed": "none", "lz4_raw": "lz4"}
_ProgressCallback = Callable[[int], None]


#: Largest uncompressed column chunk (one column of one row group) read into memory.
MAX_COLUMN_CHUNK_BYTES = 1 << 30
#: Largest ratio of uncompressed to compressed bytes accepted above the floor below.
MAX_EXPANSION = 1000
EXPANSION_FLOOR_BYTES = 64 << 20
#: Largest decoded text of one batch of rows.
MAX_BATCH_TEXT_BYTES = 256 << 20


@contextmanager
def _open(path: Path, where: str) -> Iterator[pq.ParquetFile]:
    """The Parquet file at ``path``, with its footer read; closed (with the file) after."""
    with os.fdopen(open_regular(path), "rb") as source:
        try:
            parquet = pq.ParquetFile(source)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise DatasetFormatError(f"file {where} is not a readable Parquet file: {exc}") from exc
        with parquet:
            yield parquet


def _is_text(arrow_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(arrow_type):
        return _is_text(arrow_type.value_type)
    return bool(
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_string_view(arrow_type)
    )


def _holds_unread_text(arrow_type: pa.DataType) -> bool:
    """Whether a column can carry text the scan does not read: binary, or text nested in
    lists, structs or maps (the scan reads top-level string columns only)."""
    if pa.types.is_dictionary(arrow_type):
        return _holds_unread_text(arrow_type.value_type)
    if (
        pa.types.is_binary(arrow_type)
        or pa.types.is_large_binary(arrow_type)
        or pa.types.is_fixed_size_binary(arrow_type)
        or pa.types.is_binary_view(arrow_type)
    ):
        return True
    if pa.types.is_nested(arrow_type):
        children = [arrow_type.field(index).type for index in range(arrow_type.num_fields)]
        return any(_is_text(child) or _holds_unread_text(child) for child in children)
    return False


def _is_numeric(arrow_type: pa.DataType) -> bool:
    while pa.types.is_fixed_size_list(arrow_type):
        arrow_type = arrow_type.value_type
    return bool(
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_boolean(arrow_type)
        or pa.types.is_decimal(arrow_type)
    )


def feature_of(field: pa.Field) -> Feature:
    """The feature for one Arrow field."""
    arrow_type = field.type
    shape: list[int] = []
    while pa.types.is_fixed_size_list(arrow_type):
        shape.append(arrow_type.list_size)
        arrow_type = arrow_type.value_type
    if _is_text(arrow_type):
        dtype = "string"
    elif pa.types.is_integer(arrow_type) or pa.types.is_boolean(arrow_type):
        dtype = str(arrow_type)
    elif pa.types.is_floating(arrow_type):
        dtype = _FLOAT_NAMES.get(str(arrow_type), str(arrow_type))
    elif pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        dtype = "binary"
    else:
        dtype = str(arrow_type)
    return Feature(field.name, dtype, tuple(shape))


def joined_text(array: pa.Array) -> tuple[bytes, np.ndarray[Any, np.dtype[np.int64]]]:
    """A string array's values joined by ``\\n``, and the offset where each value starts
    (one more entry: the length of the text plus one)."""
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if not pa.types.is_large_string(array.type):
        array = array.cast(pa.large_string())
    count = len(array)
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[
        array.offset : array.offset + count + 1
    ]
    first, last = int(offsets[0]), int(offsets[-1])
    data_buffer = array.buffers()[2]
    values = (
        np.frombuffer(data_buffer, dtype=np.uint8)[first:last]
        if data_buffer is not None
        else np.zeros(0, np.uint8)
    )
    starts = offsets - first + np.arange(count + 1, dtype=np.int64)
    text = np.full(last - first + count, 0x0A, dtype=np.uint8)
    keep = np.ones(len(text), dtype=np.bool_)
    keep[starts[1:] - 1] = False
    text[keep] = values
    return text.tobytes(), starts


def _batch_rows(parquet: pq.ParquetFile, columns: list[str]) -> int:
    """Rows per batch so that a batch's text is about ``SCAN_BYTES`` (at most 65,536)."""
    metadata = parquet.metadata
    wanted = set(columns)
    total = 0
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for index in range(row_group.num_columns):
            chunk = row_group.column(index)
            if chunk.path_in_schema in wanted:
                total += chunk.total_uncompressed_size
    per_row = max(1, total // max(1, int(metadata.num_rows)))
    return max(1, min(_BATCH_ROWS, SCAN_BYTES // int(per_row)))


def _batches(path: Path, columns: list[str], where: str) -> Iterator[pa.RecordBatch]:
    """The file's ``columns`` in batches of about ``SCAN_BYTES`` of text.

    Text is read dictionary-encoded and its decoded size computed from the dictionary
    before it is decoded, so that a small file whose few values repeat many times (a
    decompression bomb: 700 bytes can decode to gigabytes) is refused, not loaded.
    """
    limit = max(EXPANSION_FLOOR_BYTES, MAX_EXPANSION * path.stat().st_size)
    decoded_total = 0
    try:
        with os.fdopen(open_regular(path), "rb") as source:
            reader = pq.ParquetFile(source, read_dictionary=columns)
            for batch in reader.iter_batches(
                batch_size=_batch_rows(reader, columns), columns=columns, use_threads=False
            ):
                decoded = []
                for column in batch.columns:
                    size = _decoded_bytes(column)
                    decoded_total += size
                    if size > MAX_BATCH_TEXT_BYTES or decoded_total > limit:
                        raise DatasetFormatError(
                            f"file {where}: its text decodes to more than "
                            f"{min(limit, MAX_BATCH_TEXT_BYTES)} bytes from a "
                            f"{path.stat().st_size}-byte file; refusing a possible "
                            "decompression bomb"
                        )
                    decoded.append(
                        column.dictionary_decode()
                        if pa.types.is_dictionary(column.type)
                        else column
                    )
                yield pa.RecordBatch.from_arrays(decoded, names=batch.schema.names)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetFormatError(f"file {where}: cannot read its columns: {exc}") from exc


def _decoded_bytes(column: pa.Array) -> int:
    """Bytes of text ``column`` holds once decoded, computed without decoding it."""
    if pa.types.is_dictionary(column.type):
        lengths = pc.binary_length(column.dictionary).take(column.indices)
    else:
        lengths = pc.binary_length(column)
    total = pc.sum(lengths).as_py()
    return int(total or 0)


def _scan_array(array: pa.Array, name: str, finder: PiiFinder, findings: PiiFindings) -> None:
    text, _ = joined_text(array)
    spans = find_spans(finder, text)
    findings.scanned_bytes += len(text)
    for kind in spans.kinds:
        findings.add(kind, name)


def _check_schema(
    parquet: pq.ParquetFile, where: str, first: tuple[str, pa.Schema] | None
) -> pa.Schema:
    schema = parquet.schema_arrow.remove_metadata()
    if len(schema) > MAX_COLUMNS:
        raise DatasetFormatError(
            f"file {where} has {len(schema)} columns, over the limit of {MAX_COLUMNS}"
        )
    if first is not None and not schema.equals(first[1]):
        raise DatasetFormatError(
            f"file {where}: its schema ({schema.to_string(show_schema_metadata=False)}) "
            f"differs from that of {first[0]} "
            f"({first[1].to_string(show_schema_metadata=False)}); all files of a Parquet "
            f"dataset share one schema"
        )
    for field in schema:
        if _holds_unread_text(field.type):
            raise DatasetFormatError(
                f"file {where}: column {field.name!r} of type {field.type} can hold text or "
                "bytes the PII scan does not read (binary, or text nested in lists, structs "
                "or maps); store it as plain string columns"
            )
    metadata = parquet.metadata
    _check_expansion(metadata, where)
    grouped = sum(metadata.row_group(index).num_rows for index in range(metadata.num_row_groups))
    if grouped != metadata.num_rows:
        raise DatasetFormatError(
            f"file {where}: its footer states {metadata.num_rows} rows but its row groups "
            f"hold {grouped}; the file is damaged"
        )
    return schema


def _check_expansion(metadata: pq.FileMetaData, where: str) -> None:
    """Refuse a file whose data expands far beyond its size when decompressed (a
    decompression bomb): reading it would exhaust the node's memory."""
    compressed = uncompressed = 0
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for index in range(row_group.num_columns):
            chunk = row_group.column(index)
            compressed += max(0, chunk.total_compressed_size)
            uncompressed += max(0, chunk.total_uncompressed_size)
            if chunk.total_uncompressed_size > MAX_COLUMN_CHUNK_BYTES:
                raise DatasetFormatError(
                    f"file {where}: column {chunk.path_in_schema!r} holds "
                    f"{chunk.total_uncompressed_size} bytes in one row group, over the limit "
                    f"of {MAX_COLUMN_CHUNK_BYTES}; write the file with smaller row groups"
                )
    if uncompressed > EXPANSION_FLOOR_BYTES and uncompressed > MAX_EXPANSION * max(1, compressed):
        raise DatasetFormatError(
            f"file {where}: its data expands from {compressed} to {uncompressed} bytes when "
            f"decompressed (over {MAX_EXPANSION}x); refusing a possible decompression bomb"
        )


def analyse_parquet(
    layout: DatasetLayout,
    *,
    label: str | None,
    finder: PiiFinder | None,
    progress: _ProgressCallback | None,
    workers: int,
) -> tuple[DatasetSchema, PiiFindings]:
    """Validate a Parquet dataset, read its schema and rows; scan its string columns with
    ``finder`` if given. ``workers`` is accepted for a uniform interface."""
    first: tuple[str, pa.Schema] | None = None
    rows = 0
    findings = PiiFindings()
    for path in layout.files:
        where = layout.relative(path)
        with _open(path, where) as parquet:
            schema = _check_schema(parquet, where, first)
            if first is None:
                first = (where, schema)
                chosen = choose_label(schema.names, label, f"{layout.root}", TABULAR_LABELS)
            rows += parquet.metadata.num_rows
            text_columns = [field.name for field in schema if _is_text(field.type)]
            if finder is not None and text_columns:
                for batch in _batches(path, text_columns, where):
                    for name, column in zip(batch.schema.names, batch.columns, strict=True):
                        _scan_array(column, name, finder, findings)
        if progress is not None:
            progress(path.stat().st_size)
    if first is None:  # pragma: no cover - layouts list at least one file
        raise DatasetFormatError(f"{layout.root} holds no Parquet file")
    if rows == 0:
        raise DatasetFormatError(f"{layout.root} holds no rows: a dataset needs at least one")
    schema = first[1]
    for field in schema:
        if not _is_text(field.type):
            kind = "numeric" if _is_numeric(field.type) else "not text"
            findings.not_scanned.append(f"{field.name}: {kind} ({feature_of(field).dtype})")
    features = tuple(feature_of(field) for field in schema)
    return (
        DatasetSchema(DatasetFormat.PARQUET, features, chosen, rows, len(layout.files)),
        findings,
    )


def _redacted_array(
    array: pa.Array, name: str, finder: PiiFinder, tokens: Tokens, where: str
) -> pa.Array:
    text, starts = joined_text(array)
    spans = find_spans(finder, text)
    if not len(spans):
        return array
    values = array.to_pylist()
    edits: dict[int, list[tuple[str, int, int]]] = {}
    for kind, start, end in merged(spans):
        index = int(np.searchsorted(starts, start, side="right")) - 1
        value_end = int(starts[index + 1]) - 1
        if end > value_end:
            raise DatasetFormatError(
                f"file {where}, column {name!r}, row {index}: a finding of kind {kind!r} "
                f"runs past the end of the value"
            )
        edits.setdefault(index, []).append(
            (kind, start - int(starts[index]), end - int(starts[index]))
        )
    for index, spans_in_value in edits.items():
        raw = str(values[index]).encode("utf-8")
        parts: list[bytes] = []
        position = 0
        for kind, start, end in spans_in_value:
            parts.append(raw[position:start])
            parts.append(tokens(kind))
            position = end
        parts.append(raw[position:])
        try:
            values[index] = b"".join(parts).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DatasetFormatError(
                f"file {where}, column {name!r}, row {index}: a finding splits a character"
            ) from exc
    return pa.array(values, type=array.type)


def redact_parquet(
    layout: DatasetLayout, finder: PiiFinder, tokens: Tokens, destination: Path
) -> None:
    """Write each file of a Parquet dataset under ``destination`` (same relative paths),
    row group by row group, with every finding in a string column replaced."""
    for path in layout.files:
        where = layout.relative(path)
        target = destination / where
        target.parent.mkdir(parents=True, exist_ok=True)
        with _open(path, where) as parquet:
            metadata = parquet.metadata
            compression = "snappy"
            if metadata.num_row_groups and metadata.row_group(0).num_columns:
                stated = metadata.row_group(0).column(0).compression.lower()
                compression = _COMPRESSION.get(stated, stated)
            with pq.ParquetWriter(target, parquet.schema_arrow, compression=compression) as writer:
                for index in range(metadata.num_row_groups):
                    try:
                        table = parquet.read_row_group(index)
                    except (pa.ArrowException, OSError) as exc:
                        raise DatasetFormatError(
                            f"file {where}: cannot read row group {index}: {exc}"
                        ) from exc
                    for position, field in enumerate(table.schema):
                        if _is_text(field.type):
                            column = table.column(position)
                            chunks = [
                                _redacted_array(chunk, field.name, finder, tokens, where)
                                for chunk in column.chunks
                            ]
                            table = table.set_column(
                                position, field, pa.chunked_array(chunks, type=field.type)
                            )
                    writer.write_table(table, row_group_size=max(table.num_rows, 1))
