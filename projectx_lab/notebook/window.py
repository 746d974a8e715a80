"""The newest bars of a `BarSeries`, read once per chart frame in O(window).

`BarWindow.read()` takes `series.tail(size)`: the last `size` closed bars plus the forming one,
whatever the history holds. Between two reads it works out which closed bars left the window
(handing each to the evict hook, so indicators can carry their state forward) and whether the
series' history was replaced meanwhile (a history merge, a gap backfill: `rebased`, and the
caller rebuilds that state from `history_before()`, the one O(history) read).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo

import numpy as np

from projectx_lab.managers.bars import BarSeries

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Bar = tuple[int, float, float, float, float, int]  # t (ns, UTC), o, h, l, c, v
EvictHook = Callable[[Bar], None]
_EMPTY = tuple(np.empty(0, dtype=d) for d in (np.int64, *[np.float64] * 4, np.int64))


class BarWindow:
    """Last `size` closed bars of `series` plus its forming bar, as of the last `read()`."""

    __slots__ = (
        "_closed",
        "_cols",
        "_evicted",
        "_loads",
        "_span",
        "_version",
        "rebased",
        "reloads",
        "series",
        "shape",
        "size",
        "tz",
    )

    def __init__(self, series: BarSeries, size: int, tz: tzinfo) -> None:
        self.series = series
        self.size = max(1, min(size, series.capacity))
        self.tz = tz
        self._evicted: EvictHook | None = None
        self._cols: tuple[np.ndarray, ...] = _EMPTY
        self._closed = 0  # closed bars among `_cols` (the forming bar, if any, is last)
        self._span: tuple[int, int, int] | None = None  # first t, last t, bar count
        self._loads = -1
        self._version = -1
        self.rebased = False
        self.reloads = 0  # reads that found the history replaced (carried state rebuilt)
        self.shape = 0  # bumped whenever the set of bar times changes (new bar, reload)

    def on_evict(self, hook: EvictHook | None) -> None:
        """Call `hook(bar)` for each closed bar that leaves the window as a new one arrives."""
        self._evicted = hook

    @property
    def version(self) -> int:
        """The series `version` as of the last read."""
        return self._version

    def read(self) -> tuple[np.ndarray, ...]:
        """(t, o, h, l, c, v) of the window now, oldest first, forming bar last: O(window).

        Sets `rebased` when the bars before the window can no longer be followed by evictions
        alone (first read, history merged, or more than a window of bars closed since)."""
        series = self.series
        cols = series.tail(self.size)
        closed = len(cols[0]) - (series.forming_bucket is not None and len(cols[0]) > 0)
        seen = self._cols[0]
        previous = seen[: self._closed]
        first = int(cols[0][0]) if closed > 0 else None
        self.rebased = series.loads != self._loads or (
            first is not None and len(previous) > 0 and first > previous[0]
            and not _contains(seen, first)
        )  # fmt: skip
        if self.rebased:
            self.reloads += 1
        elif self._evicted is not None and first is not None and len(previous):
            gone = int(np.searchsorted(previous, first))
            old = self._cols
            for i in range(gone):
                self._evicted((int(old[0][i]), float(old[1][i]), float(old[2][i]),
                               float(old[3][i]), float(old[4][i]), int(old[5][i])))  # fmt: skip
        span = (int(cols[0][0]), int(cols[0][-1]), len(cols[0])) if len(cols[0]) else None
        if span != self._span or self.rebased:
            self.shape += 1
            self._span = span
        self._cols, self._closed = cols, closed
        self._loads, self._version = series.loads, series.version
        return cols

    def history_before(self) -> tuple[np.ndarray, ...]:
        """Closed bars older than the window, as arrays (t, o, h, l, c, v); O(history)."""
        cols = self.series.arrays()
        end = len(cols[0]) - (1 if self.series.forming_bucket is not None and len(cols[0]) else 0)
        stop = max(0, end - self._closed)
        return tuple(col[:stop] for col in cols)

    def __len__(self) -> int:
        return len(self._cols[0])

    def times(self, last: int) -> list[datetime]:
        """Open times of the newest `last` bars of the last read, as aware datetimes in `tz`."""
        tz = self.tz
        return [
            (_EPOCH + timedelta(microseconds=int(t) // 1000)).astimezone(tz)
            for t in self._cols[0][-last:]
        ]


def _contains(sorted_times: np.ndarray, t: int) -> bool:
    i = int(np.searchsorted(sorted_times, t))
    return i < len(sorted_times) and int(sorted_times[i]) == t
