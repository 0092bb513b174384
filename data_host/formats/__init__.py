"""Dataset formats on the data-host node: detection, validation, schema, PII scan, redaction.

``analyse_dataset`` recognises a dataset (CSV, JSON Lines, Parquet, ``.npy``, ``.npz`` or
an image folder), validates it fully, infers its schema and hands its text to a PII
finder; ``write_redacted`` writes a same-format copy with every finding replaced. Each
format has its own module; this package re-exports the public names.

Nothing here registers a dataset or decides what is PII: the node does the first, the
finder it passes in the second.
"""

from __future__ import annotations

from data_host.formats.analysis import DatasetAnalysis, ProgressCallback, analyse_dataset
from data_host.formats.detect import detect_format
from data_host.formats.findings import PiiFinder, PiiFindings, Redactor
from data_host.formats.redact import write_redacted
from data_host.formats.schema import DatasetFormat, DatasetSchema, Feature

__all__ = [
    "DatasetAnalysis",
    "DatasetFormat",
    "DatasetSchema",
    "Feature",
    "PiiFinder",
    "PiiFindings",
    "ProgressCallback",
    "Redactor",
    "analyse_dataset",
    "detect_format",
    "write_redacted",
]
