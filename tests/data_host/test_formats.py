"""Tests for data_host.formats: detection, validation, schemas, PII attribution, redaction."""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import re
import tempfile
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from data_host.errors import DataHostError, DatasetFormatError
from data_host.formats import (
    DatasetFormat,
    DatasetSchema,
    Feature,
    PiiFindings,
    analyse_dataset,
    detect_format,
    write_redacted,
)
from data_host.formats.csv_format import analyse_csv, redact_csv
from data_host.formats.detect import inspect_layout
from data_host.formats.findings import Tokens
from data_host.formats.jsonl_format import analyse_jsonl
from data_host.formats.limits import MAX_COLUMNS, MAX_LINE_BYTES
from provenance.canonical import canonical_json

EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def email_finder(data: bytes) -> list[tuple[str, int, int]]:
    """A small PII finder: every e-mail address."""
    return [("email", match.start(), match.end()) for match in EMAIL.finditer(data)]


def redactor(kind: str) -> bytes:
    return f"[{kind.upper()}]".encode()


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def analyse_csv_with(
    path: Path, block_size: int, *, finder: Callable[[bytes], list[tuple[str, int, int]]] | None
) -> tuple[DatasetSchema, PiiFindings]:
    return analyse_csv(
        inspect_layout(path),
        label=None,
        finder=finder,
        progress=None,
        workers=1,
        block_size=block_size,
    )


def dtypes(schema: DatasetSchema) -> dict[str, str]:
    return {feature.name: feature.dtype for feature in schema.features}


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


# --- detection --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("d.csv", b"a\n1\n", DatasetFormat.CSV),
        ("d.jsonl", b'{"a": 1}\n', DatasetFormat.JSONL),
        ("d.ndjson", b'{"a": 1}\n', DatasetFormat.JSONL),
        ("D.CSV", b"a\n1\n", DatasetFormat.CSV),
    ],
)
def test_detect_format_from_extension(
    tmp_path: Path, name: str, data: bytes, expected: DatasetFormat
) -> None:
    assert detect_format(write(tmp_path / name, data)) is expected


def test_detect_binary_formats_and_image_folder(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1]}), tmp_path / "t.parquet")
    np.save(tmp_path / "a.npy", np.zeros(3))
    np.savez(tmp_path / "z.npz", a=np.zeros(3))
    _image(tmp_path / "imgs" / "cat" / "x.png")
    assert detect_format(tmp_path / "t.parquet") is DatasetFormat.PARQUET
    assert detect_format(tmp_path / "a.npy") is DatasetFormat.NPY
    assert detect_format(tmp_path / "z.npz") is DatasetFormat.NPZ
    assert detect_format(tmp_path / "imgs") is DatasetFormat.IMAGE_FOLDER


def test_folder_with_hidden_entries_is_refused(tmp_path: Path) -> None:
    # Chunk hashing signs every file; a hidden one would be sold unscanned.
    write(tmp_path / "a.csv", "x\n1\n")
    write(tmp_path / "b.csv", "x\n2\n")
    assert [path.name for path in inspect_layout(tmp_path).files] == ["a.csv", "b.csv"]
    write(tmp_path / ".DS_Store", b"\x00junk")
    with pytest.raises(DatasetFormatError, match=r"\.DS_Store is a hidden entry"):
        inspect_layout(tmp_path)


def test_mixed_format_folder_names_formats_and_examples(tmp_path: Path) -> None:
    write(tmp_path / "a.csv", "x\n1\n")
    write(tmp_path / "b.jsonl", '{"x": 1}\n')
    with pytest.raises(DatasetFormatError, match="mixed-format folder") as caught:
        detect_format(tmp_path)
    assert "csv (a.csv)" in str(caught.value)
    assert "jsonl (b.jsonl)" in str(caught.value)


def test_folder_with_files_and_subfolders_is_mixed(tmp_path: Path) -> None:
    write(tmp_path / "a.csv", "x\n1\n")
    (tmp_path / "cats").mkdir()
    with pytest.raises(DatasetFormatError, match=r"mixed-format folder.*cats/.*a\.csv"):
        detect_format(tmp_path)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: write(root / "d.txt", "hello"), r"unknown extension '\.txt'"),
        (lambda root: write(root / "d.csv", b""), r"d\.csv is empty \(zero bytes\)"),
        (lambda root: write(root / "d.parquet", b"not parquet"), "does not start like a parquet"),
        (lambda root: write(root / "d.npy", b"PK\x03\x04"), "does not start like a npy"),
        (lambda root: write(root / "d.png", b"x"), "is an image"),
        (lambda root: root / "missing.csv", "does not exist"),
    ],
)
def test_bad_single_files(tmp_path: Path, setup: Callable[[Path], Path], message: str) -> None:
    path = setup(tmp_path)
    with pytest.raises(DatasetFormatError, match=message):
        detect_format(path)


def test_empty_folder_and_symlinks_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetFormatError, match="is empty"):
        detect_format(empty)
    real = write(tmp_path / "data" / "a.csv", "x\n1\n")
    (tmp_path / "data" / "b.csv").symlink_to(real)
    with pytest.raises(DatasetFormatError, match=r"b\.csv is a symbolic link"):
        detect_format(tmp_path / "data")
    (tmp_path / "link.csv").symlink_to(real)
    with pytest.raises(DatasetFormatError, match="symbolic link"):
        analyse_dataset(tmp_path / "link.csv")


def test_names_that_are_not_utf8_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "a.csv", "x\n1\n")
    write(tmp_path / os.fsdecode(b"b\xff.csv"), "x\n1\n")
    with pytest.raises(DatasetFormatError, match="whose name is not UTF-8"):
        detect_format(tmp_path)


def test_special_files_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "a.csv", "x\n1\n")
    os.mkfifo(tmp_path / "pipe.csv")
    with pytest.raises(DatasetFormatError, match="not a regular file"):
        detect_format(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "x\n1\n")
    path.chmod(0)
    with pytest.raises(DatasetFormatError, match="cannot open"):
        detect_format(path)


# --- CSV --------------------------------------------------------------------------------


def test_csv_schema_rows_label_and_dtypes(tmp_path: Path) -> None:
    path = write(
        tmp_path / "d.csv",
        "id,score,flag,name,label\n1,0.5,true,ann,0\n2,1e3,false,bob,1\n3,-2,true,,1\n",
    )
    analysis = analyse_dataset(path)
    assert analysis.format is DatasetFormat.CSV
    assert analysis.schema.rows == 3
    assert analysis.schema.files == 1
    assert analysis.schema.label == "label"
    assert dtypes(analysis.schema) == {
        "id": "int64",
        "score": "float64",
        "flag": "bool",
        "name": "string",
        "label": "int64",
    }
    assert analysis.pii.total == 0
    document = analysis.schema.to_dict()
    assert json.loads(canonical_json(document)) == document
    assert document["features"][1] == {"name": "score", "dtype": "float64", "shape": []}


def test_csv_label_argument_and_defaults(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "x,target,y\n1,2,3\n")
    assert analyse_dataset(path).schema.label == "target"
    assert analyse_dataset(path, label="y").schema.label == "y"
    assert analyse_dataset(write(tmp_path / "e.csv", "x,z\n1,2\n")).schema.label is None
    with pytest.raises(
        DatasetFormatError, match=r"label 'nope' is not a column.*'x', 'target', 'y'"
    ):
        analyse_dataset(path, label="nope")


def test_csv_field_count_error_names_file_line_and_counts(tmp_path: Path) -> None:
    lines = ["a,b,c,d"] + ["1,2,3,4"] * 1232 + ["1,2,3,4,5"] + ["1,2,3,4"] * 10
    path = write(tmp_path / "x.csv", "\n".join(lines) + "\n")
    expected = "file x.csv, line 1234: 5 fields, the header has 4"
    for block_size in (64, 1000, 1 << 20):
        with pytest.raises(DatasetFormatError, match=re.escape(expected)):
            analyse_csv_with(path, block_size, finder=None)
    with pytest.raises(DatasetFormatError, match=re.escape(expected)):
        analyse_dataset(path, workers=2)


def test_csv_short_lines_are_counted_exactly(tmp_path: Path) -> None:
    # Many records per 64 bytes: the packed-newline path must see every one of them.
    lines = ["v"] + [str(index % 10) for index in range(5000)]
    lines[3210] = "1,2"
    path = write(tmp_path / "s.csv", "\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match="line 3211: 2 fields, the header has 1"):
        analyse_dataset(path)
    lines[3210] = "7"
    path.write_text("\n".join(lines) + "\n")
    assert analyse_dataset(path).schema.rows == 5000


def test_csv_line_numbers_count_quoted_newlines(tmp_path: Path) -> None:
    path = write(tmp_path / "q.csv", 'a,b\n"x\ny\nz",1\n2,3,4\n')
    with pytest.raises(DatasetFormatError, match="line 5: 3 fields, the header has 2"):
        analyse_dataset(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a,b\n1,2\n\n3,4\n", "line 3: the line is blank"),
        (b"a,b\n", "has a header but no data rows"),
        (b"a,b", "has a header but no data rows"),
        (b"a,b\n1,\xff\n", r"line 2: not valid UTF-8"),
        (b"a,\xff\n1,2\n", r"line 1: the header is not valid UTF-8"),
        (b"a,a\n1,2\n", "the header names 'a' more than once"),
        (b"a,,c\n1,2,3\n", "column 2 of the header has no name"),
        (b'a,b\n1,"x\ny\n', "line 2: a quoted field starts here and is never closed"),
        (b'a,b\n1,x"y\n', "line 2: a quote inside an unquoted field"),
        (b'a,b\n1,"x"y\n', "line 2: text follows the closing quote"),
        (b"a,b\n1,2\n3\n", "line 3: 1 fields, the header has 2"),
        (b"a,b\n1,2\r3,4\n", "line 2: a carriage return that does not end the line"),
        (b'a,b\n1,"2\r"\n5,6\r7,8\n', "line 3: a carriage return that does not end the line"),
    ],
)
def test_csv_bad_input(tmp_path: Path, content: bytes, message: str) -> None:
    path = write(tmp_path / "bad.csv", content)
    with pytest.raises(DatasetFormatError, match=message):
        analyse_dataset(path)
    with pytest.raises(DatasetFormatError, match=message):
        analyse_csv_with(path, 3, finder=email_finder)


def test_csv_line_longer_than_limit(tmp_path: Path) -> None:
    long_value = "9" * MAX_LINE_BYTES
    path = write(tmp_path / "long.csv", f"a,b\n1,2\n1,{long_value}\n3,4\n")
    with pytest.raises(DatasetFormatError, match="line 3: the record is 1048578 bytes long"):
        analyse_dataset(path)
    unclosed = write(tmp_path / "open.csv", 'a,b\n1,2\n1,"' + "x\n" * (MAX_LINE_BYTES // 2 + 8))
    for block_size in (4096, 8 << 20):
        with pytest.raises(DatasetFormatError, match="line 3: "):
            analyse_csv_with(unclosed, block_size, finder=None)


def test_csv_too_many_columns(tmp_path: Path) -> None:
    header = ",".join(f"c{index}" for index in range(MAX_COLUMNS + 1))
    path = write(tmp_path / "wide.csv", header + "\n" + ",".join(["1"] * (MAX_COLUMNS + 1)) + "\n")
    with pytest.raises(DatasetFormatError, match="10001 columns, more than the limit of 10000"):
        analyse_dataset(path)


def test_csv_quoted_commas_and_newlines_across_block_boundaries(tmp_path: Path) -> None:
    rows = [["name", "note", "n"]]
    for index in range(40):
        rows.append([f"n{index}", f'a, "b"\nc,\n{index}', str(index)])
    path = write(tmp_path / "q.csv", csv_text(rows))
    for block_size in (1, 2, 5, 17, 64, 1 << 20):
        schema, _ = analyse_csv_with(path, block_size, finder=None)
        assert schema.rows == 40
        assert dtypes(schema) == {"name": "string", "note": "string", "n": "int64"}


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=1, max_value=4).flatmap(
        lambda width: st.lists(
            st.lists(st.text(alphabet='ab,"\n é\r', max_size=6), min_size=width, max_size=width),
            min_size=1,
            max_size=12,
        )
    ),
    st.sampled_from([1, 3, 16, 4096]),
)
def test_csv_row_counts_agree_with_the_csv_module(rows: list[list[str]], block_size: int) -> None:
    # A one-column table writes an empty value as "" so that it is no blank line; with
    # CR LF line ends the writer quotes every field holding a CR or LF.
    header = [f"c{index}" for index in range(len(rows[0]))]
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([header, *rows])
    text = out.getvalue()
    expected = list(csv.reader(io.StringIO(text, newline=""), strict=True))[1:]
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder) / "p.csv", text)
        schema, _ = analyse_csv_with(path, block_size, finder=None)
    assert schema.rows == len(expected) == len(rows)


def test_csv_dtypes_widen_when_later_blocks_disagree(tmp_path: Path) -> None:
    body = "".join(f"{index},{index}\n" for index in range(300))
    path = write(tmp_path / "w.csv", "a,b\n" + body + "2.5,7\n" + body + "1,x\n")
    schema, _ = analyse_csv_with(path, 256, finder=None)
    assert dtypes(schema) == {"a": "float64", "b": "string"}
    assert schema.rows == 602
    numeric = write(tmp_path / "n.csv", "a,b\n" + body)
    assert dtypes(analyse_csv_with(numeric, 256, finder=None)[0]) == {"a": "int64", "b": "int64"}


def test_csv_crlf_and_byte_order_mark(tmp_path: Path) -> None:
    path = write(tmp_path / "w.csv", b"\xef\xbb\xbfa,b\r\n1,2\r\n3,4\r\n")
    analysis = analyse_dataset(path)
    assert [feature.name for feature in analysis.schema.features] == ["a", "b"]
    assert analysis.schema.rows == 2
    assert dtypes(analysis.schema) == {"a": "int64", "b": "int64"}


def test_csv_folder_shares_one_header(tmp_path: Path) -> None:
    write(tmp_path / "d" / "a.csv", "x,y\n1,2\n3,4\n")
    write(tmp_path / "d" / "b.csv", "x,y\n5,6\n")
    analysis = analyse_dataset(tmp_path / "d")
    assert (analysis.schema.rows, analysis.schema.files) == (3, 2)
    write(tmp_path / "d" / "c.csv", "x,z\n5,6\n")
    with pytest.raises(DatasetFormatError, match=r"file c\.csv: its header \(x,z\) differs"):
        analyse_dataset(tmp_path / "d")


def test_csv_pii_is_attributed_to_its_column(tmp_path: Path) -> None:
    rows = [["id", "contact", "note"]]
    for index in range(50):
        rows.append([str(index), f"user{index}@example.com", "call me, maybe"])
    rows.append(["51", "x", 'quoted, "with" ann@example.org\ninside'])
    path = write(tmp_path / "p.csv", csv_text(rows))
    for block_size in (7, 100, 8 << 20):
        _, findings = analyse_csv_with(path, block_size, finder=email_finder)
        assert findings.counts == {"email": {"contact": 50, "note": 1}}
        assert findings.scanned_bytes == path.stat().st_size
    assert analyse_dataset(path, finder=email_finder, workers=2).pii.total == 51


def test_csv_pii_in_the_header_counts_for_its_column(tmp_path: Path) -> None:
    path = write(tmp_path / "h.csv", "id,boss@example.com\n1,2\n")
    assert analyse_dataset(path, finder=email_finder).pii.counts == {
        "email": {"boss@example.com": 1}
    }


def test_csv_workers_and_progress(tmp_path: Path) -> None:
    body = "".join(f"{index},{index * 0.5},{index % 2}\n" for index in range(20_000))
    path = write(tmp_path / "big.csv", "a,b,label\n" + body)
    seen: list[int] = []
    threads: set[int] = set()

    def progress(amount: int) -> None:
        seen.append(amount)
        threads.add(threading.get_ident())

    layout = inspect_layout(path)
    one = analyse_csv(
        layout, label=None, finder=email_finder, progress=None, workers=1, block_size=4096
    )
    two = analyse_csv(
        layout, label=None, finder=email_finder, progress=progress, workers=2, block_size=4096
    )
    assert one == two
    assert one[0].rows == 20_000
    assert sum(seen) == path.stat().st_size
    assert threads == {threading.get_ident()}


def test_finder_that_breaks_its_contract_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path / "f.csv", "a\n1\n")
    with pytest.raises(DataHostError, match="PII finder returned"):
        analyse_dataset(path, finder=lambda data: [("email", 0, len(data) + 5)])
    with pytest.raises(DataHostError, match="workers must be a positive integer"):
        analyse_dataset(path, workers=0)


# --- JSON Lines -------------------------------------------------------------------------


def test_jsonl_schema_rows_label_and_dtypes(tmp_path: Path) -> None:
    lines = [
        {"x": 1, "v": [1, 2, 3], "w": [1], "name": "a", "ok": True, "target": 0},
        {"x": 2.5, "v": [1.5, 2, 3], "w": [1, 2], "name": None, "ok": False, "target": 1},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\n\n"
    analysis = analyse_dataset(write(tmp_path / "d.jsonl", text))
    schema = analysis.schema
    assert (schema.format, schema.rows, schema.label) == (DatasetFormat.JSONL, 2, "target")
    assert schema.features == (
        Feature("x", "float64"),
        Feature("v", "float64", (3,)),
        Feature("w", "list<int64>"),
        Feature("name", "string"),
        Feature("ok", "bool"),
        Feature("target", "int64"),
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b'{"a": 1}\n{"b": 1}\n',
            r"line 2: the keys differ .* missing \['a'\], unexpected \['b'\]",
        ),
        (b'{"a": 1}\n\n[1]\n', "line 3: a JSON array where a JSON object is expected"),
        (b'{"a": 1}\nnot json\n', "line 2: the line is not valid JSON"),
        (b'{"a": {"b": 1}}\n', "line 1: key 'a' holds a nested object"),
        (b'{"a": [1, "x"]}\n', "line 1: key 'a' holds a list holding str values"),
        (b'{"a": 1}\n{"a": 1, "a": 2}\n', "line 2: the line has an object with the key 'a' more"),
        (b'{"a": 1}\n{"a": [1]}\n', "line 2: key 'a' holds a list, but earlier lines hold int64"),
        (b'{"a": NaN}\n', "line 1: the line contains the non-finite number NaN"),
        (b"\n\n", "holds no JSON objects"),
        (b'{"a": 1}\n{"a": 1\xff}\n', "line 2: the line is not valid UTF-8"),
    ],
)
def test_jsonl_bad_input(tmp_path: Path, content: bytes, message: str) -> None:
    with pytest.raises(DatasetFormatError, match=message):
        analyse_dataset(write(tmp_path / "bad.jsonl", content))


def test_jsonl_line_longer_than_limit(tmp_path: Path) -> None:
    long_line = json.dumps({"a": "x" * (MAX_LINE_BYTES + 10_000)})
    path = write(tmp_path / "long.jsonl", '{"a": "y"}\n' + long_line + "\n")
    with pytest.raises(DatasetFormatError, match="line 2: the line is .*1048576 bytes"):
        analyse_dataset(path)
    layout = inspect_layout(path)
    with pytest.raises(DatasetFormatError, match="line 2: the line is longer than 1048576 bytes"):
        analyse_jsonl(layout, label=None, finder=None, progress=None, workers=1, block_size=4096)


def test_jsonl_label_is_checked_against_the_keys(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"x": 1, "y": 0}\n{"x": 2, "y": 1}\n')
    assert analyse_dataset(path).schema.label == "y"
    assert analyse_dataset(path, label="x").schema.label == "x"
    with pytest.raises(DatasetFormatError, match=r"label 'z' is not a column.*'x', 'y'"):
        analyse_dataset(path, label="z")


def test_jsonl_pii_is_attributed_to_its_key(tmp_path: Path) -> None:
    lines = [
        {"id": index, "email": f"u{index}@example.com", "bio": "hi", "n": [1, 2]}
        for index in range(30)
    ]
    lines.append({"id": 99, "email": "none", "bio": "mail me: bob@example.net", "n": [3, 4]})
    path = write(tmp_path / "p.ndjson", "".join(json.dumps(line) + "\n" for line in lines))
    findings = analyse_dataset(path, finder=email_finder).pii
    assert findings.counts == {"email": {"email": 30, "bio": 1}}
    assert findings.scanned_bytes == path.stat().st_size


# --- Parquet ----------------------------------------------------------------------------


def test_parquet_schema_rows_and_string_scan(tmp_path: Path) -> None:
    table = pa.table(
        {
            "x": pa.array([1, 2, 3], pa.int32()),
            "mail": ["a@example.com", None, "nothing"],
            "label": [0, 1, 0],
            "v": pa.array([[1.0, 2.0]] * 3, pa.list_(pa.float32(), 2)),
        }
    )
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=2)
    analysis = analyse_dataset(tmp_path / "t.parquet", finder=email_finder)
    assert (analysis.schema.rows, analysis.schema.label) == (3, "label")
    assert analysis.schema.features == (
        Feature("x", "int32"),
        Feature("mail", "string"),
        Feature("label", "int64"),
        Feature("v", "float32", (2,)),
    )
    assert analysis.pii.counts == {"email": {"mail": 1}}
    assert analysis.pii.not_scanned == [
        "x: numeric (int32)",
        "label: numeric (int64)",
        "v: numeric (float32)",
    ]


def test_parquet_folder_and_schema_mismatch(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "d" / "1.parquet")
    pq.write_table(pa.table({"a": [3]}), tmp_path / "d" / "2.parquet")
    assert analyse_dataset(tmp_path / "d").schema.rows == 3
    pq.write_table(pa.table({"a": ["x"]}), tmp_path / "d" / "3.parquet")
    with pytest.raises(DatasetFormatError, match=r"file 3\.parquet: its schema .* differs"):
        analyse_dataset(tmp_path / "d")


def test_damaged_parquet_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match=r"file d\.parquet is not a readable Parquet"):
        analyse_dataset(write(tmp_path / "d.parquet", b"PAR1" + b"\x00" * 100 + b"PAR1"))


# --- NumPy ------------------------------------------------------------------------------


def test_npy_schema_and_rows(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((7, 3, 2), dtype=np.float32))
    analysis = analyse_dataset(tmp_path / "x.npy")
    assert (analysis.format, analysis.schema.rows) == (DatasetFormat.NPY, 7)
    assert analysis.schema.features == (Feature("x", "float32", (3, 2)),)
    assert analysis.pii.not_scanned == ["x: numeric (float32)"]


class _Payload:
    """Unpickling this would create the file named in ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str, str]]:
        return (open, (self.marker, "w"))


def test_pickled_npy_is_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    array = np.array([_Payload(str(marker)), 1], dtype=object)
    np.save(tmp_path / "evil.npy", array, allow_pickle=True)
    assert pickle.PROTO in (tmp_path / "evil.npy").read_bytes()  # the payload is pickled
    with pytest.raises(DatasetFormatError, match="holds Python objects.*pickle"):
        analyse_dataset(tmp_path / "evil.npy", finder=email_finder)
    np.savez(tmp_path / "evil.npz", a=array, allow_pickle=True)
    with pytest.raises(DatasetFormatError, match=r"array 'a' holds Python objects"):
        analyse_dataset(tmp_path / "evil.npz")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path: np.save(path, np.float64(3.0)), "0-d array"),
        (lambda path: np.save(path, np.zeros((0, 3))), "has no rows"),
        (
            lambda path: path.write_bytes(_npy_bytes(np.zeros(10))[:-8]),
            "truncated or has trailing data",
        ),
        (
            lambda path: np.save(path, np.zeros(3, dtype=[("a", "f4"), ("b", "i4")])),
            "structured array",
        ),
    ],
)
def test_bad_npy(tmp_path: Path, make: Callable[[Path], object], message: str) -> None:
    path = tmp_path / "a.npy"
    make(path)
    with pytest.raises(DatasetFormatError, match=message):
        analyse_dataset(path)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_npz_schema_label_and_string_scan(tmp_path: Path) -> None:
    names = np.array(["ann@example.com", "bob", "cy", "di", "ed@example.org"])
    np.savez_compressed(
        tmp_path / "d.npz", x=np.zeros((5, 2), np.float32), labels=np.arange(5), names=names
    )
    analysis = analyse_dataset(tmp_path / "d.npz", finder=email_finder)
    assert (analysis.schema.rows, analysis.schema.label) == (5, "labels")
    assert analysis.schema.features == (
        Feature("x", "float32", (2,)),
        Feature("labels", "int64"),
        Feature("names", "U15"),
    )
    assert analysis.pii.counts == {"email": {"names": 2}}
    assert analysis.pii.not_scanned == ["x: numeric (float32)", "labels: numeric (int64)"]
    assert analyse_dataset(tmp_path / "d.npz", label="x").schema.label == "x"
    with pytest.raises(DatasetFormatError, match=r"label 'y' is not a column.*'x', 'labels'"):
        analyse_dataset(tmp_path / "d.npz", label="y")


def test_npz_arrays_must_share_rows(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((5, 2)), y=np.arange(4))
    with pytest.raises(DatasetFormatError, match=r"differ in length.*'x' has 5, 'y' has 4"):
        analyse_dataset(tmp_path / "d.npz")


def test_npz_member_limits_and_odd_members(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "many.npz", "w") as archive:
        for index in range(10_001):
            archive.writestr(f"a{index}.npy", b"")
    with pytest.raises(DatasetFormatError, match="10001 members, over the limit of 10000"):
        analyse_dataset(tmp_path / "many.npz")
    with zipfile.ZipFile(tmp_path / "odd.npz", "w") as archive:
        archive.writestr("readme.txt", b"hi")
    with pytest.raises(DatasetFormatError, match=r"not \.npy arrays: \['readme\.txt'\]"):
        analyse_dataset(tmp_path / "odd.npz")


def test_npz_damaged_member_is_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.arange(1000))
    data = bytearray((tmp_path / "d.npz").read_bytes())
    data[300] ^= 0xFF  # inside x's data: the CRC no longer matches
    (tmp_path / "d.npz").write_bytes(bytes(data))
    with pytest.raises(DatasetFormatError, match=r"array 'x' is damaged"):
        analyse_dataset(tmp_path / "d.npz")


def test_folders_of_npy_and_npz(tmp_path: Path) -> None:
    (tmp_path / "arrays").mkdir()
    np.save(tmp_path / "arrays" / "x.npy", np.zeros((4, 2)))
    np.save(tmp_path / "arrays" / "y.npy", np.arange(4))
    analysis = analyse_dataset(tmp_path / "arrays")
    assert (analysis.schema.rows, analysis.schema.label) == (4, "y")
    np.save(tmp_path / "arrays" / "z.npy", np.arange(5))
    with pytest.raises(DatasetFormatError, match="differ in length"):
        analyse_dataset(tmp_path / "arrays")
    (tmp_path / "shards").mkdir()
    np.savez(tmp_path / "shards" / "a.npz", x=np.zeros((4, 2)), y=np.arange(4))
    np.savez(tmp_path / "shards" / "b.npz", x=np.zeros((3, 2)), y=np.arange(3))
    assert analyse_dataset(tmp_path / "shards").schema.rows == 7
    np.savez(tmp_path / "shards" / "c.npz", x=np.zeros((3, 5)), y=np.arange(3))
    with pytest.raises(DatasetFormatError, match=r"file c\.npz: its arrays .* differ"):
        analyse_dataset(tmp_path / "shards")


# --- image folders ----------------------------------------------------------------------


def _image(path: Path, size: tuple[int, int] = (4, 3), mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size).save(path)


def test_image_folder_schema(tmp_path: Path) -> None:
    _image(tmp_path / "imgs" / "dog" / "a.png")
    _image(tmp_path / "imgs" / "cat" / "b.jpg")
    _image(tmp_path / "imgs" / "cat" / "c.bmp")
    analysis = analyse_dataset(tmp_path / "imgs", workers=2)
    schema = analysis.schema
    assert schema.classes == ("cat", "dog")
    assert (schema.rows, schema.files, schema.label) == (3, 3, "class")
    assert schema.features == (Feature("image", "image", (3, 4, 3)),)
    assert analysis.pii.not_scanned == ["cat/: images (2)", "dog/: images (1)"]
    _image(tmp_path / "imgs" / "dog" / "d.png", (5, 5), "L")
    varied = analyse_dataset(tmp_path / "imgs").schema
    assert varied.features == (Feature("image", "image"),)
    assert "images vary in size" in varied.notes[0]
    with pytest.raises(DatasetFormatError, match="only label is 'class'"):
        analyse_dataset(tmp_path / "imgs", label="kind")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: write(root / "cat" / "bad.png", b"not an image"), r"cat/bad\.png is not a"),
        (lambda root: write(root / "cat" / "notes.txt", b"hi"), r"unknown extension '\.txt'"),
        (lambda root: (root / "cat" / "sub").mkdir(), r"class folder cat/ holds sub-folders"),
        (lambda root: (root / "empty").mkdir(), r"class folder empty/ holds no images"),
        (lambda root: write(root / "cat" / "z.png", b""), r"cat/z\.png is empty"),
    ],
)
def test_bad_image_folders(tmp_path: Path, setup: Callable[[Path], object], message: str) -> None:
    root = tmp_path / "imgs"
    _image(root / "cat" / "a.png")
    setup(root)
    with pytest.raises(DatasetFormatError, match=message):
        analyse_dataset(root)


def test_truncated_png_fails_verification(tmp_path: Path) -> None:
    _image(tmp_path / "imgs" / "cat" / "a.png", (64, 64))
    path = tmp_path / "imgs" / "cat" / "a.png"
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF  # damage the last chunk: its CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetFormatError, match=r"cat/a\.png cannot be read"):
        analyse_dataset(tmp_path / "imgs")


def test_decompression_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _image(tmp_path / "imgs" / "cat" / "big.png", (100, 100))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DatasetFormatError, match="decompression bomb"):
        analyse_dataset(tmp_path / "imgs")


# --- redaction --------------------------------------------------------------------------


def test_redacted_csv_keeps_rows_and_replaces_findings(tmp_path: Path) -> None:
    rows = [["id", "contact", "note"]]
    for index in range(30):
        rows.append([str(index), f"u{index}@example.com", 'said "hi", left'])
    rows.append(["31", "none", "two: a@b.io and c@d.io\nend"])
    source = write(tmp_path / "data.csv", csv_text(rows))
    destination = tmp_path / "clean"
    write_redacted(source, DatasetFormat.CSV, email_finder, redactor, destination)
    copy = destination / "data.csv"
    redacted = list(csv.reader(io.StringIO(copy.read_text(), newline="")))
    assert len(redacted) == len(rows)
    assert redacted[1] == ["0", "[EMAIL]", 'said "hi", left']
    assert redacted[-1] == ["31", "none", "two: [EMAIL] and [EMAIL]\nend"]
    again = analyse_dataset(destination, finder=email_finder)
    assert (again.pii.total, again.schema.rows) == (0, 31)
    assert source.read_text() == csv_text(rows)  # the original is untouched


def test_redacted_csv_across_small_blocks(tmp_path: Path) -> None:
    rows = [["a", "b"]] + [[f"x{index}@example.com", f'"{index}",\n'] for index in range(20)]
    source = write(tmp_path / "d.csv", csv_text(rows))
    out = tmp_path / "out"
    out.mkdir()
    redact_csv(inspect_layout(source), email_finder, Tokens(redactor), out, block_size=9)
    redacted = list(csv.reader(io.StringIO((out / "d.csv").read_text(), newline="")))
    assert redacted == [["a", "b"]] + [["[EMAIL]", f'"{index}",\n'] for index in range(20)]


def test_redacted_jsonl(tmp_path: Path) -> None:
    lines = [{"id": index, "email": f"u{index}@example.com", "n": [1, 2]} for index in range(5)]
    lines.append({"id": 5, "email": "mail ann@example.org now", "n": [3, 4]})
    source = write(tmp_path / "d" / "p.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    destination = tmp_path / "clean"
    write_redacted(tmp_path / "d", DatasetFormat.JSONL, email_finder, redactor, destination)
    copied = [json.loads(line) for line in (destination / "p.jsonl").read_text().splitlines()]
    assert [line["email"] for line in copied] == ["[EMAIL]"] * 5 + ["mail [EMAIL] now"]
    assert [line["n"] for line in copied] == [line["n"] for line in lines]
    assert analyse_dataset(destination, finder=email_finder).pii.total == 0
    assert source.exists()


def test_redacted_parquet(tmp_path: Path) -> None:
    table = pa.table({"x": [1, 2, 3, 4], "mail": ["a@example.com", None, "c", "to d@example.org!"]})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=3)
    destination = tmp_path / "clean"
    write_redacted(
        tmp_path / "t.parquet", DatasetFormat.PARQUET, email_finder, redactor, destination
    )
    copy = pq.ParquetFile(destination / "t.parquet")
    assert copy.metadata.num_row_groups == 2
    assert copy.read().to_pydict() == {
        "x": [1, 2, 3, 4],
        "mail": ["[EMAIL]", None, "c", "to [EMAIL]!"],
    }
    assert analyse_dataset(destination, finder=email_finder).pii.total == 0


def test_redacted_npz_and_npy(tmp_path: Path) -> None:
    names = np.array(["ann@example.com", "bob", "x: cy@example.org"])
    np.savez(tmp_path / "d.npz", names=names, y=np.arange(3))
    destination = tmp_path / "clean"
    write_redacted(tmp_path / "d.npz", DatasetFormat.NPZ, email_finder, redactor, destination)
    with np.load(destination / "d.npz", allow_pickle=False) as copy:
        assert copy["names"].tolist() == ["[EMAIL]", "bob", "x: [EMAIL]"]
        assert copy["y"].tolist() == [0, 1, 2]
    assert analyse_dataset(destination, finder=email_finder).pii.total == 0
    np.save(tmp_path / "s.npy", names.astype("S"))
    write_redacted(tmp_path / "s.npy", DatasetFormat.NPY, email_finder, redactor, tmp_path / "s")
    assert np.load(tmp_path / "s" / "s.npy").tolist() == [b"[EMAIL]", b"bob", b"x: [EMAIL]"]


def test_redaction_refuses_an_existing_destination(tmp_path: Path) -> None:
    source = write(tmp_path / "d.csv", "a\nx@example.com\n")
    (tmp_path / "clean").mkdir()
    with pytest.raises(DatasetFormatError, match="already exists"):
        write_redacted(source, DatasetFormat.CSV, email_finder, redactor, tmp_path / "clean")
    assert leftovers(tmp_path / "clean") == []


def _fails_redaction(
    tmp_path: Path,
    source: Path,
    fmt: DatasetFormat,
    finder: Callable[[bytes], list[tuple[str, int, int]]],
    make_token: Callable[[str], bytes],
    message: str,
) -> None:
    before = leftovers(tmp_path)
    with pytest.raises(DataHostError, match=message):
        write_redacted(source, fmt, finder, make_token, tmp_path / "clean")
    assert leftovers(tmp_path) == before  # no destination, no temporary folder


def test_failed_redactions_leave_nothing(tmp_path: Path) -> None:
    source = write(tmp_path / "d.csv", "a,b\nx@example.com,1\n")

    def across_fields(data: bytes) -> list[tuple[str, int, int]]:
        start = data.find(b"x@")
        return [("email", start, start + 16)] if start >= 0 else []

    _fails_redaction(
        tmp_path, source, DatasetFormat.CSV, across_fields, redactor, "spans more than one field"
    )
    _fails_redaction(
        tmp_path,
        source,
        DatasetFormat.CSV,
        email_finder,
        lambda kind: b"a,b",
        "must be safe inside CSV fields",
    )
    _fails_redaction(
        tmp_path,
        source,
        DatasetFormat.CSV,
        email_finder,
        lambda kind: b"me@example.com",
        "still has 1 findings",
    )
    _fails_redaction(
        tmp_path, source, DatasetFormat.JSONL, email_finder, redactor, "is a csv dataset, not jsonl"
    )
    jsonl = write(tmp_path / "k.jsonl", '{"me@example.com": 1}\n')
    _fails_redaction(tmp_path, jsonl, DatasetFormat.JSONL, email_finder, redactor, "key names")


def test_image_folder_cannot_be_redacted(tmp_path: Path) -> None:
    _image(tmp_path / "imgs" / "cat" / "a.png")
    with pytest.raises(DatasetFormatError, match="nothing to redact"):
        write_redacted(
            tmp_path / "imgs",
            DatasetFormat.IMAGE_FOLDER,
            email_finder,
            redactor,
            tmp_path / "clean",
        )
    assert not (tmp_path / "clean").exists()


# --- hostile files (found in review) -------------------------------------------------------


def test_parquet_decompression_bomb_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    values = pa.array(["a" * (8 << 20)] * 16, type=pa.large_string())
    pq.write_table(
        pa.table({"s": values}),
        tmp_path / "bomb.parquet",
        compression="zstd",
        compression_level=19,
    )
    assert (tmp_path / "bomb.parquet").stat().st_size < 4096
    with pytest.raises(DatasetFormatError, match="decompression bomb"):
        analyse_dataset(tmp_path / "bomb.parquet", finder=lambda data: [])


@pytest.mark.parametrize(
    "column",
    [
        pa.array([["bob@example.com"]] * 3),
        pa.array([{"inner": "bob@example.com"}] * 3),
        pa.array([b"bob@example.com"] * 3),
    ],
)
def test_parquet_text_the_scan_cannot_read_is_refused(tmp_path: Path, column: pa.Array) -> None:
    pq.write_table(pa.table({"c": column, "label": [1, 0, 1]}), tmp_path / "n.parquet")
    with pytest.raises(DatasetFormatError, match="PII scan does not read"):
        analyse_dataset(tmp_path / "n.parquet", finder=lambda data: [])


def test_parquet_without_rows_is_refused(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": pa.array([], pa.int64())}), tmp_path / "e.parquet")
    with pytest.raises(DatasetFormatError, match="no rows"):
        analyse_dataset(tmp_path / "e.parquet")


def test_npz_with_path_like_or_encrypted_members_is_refused(tmp_path: Path) -> None:
    array = io.BytesIO()
    np.save(array, np.arange(5))
    with zipfile.ZipFile(tmp_path / "paths.npz", "w") as archive:
        archive.writestr("../../x.npy", array.getvalue())
    with pytest.raises(DatasetFormatError, match="path-like"):
        analyse_dataset(tmp_path / "paths.npz")
    with zipfile.ZipFile(tmp_path / "locked.npz", "w") as archive:
        archive.writestr("x.npy", array.getvalue())
    raw = bytearray((tmp_path / "locked.npz").read_bytes())
    raw[raw.find(b"PK\x03\x04") + 6] |= 1  # the "encrypted" flag, local header
    raw[raw.find(b"PK\x01\x02") + 8] |= 1  # and central directory
    (tmp_path / "locked.npz").write_bytes(bytes(raw))
    with pytest.raises(DatasetFormatError, match="encrypted"):
        analyse_dataset(tmp_path / "locked.npz")


def test_jsonl_numbers_too_large_for_a_float_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "big.jsonl", '{"a": 1.0}\n{"a": 1e999}\n')
    with pytest.raises(DatasetFormatError, match="too large"):
        analyse_dataset(tmp_path / "big.jsonl")


def test_a_truncated_jpeg_is_refused(tmp_path: Path) -> None:
    for name in ("cats", "dogs"):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        Image.new("RGB", (64, 64), "white").save(tmp_path / "imgs" / name / "a.jpg")
    assert analyse_dataset(tmp_path / "imgs").schema.rows == 2
    picture = io.BytesIO()
    Image.effect_noise((256, 256), 64).convert("RGB").save(picture, "JPEG")
    (tmp_path / "imgs" / "dogs" / "b.jpg").write_bytes(picture.getvalue()[:2000] + bytes(100))
    with pytest.raises(DatasetFormatError, match=r"dogs/b\.jpg"):
        analyse_dataset(tmp_path / "imgs")
