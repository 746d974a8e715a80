"""When a subscribed market stream counts as frozen (gateway gotcha 5: a socket that stays up
while data stops).

The threshold is `stale_after` times a factor. Each stale verdict doubles the factor; a window
four thresholds long in which the stream never went quiet for half the threshold halves it
again (one short window is too small a sample of a bursty tape). A thin contract (trades a
minute apart, a quiet night session) so settles on a threshold that fits its own gaps instead
of forcing a rebuild, and a history re-read, every `stale_after`; a busy one returns to the
base threshold soon after a real freeze.
"""

from __future__ import annotations

_NS = 1_000_000_000
_CALM_WINDOWS = 4  # thresholds of calm before the factor comes down


class StaleWatch:
    """Stale verdicts for one hub; all times are `perf_counter_ns` values."""

    __slots__ = ("_longest", "_opened", "_window_start", "base_ns", "factor", "max_factor")

    def __init__(self, stale_after: float, max_factor: int = 32) -> None:
        self.base_ns = int(stale_after * _NS)
        self.max_factor = max_factor
        self.factor = 1
        self._opened = self._window_start = 0
        self._longest = 0

    @property
    def threshold_s(self) -> float:
        """Seconds of quiet that currently count as a frozen stream."""
        return self.base_ns * self.factor / _NS

    def connected(self, now_ns: int) -> None:
        """A new connection: observation starts afresh (the factor is kept)."""
        self._opened = self._window_start = now_ns
        self._longest = 0

    def check(self, now_ns: int, last_data_ns: int) -> int | None:
        """Nanoseconds of quiet if the stream is now judged frozen, else None."""
        quiet = now_ns - max(last_data_ns, self._opened)
        limit = self.base_ns * self.factor
        if quiet > limit:
            self.factor = min(self.factor * 2, self.max_factor)
            return quiet
        if quiet > self._longest:
            self._longest = quiet
        if now_ns - self._window_start >= limit * _CALM_WINDOWS:
            if self.factor > 1 and self._longest * 2 < limit:
                self.factor //= 2
            self._window_start, self._longest = now_ns, 0
        return None
