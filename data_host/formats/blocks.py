"""Reading a text dataset file in large blocks of whole records, and working on blocks in order.

CSV and JSON Lines files are read in blocks of about ``block_size`` bytes, each cut just
after a record-ending newline, so that every block can be checked on its own. For CSV a
newline inside a quoted field does not end a record: the cut counts quotes (a newline ends
a record when an even number of quotes precede it in the block, which starts at a record
boundary). ``in_order`` runs a function over the blocks on a thread pool and yields the
results in file order, so that errors and line numbers come out as a sequential reader
would give them.

This module must never hold more than a bounded number of blocks in memory, follow a
symbolic link, or let one record grow beyond ``max_record`` bytes unnoticed.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from data_host.errors import DatasetFormatError

#: Blocks queued or running per worker thread.
_IN_FLIGHT_PER_WORKER = 2
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


@dataclass(frozen=True)
class Block:
    """Whole records of a file: ``data[:size]`` starts at byte ``offset`` of the file, at a
    record boundary, and ends after a record-ending newline or at the end of the file.

    ``data`` may run on past ``size`` (into the next block's first record): blocks are
    read with one ``pread`` each and not copied again, so readers look at ``data[:size]``
    only (numpy views with ``count=size``, bytes methods with an end).
    """

    offset: int
    data: bytes
    size: int

    def content(self) -> bytes:
        """The block's own bytes (a copy when ``data`` runs past them)."""
        return self.data if self.size == len(self.data) else self.data[: self.size]


@dataclass(frozen=True)
class Overlong:
    """The record starting at byte ``offset`` runs on for more than ``max_record`` bytes."""

    offset: int


def open_regular(path: Path) -> int:
    """Open ``path`` for reading without following a link; raise ``DatasetFormatError``."""
    try:
        return os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise DatasetFormatError(f"cannot open {path}: {exc.strerror or exc}") from exc


def read_blocks(
    path: Path, start: int, block_size: int, *, quoted: bool, max_record: int
) -> Iterator[Block | Overlong]:
    """The blocks of ``path`` from byte ``start`` on; an ``Overlong`` ends the stream early.

    Each block is read at the offset where the previous one ended, so that it starts at
    a record boundary; the bytes after its last record are read again with the next one.
    With ``quoted``, newlines inside double-quoted fields do not end a record.
    """
    descriptor = open_regular(path)
    try:
        end_of_file = os.fstat(descriptor).st_size
        offset = start
        wanted = block_size
        while offset < end_of_file:
            try:
                data = os.pread(descriptor, min(wanted, end_of_file - offset), offset)
            except OSError as exc:
                raise DatasetFormatError(f"cannot read {path}: {exc.strerror or exc}") from exc
            if not data:  # the file shrank while it was read
                return
            if offset + len(data) >= end_of_file:
                yield Block(offset, data, len(data))
                return
            cut = last_record_end(data, quoted)
            if cut == 0:
                if len(data) > max_record:
                    yield Overlong(offset)
                    return
                wanted = min(2 * wanted, max_record + 1)
                continue
            yield Block(offset, data, cut)
            offset += cut
            wanted = block_size
    finally:
        os.close(descriptor)


def last_record_end(data: bytes, quoted: bool) -> int:
    """The offset just after the last record-ending newline in ``data``, or 0 if none.

    ``data`` starts at a record boundary (outside quotes).
    """
    end = data.rfind(b"\n")
    if end < 0:
        return 0
    if not quoted or b'"' not in data:
        return end + 1
    # Fast check: the last newline, if an even number of quotes precede it.
    if data.count(b'"', 0, end) % 2 == 0:
        return end + 1
    array = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(array == 0x22)
    newlines = np.flatnonzero(array == 0x0A)
    ending = newlines[np.searchsorted(quotes, newlines) % 2 == 0]
    return int(ending[-1]) + 1 if len(ending) else 0


def in_order(
    items: Iterable[_Item], work: Callable[[_Item], _Result], workers: int
) -> Iterator[tuple[_Item, _Result]]:
    """``(item, work(item))`` for each item, in order, with up to ``workers`` threads.

    Items are taken from ``items`` in the calling thread, a bounded number ahead of the
    results consumed. If the consumer stops early, queued work is cancelled and running
    work is waited for.
    """
    if workers == 1:
        for item in items:
            yield item, work(item)
        return
    queued: deque[tuple[_Item, Future[_Result]]] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dataset-block")
    try:
        for item in items:
            queued.append((item, pool.submit(work, item)))
            while len(queued) >= workers * _IN_FLIGHT_PER_WORKER:
                done, future = queued.popleft()
                yield done, future.result()
        while queued:
            done, future = queued.popleft()
            yield done, future.result()
    finally:
        for _, future in queued:
            future.cancel()
        pool.shutdown(wait=True)
