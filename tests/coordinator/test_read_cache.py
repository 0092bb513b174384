"""The coordinator's read cache: dropped by every write this process commits, bounded in
time, entries and bytes; and the read-through layer that computes each miss once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from coordinator.api.read_through import ReadThrough
from coordinator.read_cache import ReadCache
from provenance.storage import make_engine, sqlite_url


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = make_engine(sqlite_url(tmp_path / "cache.db"))
    with made.begin() as connection:
        connection.execute(text("CREATE TABLE t (v INTEGER)"))
    yield made
    made.dispose()


def write(engine: Engine, value: int) -> None:
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (:v)"), {"v": value})


def test_a_commit_in_this_process_drops_every_entry(engine: Engine) -> None:
    cache: ReadCache[object] = ReadCache(engine)
    cache.put("a", b"one", generation=cache.generation)
    assert cache.get("a") == b"one"
    with engine.connect() as connection:  # a read ends in a rollback: nothing is dropped
        connection.execute(text("SELECT count(*) FROM t")).one()
    assert cache.get("a") == b"one"
    write(engine, 1)
    assert cache.get("a") is None
    cache.close()


def test_a_value_read_while_a_write_commits_is_not_kept(engine: Engine) -> None:
    """SQLAlchemy's commit event fires before the database commits: a reader that began
    in that gap saw the old rows, so what it read must not be stored."""
    cache: ReadCache[object] = ReadCache(engine)
    with engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(text("INSERT INTO t VALUES (1)"))
        transaction.commit()  # the commit event has fired and the database has committed
        during = cache.generation  # a read that began before the connection was returned
    cache.put("late", b"old rows", generation=during)
    assert cache.get("late") is None  # dropped again when the writer went back to the pool
    cache.close()


def test_entries_expire_and_are_bounded(engine: Engine) -> None:
    now = [0.0]
    cache: ReadCache[object] = ReadCache(
        engine, ttl=2.0, max_entries=3, max_bytes=2_000, clock=lambda: now[0]
    )
    for key in "abc":
        cache.put(key, b"x", generation=cache.generation)
    cache.put("d", b"x", generation=cache.generation)
    assert [cache.get(key) for key in "abcd"] == [None, b"x", b"x", b"x"]
    now[0] = 2.0
    assert cache.get("d") is None
    cache.put("big", b"x" * 1_500, generation=cache.generation)
    cache.put("bigger", b"y" * 1_500, generation=cache.generation)
    assert cache.get("big") is None  # the byte bound evicted the oldest
    assert cache.get("bigger") == b"y" * 1_500
    cache.put("huge", b"z" * 5_000, generation=cache.generation)
    assert cache.get("huge") is None  # larger than the whole cache: never stored
    cache.close()


def test_concurrent_misses_compute_once_and_a_write_starts_a_new_computation(
    engine: Engine,
) -> None:
    cache: ReadCache[object] = ReadCache(engine)
    reads = ReadThrough(cache)
    calls: list[int] = []
    release = threading.Event()

    def compute() -> bytes:
        calls.append(1)
        number = len(calls)
        release.wait(5)
        return f"v{number}".encode()

    async def scenario() -> tuple[list[object], object]:
        first = [asyncio.ensure_future(reads.get("k", compute)) for _ in range(5)]
        await asyncio.sleep(0.05)
        assert len(calls) == 1  # the other four wait for the first
        write(engine, 2)  # a write while it computes: later readers must not join it
        late = asyncio.ensure_future(reads.get("k", compute))
        await asyncio.sleep(0.05)
        release.set()
        return list(await asyncio.gather(*first)), await late

    early, late = asyncio.run(scenario())
    assert early == [b"v1"] * 5
    assert late == b"v2"
    assert len(calls) == 2
    cache.close()
