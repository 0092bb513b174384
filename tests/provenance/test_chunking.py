"""Tests for provenance.chunking: chunk hashes, Merkle root, proofs, diffs and bad input."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provenance import chunking, merkle
from provenance.canonical import canonical_json
from provenance.chunking import (
    ALGORITHM,
    ChunkedDataset,
    ChunkedFile,
    chunk_path,
    validate_chunk_size,
    verify_chunk,
)
from provenance.errors import ChunkingError, ProofError

CHUNK = 4096


def data_of(size: int, seed: int = 0) -> bytes:
    """Deterministic bytes in which no two 4 KiB chunks are equal."""
    pattern = bytes((seed * 31 + i * 7) % 251 for i in range(251))
    data = bytearray((pattern * (size // len(pattern) + 1))[:size])
    for offset in range(0, size, CHUNK):
        stamp = (offset // CHUNK + 1000 * seed).to_bytes(4, "little")
        data[offset : offset + 4] = stamp[: max(0, min(4, size - offset))]
    return bytes(data)


def write(root: Path, relative: str, data: bytes) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def naive_leaves(contents: list[bytes], chunk_size: int) -> list[bytes]:
    """Leaf hashes computed the obvious way, from whole files in memory."""
    return [
        merkle.leaf_hash(content[offset : offset + chunk_size])
        for content in contents
        for offset in range(0, len(content), chunk_size)
    ]


@pytest.fixture
def dataset_dir(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A small tree with nested folders, an empty file and sizes around chunk edges."""
    files = {
        "a.bin": data_of(3 * CHUNK + 5, 1),
        "b/c.bin": data_of(CHUNK, 2),
        "b/empty.bin": b"",
        "b/d/e.bin": data_of(1, 3),
        "z.bin": data_of(CHUNK - 1, 4),
        "y.bin": data_of(CHUNK + 1, 5),
    }
    root = tmp_path / "dataset"
    for relative, content in files.items():
        write(root, relative, content)
    return root, files


def test_root_matches_naive_hashes(dataset_dir: tuple[Path, dict[str, bytes]]) -> None:
    root, files = dataset_dir
    result = chunk_path(root, CHUNK)
    order = sorted(files, key=lambda name: name.encode())
    leaves = naive_leaves([files[name] for name in order], CHUNK)
    assert list(result.leaf_hashes) == leaves
    assert result.root == merkle.root_from_leaf_hashes(leaves)
    assert result.root == merkle.MerkleTree(leaves).root()
    assert [file.path for file in result.files] == order
    assert result.total_bytes == sum(len(content) for content in files.values())
    assert result.chunk_count == len(leaves) == 4 + 1 + 0 + 1 + 2 + 1
    assert result.chunk_size == CHUNK


def test_files_record_their_run_of_chunks(dataset_dir: tuple[Path, dict[str, bytes]]) -> None:
    root, files = dataset_dir
    result = chunk_path(root, CHUNK)
    next_chunk = 0
    for file in result.files:
        assert file.size == len(files[file.path])
        assert file.first_chunk == next_chunk
        assert file.chunk_count == -(-file.size // CHUNK)
        next_chunk += file.chunk_count
    empty = next(file for file in result.files if file.path == "b/empty.bin")
    assert empty == ChunkedFile("b/empty.bin", 0, empty.first_chunk, 0)


def test_single_file_is_named_by_its_file_name(tmp_path: Path) -> None:
    content = data_of(2 * CHUNK + 3)
    single = write(tmp_path / "one", "data.csv", content)
    write(tmp_path / "two", "data.csv", content)
    from_file = chunk_path(single, CHUNK)
    from_dir = chunk_path(tmp_path / "two", CHUNK)
    assert from_file.files == (ChunkedFile("data.csv", len(content), 0, 3),)
    assert from_file == from_dir
    assert from_file.root == merkle.root_from_leaf_hashes(naive_leaves([content], CHUNK))
    assert chunk_path(str(single), CHUNK) == from_file


def test_files_are_sorted_by_utf8_bytes(tmp_path: Path) -> None:
    names = ["b", "a.txt", "a/x", "a-b", "B", "é", "z", "~", "a/y/z"]
    for index, name in enumerate(names):
        write(tmp_path, name, data_of(10, index))
    result = chunk_path(tmp_path, CHUNK)
    paths = [file.path for file in result.files]
    # "a-b" < "a.txt" < "a/x": '-' 0x2d, '.' 0x2e, '/' 0x2f; "B" before "a"; "é" last.
    assert paths == ["B", "a-b", "a.txt", "a/x", "a/y/z", "b", "z", "~", "é"]
    assert paths == sorted(names, key=lambda name: name.encode("utf-8"))


def test_default_chunk_size_is_one_mebibyte(tmp_path: Path) -> None:
    path = write(tmp_path, "f", data_of(chunking.DEFAULT_CHUNK_SIZE + 1))
    result = chunk_path(path)
    assert result.chunk_size == 1 << 20
    assert result.files[0].chunk_count == 2


@pytest.mark.parametrize("layout", [{}, {"empty": b""}, {"a": b"", "d/b": b""}])
def test_empty_dataset_is_refused(tmp_path: Path, layout: dict[str, bytes]) -> None:
    root = tmp_path / "data"
    root.mkdir()
    for relative, content in layout.items():
        write(root, relative, content)
    with pytest.raises(ChunkingError, match=rf"dataset {root} is empty"):
        chunk_path(root, CHUNK)


def test_empty_single_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "empty", b"")
    with pytest.raises(ChunkingError, match="is empty"):
        chunk_path(path, CHUNK)


def test_every_inclusion_proof_verifies(dataset_dir: tuple[Path, dict[str, bytes]]) -> None:
    root, files = dataset_dir
    result = chunk_path(root, CHUNK)
    for index in range(result.chunk_count):
        file, within = result.locate(index)
        data = files[file.path][within * CHUNK : (within + 1) * CHUNK]
        proof = result.inclusion_proof(index)
        verify_chunk(data, index, result.chunk_count, proof, result.root)
        merkle.verify_inclusion(
            result.leaf_hashes[index], index, result.chunk_count, proof, result.root
        )
        result.verify_chunk(data, index)
        tampered = bytes([data[0] ^ 1]) + data[1:]
        with pytest.raises(ProofError):
            verify_chunk(tampered, index, result.chunk_count, proof, result.root)
        with pytest.raises(ProofError):
            result.verify_chunk(tampered, index)


def test_chunk_index_out_of_range(dataset_dir: tuple[Path, dict[str, bytes]]) -> None:
    result = chunk_path(dataset_dir[0], CHUNK)
    for bad in (-1, result.chunk_count):
        with pytest.raises(ChunkingError, match=f"chunk_index {bad} is out of range"):
            result.inclusion_proof(bad)
        with pytest.raises(ChunkingError, match="chunk_index"):
            result.locate(bad)


def test_locate_skips_empty_files(dataset_dir: tuple[Path, dict[str, bytes]]) -> None:
    result = chunk_path(dataset_dir[0], CHUNK)
    located = [result.locate(index) for index in range(result.chunk_count)]
    assert [(file.path, within) for file, within in located] == [
        ("a.bin", 0),
        ("a.bin", 1),
        ("a.bin", 2),
        ("a.bin", 3),
        ("b/c.bin", 0),
        ("b/d/e.bin", 0),
        ("y.bin", 0),
        ("y.bin", 1),
        ("z.bin", 0),
    ]


def test_diff_finds_exactly_the_changed_chunk(
    dataset_dir: tuple[Path, dict[str, bytes]],
) -> None:
    root, files = dataset_dir
    before = chunk_path(root, CHUNK)
    changed = bytearray(files["a.bin"])
    changed[2 * CHUNK + 17] ^= 0xFF
    (root / "a.bin").write_bytes(changed)
    after = chunk_path(root, CHUNK)
    assert after.root != before.root
    assert before.diff(after) == [("a.bin", 2)]
    assert after.diff(before) == [("a.bin", 2)]
    assert before.diff(before) == []


def test_diff_reports_added_removed_and_resized_files(
    dataset_dir: tuple[Path, dict[str, bytes]],
) -> None:
    root, files = dataset_dir
    before = chunk_path(root, CHUNK)
    (root / "b" / "c.bin").unlink()
    write(root, "new.bin", data_of(CHUNK + 1, 9))
    (root / "y.bin").write_bytes(files["y.bin"][:CHUNK])  # loses its second chunk
    after = chunk_path(root, CHUNK)
    assert before.diff(after) == [
        ("b/c.bin", 0),
        ("new.bin", 0),
        ("new.bin", 1),
        ("y.bin", 1),
    ]


def test_diff_needs_the_same_chunk_size(tmp_path: Path) -> None:
    path = write(tmp_path, "f", data_of(3 * CHUNK))
    with pytest.raises(ChunkingError, match="different chunk_size"):
        chunk_path(path, CHUNK).diff(chunk_path(path, 2 * CHUNK))


@pytest.mark.parametrize("bad", [0, -4096, 1000, 2048, 3 * 4096, 1 << 27, True, "4096", 4096.0])
def test_chunk_size_is_validated(tmp_path: Path, bad: object) -> None:
    path = write(tmp_path, "f", b"x")
    with pytest.raises(ChunkingError, match="chunk_size must be"):
        chunk_path(path, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("good", [4096, 8192, 1 << 20, 1 << 26])
def test_chunk_size_bounds_are_inclusive(good: int) -> None:
    assert validate_chunk_size(good) == good


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_workers_are_validated(tmp_path: Path, bad: object) -> None:
    path = write(tmp_path, "f", b"x")
    with pytest.raises(ChunkingError, match="workers must be a positive integer"):
        chunk_path(path, CHUNK, workers=bad)  # type: ignore[arg-type]


def test_nonexistent_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ChunkingError, match=f"dataset path {missing} does not exist"):
        chunk_path(missing, CHUNK)


def skip_unless_modes_are_enforced(tmp_path: Path) -> None:
    """Skip where mode 000 does not stop reading (root, or CAP_DAC_OVERRIDE)."""
    probe = write(tmp_path, "probe", b"x")
    probe.chmod(0)
    try:
        probe.read_bytes()
    except PermissionError:
        return
    finally:
        probe.chmod(0o600)
        probe.unlink()
    pytest.skip("this user reads files whatever their mode (root?)")


def test_unreadable_file_names_the_path_and_reason(tmp_path: Path) -> None:
    skip_unless_modes_are_enforced(tmp_path)
    write(tmp_path, "ok", b"fine")
    secret = write(tmp_path, "secret", b"hidden")
    secret.chmod(0)
    try:
        with pytest.raises(ChunkingError, match=f"cannot read {secret}: Permission denied"):
            chunk_path(tmp_path, CHUNK)
    finally:
        secret.chmod(0o600)


def test_unreadable_directory_names_the_path_and_reason(tmp_path: Path) -> None:
    skip_unless_modes_are_enforced(tmp_path)
    write(tmp_path, "ok", b"fine")
    locked = tmp_path / "locked"
    write(locked, "inner", b"data")
    locked.chmod(0)
    try:
        with pytest.raises(
            ChunkingError, match=f"cannot read directory {locked}: Permission denied"
        ):
            chunk_path(tmp_path, CHUNK)
    finally:
        locked.chmod(0o700)


def test_symlink_to_file_is_refused(tmp_path: Path) -> None:
    target = write(tmp_path, "outside", b"data")
    root = tmp_path / "dataset"
    write(root, "real", b"data")
    (root / "link").symlink_to(target)
    with pytest.raises(ChunkingError, match=f"{root / 'link'} is a symbolic link"):
        chunk_path(root, CHUNK)


def test_symlink_to_directory_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "elsewhere", "f", b"data")
    root = tmp_path / "dataset"
    write(root, "real", b"data")
    (root / "sub").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(ChunkingError, match="sub is a symbolic link"):
        chunk_path(root, CHUNK)


def test_symlink_as_dataset_path_is_refused(tmp_path: Path) -> None:
    target = write(tmp_path, "real", b"data")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(ChunkingError, match=f"{link} is a symbolic link"):
        chunk_path(link, CHUNK)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_pipe_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "real", b"data")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ChunkingError, match="pipe is not a regular file or directory"):
        chunk_path(tmp_path, CHUNK)


def test_name_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "real", b"data")
    try:
        with open(os.path.join(os.fsencode(tmp_path), b"bad\xff"), "wb") as handle:
            handle.write(b"data")
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    with pytest.raises(ChunkingError, match="not valid UTF-8"):
        chunk_path(tmp_path, CHUNK)


def test_file_growing_while_hashed_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "first", data_of(CHUNK))
    growing = write(tmp_path, "second", data_of(3 * CHUNK))
    write(tmp_path, "third", data_of(CHUNK))
    seen: list[int] = []

    def append_to_second(hashed: int) -> None:
        seen.append(hashed)
        if len(seen) == 2:  # the one task of "second" was just collected
            with growing.open("ab") as handle:
                handle.write(b"more")

    with pytest.raises(ChunkingError, match=f"{growing} changed while it was being hashed"):
        chunk_path(tmp_path, CHUNK, progress=append_to_second)


def test_file_replaced_while_hashed_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "data", data_of(2 * CHUNK))
    replacement = write(tmp_path / "other", "data", data_of(2 * CHUNK))

    def replace(_: int) -> None:
        os.replace(replacement, path)

    with pytest.raises(ChunkingError, match=f"{path} changed while it was being hashed"):
        chunk_path(tmp_path, CHUNK, progress=replace)


@pytest.mark.parametrize("workers", [1, 2])
def test_file_shrinking_while_hashed_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    monkeypatch.setattr(chunking, "_TASK_BYTES", CHUNK)  # one task per chunk
    path = write(tmp_path, "data", data_of(16 * CHUNK))

    def truncate(_: int) -> None:
        os.truncate(path, CHUNK)

    # Whichever notices first, a short read or the size check, names the file.
    with pytest.raises(ChunkingError, match=f"{path} changed while it was being hashed"):
        chunk_path(path, CHUNK, workers=workers, progress=truncate)


def test_file_changed_after_listing_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "data", data_of(CHUNK))
    real_list = chunking._list_dataset

    def list_then_append(root: str) -> list[chunking._ListedFile]:
        listing = real_list(root)
        with path.open("ab") as handle:
            handle.write(b"late")
        return listing

    monkeypatch.setattr(chunking, "_list_dataset", list_then_append)
    with pytest.raises(ChunkingError, match=f"{path} changed while it was being hashed"):
        chunk_path(tmp_path, CHUNK)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_no_descriptor_leaks_after_an_error(tmp_path: Path) -> None:
    for index in range(5):
        write(tmp_path, f"f{index}", data_of(2 * CHUNK, index))
    before = len(os.listdir("/proc/self/fd"))

    def fail(_: int) -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        chunk_path(tmp_path, CHUNK, progress=fail)
    assert len(os.listdir("/proc/self/fd")) == before


def test_progress_reports_every_byte_once(dataset_dir: tuple[Path, dict[str, bytes]]) -> None:
    increments: list[int] = []
    result = chunk_path(dataset_dir[0], CHUNK, progress=increments.append)
    assert sum(increments) == result.total_bytes
    assert all(increment > 0 for increment in increments)


def test_one_and_two_workers_agree(
    dataset_dir: tuple[Path, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = dataset_dir
    monkeypatch.setattr(chunking, "_TASK_BYTES", CHUNK)  # many small tasks interleave
    results = [chunk_path(root, CHUNK, workers=workers) for workers in (1, 2, 3)]
    assert results[0] == results[1] == results[2]
    assert results[0] == chunk_path(root, CHUNK)


@pytest.mark.parametrize(
    ("chunk_size", "read_bytes", "task_bytes"),
    [
        (CHUNK, CHUNK, CHUNK),  # one chunk per read and per task
        (CHUNK, 4 * CHUNK, 8 * CHUNK),  # several chunks per read, several reads per task
        (4 * CHUNK, CHUNK, CHUNK),  # one chunk takes several reads; tasks hold one chunk
        (4 * CHUNK, 2 * CHUNK, 16 * CHUNK),
    ],
)
def test_reads_and_tasks_of_any_size_give_the_same_leaves(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    chunk_size: int,
    read_bytes: int,
    task_bytes: int,
) -> None:
    monkeypatch.setattr(chunking, "_READ_BYTES", read_bytes)
    monkeypatch.setattr(chunking, "_TASK_BYTES", task_bytes)
    sizes = [0, 1, CHUNK - 1, CHUNK, 4 * CHUNK + 1, 9 * CHUNK, 21 * CHUNK + 7]
    contents = [data_of(size, index) for index, size in enumerate(sizes)]
    for index, content in enumerate(contents):
        write(tmp_path, f"f{index:02d}", content)
    result = chunk_path(tmp_path, chunk_size, workers=2)
    assert list(result.leaf_hashes) == naive_leaves(contents, chunk_size)


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=5 * CHUNK), min_size=1, max_size=4),
    chunk_size=st.sampled_from([CHUNK, 2 * CHUNK]),
)
def test_root_matches_naive_root_for_any_sizes(sizes: list[int], chunk_size: int) -> None:
    contents = [data_of(size, index) for index, size in enumerate(sizes)]
    with tempfile.TemporaryDirectory() as directory:
        for index, content in enumerate(contents):
            write(Path(directory), f"f{index}", content)
        if not any(sizes):
            with pytest.raises(ChunkingError, match="is empty"):
                chunk_path(directory, chunk_size)
            return
        result = chunk_path(directory, chunk_size)
    assert result.root == merkle.root_from_leaf_hashes(naive_leaves(contents, chunk_size))


def test_manifest_section_round_trips(dataset_dir: tuple[Path, dict[str, bytes]]) -> None:
    result = chunk_path(dataset_dir[0], CHUNK)
    section = result.to_dict()
    assert section["algorithm"] == ALGORITHM == "sha256-rfc9162"
    assert section["chunk_size"] == CHUNK
    assert section["root"] == result.root.hex()
    assert section["chunk_count"] == result.chunk_count
    assert section["total_bytes"] == result.total_bytes
    assert section["files"][0] == {
        "path": "a.bin",
        "size": 3 * CHUNK + 5,
        "first_chunk": 0,
        "chunk_count": 4,
    }
    assert "leaf_hashes" not in section
    canonical_json(section)  # the section can be signed as it is
    leaves = result.export_leaf_hashes()
    assert len(leaves) == 32 * result.chunk_count
    assert ChunkedDataset.from_dict(section, leaves) == result


def _section_with(result: ChunkedDataset, **changes: object) -> dict[str, object]:
    section = result.to_dict()
    section.update(changes)
    return section


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"algorithm": "md5"}, "algorithm 'md5' is not supported"),
        ({"chunk_size": 1000}, "chunk_size must be"),
        ({"root": "00" * 32}, "leaf hashes lead to root"),
        ({"root": "XY"}, "root must be 64 lowercase hex"),
        ({"chunk_count": 99}, "chunk_count is 99"),
        ({"total_bytes": 1}, "total_bytes is 1"),
        ({"files": "nope"}, "files must be a list"),
        ({"extra": 1}, "unknown keys \\['extra'\\]"),
    ],
)
def test_manifest_section_is_checked(
    dataset_dir: tuple[Path, dict[str, bytes]], change: dict[str, object], message: str
) -> None:
    result = chunk_path(dataset_dir[0], CHUNK)
    with pytest.raises(ChunkingError, match=message):
        ChunkedDataset.from_dict(_section_with(result, **change), result.export_leaf_hashes())


@pytest.mark.parametrize(
    ("file_change", "message"),
    [
        ({"path": "../escape"}, "must be a relative POSIX path"),
        ({"path": "/abs"}, "must be a relative POSIX path"),
        ({"path": "a//b"}, "must be a relative POSIX path"),
        ({"path": "zzz"}, "out of order or repeated"),
        ({"size": -1}, "size must be a non-negative integer"),
        ({"chunk_count": 3}, "chunk_count is 3, but"),
        ({"first_chunk": 1}, "first_chunk is 1, expected 0"),
    ],
)
def test_manifest_files_are_checked(
    dataset_dir: tuple[Path, dict[str, bytes]], file_change: dict[str, object], message: str
) -> None:
    result = chunk_path(dataset_dir[0], CHUNK)
    section = result.to_dict()
    section["files"][0].update(file_change)
    with pytest.raises(ChunkingError, match=message):
        ChunkedDataset.from_dict(section, result.export_leaf_hashes())


def test_manifest_leaves_must_match(dataset_dir: tuple[Path, dict[str, bytes]]) -> None:
    result = chunk_path(dataset_dir[0], CHUNK)
    leaves = result.export_leaf_hashes()
    with pytest.raises(ChunkingError, match="expected 9 hashes"):
        ChunkedDataset.from_dict(result.to_dict(), leaves[:-1])
    swapped = leaves[32:64] + leaves[:32] + leaves[64:]
    with pytest.raises(ChunkingError, match="leaf hashes lead to root"):
        ChunkedDataset.from_dict(result.to_dict(), swapped)
