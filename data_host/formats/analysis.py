"""``analyse_dataset``: recognise a dataset's format, validate it, infer its schema, scan it.

This is the one entry point the node's ``dataset add`` calls: it detects the format
(``detect``), hands the dataset to that format's reader and returns what the reader found.
Every problem is a ``DatasetFormatError`` raised before anything is returned, so that a
caller registers a dataset only with a complete analysis in hand.

This module must never write anything: redaction is ``redact.write_redacted``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from data_host.errors import DataHostError
from data_host.formats.csv_format import analyse_csv
from data_host.formats.detect import DatasetLayout, inspect_layout
from data_host.formats.findings import PiiFinder, PiiFindings
from data_host.formats.image_folder import analyse_images
from data_host.formats.jsonl_format import analyse_jsonl
from data_host.formats.numpy_format import analyse_numpy
from data_host.formats.parquet_format import analyse_parquet
from data_host.formats.schema import DatasetFormat, DatasetSchema

#: Receives the number of bytes processed since its previous call, on the calling thread.
ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class DatasetAnalysis:
    """A validated dataset: its format, schema and what the PII scan found."""

    format: DatasetFormat
    schema: DatasetSchema
    pii: PiiFindings


class _Reader(Protocol):
    def __call__(
        self,
        layout: DatasetLayout,
        *,
        label: str | None,
        finder: PiiFinder | None,
        progress: ProgressCallback | None,
        workers: int,
    ) -> tuple[DatasetSchema, PiiFindings]: ...


_READERS: dict[DatasetFormat, _Reader] = {
    DatasetFormat.CSV: analyse_csv,
    DatasetFormat.JSONL: analyse_jsonl,
    DatasetFormat.PARQUET: analyse_parquet,
    DatasetFormat.NPY: analyse_numpy,
    DatasetFormat.NPZ: analyse_numpy,
    DatasetFormat.IMAGE_FOLDER: analyse_images,
}


def analyse_dataset(
    path: Path,
    *,
    label: str | None = None,
    finder: PiiFinder | None = None,
    progress: ProgressCallback | None = None,
    workers: int = 1,
) -> DatasetAnalysis:
    """Detect, validate and describe the dataset at ``path`` (a file or a folder).

    ``label`` names the label column or array (it must exist); by default a column named
    ``label``, ``target``, ``y`` or ``class`` (arrays: ``y``, ``label``, ``labels``,
    ``target``) is the label if present. ``finder``, if given, is shown the dataset's text
    and its findings are counted per column. ``progress`` is called on the calling thread
    with the bytes processed since its previous call. ``workers`` threads process CSV
    blocks and images at once (other formats read on the calling thread).

    Raises ``DatasetFormatError`` naming the file, line or row, and field of the first
    problem found.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise DataHostError(f"workers must be a positive integer, got {workers!r}")
    layout = inspect_layout(Path(path))
    reader = _READERS[layout.format]
    schema, pii = reader(layout, label=label, finder=finder, progress=progress, workers=workers)
    return DatasetAnalysis(layout.format, schema, pii)
