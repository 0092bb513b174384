"""Dataset ingestion: from a folder of data to a signed, verified, registered dataset manifest.

Steps, in order, all before anything is registered:

1. the terms were checked when ``DatasetTerms`` was built (price, licence, ε caps...);
2. the format is detected and the structure validated fully, while the PII scan runs
   over the same bytes, on one core; the chunk hashing runs on the other;
3. the files must be unchanged from before step 2 to after it;
4. the PII policy applies: ``block`` refuses, ``redact`` writes a redacted copy under the
   node home (which is then hashed, re-scanned and manifested instead), ``allow`` goes on;
5. the manifest Statement is signed by the creator key and verified;
6. the dataset row and its privacy budget are stored in one transaction.

Content is never copied out of PATH except as a redacted copy inside the node home. This
module must never register a dataset after a failed step, and leaves no redacted copy
behind when it fails.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from data_host.errors import DataHostError, DatasetFormatError
from data_host.formats import DatasetAnalysis, analyse_dataset, detect_format, write_redacted
from data_host.home import NodeHome
from data_host.registry import DatasetRegistry, HostDataset, RegisteredDataset, new_dataset_id
from data_host.terms import DatasetTerms
from privacy.budget import ACCOUNTANT
from privacy.errors import PiiBlocked
from privacy.pii import PiiPolicy, PiiScanner, PiiTally, enforce_policy, redaction_token
from provenance.chunking import DEFAULT_CHUNK_SIZE, ChunkedDataset, chunk_path
from provenance.errors import ProvenanceError
from provenance.manifest import SignedManifest, build_statement, sign_manifest

HASHING = "hashing"
SCANNING = "scanning"
REDACTING = "redacting"


class IngestProgress(Protocol):
    """Receives progress: a stage starts with its total bytes, then advances."""

    def start(self, stage: str, total: int) -> None:
        """``stage`` begins; it will process ``total`` bytes."""

    def advance(self, stage: str, amount: int) -> None:
        """``stage`` processed ``amount`` more bytes."""


class _NoProgress:
    def start(self, stage: str, total: int) -> None:
        """Ignore."""

    def advance(self, stage: str, amount: int) -> None:
        """Ignore."""


@dataclass(frozen=True)
class IngestResult:
    """What ``ingest_dataset`` registered, and what it found on the way."""

    dataset: RegisteredDataset
    analysis: DatasetAnalysis
    chunked: ChunkedDataset
    pii: PiiTally

    @property
    def signed(self) -> SignedManifest:
        """The registered, verified manifest."""
        return self.dataset.signed


_Identity = tuple[str, int, int, int]


def _snapshot(path: Path) -> list[_Identity]:
    """(relative path, size, mtime_ns, inode) of every regular file under ``path``."""
    if path.is_file():
        status = path.stat()
        return [(path.name, status.st_size, status.st_mtime_ns, status.st_ino)]
    found: list[_Identity] = []
    for directory, _subdirs, files in os.walk(path):
        for name in files:
            full = Path(directory) / name
            status = full.lstat()
            found.append(
                (str(full.relative_to(path)), status.st_size, status.st_mtime_ns, status.st_ino)
            )
    return sorted(found)


def _total_bytes(snapshot: list[_Identity]) -> int:
    return sum(size for _path, size, _mtime, _inode in snapshot)


def _hash_and_analyse(
    path: Path,
    *,
    label: str | None,
    scanner: PiiScanner,
    chunk_size: int,
    progress: IngestProgress,
) -> tuple[ChunkedDataset, DatasetAnalysis]:
    """Chunk-hash and analyse ``path`` at the same time, one core each."""
    before = _snapshot(path)
    total = _total_bytes(before)
    progress.start(HASHING, total)
    progress.start(SCANNING, total)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tally-scan") as pool:
        analysing = pool.submit(
            analyse_dataset,
            path,
            label=label,
            finder=scanner.find,
            progress=lambda amount: progress.advance(SCANNING, amount),
            workers=2,
        )
        try:
            chunked = chunk_path(
                path,
                chunk_size,
                workers=1,
                progress=lambda amount: progress.advance(HASHING, amount),
            )
        except ProvenanceError as exc:
            analysing.cancel()
            raise DatasetFormatError(str(exc)) from exc
        finally:
            analysis_error = analysing.exception()
        if analysis_error is not None:
            raise analysis_error
        analysis = analysing.result()
    if _snapshot(path) != before:
        raise DatasetFormatError(
            f"{path} changed while it was being ingested; wait until it is complete and "
            "add it again"
        )
    return chunked, analysis


def _published_column_name(column: str, scanner: PiiScanner, policy: PiiPolicy) -> str:
    """A column name as the manifest may show it: under ``redact``, a name that is itself
    PII (a CSV header holding an e-mail address) is redacted like the data."""
    if policy is not PiiPolicy.REDACT:
        return column
    return scanner.redact(column.encode("utf-8")).decode("utf-8", errors="replace")


def _price(terms: DatasetTerms) -> dict[str, Any]:
    """The price section; ``royalties`` only when the creator split the royalty, so that a
    creator-only manifest keeps its old shape."""
    price: dict[str, Any] = {"currency": terms.currency, "per_sample": str(terms.price_per_sample)}
    split = terms.royalty_split()
    if split is not None:
        price["royalties"] = split.to_dict()
    return price


def _predicate(
    *,
    dataset_id: str,
    home: NodeHome,
    terms: DatasetTerms,
    analysis: DatasetAnalysis,
    chunked: ChunkedDataset,
    pii: dict[str, Any],
    redacted: bool,
) -> dict[str, Any]:
    return {
        "dataset": {
            "id": dataset_id,
            "version": 1,
            "title": terms.title,
            "description": terms.description,
        },
        "creator": home.config.creator_did,
        "license": terms.license,
        "allowed_uses": list(terms.allowed_uses),
        "privacy": {
            "accountant": ACCOUNTANT,
            "delta": repr(terms.delta),
            "lifetime_epsilon": repr(terms.lifetime_epsilon),
            "max_epsilon_per_job": (
                None if terms.max_epsilon_per_job is None else repr(terms.max_epsilon_per_job)
            ),
        },
        "price": _price(terms),
        "schema": analysis.schema.to_dict(),
        "content": {"chunking": chunked.to_dict(), "redacted": redacted},
        "pii": pii,
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def ingest_dataset(
    home: NodeHome,
    path: Path,
    terms: DatasetTerms,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: IngestProgress | None = None,
) -> IngestResult:
    """Turn ``path`` into a registered dataset with a signed manifest (see module docs)."""
    progress = progress or _NoProgress()
    source = path.expanduser().absolute()
    if not source.exists():
        raise DatasetFormatError(f"{source} does not exist")
    if source.is_relative_to(home.root) or home.root.is_relative_to(source):
        raise DatasetFormatError(
            f"{source} overlaps the node home {home.root}; keep datasets outside it"
        )
    detect_format(source)  # a mixed or unknown folder fails here, before any hashing starts
    scanner = PiiScanner()
    chunked, analysis = _hash_and_analyse(
        source, label=terms.label, scanner=scanner, chunk_size=chunk_size, progress=progress
    )
    terms.check_delta_for_rows(analysis.schema.rows)
    tally = PiiTally()
    for kind, columns in analysis.pii.counts.items():
        for column, count in columns.items():
            tally.add(kind, _published_column_name(column, scanner, terms.pii_policy), count)
    pii = tally.to_dict(
        policy=terms.pii_policy,
        engine=scanner.engine,
        scanned_bytes=analysis.pii.scanned_bytes,
        not_scanned=analysis.pii.not_scanned,
    )
    if terms.pii_policy is PiiPolicy.BLOCK:
        try:
            enforce_policy(tally, PiiPolicy.BLOCK, dataset=str(source))
        except PiiBlocked as exc:
            raise DataHostError(
                f"{exc}; nothing was registered. Remove the PII, or add the dataset with "
                "--pii redact (a redacted copy is made in the node home) or --pii allow"
            ) from exc
    dataset_id = new_dataset_id()
    content = source
    redacted = terms.pii_policy is PiiPolicy.REDACT and tally.total > 0
    copy_dir = home.redacted_dir / dataset_id
    try:
        if redacted:
            content, chunked, analysis = _redact(
                source, analysis, scanner, copy_dir, terms, chunk_size, progress
            )
        statement = build_statement(
            dataset_id=dataset_id,
            version=1,
            merkle_root=chunked.root.hex(),
            predicate=_predicate(
                dataset_id=dataset_id,
                home=home,
                terms=terms,
                analysis=analysis,
                chunked=chunked,
                pii=pii,
                redacted=redacted,
            ),
        )
        signed = sign_manifest(statement, home.creator_key())
        row = HostDataset(
            id=dataset_id,
            version=1,
            title=terms.title,
            source_path=str(source),
            content_path=str(content),
            format=analysis.format.value,
            rows=analysis.schema.rows,
            total_bytes=chunked.total_bytes,
            manifest_digest=signed.digest,
            envelope=signed.envelope.to_json(),
            leaf_hashes=chunked.export_leaf_hashes(),
            created_at=datetime.now(UTC),
        )
        registered = DatasetRegistry(home.engine).register(row, terms.budget_terms())
    except BaseException:
        shutil.rmtree(copy_dir, ignore_errors=True)
        raise
    return IngestResult(registered, analysis, chunked, tally)


def _redact(
    source: Path,
    analysis: DatasetAnalysis,
    scanner: PiiScanner,
    copy_dir: Path,
    terms: DatasetTerms,
    chunk_size: int,
    progress: IngestProgress,
) -> tuple[Path, ChunkedDataset, DatasetAnalysis]:
    """Write the redacted copy, then hash and re-scan it: it must come out clean."""
    progress.start(REDACTING, 1)
    copy_dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_redacted(source, analysis.format, scanner.find, redaction_token, copy_dir)
    progress.advance(REDACTING, 1)
    content = copy_dir / source.name if source.is_file() else copy_dir
    chunked, redone = _hash_and_analyse(
        content, label=terms.label, scanner=scanner, chunk_size=chunk_size, progress=progress
    )
    if redone.pii.total:
        raise DataHostError(
            f"the redacted copy of {source} still holds {redone.pii.total} PII findings; "
            "nothing was registered"
        )
    if redone.schema.rows != analysis.schema.rows:
        raise DataHostError(
            f"the redacted copy of {source} has {redone.schema.rows} rows, the original "
            f"{analysis.schema.rows}; nothing was registered"
        )
    return content, chunked, redone
