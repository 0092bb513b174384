"""Dataset chunking: fixed-size chunks of a file or directory, their hashes and Merkle root.

A dataset is one regular file or a directory tree of regular files, listed in the byte
order of their UTF-8 POSIX relative paths. Each file is cut into ``chunk_size`` chunks:
chunks never span files, a file's last chunk may be short and an empty file is listed
with no chunks. A chunk's leaf hash is RFC 9162's SHA-256(0x00 || chunk); the dataset
root is the RFC 9162 root over every leaf in (file, chunk) order, so that any one chunk
can be proven with an inclusion proof.

Hashing runs on a thread pool (hashlib releases the GIL while it hashes large buffers);
each task reads its own span with ``preadv`` into a per-thread buffer, so memory stays
O(workers x read buffer) whatever the size of the dataset.

This module must never load a whole file into memory, follow a symbolic link, skip a
directory entry silently, or return a result for a file that changed while it was being
hashed: each of those is a ``ChunkingError`` that names the path.
"""

from __future__ import annotations

import bisect
import errno
import hashlib
import os
import re
import stat
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from provenance import merkle
from provenance.errors import ChunkingError

#: The name of the chunk-hashing scheme, as written in a manifest's "chunking" section.
ALGORITHM = "sha256-rfc9162"
DEFAULT_CHUNK_SIZE = 1 << 20
MIN_CHUNK_SIZE = 1 << 12
MAX_CHUNK_SIZE = 1 << 26

#: Bytes one read fills; also the size of each worker's buffer. Chunk sizes are powers of
#: two, so a read never straddles two chunks unless it holds several whole ones.
_READ_BYTES = 1 << 20
#: Bytes one hashing task covers (at least one whole chunk). Measured on two cores: 4 MiB
#: tasks keep the pool's per-task overhead well under 1% of the hashing time.
_TASK_BYTES = 4 << 20
#: Tasks submitted but not yet collected, per worker: enough to keep every worker busy.
_IN_FLIGHT_PER_WORKER = 2

_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)  # a file swapped for a link after listing is refused
    | getattr(os, "O_NONBLOCK", 0)  # a file swapped for a FIFO cannot hang the open
    | getattr(os, "O_CLOEXEC", 0)
)
_ROOT_HEX = re.compile(r"[0-9a-f]{64}")
_SECTION_KEYS = frozenset(
    {"algorithm", "chunk_size", "root", "chunk_count", "total_bytes", "files"}
)
_FILE_KEYS = frozenset({"path", "size", "first_chunk", "chunk_count"})

#: Receives the number of bytes hashed since its previous call.
ProgressCallback = Callable[[int], None]
#: What identifies one version of a file: (st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns).
_Identity = tuple[int, int, int, int, int]


def validate_chunk_size(chunk_size: int) -> int:
    """Return ``chunk_size`` if it is a power of two from 4 KiB to 64 MiB, else raise."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise ChunkingError(f"chunk_size must be an integer, got {type(chunk_size).__name__}")
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE or chunk_size & (chunk_size - 1):
        raise ChunkingError(
            f"chunk_size must be a power of two from {MIN_CHUNK_SIZE} (4 KiB) to "
            f"{MAX_CHUNK_SIZE} (64 MiB), got {chunk_size}"
        )
    return chunk_size


def chunks_in(size: int, chunk_size: int) -> int:
    """Number of chunks a file of ``size`` bytes is cut into (zero for an empty file)."""
    return -(-size // chunk_size)


def _path_key(path: str) -> bytes:
    """Sort key of a relative path: the bytes of its UTF-8 encoding."""
    return path.encode("utf-8")


@dataclass(frozen=True)
class ChunkedFile:
    """One file of a dataset and the run of leaves its chunks occupy."""

    #: POSIX path relative to the dataset directory (the file's name for a single file).
    path: str
    size: int
    #: Index of the file's first leaf in the dataset (the next file's, if it is empty).
    first_chunk: int
    chunk_count: int

    def to_dict(self) -> dict[str, Any]:
        """The file's entry in a manifest's ``files`` list."""
        return {
            "path": self.path,
            "size": self.size,
            "first_chunk": self.first_chunk,
            "chunk_count": self.chunk_count,
        }


@dataclass(frozen=True)
class ChunkedDataset:
    """A chunked dataset: its files, every chunk's leaf hash and the Merkle root over them."""

    chunk_size: int
    files: tuple[ChunkedFile, ...]
    leaf_hashes: tuple[bytes, ...]
    root: bytes

    @property
    def total_bytes(self) -> int:
        """Bytes in all files together."""
        return sum(file.size for file in self.files)

    @property
    def chunk_count(self) -> int:
        """Number of chunks (leaves) in the dataset."""
        return len(self.leaf_hashes)

    @cached_property
    def _tree(self) -> merkle.MerkleTree:
        return merkle.MerkleTree(self.leaf_hashes)

    @cached_property
    def _starts(self) -> list[int]:
        return [file.first_chunk for file in self.files]

    def _check_index(self, chunk_index: int) -> None:
        if not 0 <= chunk_index < self.chunk_count:
            raise ChunkingError(
                f"chunk_index {chunk_index} is out of range: the dataset has "
                f"{self.chunk_count} chunks"
            )

    def inclusion_proof(self, chunk_index: int) -> list[bytes]:
        """RFC 9162 inclusion proof of leaf ``chunk_index`` under ``root``."""
        self._check_index(chunk_index)
        return self._tree.inclusion_proof(chunk_index)

    def locate(self, chunk_index: int) -> tuple[ChunkedFile, int]:
        """The file holding leaf ``chunk_index`` and the chunk's index within that file.

        The chunk's bytes start at ``index * chunk_size`` in the file.
        """
        self._check_index(chunk_index)
        # The last file starting at or before the leaf; empty files share their
        # successor's first_chunk and come before it, so they are never picked.
        file = self.files[bisect.bisect_right(self._starts, chunk_index) - 1]
        return file, chunk_index - file.first_chunk

    def verify_chunk(self, data: bytes, chunk_index: int) -> None:
        """Raise ``ProofError`` unless ``data`` is chunk ``chunk_index`` of this dataset."""
        self._check_index(chunk_index)
        verify_chunk(
            data, chunk_index, self.chunk_count, self.inclusion_proof(chunk_index), self.root
        )

    def to_dict(self) -> dict[str, Any]:
        """The "chunking" section of a dataset manifest (no leaf hashes; see
        ``export_leaf_hashes``)."""
        return {
            "algorithm": ALGORITHM,
            "chunk_size": self.chunk_size,
            "root": self.root.hex(),
            "chunk_count": self.chunk_count,
            "total_bytes": self.total_bytes,
            "files": [file.to_dict() for file in self.files],
        }

    def export_leaf_hashes(self) -> bytes:
        """Every leaf hash, 32 bytes each, concatenated in leaf order.

        Kept beside the manifest, they let ``diff`` name the chunks that changed later.
        """
        return b"".join(self.leaf_hashes)

    @classmethod
    def from_dict(cls, section: Mapping[str, Any], leaf_hashes: bytes) -> ChunkedDataset:
        """Rebuild a dataset from a manifest's "chunking" section and its exported leaves.

        Checks everything the section states against everything else: the files' order,
        sizes and chunk runs, the totals, the number of leaves and the root. Paths must be
        relative and free of ``.``, ``..`` and empty parts, so that joining them to a
        directory cannot leave it.
        """
        if not isinstance(section, Mapping):
            raise ChunkingError("the chunking section must be a JSON object")
        keys = set(section)
        if keys != _SECTION_KEYS:
            missing, extra = sorted(_SECTION_KEYS - keys), sorted(keys - _SECTION_KEYS)
            raise ChunkingError(
                f"the chunking section has missing keys {missing} and unknown keys {extra}"
            )
        if section["algorithm"] != ALGORITHM:
            raise ChunkingError(
                f"chunking algorithm {section['algorithm']!r} is not supported; "
                f"expected {ALGORITHM!r}"
            )
        chunk_size = validate_chunk_size(section["chunk_size"])
        root_hex = section["root"]
        if not isinstance(root_hex, str) or not _ROOT_HEX.fullmatch(root_hex):
            raise ChunkingError("chunking root must be 64 lowercase hex characters")
        raw_files = section["files"]
        if not isinstance(raw_files, list):
            raise ChunkingError("chunking files must be a list")
        files: list[ChunkedFile] = []
        next_chunk = 0
        for position, raw in enumerate(raw_files):
            file = _file_from_dict(raw, position, chunk_size)
            if files and _path_key(files[-1].path) >= _path_key(file.path):
                raise ChunkingError(
                    f"chunking files[{position}] path {file.path!r} is out of order or "
                    f"repeated (files are sorted by UTF-8 bytes)"
                )
            if file.first_chunk != next_chunk:
                raise ChunkingError(
                    f"chunking files[{position}] first_chunk is {file.first_chunk}, "
                    f"expected {next_chunk}"
                )
            next_chunk += file.chunk_count
            files.append(file)
        for name, stated, actual in (
            ("chunk_count", section["chunk_count"], next_chunk),
            ("total_bytes", section["total_bytes"], sum(file.size for file in files)),
        ):
            if isinstance(stated, bool) or stated != actual:
                raise ChunkingError(f"chunking {name} is {stated!r}, the files add up to {actual}")
        if next_chunk == 0:
            raise ChunkingError("the chunking section describes an empty dataset")
        if not isinstance(leaf_hashes, bytes | bytearray | memoryview):
            raise ChunkingError("leaf_hashes must be bytes")
        if len(leaf_hashes) != next_chunk * merkle.HASH_SIZE:
            raise ChunkingError(
                f"leaf_hashes holds {len(leaf_hashes)} bytes, expected {next_chunk} hashes "
                f"of {merkle.HASH_SIZE} bytes"
            )
        leaves = tuple(
            bytes(leaf_hashes[i : i + merkle.HASH_SIZE])
            for i in range(0, len(leaf_hashes), merkle.HASH_SIZE)
        )
        root = merkle.root_from_leaf_hashes(leaves)
        if root.hex() != root_hex:
            raise ChunkingError(
                f"leaf hashes lead to root {root.hex()}, but the chunking section states {root_hex}"
            )
        return cls(chunk_size, tuple(files), leaves, root)

    def diff(self, other: ChunkedDataset) -> list[tuple[str, int]]:
        """Chunks that differ between two datasets, as (file path, chunk index in file).

        A file present on one side only contributes all its chunks, and so does a chunk
        beyond the end of the shorter version of a file. The list is sorted like the
        files. Paths and sizes are compared through the chunks only: an empty file added
        or removed changes no chunk, so compare ``files`` to see the listing change.
        """
        if self.chunk_size != other.chunk_size:
            raise ChunkingError(
                f"cannot compare datasets chunked with different chunk_size "
                f"({self.chunk_size} and {other.chunk_size})"
            )
        mine = {file.path: file for file in self.files}
        theirs = {file.path: file for file in other.files}
        differences: list[tuple[str, int]] = []
        for path in sorted(mine.keys() | theirs.keys(), key=_path_key):
            ours = _leaves_of(self, mine.get(path))
            others = _leaves_of(other, theirs.get(path))
            for index in range(max(len(ours), len(others))):
                if index >= len(ours) or index >= len(others) or ours[index] != others[index]:
                    differences.append((path, index))
        return differences


def _leaves_of(dataset: ChunkedDataset, file: ChunkedFile | None) -> tuple[bytes, ...]:
    if file is None:
        return ()
    return dataset.leaf_hashes[file.first_chunk : file.first_chunk + file.chunk_count]


def _file_from_dict(raw: Any, position: int, chunk_size: int) -> ChunkedFile:
    where = f"chunking files[{position}]"
    if not isinstance(raw, Mapping) or set(raw) != _FILE_KEYS:
        raise ChunkingError(f"{where} must be an object with exactly the keys {sorted(_FILE_KEYS)}")
    path = raw["path"]
    if not isinstance(path, str) or not _is_safe_relative_path(path):
        raise ChunkingError(
            f"{where} path {path!r} must be a relative POSIX path without '.', '..' or empty parts"
        )
    for name in ("size", "first_chunk", "chunk_count"):
        value = raw[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ChunkingError(f"{where} {name} must be a non-negative integer, got {value!r}")
    file = ChunkedFile(path, raw["size"], raw["first_chunk"], raw["chunk_count"])
    if file.chunk_count != chunks_in(file.size, chunk_size):
        raise ChunkingError(
            f"{where} chunk_count is {file.chunk_count}, but {file.size} bytes make "
            f"{chunks_in(file.size, chunk_size)} chunks of {chunk_size}"
        )
    return file


def _is_safe_relative_path(path: str) -> bool:
    if not path or "\x00" in path or path.startswith("/"):
        return False
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def verify_chunk(
    data: bytes, chunk_index: int, chunk_count: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ``ProofError`` unless ``data`` is leaf ``chunk_index`` of ``chunk_count`` under
    ``root``, as shown by the inclusion ``proof``."""
    merkle.verify_inclusion(merkle.leaf_hash(data), chunk_index, chunk_count, proof, root)


def chunk_path(
    path: str | os.PathLike[str],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    *,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> ChunkedDataset:
    """Chunk and hash the file or directory at ``path``.

    ``workers`` hashing threads run at once (default: the CPUs this process may use);
    ``progress`` is called from the calling thread with the bytes hashed since its last
    call. Raises ``ChunkingError`` naming the path if the path does not exist or cannot
    be read, holds a symbolic link or anything other than regular files and directories,
    has a name that is not UTF-8, holds no bytes at all, or if a file changes while it is
    being hashed.
    """
    chunk_size = validate_chunk_size(chunk_size)
    workers = _validate_workers(workers)
    root = os.fspath(path)
    listing = _list_dataset(root)
    if sum(file.size for file in listing) == 0:
        raise ChunkingError(f"dataset {root} is empty: its files hold no bytes")
    leaves = _hash_files(listing, chunk_size, workers, progress)
    files: list[ChunkedFile] = []
    next_chunk = 0
    for listed in listing:
        count = chunks_in(listed.size, chunk_size)
        files.append(ChunkedFile(listed.relative, listed.size, next_chunk, count))
        next_chunk += count
    if next_chunk != len(leaves):  # pragma: no cover - a bug, not an input problem
        raise AssertionError(f"hashed {len(leaves)} chunks, listed {next_chunk}")
    return ChunkedDataset(
        chunk_size, tuple(files), tuple(leaves), merkle.root_from_leaf_hashes(leaves)
    )


def _validate_workers(workers: int | None) -> int:
    if workers is None:
        if hasattr(os, "sched_getaffinity"):
            return max(1, len(os.sched_getaffinity(0)))
        return os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ChunkingError(f"workers must be a positive integer, got {workers!r}")
    return workers


# --- listing -------------------------------------------------------------------------


@dataclass(frozen=True)
class _ListedFile:
    relative: str
    #: The path as the caller can find it, for messages and for opening.
    location: str
    size: int
    identity: _Identity


def _identity(status: os.stat_result) -> _Identity:
    # ctime as well as mtime: a writer can set mtime back, but not ctime.
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _checked_relative(relative: str, location: str) -> str:
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        raise ChunkingError(f"{location!r} has a name that is not valid UTF-8") from None
    return relative


def _list_dataset(root: str) -> list[_ListedFile]:
    """Every regular file under ``root`` (or ``root`` itself), sorted by relative path."""
    try:
        status = os.lstat(root)
    except FileNotFoundError:
        raise ChunkingError(f"dataset path {root} does not exist") from None
    except OSError as exc:
        raise ChunkingError(f"cannot read dataset path {root}: {_reason(exc)}") from exc
    if stat.S_ISREG(status.st_mode):
        name = os.path.basename(os.path.normpath(root))
        return [_ListedFile(_checked_relative(name, root), root, status.st_size, _identity(status))]
    if not stat.S_ISDIR(status.st_mode):
        raise ChunkingError(_not_regular(root, status.st_mode))
    files: list[_ListedFile] = []
    pending: list[tuple[str, str]] = [("", root)]
    while pending:
        prefix, directory = pending.pop()
        try:
            with os.scandir(directory) as entries_iterator:
                entries = list(entries_iterator)
        except OSError as exc:
            raise ChunkingError(f"cannot read directory {directory}: {_reason(exc)}") from exc
        for entry in entries:
            try:
                status = entry.stat(follow_symlinks=False)
            except OSError as exc:
                raise ChunkingError(f"cannot read {entry.path}: {_reason(exc)}") from exc
            relative = _checked_relative(prefix + entry.name, entry.path)
            if stat.S_ISDIR(status.st_mode):
                pending.append((relative + "/", entry.path))
            elif stat.S_ISREG(status.st_mode):
                files.append(_ListedFile(relative, entry.path, status.st_size, _identity(status)))
            else:
                raise ChunkingError(_not_regular(entry.path, status.st_mode))
    files.sort(key=lambda file: _path_key(file.relative))
    return files


def _not_regular(location: str, mode: int) -> str:
    if stat.S_ISLNK(mode):
        return (
            f"{location} is a symbolic link; chunking never follows links, "
            f"so name or copy its target instead"
        )
    return f"{location} is not a regular file or directory (a device, socket or pipe)"


# --- hashing -------------------------------------------------------------------------


def _changed(location: str, detail: str) -> ChunkingError:
    return ChunkingError(f"{location} changed while it was being hashed: {detail}")


@dataclass(eq=False)
class _OpenFile:
    listed: _ListedFile
    fd: int
    #: Hashing tasks of this file not collected yet.
    tasks_left: int = 0


class _ReadBuffer(threading.local):
    """One read buffer per worker thread, allocated on the thread's first task."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.view: memoryview | None = None

    def get(self) -> memoryview:
        if self.view is None:
            self.view = memoryview(bytearray(self.size))
        return self.view


def _open(listed: _ListedFile) -> _OpenFile:
    """Open a listed file, checking it is still the file that was listed."""
    try:
        fd = os.open(listed.location, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOENT):
            raise _changed(listed.location, "it was replaced or removed") from exc
        raise ChunkingError(f"cannot read {listed.location}: {_reason(exc)}") from exc
    try:
        if _identity(os.fstat(fd)) != listed.identity:
            raise _changed(listed.location, "it differs from when it was listed")
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    except BaseException:
        os.close(fd)
        raise
    return _OpenFile(listed, fd)


def _close_unchanged(opened: _OpenFile) -> None:
    """Close a hashed file; raise unless both it and its path are still as listed."""
    location = opened.listed.location
    try:
        after = _identity(os.fstat(opened.fd))
        now = _identity(os.lstat(location))
    except FileNotFoundError as exc:
        raise _changed(location, "it was removed") from exc
    except OSError as exc:
        raise ChunkingError(f"cannot read {location}: {_reason(exc)}") from exc
    finally:
        os.close(opened.fd)
    if after != opened.listed.identity:
        raise _changed(location, "its size, times or inode changed")
    if now != opened.listed.identity:
        raise _changed(location, "its path now names a different file")


def _read_into(fd: int, view: memoryview, offset: int) -> int:
    if hasattr(os, "preadv"):
        return os.preadv(fd, [view], offset)
    data = os.pread(fd, len(view), offset)  # copies; only where preadv is missing
    view[: len(data)] = data
    return len(data)


def _read_exactly(opened: _OpenFile, view: memoryview, offset: int) -> memoryview:
    """Fill ``view`` from ``offset`` of the file; a short file means it changed."""
    filled = 0
    while filled < len(view):
        try:
            got = _read_into(opened.fd, view[filled:], offset + filled)
        except OSError as exc:
            raise ChunkingError(f"cannot read {opened.listed.location}: {_reason(exc)}") from exc
        if got == 0:
            raise _changed(
                opened.listed.location,
                f"it ends at byte {offset + filled}, not {opened.listed.size}",
            )
        filled += got
    return view


def _hash_span(
    opened: _OpenFile, offset: int, length: int, chunk_size: int, buffer: _ReadBuffer
) -> list[bytes]:
    """Leaf hashes of the chunks in [offset, offset + length) of an open file.

    Runs on a worker thread. ``offset`` is a multiple of ``chunk_size``, and so is
    ``length`` unless the span ends the file. Leaf hashes are RFC 9162's, as
    ``merkle.leaf_hash`` computes them, but hashed from the buffer without a copy.
    """
    view = buffer.get()
    step = len(view)
    end = offset + length
    leaves: list[bytes] = []
    # Both sizes are powers of two: one read holds whole chunks, or one chunk takes
    # several whole reads.
    if chunk_size <= step:
        for position in range(offset, end, step):
            piece = _read_exactly(opened, view[: min(step, end - position)], position)
            for start in range(0, len(piece), chunk_size):
                hasher = hashlib.sha256(b"\x00")
                hasher.update(piece[start : start + chunk_size])
                leaves.append(hasher.digest())
        return leaves
    for chunk_start in range(offset, end, chunk_size):
        hasher = hashlib.sha256(b"\x00")
        chunk_end = min(chunk_start + chunk_size, end)
        for position in range(chunk_start, chunk_end, step):
            hasher.update(_read_exactly(opened, view[: min(step, chunk_end - position)], position))
        leaves.append(hasher.digest())
    return leaves


def _hash_files(
    listing: Sequence[_ListedFile],
    chunk_size: int,
    workers: int,
    progress: ProgressCallback | None,
) -> list[bytes]:
    """Leaf hashes of every chunk of every listed file, in order."""
    task_bytes = max(chunk_size, _TASK_BYTES)
    buffer = _ReadBuffer(_READ_BYTES)
    leaves: list[bytes] = []
    in_flight: deque[tuple[Future[list[bytes]], _OpenFile, int]] = deque()
    still_open: dict[int, _OpenFile] = {}
    window = workers * _IN_FLIGHT_PER_WORKER

    def collect_oldest() -> None:
        future, opened, length = in_flight.popleft()
        leaves.extend(future.result())
        if progress is not None:
            progress(length)
        opened.tasks_left -= 1
        if opened.tasks_left == 0:
            del still_open[opened.fd]
            _close_unchanged(opened)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chunk-hash")
    try:
        for listed in listing:
            opened = _open(listed)
            still_open[opened.fd] = opened
            opened.tasks_left = chunks_in(listed.size, task_bytes)
            if opened.tasks_left == 0:
                del still_open[opened.fd]
                _close_unchanged(opened)
                continue
            for offset in range(0, listed.size, task_bytes):
                while len(in_flight) >= window:
                    collect_oldest()
                length = min(task_bytes, listed.size - offset)
                future = pool.submit(_hash_span, opened, offset, length, chunk_size, buffer)
                in_flight.append((future, opened, length))
        while in_flight:
            collect_oldest()
    finally:
        # Wait for running tasks before closing the descriptors they read from.
        pool.shutdown(wait=True, cancel_futures=True)
        for opened in still_open.values():
            os.close(opened.fd)
    return leaves
