"""Serve a read from the coordinator's read cache, computing it at most once at a time.

When a cached answer expires while many requests want it, only the first computes it (on
the thread pool); the others wait for that result instead of each running the same
queries, which under load made the misses cost several times more than they need to.
This module decides nothing about what may be cached; the routes do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any

import anyio.to_thread

from coordinator.read_cache import ReadCache


class ReadThrough:
    """``ReadCache`` lookups with single-flight computation of misses (one event loop)."""

    def __init__(self, cache: ReadCache[Any]) -> None:
        self._cache = cache
        # Key -> (the cache generation the computation started at, its result).
        self._pending: dict[Hashable, tuple[int, asyncio.Future[Any]]] = {}

    async def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The cached value of ``key``, or ``compute()``'s (run on the thread pool, once
        for all the requests that want it meanwhile; ``None`` results are not cached)."""
        while True:
            cached = self._cache.get(key)
            if cached is not None:
                return cached
            found = self._pending.get(key)
            # Join only a computation that started after the last write: one that began
            # before it may return what the write changed.
            if found is None or found[0] != self._cache.generation:
                break
            pending = found[1]
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if pending.cancelled() and task is not None and not task.cancelling():
                    continue  # the request computing it went away: compute it here
                raise
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        generation = self._cache.generation
        self._pending[key] = (generation, future)
        try:
            value = await anyio.to_thread.run_sync(compute)
            if value is not None:
                self._cache.put(key, value, generation=generation)
            future.set_result(value)
            return value
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: each waiter re-raises it for its own request
            raise
        finally:
            if self._pending.get(key, (0, None))[1] is future:
                del self._pending[key]
