"""The allow-list of training code: which Flower app bundles (FABs) this node will run.

A FAB is identified by the SHA-256 of its bytes, as Flower itself computes ``fab_hash``.
The node runs only bundles whose hash it allows: by default the app that ships with this
version of Tallystick (its hash is computed from the installed app's files, exactly as
``flwr build`` would bundle them), plus any hash the creator added. Buyers never ship
code that runs next to creator data.

This module must never allow a bundle by name, publisher or version: only by hash. The
check happens before any creator data is opened.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path

from sqlalchemy import Column, DateTime, Engine, Table, Text, delete, insert, select
from sqlmodel import Field, SQLModel

from data_host.errors import DataHostError, WorkRefused
from provenance.storage import write_transaction

_FAB_HASH = re.compile(r"^[0-9a-f]{64}$")
#: Where the Flower app that ships with Tallystick lives, inside the installed package.
SHIPPED_APP_PACKAGE = "data_host"
SHIPPED_APP_DIR = "flower_app"
MAX_FAB_BYTES = 64 * 1024 * 1024


class AllowedApp(SQLModel, table=True):
    """An app bundle hash the creator allowed on this node."""

    __tablename__ = "host_allowed_app"

    fab_hash: str = Field(primary_key=True, max_length=64)
    label: str = Field(sa_column=Column(Text, nullable=False))
    added_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


#: The table behind ``AllowedApp``, for Core statements.
ALLOWED_APP_TABLE: Table = AllowedApp.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class AllowListEntry:
    """One allowed bundle: its hash, a label, and whether it is the shipped default."""

    fab_hash: str
    label: str
    shipped: bool


def check_fab_hash(value: str) -> str:
    """Return ``value`` lower-cased if it is a SHA-256 hex digest, else raise."""
    lowered = value.strip().lower()
    if not _FAB_HASH.fullmatch(lowered):
        raise DataHostError(
            f"app bundle hash {value!r} is not a SHA-256 hex digest (64 hex characters)"
        )
    return lowered


def fab_hash_of_bytes(fab: bytes) -> str:
    """The hash Flower gives a FAB: SHA-256 of its bytes, lowercase hex."""
    return hashlib.sha256(fab).hexdigest()


def fab_hash_of_file(path: Path) -> str:
    """The hash of a ``.fab`` file: a regular file (no link, FIFO or device) of at most
    64 MiB."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise DataHostError(f"cannot open app bundle {path}: {exc.strerror}") from exc
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise DataHostError(f"app bundle {path} is not a regular file")
        if status.st_size > MAX_FAB_BYTES:
            raise DataHostError(
                f"{path} is {status.st_size} bytes; app bundles are at most {MAX_FAB_BYTES}"
            )
        digest = hashlib.sha256()
        read = 0
        while chunk := os.read(fd, 1 << 20):
            read += len(chunk)
            if read > MAX_FAB_BYTES:
                raise DataHostError(f"{path} grew past {MAX_FAB_BYTES} bytes while read")
            digest.update(chunk)
        return digest.hexdigest()
    except OSError as exc:
        raise DataHostError(f"cannot read app bundle {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def build_fab(app_dir: Path) -> bytes:
    """Bundle an app directory exactly as ``flwr build`` does (deterministic bytes)."""
    from flwr.cli.build import build_fab_from_disk

    try:
        fab: bytes = build_fab_from_disk(app_dir)
    except Exception as exc:  # Flower raises typer.Exit or ValueError for a bad app dir
        raise DataHostError(f"cannot bundle the Flower app at {app_dir}: {exc!r}") from exc
    return fab


def shipped_app_dir() -> Path | None:
    """The directory of the Flower app shipped with this installation, if it has one."""
    candidate = resources.files(SHIPPED_APP_PACKAGE).joinpath(SHIPPED_APP_DIR)
    path = Path(str(candidate))
    return path if (path / "pyproject.toml").is_file() else None


@lru_cache(maxsize=1)
def shipped_app_hash() -> str | None:
    """The FAB hash of the shipped app (``None`` if this installation ships none)."""
    app_dir = shipped_app_dir()
    return None if app_dir is None else fab_hash_of_bytes(build_fab(app_dir))


class AppAllowList:
    """The node's allow-list of app bundle hashes."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def allow(self, fab_hash: str, label: str) -> AllowListEntry:
        """Allow a bundle hash; allowing it again keeps the first label."""
        checked = check_fab_hash(fab_hash)
        label = label.strip() or "unnamed"
        with write_transaction(self._engine) as connection:
            exists = connection.execute(
                select(ALLOWED_APP_TABLE.c.fab_hash).where(ALLOWED_APP_TABLE.c.fab_hash == checked)
            ).first()
            if exists is None:
                connection.execute(
                    insert(ALLOWED_APP_TABLE).values(
                        fab_hash=checked, label=label, added_at=datetime.now(UTC)
                    )
                )
        return next(entry for entry in self.entries() if entry.fab_hash == checked)

    def remove(self, fab_hash: str) -> None:
        """Stop allowing a hash the creator added. The shipped app cannot be removed here."""
        checked = check_fab_hash(fab_hash)
        with write_transaction(self._engine) as connection:
            removed = connection.execute(
                delete(ALLOWED_APP_TABLE).where(ALLOWED_APP_TABLE.c.fab_hash == checked)
            ).rowcount
        if removed == 0:
            if checked == shipped_app_hash():
                raise DataHostError(
                    "that is the app shipped with this Tallystick; it is always allowed"
                )
            raise DataHostError(f"app bundle {checked} is not on this node's allow-list")

    def entries(self) -> list[AllowListEntry]:
        """Every allowed hash: the shipped app first, then the creator's, oldest first."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(ALLOWED_APP_TABLE.c.fab_hash, ALLOWED_APP_TABLE.c.label).order_by(
                    ALLOWED_APP_TABLE.c.added_at
                )
            ).all()
        shipped = shipped_app_hash()
        listed = [AllowListEntry(shipped, "shipped with Tallystick", True)] if shipped else []
        listed.extend(
            AllowListEntry(fab_hash, label, False)
            for fab_hash, label in rows
            if fab_hash != shipped
        )
        return listed

    def require_allowed(self, fab_hash: str) -> AllowListEntry:
        """The entry allowing ``fab_hash``, or ``WorkRefused`` naming the hash."""
        checked = check_fab_hash(fab_hash)
        for entry in self.entries():
            if entry.fab_hash == checked:
                return entry
        raise WorkRefused(
            f"app bundle sha256:{checked} is not on this node's allow-list; the node runs only "
            "the app shipped with Tallystick and bundles the creator allowed "
            "(tally host app allow HASH)"
        )
