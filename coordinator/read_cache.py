"""A short-lived cache of what the service has read, dropped on every write.

Catalog searches, job reads and API-key checks are read far more often than anything
changes. ``ReadCache`` keeps their results for at most ``ttl`` seconds, and forgets all of
them the moment this process commits a write to the database, so a change made through
this service is seen by the very next read: a revoked key stops at once, a new listing
shows at once. It listens to the engine: SQLAlchemy's ``commit`` event fires just before
the database commits, so the cache is emptied then and again when the connection that
committed goes back to the pool; a value read in between is never kept. A write made by
another process on the same database is seen within ``ttl``. Entries are bounded in
number and in bytes; the oldest go first.

This module must never hold a secret: it keys API-key checks by the key's SHA-256, and the
values it keeps are what the caller would be shown anyway.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine, event

T = TypeVar("T")

#: How long an entry may be served, in seconds, when no write in this process ended it.
DEFAULT_TTL = 2.0
#: The most entries the cache keeps.
DEFAULT_MAX_ENTRIES = 4096
#: The most bytes of answers the cache keeps (as ``size_of`` counts them).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: What an entry without a byte body is counted as.
_SMALL_ENTRY_BYTES = 256
_WROTE = "tally_read_cache_wrote"


def size_of(value: object) -> int:
    """The bytes an entry is counted as: its body's length (``bytes``, or an object with a
    ``body``), else a small fixed size."""
    body = value if isinstance(value, bytes) else getattr(value, "body", None)
    if isinstance(body, bytes):
        return len(body) + _SMALL_ENTRY_BYTES
    return _SMALL_ENTRY_BYTES


class ReadCache(Generic[T]):
    """Values by key, each valid until ``ttl`` passes or this process commits a write."""

    def __init__(
        self,
        engine: Engine,
        *,
        ttl: float = DEFAULT_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[int, float, T, int]] = OrderedDict()
        self._bytes = 0
        self._generation = 0
        self._engine = engine
        event.listen(engine, "commit", self._on_commit)
        event.listen(engine, "checkin", self._on_checkin)

    @property
    def generation(self) -> int:
        """How many commits this process has made since the cache was created."""
        return self._generation

    def get(self, key: Hashable) -> T | None:
        """The value stored under ``key`` if it is still valid, else ``None``."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            generation, expires, value, size = found
            if generation != self._generation or self._clock() >= expires:
                del self._entries[key]
                self._bytes -= size
                return None
            return value

    def put(self, key: Hashable, value: T, *, generation: int) -> None:
        """Store ``value`` read at ``generation`` (taken *before* the read began): a value
        read while a write committed is not stored, since it may predate the write."""
        size = size_of(value)
        with self._lock:
            if generation != self._generation or size > self._max_bytes:
                return
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._bytes -= previous[3]
            self._entries[key] = (generation, self._clock() + self._ttl, value, size)
            self._bytes += size
            while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
                _key, oldest = self._entries.popitem(last=False)
                self._bytes -= oldest[3]

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._generation += 1
            self._entries.clear()
            self._bytes = 0

    def close(self) -> None:
        """Stop listening to the engine."""
        for name, listener in (("commit", self._on_commit), ("checkin", self._on_checkin)):
            if event.contains(self._engine, name, listener):
                event.remove(self._engine, name, listener)

    def _on_commit(self, connection: Connection) -> None:
        connection.info[_WROTE] = True
        self.clear()

    def _on_checkin(self, _dbapi_connection: Any, record: Any) -> None:
        if record is not None and record.info.pop(_WROTE, False):
            self.clear()
