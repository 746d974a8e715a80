"""Client-side pacing that matches the gateway's buckets, so `gather` bursts queue, not 429.

The gateway allows N requests per W seconds (History 50/30 s, everything else 200/60 s) and
its window type is undocumented (our simulator uses a sliding window). A leaky bucket
(aiolimiter) of capacity C draining at r/s admits at most C + r·W requests in any W seconds,
so with C = f·N and r = (1 − f)·N / W no window, sliding or fixed, ever sees more than N.
`f` (`burst_fraction`, default 0.5) trades instant burst for sustained rate. The window is
stretched by `ARRIVAL_SLACK` because the server counts arrivals, not sends: requests delayed on
the way (a busy loop, a slow network) can land bunched. After a 429 every request waits out the
server's Retry-After before taking a slot.
"""

from __future__ import annotations

import asyncio

from aiolimiter import AsyncLimiter

from .config import ClientSettings

HISTORY_PATH = "/api/history/retrievebars"
ARRIVAL_SLACK = 0.25  # seconds of send-to-arrival jitter the pacing absorbs


class RateLimiter:
    """Two buckets (history, rest) plus a shared pause set by 429 answers."""

    def __init__(self, settings: ClientSettings) -> None:
        self._history = _bucket(settings.history_rate, settings.burst_fraction)
        self._rest = _bucket(settings.rest_rate, settings.burst_fraction)
        self._resume_at = 0.0

    def __repr__(self) -> str:
        return (
            f"RateLimiter(history={self._history.max_rate:g}/{self._history.time_period:g}s, "
            f"rest={self._rest.max_rate:g}/{self._rest.time_period:g}s)"
        )

    async def acquire(self, path: str) -> None:
        """Wait for a slot in the bucket that `path` counts against."""
        if self._resume_at:
            loop = asyncio.get_running_loop()
            wait = self._resume_at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
        bucket = self._history if path.lower() == HISTORY_PATH else self._rest
        await bucket.acquire()

    def pause(self, seconds: float) -> None:
        """Hold every new request for `seconds` (the gateway said Retry-After)."""
        resume = asyncio.get_running_loop().time() + seconds
        self._resume_at = max(self._resume_at, resume)


def _bucket(rate: tuple[int, float], fraction: float) -> AsyncLimiter:
    count, window = rate
    capacity = max(1.0, count * fraction)
    drain_per_second = (count - capacity) / (window + ARRIVAL_SLACK)
    return AsyncLimiter(capacity, capacity / drain_per_second)
