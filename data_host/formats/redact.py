"""``write_redacted``: a same-format copy of a dataset with every PII finding replaced.

The copy is written into a fresh temporary folder beside ``destination``, analysed again
with the same finder (it must validate and have no findings), and only then renamed to
``destination``; on any failure the temporary folder is removed, so that a failed
redaction leaves nothing behind. ``destination`` is always a folder holding the dataset's
files under their own names (for a one-file dataset, that one file), which
``analyse_dataset`` reads like the original.

This module must never modify the original dataset, write into an existing
``destination``, or leave a partial copy.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from data_host.errors import DatasetFormatError
from data_host.formats.analysis import analyse_dataset
from data_host.formats.csv_format import redact_csv
from data_host.formats.detect import DatasetLayout, inspect_layout
from data_host.formats.findings import PiiFinder, Redactor, Tokens
from data_host.formats.jsonl_format import redact_jsonl
from data_host.formats.numpy_format import redact_numpy
from data_host.formats.parquet_format import redact_parquet
from data_host.formats.schema import DatasetFormat

_Writer = Callable[[DatasetLayout, PiiFinder, Tokens, Path], None]

_WRITERS: dict[DatasetFormat, _Writer] = {
    DatasetFormat.CSV: redact_csv,
    DatasetFormat.JSONL: redact_jsonl,
    DatasetFormat.PARQUET: redact_parquet,
    DatasetFormat.NPY: redact_numpy,
    DatasetFormat.NPZ: redact_numpy,
}


def write_redacted(
    path: Path, fmt: DatasetFormat, finder: PiiFinder, redactor: Redactor, destination: Path
) -> None:
    """Write a copy of the dataset at ``path`` (of format ``fmt``) to the new folder
    ``destination``, with every finding of ``finder`` replaced by ``redactor(kind)``.

    File names and folder layout are kept; a one-file dataset becomes a folder holding
    that file. Raises ``DatasetFormatError`` if ``destination`` exists, if the dataset is
    not of format ``fmt`` or is an image folder (images hold no text to redact), if a
    finding cannot be replaced without breaking the format (it spans two fields, a key
    name, a quote), or if the copy still has findings.
    """
    path, destination = Path(path), Path(destination)
    layout = inspect_layout(path)
    if layout.format is not DatasetFormat(fmt):
        raise DatasetFormatError(f"{path} is a {layout.format} dataset, not {fmt}")
    writer = _WRITERS.get(layout.format)
    if writer is None:
        raise DatasetFormatError(
            f"{path} is an image folder: images hold no text the PII scan reads, so there "
            f"is nothing to redact; register the dataset as it is"
        )
    if os.path.lexists(destination):
        raise DatasetFormatError(
            f"{destination} already exists; choose a new path for the redacted copy"
        )
    parent = destination.parent
    if not parent.is_dir():
        raise DatasetFormatError(f"{parent} is not a folder; create it first")
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".partial", dir=parent))
    try:
        writer(layout, finder, Tokens(redactor), staging)
        check = analyse_dataset(staging, finder=finder)
        if check.pii.total:
            raise DatasetFormatError(
                f"the redacted copy of {path} still has {check.pii.total} findings "
                f"({check.pii.counts}); the redactor's tokens must not match the finder"
            )
        if os.path.lexists(destination):
            raise DatasetFormatError(
                f"{destination} appeared while the redacted copy was written; nothing was replaced"
            )
        os.rename(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
