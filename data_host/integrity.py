"""Re-checking a registered dataset against its signed manifest.

``verify_dataset`` re-hashes the dataset's files and compares them with the chunk tree
the creator signed: the same files, the same sizes, the same chunks, the same root. It
says which files were added or removed and which chunks differ. This module must never
report a match on anything less than an equal Merkle root over an equal file list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from data_host.errors import DataHostError
from data_host.registry import DatasetRegistry
from provenance.chunking import ChunkedDataset, ProgressCallback, chunk_path
from provenance.errors import ProvenanceError


@dataclass(frozen=True)
class DatasetVerification:
    """The outcome of re-hashing a dataset: ``matches`` or what differs."""

    dataset_id: str
    content_path: str
    expected_root: str
    actual_root: str | None
    problem: str | None = None
    added_files: tuple[str, ...] = ()
    removed_files: tuple[str, ...] = ()
    resized_files: tuple[str, ...] = ()
    changed_chunks: tuple[tuple[str, int], ...] = field(default=())

    @property
    def matches(self) -> bool:
        """Whether the files on disk are exactly the ones the manifest signed."""
        return (
            self.problem is None
            and self.actual_root == self.expected_root
            and not (self.added_files or self.removed_files or self.resized_files)
            and not self.changed_chunks
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able report."""
        return {
            "dataset_id": self.dataset_id,
            "content_path": self.content_path,
            "matches": self.matches,
            "expected_root": self.expected_root,
            "actual_root": self.actual_root,
            "problem": self.problem,
            "added_files": list(self.added_files),
            "removed_files": list(self.removed_files),
            "resized_files": list(self.resized_files),
            "changed_chunks": [
                {"path": path, "chunk": index} for path, index in self.changed_chunks
            ],
        }


def verify_dataset(
    engine: Engine, dataset_id: str, *, progress: ProgressCallback | None = None
) -> DatasetVerification:
    """Re-hash a registered dataset and compare it with its signed manifest."""
    registered = DatasetRegistry(engine).get(dataset_id)
    manifest = registered.signed.manifest
    signed_tree = manifest.chunked_dataset(registered.row.leaf_hashes)
    content = Path(registered.row.content_path)
    expected = signed_tree.root.hex()
    try:
        current = chunk_path(content, signed_tree.chunk_size, progress=progress)
    except ProvenanceError as exc:
        return DatasetVerification(
            dataset_id, str(content), expected, None, problem=f"cannot re-hash: {exc}"
        )
    return compare(dataset_id, str(content), signed_tree, current)


def compare(
    dataset_id: str, content_path: str, signed: ChunkedDataset, current: ChunkedDataset
) -> DatasetVerification:
    """Compare a freshly hashed tree with the signed one."""
    if signed.chunk_size != current.chunk_size:  # pragma: no cover - chunked with signed size
        raise DataHostError("internal error: trees chunked with different chunk sizes")
    signed_files = {file.path: file.size for file in signed.files}
    current_files = {file.path: file.size for file in current.files}
    return DatasetVerification(
        dataset_id=dataset_id,
        content_path=content_path,
        expected_root=signed.root.hex(),
        actual_root=current.root.hex(),
        added_files=tuple(sorted(current_files.keys() - signed_files.keys())),
        removed_files=tuple(sorted(signed_files.keys() - current_files.keys())),
        resized_files=tuple(
            sorted(
                path
                for path in signed_files.keys() & current_files.keys()
                if signed_files[path] != current_files[path]
            )
        ),
        changed_chunks=tuple(signed.diff(current)),
    )
