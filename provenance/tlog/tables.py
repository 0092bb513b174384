"""SQLModel tables of the transparency log. Rows are only ever inserted, never updated
in place, except a checkpoint's note, which may gain witness cosignature lines.

A tree node is keyed by one integer, ``level << 48 | index``, so that a proof's nodes
come back from one ``IN`` query and a tile from one range query.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Integer, LargeBinary
from sqlmodel import Field, SQLModel

NODE_LEVEL_SHIFT = 48
#: 64-bit keys; on SQLite spelled INTEGER so that the key is the table's rowid (a
#: BIGINT primary key there would add a second index to every insert).
RowKey = BigInteger().with_variant(Integer(), "sqlite")


def node_key(level: int, index: int) -> int:
    """The integer key of perfect subtree (level, index)."""
    return (level << NODE_LEVEL_SHIFT) | index


class LogMeta(SQLModel, table=True):
    """The log's identity and current size: one row, locked by every append."""

    __tablename__ = "tlog_meta"

    id: int = Field(default=1, primary_key=True)
    origin: str
    size: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))


class LogEntry(SQLModel, table=True):
    """One leaf: its index, its RFC 9162 leaf hash (unique: entries are content-addressed)
    and the entry bytes."""

    __tablename__ = "tlog_entry"

    idx: int = Field(sa_column=Column(RowKey, primary_key=True, autoincrement=False))
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False, unique=True))
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class LogNode(SQLModel, table=True):
    """The hash of one perfect subtree (level 0 holds the leaf hashes)."""

    __tablename__ = "tlog_node"

    key: int = Field(sa_column=Column(RowKey, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))


class LogCheckpoint(SQLModel, table=True):
    """A signed checkpoint for one tree size, with any witness cosignatures added."""

    __tablename__ = "tlog_checkpoint"

    size: int = Field(sa_column=Column(RowKey, primary_key=True, autoincrement=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    note: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime


class LogBlob(SQLModel, table=True):
    """A whole record (such as a DSSE envelope) stored by its SHA-256 beside the log."""

    __tablename__ = "tlog_blob"

    digest: str = Field(primary_key=True, max_length=64)
    media_type: str
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


LOG_TABLES = [
    LogMeta.__table__,  # type: ignore[attr-defined]
    LogEntry.__table__,  # type: ignore[attr-defined]
    LogNode.__table__,  # type: ignore[attr-defined]
    LogCheckpoint.__table__,  # type: ignore[attr-defined]
    LogBlob.__table__,  # type: ignore[attr-defined]
]
