"""The node's dataset registry: what datasets this node holds and whether it will work on them.

A dataset row is written together with its privacy budget in one transaction, after its
manifest was signed and verified; a revoked dataset stays in the registry (its manifest
and history are evidence) but the node refuses all future work on it. This module must
never register a dataset whose manifest did not verify, and never un-revoke one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Engine, LargeBinary, Table, Text, insert, select, update
from sqlmodel import Field, SQLModel

from data_host.allowlist import ALLOWED_APP_TABLE
from data_host.errors import UnknownDataset, WorkRefused
from privacy.budget import BudgetTerms, PrivacyBudgetLedger
from provenance.manifest import SignedManifest, check_dataset_id, verify_manifest
from provenance.storage import write_transaction

ACTIVE = "active"
REVOKED = "revoked"


def new_dataset_id() -> str:
    """A fresh dataset id: ``ds_`` and 26 random hex digits (104 bits)."""
    return "ds_" + secrets.token_hex(13)


class HostDataset(SQLModel, table=True):
    """One dataset version registered on this node."""

    __tablename__ = "host_dataset"

    id: str = Field(primary_key=True, max_length=32)
    version: int
    title: str
    source_path: str = Field(sa_column=Column(Text, nullable=False))
    #: Where the manifested bytes live: ``source_path``, or the redacted copy in the home.
    content_path: str = Field(sa_column=Column(Text, nullable=False))
    format: str = Field(max_length=32)
    rows: int
    total_bytes: int
    manifest_digest: str = Field(max_length=64, unique=True)
    envelope: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    #: Every chunk's leaf hash (32 bytes each), so that ``verify`` can name changed chunks.
    leaf_hashes: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status: str = Field(default=ACTIVE, max_length=16)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    revoked_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


#: The table behind ``HostDataset``, for Core statements.
DATASET_TABLE: Table = HostDataset.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class RegisteredDataset:
    """A registry row with its manifest verified again on the way out of the database."""

    row: HostDataset
    signed: SignedManifest

    @property
    def is_revoked(self) -> bool:
        """Whether the creator revoked this dataset."""
        return self.row.status == REVOKED


def create_node_tables(engine: Engine) -> None:
    """Create every table the node uses (registry, allow-list, replay record, privacy ledger);
    idempotent."""
    from data_host.replay import SEEN_TABLE

    SQLModel.metadata.create_all(
        engine,
        tables=[DATASET_TABLE, ALLOWED_APP_TABLE, SEEN_TABLE],
    )
    PrivacyBudgetLedger(engine).create_tables()


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time stored here is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _row(values: dict[str, Any]) -> HostDataset:
    values["created_at"] = _aware(values["created_at"])
    values["revoked_at"] = _aware(values["revoked_at"])
    return HostDataset.model_validate(values)


class DatasetRegistry:
    """Datasets on this node, stored in the node's database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def register(self, row: HostDataset, budget: BudgetTerms) -> RegisteredDataset:
        """Store a dataset whose manifest verifies, with its privacy budget, atomically."""
        signed = verify_manifest(row.envelope)
        if signed.digest != row.manifest_digest or signed.manifest.dataset_id != row.id:
            raise WorkRefused(
                f"dataset {row.id}: the stored manifest digest or id disagrees with the envelope"
            )
        values = row.model_dump()
        with write_transaction(self._engine) as connection:
            connection.execute(insert(DATASET_TABLE).values(**values))
            PrivacyBudgetLedger(self._engine).open_budget(row.id, budget, connection=connection)
        return RegisteredDataset(row, signed)

    def get(self, dataset_id: str) -> RegisteredDataset:
        """The dataset with ``dataset_id``; raises ``UnknownDataset`` if there is none."""
        check_dataset_id(dataset_id)
        with self._engine.connect() as connection:
            found = (
                connection.execute(select(DATASET_TABLE).where(DATASET_TABLE.c.id == dataset_id))
                .mappings()
                .first()
            )
        if found is None:
            raise UnknownDataset(
                f"no dataset {dataset_id} on this node; list them with: tally host dataset list"
            )
        row = _row(dict(found))
        return RegisteredDataset(row, verify_manifest(row.envelope))

    def list(self) -> list[HostDataset]:
        """Every dataset on this node, oldest first."""
        with self._engine.connect() as connection:
            found = connection.execute(
                select(DATASET_TABLE).order_by(DATASET_TABLE.c.created_at, DATASET_TABLE.c.id)
            ).mappings()
            return [_row(dict(item)) for item in found]

    def revoke(self, dataset_id: str, reason: str) -> RegisteredDataset:
        """Mark a dataset revoked; all future work on it is refused. Revoking twice keeps the
        first revocation's time and reason."""
        current = self.get(dataset_id)
        if current.is_revoked:
            return current
        with write_transaction(self._engine) as connection:
            connection.execute(
                update(DATASET_TABLE)
                .where(DATASET_TABLE.c.id == dataset_id, DATASET_TABLE.c.status == ACTIVE)
                .values(status=REVOKED, revoked_at=datetime.now(UTC), revoked_reason=reason)
            )
        return self.get(dataset_id)

    def require_usable(self, dataset_id: str, use: str) -> RegisteredDataset:
        """The dataset if the node may do ``use`` on it now; else ``WorkRefused`` saying why."""
        try:
            dataset = self.get(dataset_id)
        except UnknownDataset as exc:
            raise WorkRefused(str(exc)) from exc
        if dataset.is_revoked:
            raise WorkRefused(
                f"dataset {dataset_id} was revoked on {dataset.row.revoked_at:%Y-%m-%d %H:%M} UTC "
                f"({dataset.row.revoked_reason or 'no reason given'}); this node refuses all work "
                "on it"
            )
        uses = dataset.signed.manifest.predicate["allowed_uses"]
        if use not in uses:
            raise WorkRefused(f"dataset {dataset_id} allows {', '.join(uses)}, not {use!r}")
        return dataset
