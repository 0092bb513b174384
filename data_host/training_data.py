"""Turning a registered dataset into the tensors a vetted model trains on, on the node only.

Tabular datasets (CSV, Parquet, ``.npz``) give one float feature vector per row from every
numeric or boolean column except the label (text columns, such as redacted contact
fields, are left out) and an integer class label in ``[0, classes)``. Every dataset is
split once, deterministically, into a training part and a held-out part used only for
federated evaluation: the split is a permutation seeded by the manifest digest, so the
same rows are held out in every round and every job, and never trained on.

This module must never read a file outside the dataset's registered content path, and
never return data for a dataset whose files no longer match its signed manifest (the
caller verifies first; see ``data_host.integrity``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from data_host.errors import DatasetFormatError
from data_host.formats.detect import inspect_layout
from data_host.registry import RegisteredDataset
from privacy.features import held_out_rows

#: Label values a tabular dataset may use (class indexes).
MAX_CLASSES = 1000
_NUMERIC = ("int64", "float64", "bool")
_TABULAR = ("csv", "parquet", "npz")


@dataclass(frozen=True)
class TrainingData:
    """A dataset as a model sees it: train and held-out parts, and its shape."""

    train_features: NDArray[np.float32]
    train_labels: NDArray[np.int64]
    held_out_features: NDArray[np.float32]
    held_out_labels: NDArray[np.int64]
    feature_names: tuple[str, ...]
    classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The per-example shape of the features."""
        return tuple(int(size) for size in self.train_features.shape[1:])


def _label_name(dataset: RegisteredDataset) -> str:
    label = dataset.signed.manifest.predicate["schema"].get("label")
    if not isinstance(label, str):
        raise DatasetFormatError(
            f"dataset {dataset.row.id} has no label column in its manifest; "
            "only labelled datasets can train a classifier"
        )
    return label


def _feature_names(dataset: RegisteredDataset, label: str) -> tuple[str, ...]:
    features = dataset.signed.manifest.predicate["schema"]["features"]
    names = tuple(
        str(feature["name"])
        for feature in features
        if feature["name"] != label and feature["dtype"] in _NUMERIC and not feature["shape"]
    )
    if not names:
        raise DatasetFormatError(f"dataset {dataset.row.id} has no numeric feature columns")
    return names


def _read_table(files: list[Path], data_format: str, columns: list[str]) -> NDArray[np.float64]:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    tables = []
    for file in files:
        if data_format == "csv":
            table = pacsv.read_csv(
                file, convert_options=pacsv.ConvertOptions(include_columns=columns)
            )
        else:
            table = pq.read_table(file, columns=columns)
        tables.append(table.select(columns))
    table = pa.concat_tables(tables, promote_options="permissive")
    matrix = np.empty((table.num_rows, len(columns)), dtype=np.float64)
    for position, name in enumerate(columns):
        column = table.column(name)
        if column.null_count:
            raise DatasetFormatError(
                f"column {name!r} has {column.null_count} empty values; training needs every "
                "feature and label filled in"
            )
        matrix[:, position] = column.to_numpy(zero_copy_only=False).astype(np.float64)
    return matrix


def _read_npz(files: list[Path], label: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    features: list[NDArray[np.float64]] = []
    labels: list[NDArray[np.float64]] = []
    for file in files:
        with np.load(file, allow_pickle=False) as archive:
            names = [name for name in archive.files if name != label]
            if len(names) != 1:
                raise DatasetFormatError(
                    f"{file.name}: an .npz for training holds one feature array and the label "
                    f"{label!r}; it holds {', '.join(archive.files)}"
                )
            values = np.asarray(archive[names[0]], dtype=np.float64)
            features.append(values.reshape(values.shape[0], -1))
            labels.append(np.asarray(archive[label], dtype=np.float64))
    return np.concatenate(features), np.concatenate(labels)


def _class_labels(values: NDArray[np.float64], dataset_id: str) -> NDArray[np.int64]:
    if not np.isfinite(values).all() or (values != np.round(values)).any():
        raise DatasetFormatError(
            f"dataset {dataset_id}: labels must be whole numbers (class indexes) for training"
        )
    if values.size and (values.min() < 0 or values.max() >= MAX_CLASSES):
        raise DatasetFormatError(
            f"dataset {dataset_id}: labels must lie in [0, {MAX_CLASSES}); found "
            f"{values.min():g} to {values.max():g}"
        )
    return values.astype(np.int64)


def held_out_mask(rows: int, manifest_digest: str) -> NDArray[np.bool_]:
    """Which rows are held out: a permutation seeded by the manifest digest picks them."""
    held = held_out_rows(rows)
    generator = np.random.default_rng(int(manifest_digest[:16], 16))
    mask = np.zeros(rows, dtype=bool)
    mask[generator.permutation(rows)[:held]] = True
    return mask


def load_training_data(dataset: RegisteredDataset) -> TrainingData:
    """Read ``dataset``'s files into train and held-out arrays (tabular formats)."""
    data_format = dataset.row.format
    if data_format not in _TABULAR:
        raise DatasetFormatError(
            f"dataset {dataset.row.id} is {data_format}; training reads "
            f"{', '.join(_TABULAR)} datasets on this version"
        )
    label = _label_name(dataset)
    layout = inspect_layout(Path(dataset.row.content_path))
    files = list(layout.files)
    if data_format == "npz":
        features, raw_labels = _read_npz(files, label)
        names: tuple[str, ...] = tuple(f"x{i}" for i in range(features.shape[1]))
    else:
        names = _feature_names(dataset, label)
        matrix = _read_table(files, data_format, [*names, label])
        features, raw_labels = matrix[:, :-1], matrix[:, -1]
    if not np.isfinite(features).all():
        raise DatasetFormatError(f"dataset {dataset.row.id}: features hold NaN or infinite values")
    labels = _class_labels(raw_labels, dataset.row.id)
    mask = held_out_mask(len(labels), dataset.row.manifest_digest)
    as_float = features.astype(np.float32)
    return TrainingData(
        train_features=as_float[~mask],
        train_labels=labels[~mask],
        held_out_features=as_float[mask],
        held_out_labels=labels[mask],
        feature_names=names,
        classes=int(labels.max()) + 1,
    )


def dataset_shape(dataset: RegisteredDataset) -> tuple[int, int]:
    """(features, classes) of a tabular dataset: the feature count from its manifest, the
    class count (largest label + 1) from its label column."""
    data = load_training_data(dataset)
    return len(data.feature_names), data.classes
