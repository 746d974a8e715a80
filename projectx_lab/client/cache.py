"""TTL caches (cachetools) with in-flight de-duplication: concurrent misses on one key share a
single request. A `bypass` fetches fresh data and refreshes the entry; a `store` predicate keeps
unfinished data (a partial bar) out of the cache."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from cachetools import TTLCache

V = TypeVar("V")


class AsyncTTLCache(Generic[V]):
    """`get_or_load(key, loader)` over a `TTLCache`; one loader task runs per key at a time.

    The load runs as its own task, so a caller being cancelled does not cancel the others.
    """

    def __init__(self, maxsize: int, ttl: float) -> None:
        self._cache: TTLCache[Hashable, V] = TTLCache(maxsize=maxsize, ttl=ttl)
        self._inflight: dict[Hashable, asyncio.Future[V]] = {}
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"AsyncTTLCache(size={len(self._cache)}, ttl={self._cache.ttl}s)"

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        self._cache.clear()

    async def aclose(self) -> None:
        """Cancel loads still running (client shutdown)."""
        tasks = list(self._inflight.values())
        self._inflight.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def get_or_load(
        self,
        key: Hashable,
        loader: Callable[[], Awaitable[V]],
        *,
        bypass: bool = False,
        store: Callable[[V], bool] | None = None,
    ) -> V:
        """Cached value for `key`, else the (shared) result of `loader()`."""
        if not bypass:
            try:
                value = self._cache[key]
            except KeyError:
                pass
            else:
                self.hits += 1
                return value
            pending = self._inflight.get(key)
            if pending is not None:
                return await asyncio.shield(pending)
        self.misses += 1
        task = asyncio.ensure_future(self._load(key, loader, store))
        task.add_done_callback(_consume_exception)
        self._inflight[key] = task
        return await asyncio.shield(task)

    async def _load(
        self, key: Hashable, loader: Callable[[], Awaitable[V]], store: Callable[[V], bool] | None
    ) -> V:
        try:
            value = await loader()
            if store is None or store(value):
                self._cache[key] = value
            return value
        finally:
            if self._inflight.get(key) is asyncio.current_task():
                del self._inflight[key]


def _consume_exception(task: asyncio.Future[object]) -> None:
    """A load whose callers all left must not warn "exception was never retrieved"."""
    if not task.cancelled():
        task.exception()
