"""Recognising a dataset's format from its path: one file, a folder of files, or an image folder.

A dataset is one regular file, a folder of regular files of one format, or an image folder
(a folder whose entries are only sub-folders, one per class, holding image files). Names
starting with ``.`` are ignored. The format comes from file extensions and is confirmed by
the files' first bytes where a format has a signature (Parquet, ``.npy``, ``.npz``).

This module must never follow a symbolic link, accept an empty, unreadable or non-regular
file, or guess a format from content alone: each of those is a ``DatasetFormatError``
naming the path and saying what to do.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from data_host.errors import DatasetFormatError
from data_host.formats.limits import MAX_FILES
from data_host.formats.schema import DatasetFormat

#: File extensions (lower case) of each single-file format.
EXTENSIONS: dict[str, DatasetFormat] = {
    ".csv": DatasetFormat.CSV,
    ".parquet": DatasetFormat.PARQUET,
    ".pq": DatasetFormat.PARQUET,
    ".npy": DatasetFormat.NPY,
    ".npz": DatasetFormat.NPZ,
    ".jsonl": DatasetFormat.JSONL,
    ".ndjson": DatasetFormat.JSONL,
}
#: File extensions (lower case) of images in an image folder.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"})

_SIGNATURES: dict[DatasetFormat, tuple[bytes, ...]] = {
    DatasetFormat.PARQUET: (b"PAR1",),
    DatasetFormat.NPY: (b"\x93NUMPY",),
    DatasetFormat.NPZ: (b"PK\x03\x04", b"PK\x05\x06"),
}
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


@dataclass(frozen=True)
class DatasetLayout:
    """A dataset's format and its files, checked and in a fixed order.

    ``root`` is the path given; ``files`` are sorted by name (an image folder's class by
    class); a single-file dataset lists the file itself. ``classes`` are an image folder's
    class sub-folders, sorted. Image files are only checked to be non-empty here: the
    image reader opens each one.
    """

    format: DatasetFormat
    root: Path
    files: tuple[Path, ...]
    classes: tuple[str, ...] = ()

    @property
    def is_folder(self) -> bool:
        """Whether the dataset is a folder (else one file)."""
        return self.root != self.files[0]

    def relative(self, file: Path) -> str:
        """``file``'s POSIX path inside the dataset (its name for a single-file dataset)."""
        if not self.is_folder:
            return file.name
        return file.relative_to(self.root).as_posix()


def supported() -> str:
    """The accepted extensions, for error messages."""
    return ", ".join(sorted(EXTENSIONS)) + " or an image folder"


def detect_format(path: Path) -> DatasetFormat:
    """The format of the dataset at ``path`` (a file or a folder).

    Raises ``DatasetFormatError`` naming the offending path for an unknown extension, a
    mixed-format folder, an empty folder, a zero-byte, unreadable or non-regular file, a
    symbolic link, or a file whose first bytes do not match its extension.
    """
    return inspect_layout(path).format


def inspect_layout(path: Path) -> DatasetLayout:
    """Detect the format of the dataset at ``path`` and list its files (see ``detect_format``)."""
    path = Path(path)
    status = _lstat(path)
    if stat.S_ISLNK(status.st_mode):
        raise DatasetFormatError(f"{path} is a symbolic link; give the path of the dataset itself")
    if stat.S_ISREG(status.st_mode):
        fmt = _format_of_file(path, status)
        return DatasetLayout(fmt, path, (path,))
    if not stat.S_ISDIR(status.st_mode):
        raise DatasetFormatError(f"{path} is neither a regular file nor a folder")
    folders, files = _entries(path)
    if folders and files:
        raise DatasetFormatError(
            f"mixed-format folder {path}: it holds sub-folders ({_examples(folders, '/')}) "
            f"and files ({_examples(files)}); a dataset folder holds files of one format, "
            f"or only one sub-folder of images per class"
        )
    if folders:
        return _image_folder(path, folders)
    if not files:
        raise DatasetFormatError(f"folder {path} is empty; put the dataset's files in it")
    by_format: dict[DatasetFormat, list[Path]] = {}
    for file, file_status in files:
        by_format.setdefault(_format_of_file(file, file_status), []).append(file)
    if len(by_format) > 1:
        seen = "; ".join(
            f"{fmt} ({_examples([(file, None) for file in members])})"
            for fmt, members in sorted(by_format.items())
        )
        raise DatasetFormatError(
            f"mixed-format folder {path}: found {seen}; a dataset folder holds files of "
            f"one format only"
        )
    (fmt,) = by_format
    return DatasetLayout(fmt, path, tuple(file for file, _ in files))


def _lstat(path: Path) -> os.stat_result:
    try:
        return path.lstat()
    except FileNotFoundError:
        raise DatasetFormatError(f"{path} does not exist") from None
    except OSError as exc:
        raise DatasetFormatError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _checked_name(folder: Path, name: str) -> None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise DatasetFormatError(
            f"{folder} holds a file whose name is not UTF-8 ({name!r}); rename it"
        ) from None


def _entries(
    folder: Path,
) -> tuple[list[tuple[Path, os.stat_result | None]], list[tuple[Path, os.stat_result | None]]]:
    """A folder's sub-folders and regular files, sorted by name; anything else fails.

    Hidden entries (``.DS_Store``, ``.git``) are refused rather than skipped: the chunk
    hashing signs every file under the dataset, so a file this validation and the PII
    scan skipped would be sold unchecked.
    """
    folders: list[tuple[Path, os.stat_result | None]] = []
    files: list[tuple[Path, os.stat_result | None]] = []
    for entry in _scan(folder):
        if entry.name.startswith("."):
            raise DatasetFormatError(
                f"{folder / entry.name} is a hidden entry; a dataset folder holds only its "
                "data (move it out of the folder)"
            )
        _checked_name(folder, entry.name)
        location = folder / entry.name
        entry_status = _lstat(location)
        if stat.S_ISLNK(entry_status.st_mode):
            raise DatasetFormatError(
                f"{location} is a symbolic link; a dataset holds regular files only "
                f"(copy the file in place of the link)"
            )
        if stat.S_ISDIR(entry_status.st_mode):
            folders.append((location, entry_status))
        elif stat.S_ISREG(entry_status.st_mode):
            files.append((location, entry_status))
        else:
            raise DatasetFormatError(
                f"{location} is not a regular file or folder (a device, socket or pipe); "
                f"remove it from the dataset"
            )
        if len(folders) + len(files) > MAX_FILES:
            raise DatasetFormatError(f"{folder} holds more than {MAX_FILES} entries")
    folders.sort(key=lambda item: item[0].name.encode("utf-8"))
    files.sort(key=lambda item: item[0].name.encode("utf-8"))
    return folders, files


def _scan(folder: Path) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            yield from entries
    except OSError as exc:
        raise DatasetFormatError(f"cannot list {folder}: {exc.strerror or exc}") from exc


def _examples(items: list[tuple[Path, os.stat_result | None]], suffix: str = "") -> str:
    names = [item[0].name + suffix for item in items[:3]]
    more = f" and {len(items) - 3} more" if len(items) > 3 else ""
    return ", ".join(names) + more


def _format_of_file(path: Path, status: os.stat_result | None) -> DatasetFormat:
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        raise DatasetFormatError(
            f"{path} is an image; an image dataset is a folder with one sub-folder of "
            f"images per class"
        )
    fmt = EXTENSIONS.get(suffix)
    if fmt is None:
        raise DatasetFormatError(
            f"{path} has an unknown extension {path.suffix!r}; supported: {supported()}"
        )
    _check_readable(path, status)
    signatures = _SIGNATURES.get(fmt)
    if signatures is not None:
        head = _head(path, max(len(signature) for signature in signatures))
        if not any(head.startswith(signature) for signature in signatures):
            raise DatasetFormatError(
                f"{path} does not start like a {fmt} file (its first bytes are {head!r}); "
                f"the file is damaged or has the wrong extension"
            )
    return fmt


def _check_readable(path: Path, status: os.stat_result | None) -> None:
    """Raise unless ``path`` is a non-empty regular file this process can open."""
    if status is None:
        status = _lstat(path)
    if status.st_size == 0:
        raise DatasetFormatError(f"{path} is empty (zero bytes); remove it or fill it")
    _head(path, 1)


def _head(path: Path, size: int) -> bytes:
    try:
        descriptor = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise DatasetFormatError(f"cannot open {path}: {exc.strerror or exc}") from exc
    try:
        return os.pread(descriptor, size, 0)
    except OSError as exc:
        raise DatasetFormatError(f"cannot read {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(descriptor)


def _image_folder(root: Path, folders: list[tuple[Path, os.stat_result | None]]) -> DatasetLayout:
    files: list[Path] = []
    classes: list[str] = []
    for folder, _ in folders:
        subfolders, images = _entries(folder)
        if subfolders:
            raise DatasetFormatError(
                f"image folder {root}: class folder {folder.name}/ holds sub-folders "
                f"({_examples(subfolders, '/')}); put each class's images directly in it"
            )
        if not images:
            raise DatasetFormatError(
                f"image folder {root}: class folder {folder.name}/ holds no images"
            )
        for image, image_status in images:
            if image.suffix.lower() not in IMAGE_EXTENSIONS:
                raise DatasetFormatError(
                    f"image folder {root}: {folder.name}/{image.name} has an unknown "
                    f"extension {image.suffix!r}; images must be "
                    f"{', '.join(sorted(IMAGE_EXTENSIONS))}"
                )
            if image_status is not None and image_status.st_size == 0:
                raise DatasetFormatError(
                    f"image folder {root}: {folder.name}/{image.name} is empty (zero bytes)"
                )
            files.append(image)
        classes.append(folder.name)
        if len(files) > MAX_FILES:
            raise DatasetFormatError(f"image folder {root} holds more than {MAX_FILES} images")
    return DatasetLayout(DatasetFormat.IMAGE_FOLDER, root, tuple(files), tuple(classes))
