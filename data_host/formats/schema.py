"""What a dataset looks like once validated: its format, features, label and size.

``DatasetSchema.to_dict`` goes into the signed dataset manifest, so it is deterministic and
JSON-able. The helpers here are shared by the format readers: choosing the label column and
widening a column's dtype when later values do not fit the type inferred so far.

This module must never read files or guess: every value in a schema comes from a reader
that has checked the whole dataset (or, for CSV dtypes, the documented sample).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from data_host.errors import DatasetFormatError


class DatasetFormat(StrEnum):
    """The dataset formats a data-host node accepts."""

    CSV = "csv"
    PARQUET = "parquet"
    NPY = "npy"
    NPZ = "npz"
    JSONL = "jsonl"
    IMAGE_FOLDER = "image-folder"


#: dtype of a column that held no value at all (every field empty or null).
NULL = "null"
INT64 = "int64"
FLOAT64 = "float64"
BOOL = "bool"
STRING = "string"
IMAGE = "image"

#: Column names taken as the label of a table when the creator names none, in this order.
TABULAR_LABELS = ("label", "target", "y", "class")
#: Array names taken as the label of an ``.npz`` archive when the creator names none.
ARRAY_LABELS = ("y", "label", "labels", "target")


@dataclass(frozen=True)
class Feature:
    """One column, key or array of a dataset.

    ``dtype`` is ``int64``, ``float64``, ``bool``, ``string`` or ``null`` for table columns,
    numpy's dtype name for arrays (``float32``, ``uint8``, ``<U12`` ...), ``image`` for the
    images of an image folder. ``shape`` is the per-row shape of array features (the shape
    of one row of an ``.npy`` array, or of a fixed-length list), ``()`` for scalars.
    """

    name: str
    dtype: str
    shape: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The feature as a JSON object."""
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class DatasetSchema:
    """The validated structure of a dataset.

    ``rows`` counts examples (table rows, first-axis entries of arrays, images); ``files``
    counts the files they came from. ``classes`` lists an image folder's class names,
    sorted. ``notes`` records facts a buyer should know that have no field of their own
    (for example that an image folder's images differ in size).
    """

    format: DatasetFormat
    features: tuple[Feature, ...]
    label: str | None
    rows: int
    files: int
    classes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The schema as a JSON object with a fixed key set, for the dataset manifest."""
        return {
            "format": str(self.format),
            "features": [feature.to_dict() for feature in self.features],
            "label": self.label,
            "rows": self.rows,
            "files": self.files,
            "classes": list(self.classes),
            "notes": list(self.notes),
        }


def widen(current: str, seen: str) -> str:
    """The dtype of a column that held ``current`` values so far and now holds ``seen``.

    Equal dtypes stay; ``null`` (no value yet) gives way to anything; ``int64`` and
    ``float64`` widen to ``float64``; any other mix widens to ``string``, because every
    value can be read as text.
    """
    if current == seen or seen == NULL:
        return current
    if current == NULL:
        return seen
    if {current, seen} == {INT64, FLOAT64}:
        return FLOAT64
    return STRING


def choose_label(
    names: Sequence[str], label: str | None, where: str, defaults: Sequence[str]
) -> str | None:
    """The label column: ``label`` when given (it must be one of ``names``), else the first
    of ``defaults`` that is present, else ``None``.

    ``where`` names the dataset in the error raised for an unknown ``label``.
    """
    if label is not None:
        if label not in names:
            shown = ", ".join(repr(name) for name in list(names)[:50])
            more = f" and {len(names) - 50} more" if len(names) > 50 else ""
            raise DatasetFormatError(
                f"label {label!r} is not a column of {where}; the columns are {shown}{more}. "
                f"Pass one of them as the label, or none to use {', '.join(defaults)} if present"
            )
        return label
    present = set(names)
    for candidate in defaults:
        if candidate in present:
            return candidate
    return None
