"""The transparency log: an append-only RFC 9162 tree in SQL, with signed checkpoints.

Every append is one database transaction under the log's write lock: entries, tree
nodes, blobs, the new signed checkpoint and the new size commit together or not at all,
so a crash leaves the log at its last checkpoint or at the new one, never in between.
Entries are content-addressed: appending bytes the log already holds returns the
existing index and appends nothing. The log never rewrites an entry, node or checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlmodel import SQLModel

from provenance.canonical import sha256_hex
from provenance.errors import InvalidSignature, LogError
from provenance.merkle import (
    EMPTY_ROOT,
    CompactRange,
    ProofPlan,
    consistency_plan,
    fold_right,
    inclusion_plan,
    leaf_hash,
    node_hash,
    perfect_subtrees,
)
from provenance.note import (
    CosignatureVerifier,
    NoteSignature,
    NoteSigner,
    add_signatures,
    parse_note,
)
from provenance.storage import write_transaction
from provenance.tlog.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from provenance.tlog.proof import TlogProof
from provenance.tlog.tables import (
    LOG_TABLES,
    LogBlob,
    LogCheckpoint,
    LogEntry,
    LogMeta,
    LogNode,
    node_key,
)
from provenance.tlog.tiles import (
    MAX_ENTRY_BYTES,
    TILE_HEIGHT,
    TILE_WIDTH,
    TileRef,
    bundle_width,
    encode_bundle,
    tile_width,
)

_META = LogMeta.__table__  # type: ignore[attr-defined]
_ENTRY = LogEntry.__table__  # type: ignore[attr-defined]
_NODE = LogNode.__table__  # type: ignore[attr-defined]
_CHECKPOINT = LogCheckpoint.__table__  # type: ignore[attr-defined]
_BLOB = LogBlob.__table__  # type: ignore[attr-defined]
_SELECT_SIZE = select(_META.c.size)
#: Most entries one append may carry.
MAX_BATCH = 65536
#: Largest blob stored beside the log.
MAX_BLOB_BYTES = 16 * 1024 * 1024
_LOOKUP_CHUNK = 500


@dataclass(frozen=True)
class Blob:
    """A whole record to store content-addressed beside the log."""

    data: bytes
    media_type: str

    @property
    def digest(self) -> str:
        """Lowercase hex SHA-256 of the data."""
        return sha256_hex(self.data)


@dataclass(frozen=True)
class AppendResult:
    """Where each appended entry landed, and the checkpoint that now covers them."""

    indexes: tuple[int, ...]
    new_entries: int
    checkpoint: bytes
    size: int


def _placeholder(conn: Connection) -> str:
    """The driver's positional parameter marker."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _select_in(
    conn: Connection, columns: str, table: str, key: str, values: Sequence[object]
) -> list[tuple[Any, ...]]:
    """``SELECT columns FROM table WHERE key IN (values)`` through the driver.

    Cheaper than building the statement with SQLAlchemy on hot paths; identifiers come
    only from this module's constants.
    """
    markers = ", ".join([_placeholder(conn)] * len(values))
    statement = f"SELECT {columns} FROM {table} WHERE {key} IN ({markers})"  # noqa: S608
    return [tuple(row) for row in conn.exec_driver_sql(statement, tuple(values))]


def _current_size(conn: Connection) -> int:
    """The log's size as of this connection's transaction."""
    return int(conn.execute(_SELECT_SIZE).scalar_one())


def _insert_rows(
    conn: Connection, table: str, columns: tuple[str, ...], rows: Sequence[tuple[object, ...]]
) -> None:
    """Bulk insert through the driver's executemany.

    SQLAlchemy's per-row parameter processing costs more than SQLite's insert itself;
    the statement text is built only from this module's constant names.
    """
    mark = _placeholder(conn)
    statement = (
        f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 - constant identifiers
        f"VALUES ({', '.join([mark] * len(columns))})"
    )
    conn.exec_driver_sql(statement, rows)


@contextmanager
def _joined(engine: Engine, connection: Connection | None) -> Iterator[Connection]:
    """The caller's write transaction if given, else a new one."""
    if connection is not None:
        yield connection
        return
    with write_transaction(engine) as conn:
        yield conn


class TransparencyLog:
    """An RFC 9162 log stored through SQLAlchemy (SQLite or PostgreSQL).

    Open it with ``create`` or ``open``. Without a signer the log is read-only.
    """

    def __init__(self, engine: Engine, origin: str, signer: NoteSigner | None) -> None:
        self._engine = engine
        self.origin = origin
        self._signer = signer

    # -- lifecycle -----------------------------------------------------------------

    @classmethod
    def create(cls, engine: Engine, signer: NoteSigner) -> TransparencyLog:
        """Create an empty log whose origin is the signer's key name, with its first checkpoint."""
        SQLModel.metadata.create_all(engine, tables=LOG_TABLES)
        with write_transaction(engine) as conn:
            if conn.execute(select(_META.c.origin)).first() is not None:
                raise LogError("this database already holds a log")
            conn.execute(insert(_META).values(id=1, origin=signer.name, size=0))
            cls._insert_checkpoint(conn, signer, 0, EMPTY_ROOT)
        return cls(engine, signer.name, signer)

    @classmethod
    def open(cls, engine: Engine, signer: NoteSigner | None = None) -> TransparencyLog:
        """Open an existing log; a signer must carry the log's origin as its key name."""
        try:
            with engine.connect() as conn:
                row = conn.execute(select(_META.c.origin)).first()
        except Exception as exc:  # no tables: not a log at all
            raise LogError(f"database holds no transparency log: {exc.__class__.__name__}") from exc
        if row is None:
            raise LogError("database holds no transparency log")
        origin = str(row.origin)
        if signer is not None and signer.name != origin:
            raise LogError(f"signer key name {signer.name!r} is not the log origin {origin!r}")
        return cls(engine, origin, signer)

    # -- writing -------------------------------------------------------------------

    def append(
        self,
        entries: Sequence[bytes],
        blobs: Iterable[Blob] = (),
        *,
        connection: Connection | None = None,
    ) -> AppendResult:
        """Append ``entries`` (and store ``blobs``) atomically; sign a new checkpoint.

        Entries already in the log keep their index and are not appended again. With
        ``connection`` (one opened by ``write_transaction`` on this log's database) the
        append joins the caller's transaction, so that a record and the state change it
        describes commit or roll back together.
        """
        if self._signer is None:
            raise LogError("this log was opened read-only (no signing key)")
        if not entries:
            raise LogError("nothing to append")
        if len(entries) > MAX_BATCH:
            raise LogError(f"an append holds at most {MAX_BATCH} entries, got {len(entries)}")
        for position, entry in enumerate(entries):
            if len(entry) > MAX_ENTRY_BYTES:
                raise LogError(
                    f"entry {position} is {len(entry)} bytes, over the {MAX_ENTRY_BYTES} limit"
                )
        blob_list = list({blob.digest: blob for blob in blobs}.values())
        for blob in blob_list:
            if len(blob.data) > MAX_BLOB_BYTES:
                raise LogError(f"blob {blob.digest} is over the {MAX_BLOB_BYTES}-byte limit")
        hashes = [leaf_hash(entry) for entry in entries]
        with _joined(self._engine, connection) as conn:
            size = conn.execute(select(_META.c.size).with_for_update()).scalar_one()
            known = self._lookup_indexes(conn, hashes)
            stack = self._border(conn, size)
            indexes: list[int] = []
            entry_rows: list[tuple[int, bytes, bytes]] = []
            node_rows: list[tuple[int, bytes]] = []
            new_size = size
            for entry, leaf in zip(entries, hashes, strict=True):
                if leaf in known:
                    indexes.append(known[leaf])
                    continue
                known[leaf] = new_size
                indexes.append(new_size)
                entry_rows.append((new_size, leaf, entry))
                node_rows.append((node_key(0, new_size), leaf))
                level, position, current = 0, new_size, leaf
                while position & 1:
                    current = node_hash(stack.pop(), current)
                    level += 1
                    position >>= 1
                    node_rows.append((node_key(level, position), current))
                stack.append(current)
                new_size += 1
            self._store_blobs(conn, blob_list)
            if entry_rows:
                _insert_rows(conn, "tlog_entry", ("idx", "leaf_hash", "data"), entry_rows)
                _insert_rows(conn, "tlog_node", ("key", "hash"), node_rows)
                conn.execute(update(_META).values(size=new_size))
                note = self._insert_checkpoint(conn, self._signer, new_size, fold_right(stack))
            else:
                note = self._checkpoint_note(conn, size)
        return AppendResult(tuple(indexes), len(entry_rows), note, new_size)

    def add_cosignature(
        self, size: int, signature: NoteSignature, witness: CosignatureVerifier
    ) -> bytes:
        """Verify ``witness``'s cosignature of checkpoint ``size`` and add it to the note."""
        if (signature.name, signature.key_id) != (witness.name, witness.key_id):
            raise LogError(
                f"cosignature by {signature.name!r} is not from witness {witness.name!r}"
            )
        with write_transaction(self._engine) as conn:
            note = self._checkpoint_note(conn, size)
            try:
                witness.verify(parse_note(note).text.encode("utf-8"), signature.signature)
            except InvalidSignature as exc:
                raise LogError(f"cosignature by {witness.name!r} does not verify: {exc}") from exc
            merged = add_signatures(note, [signature])
            conn.execute(update(_CHECKPOINT).where(_CHECKPOINT.c.size == size).values(note=merged))
        return merged

    @staticmethod
    def _insert_checkpoint(conn: Connection, signer: NoteSigner, size: int, root: bytes) -> bytes:
        note = sign_checkpoint(Checkpoint(signer.name, size, root), signer)
        conn.execute(
            insert(_CHECKPOINT).values(
                size=size, root_hash=root, note=note, created_at=datetime.now(UTC)
            )
        )
        return note

    def _lookup_indexes(self, conn: Connection, hashes: list[bytes]) -> dict[bytes, int]:
        found: dict[bytes, int] = {}
        unique = list(dict.fromkeys(hashes))
        for start in range(0, len(unique), _LOOKUP_CHUNK):
            chunk = unique[start : start + _LOOKUP_CHUNK]
            rows = _select_in(conn, "leaf_hash, idx", "tlog_entry", "leaf_hash", chunk)
            found.update({bytes(leaf): int(index) for leaf, index in rows})
        return found

    def _border(self, conn: Connection, size: int) -> list[bytes]:
        """The perfect-subtree hashes covering [0, size), left to right."""
        return self._fetch_nodes(conn, perfect_subtrees(0, size))

    @staticmethod
    def _store_blobs(conn: Connection, blobs: list[Blob]) -> None:
        if not blobs:
            return
        digests = [blob.digest for blob in blobs]
        present = set(
            conn.execute(select(_BLOB.c.digest).where(_BLOB.c.digest.in_(digests))).scalars()
        )
        rows = [
            {"digest": blob.digest, "media_type": blob.media_type, "data": blob.data}
            for blob in blobs
            if blob.digest not in present
        ]
        if rows:
            conn.execute(insert(_BLOB), rows)

    # -- reading -------------------------------------------------------------------

    @property
    def size(self) -> int:
        """The number of entries (the size of the latest checkpoint)."""
        with self._engine.connect() as conn:
            return _current_size(conn)

    def checkpoint(self, size: int | None = None) -> bytes:
        """The signed checkpoint note for ``size`` (default: the latest)."""
        with self._engine.connect() as conn:
            if size is None:
                size = _current_size(conn)
            return self._checkpoint_note(conn, size)

    def checkpoint_sizes(self) -> list[int]:
        """Every tree size the log has signed a checkpoint for, ascending."""
        with self._engine.connect() as conn:
            return [
                int(size)
                for size in conn.execute(
                    select(_CHECKPOINT.c.size).order_by(_CHECKPOINT.c.size)
                ).scalars()
            ]

    @staticmethod
    def _checkpoint_note(conn: Connection, size: int) -> bytes:
        note = conn.execute(
            select(_CHECKPOINT.c.note).where(_CHECKPOINT.c.size == size)
        ).scalar_one_or_none()
        if note is None:
            raise LogError(f"the log has no checkpoint for tree size {size}")
        return bytes(note)

    def entry(self, index: int) -> bytes:
        """The entry at ``index``."""
        with self._engine.connect() as conn:
            data = conn.execute(
                select(_ENTRY.c.data).where(_ENTRY.c.idx == index)
            ).scalar_one_or_none()
        if data is None:
            raise LogError(f"the log has no entry {index} (size {self.size})")
        return bytes(data)

    def index_of(self, leaf: bytes) -> int:
        """The index of the entry with RFC 9162 leaf hash ``leaf``."""
        with self._engine.connect() as conn:
            index = conn.execute(
                select(_ENTRY.c.idx).where(_ENTRY.c.leaf_hash == leaf)
            ).scalar_one_or_none()
        if index is None:
            raise LogError(f"the log holds no entry with leaf hash {leaf.hex()}")
        return int(index)

    def blob(self, digest: str) -> Blob:
        """The blob stored under ``digest`` (lowercase hex SHA-256)."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(_BLOB.c.data, _BLOB.c.media_type).where(_BLOB.c.digest == digest)
            ).first()
        if row is None:
            raise LogError(f"the log stores no blob {digest}")
        return Blob(bytes(row.data), str(row.media_type))

    def root(self, size: int | None = None) -> bytes:
        """The root hash of the tree of ``size`` entries (default: all)."""
        with self._engine.connect() as conn:
            size = self._check_size(conn, size)
            return fold_right(self._border(conn, size)) if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` entries."""
        with self._engine.connect() as conn:
            size = self._check_size(conn, size)
            return self._prove(conn, inclusion_plan(index, size))

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 consistency proof between tree sizes ``old_size`` and ``new_size``."""
        with self._engine.connect() as conn:
            new_size = self._check_size(conn, new_size)
            return self._prove(conn, consistency_plan(old_size, new_size))

    def tlog_proof(self, index: int, size: int | None = None) -> TlogProof:
        """A C2SP tlog-proof of entry ``index`` against the signed checkpoint of ``size``."""
        with self._engine.connect() as conn:
            size = self._check_size(conn, size)
            note = self._checkpoint_note(conn, size)
            proof = self._prove(conn, inclusion_plan(index, size))
        return TlogProof(index=index, hashes=tuple(proof), checkpoint=note)

    def _check_size(self, conn: Connection, size: int | None) -> int:
        current = _current_size(conn)
        if size is None:
            return current
        if not 0 <= size <= current:
            raise LogError(f"tree size {size} is beyond the log's size {current}")
        return size

    def _prove(self, conn: Connection, plan: ProofPlan) -> list[bytes]:
        return plan.assemble(self._fetch_nodes(conn, plan.node_ids()))

    @staticmethod
    def _fetch_nodes(conn: Connection, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        if not ids:
            return []
        keys = [node_key(level, index) for level, index in ids]
        rows = _select_in(conn, "key, hash", "tlog_node", "key", list(set(keys)))
        found = {int(key): bytes(value) for key, value in rows}
        missing = [ids[i] for i, key in enumerate(keys) if key not in found]
        if missing:
            raise LogError(f"log storage is missing tree nodes {missing[:3]}: it is corrupt")
        return [found[key] for key in keys]

    # -- tiles -----------------------------------------------------------------------

    def tile(self, level: int, index: int, width: int = TILE_WIDTH) -> bytes:
        """The hash tile (level, index) of width ``width``, as the C2SP layout serves it."""
        with self._engine.connect() as conn:
            available = tile_width(level, index, _current_size(conn))
            if width > available:
                raise LogError(f"tile {level}/{index} has {available} hashes, not {width}")
            return self._read_tile(conn, level, index, width)

    def entry_bundle(self, index: int, width: int = TILE_WIDTH) -> bytes:
        """Entry bundle ``index`` of width ``width``."""
        with self._engine.connect() as conn:
            available = bundle_width(index, _current_size(conn))
            if width > available:
                raise LogError(f"entry bundle {index} has {available} entries, not {width}")
            return self._read_bundle(conn, index, width)

    def static_layout(self, size: int | None = None) -> Iterator[tuple[str, bytes]]:
        """Every file of the C2SP tlog-tiles layout for tree ``size`` (default: latest).

        Yields (path, content): ``checkpoint``, then every hash tile and entry bundle,
        partial ones with their ``.p/W`` suffix, all read in one transaction. Full tiles
        never change once written.
        """
        with self._engine.connect() as conn:
            size = self._check_size(conn, size)
            yield "checkpoint", self._checkpoint_note(conn, size)
            level = 0
            while size >> (TILE_HEIGHT * level):
                index = 0
                while width := tile_width(level, index, size):
                    yield (
                        TileRef(level, index, width).path(),
                        self._read_tile(conn, level, index, width),
                    )
                    index += 1
                level += 1
            index = 0
            while width := bundle_width(index, size):
                yield TileRef(None, index, width).path(), self._read_bundle(conn, index, width)
                index += 1

    @staticmethod
    def _read_tile(conn: Connection, level: int, index: int, width: int) -> bytes:
        first = node_key(level * TILE_HEIGHT, index * TILE_WIDTH)
        rows = conn.execute(
            select(_NODE.c.hash)
            .where(_NODE.c.key >= first, _NODE.c.key < first + width)
            .order_by(_NODE.c.key)
        ).scalars()
        hashes = [bytes(row) for row in rows]
        if len(hashes) != width:
            raise LogError(f"log storage is missing hashes of tile {level}/{index}: it is corrupt")
        return b"".join(hashes)

    @staticmethod
    def _read_bundle(conn: Connection, index: int, width: int) -> bytes:
        first = index * TILE_WIDTH
        rows = conn.execute(
            select(_ENTRY.c.data)
            .where(_ENTRY.c.idx >= first, _ENTRY.c.idx < first + width)
            .order_by(_ENTRY.c.idx)
        ).scalars()
        return encode_bundle([bytes(row) for row in rows])

    # -- self-check ------------------------------------------------------------------

    def verify_storage(self) -> int:
        """Recompute every leaf hash and the root from the stored entries; compare with the
        latest checkpoint. Returns the size checked; raises ``LogError`` on any mismatch."""
        compact = CompactRange()
        with self._engine.connect() as conn:
            size = _current_size(conn)
            count = int(conn.execute(select(func.count()).select_from(_ENTRY)).scalar_one())
            if count != size:
                raise LogError(f"log holds {count} entries but its size is {size}")
            rows = conn.execute(
                select(_ENTRY.c.idx, _ENTRY.c.leaf_hash, _ENTRY.c.data).order_by(_ENTRY.c.idx)
            )
            for expected, row in enumerate(rows):
                if row.idx != expected or leaf_hash(bytes(row.data)) != bytes(row.leaf_hash):
                    raise LogError(f"log entry {expected} does not match its leaf hash")
                compact.append(bytes(row.leaf_hash))
            note = self._checkpoint_note(conn, size)
        if self._signer is not None:
            checkpoint = open_checkpoint(note, self._signer.verifier).checkpoint
        else:
            checkpoint = Checkpoint.from_body(parse_note(note).text)
        if (checkpoint.origin, checkpoint.size) != (self.origin, size):
            raise LogError(f"the latest checkpoint does not name this log at size {size}")
        if checkpoint.root_hash != compact.root():
            raise LogError(f"the entries do not hash to the root of checkpoint {size}")
        return size
