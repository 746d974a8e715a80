"""Sliding-window request limits per key, as the gateway enforces them (§5 of the API notes)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable


class SlidingWindow:
    """At most `limit` admitted hits per key in any `window` seconds; refused hits do not count."""

    __slots__ = ("_clock", "_hits", "limit", "window")

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError(f"rate limit needs limit >= 1 and window > 0, got {limit}/{window}")
        self.limit = int(limit)
        self.window = float(window)
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}

    def __repr__(self) -> str:
        return f"SlidingWindow({self.limit}/{self.window:g}s, keys={len(self._hits)})"

    def hit(self, key: str) -> float:
        """Admit a hit for `key` (returns 0.0) or refuse it (returns seconds until a slot frees)."""
        now = self._clock()
        hits = self._hits.get(key)
        if hits is None:
            hits = self._hits[key] = deque()
        cutoff = now - self.window
        while hits and hits[0] <= cutoff:
            hits.popleft()
        if len(hits) < self.limit:
            hits.append(now)
            return 0.0
        return max(hits[0] - cutoff, 1e-3)

    def reset(self) -> None:
        self._hits.clear()


class RateLimiter:
    """The gateway's two buckets: `History/retrieveBars` and everything else."""

    __slots__ = ("history", "rest")

    def __init__(self, history: tuple[int, float], rest: tuple[int, float]) -> None:
        self.history = SlidingWindow(*history)
        self.rest = SlidingWindow(*rest)

    def __repr__(self) -> str:
        return f"RateLimiter(history={self.history!r}, rest={self.rest!r})"

    def hit(self, bucket: str, key: str) -> float:
        """Seconds to wait (0.0 = admitted) for `key` in bucket "history" or "rest"."""
        return (self.history if bucket == "history" else self.rest).hit(key)


def retry_after_header(wait: float) -> str:
    """`Retry-After` value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(wait)))
