"""The newest bars of a `BarSeries`, mirrored from the data manager's tick stream.

Reading the series' public copies (`arrays()`, `to_frame()`) costs O(history) per call, which a
10 Hz chart over 20,000 bars cannot afford. `BarWindow` keeps its own copy of the last `size`
closed bars plus the forming one and folds each tick in exactly as `BarSeries.add_trade` does,
so an update costs O(ticks) and a frame O(window). It counts the ticks it folded; whenever the
series' `version` says something else changed it (a history merge, a gap backfill), the next
`sync()` reloads from `arrays()` once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo

import numpy as np

from projectx_lab.managers.bars import BarSeries

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Bar = tuple[int, float, float, float, float, int]  # t (ns, UTC), o, h, l, c, v
EvictHook = Callable[[Bar], None]


class BarWindow:
    """Last `size` closed bars of `series` plus its forming bar, kept current tick by tick."""

    __slots__ = (
        "_evicted",
        "_fb",
        "_fc",
        "_fh",
        "_fl",
        "_fo",
        "_fv",
        "_next",
        "_version",
        "_x",
        "closed",
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
        self.closed: deque[Bar] = deque(maxlen=self.size)
        self._x: deque[datetime] = deque(maxlen=self.size)
        self._evicted: EvictHook | None = None
        self._fb: int | None = None
        self._next = 0
        self._fo = self._fh = self._fl = self._fc = 0.0
        self._fv = 0
        self._version = -1
        self.reloads = 0
        self.shape = 0  # bumped whenever the set of bar times changes (new bar, reload)

    def on_evict(self, hook: EvictHook | None) -> None:
        """Call `hook(bar)` for each closed bar that leaves the window as a new one arrives."""
        self._evicted = hook

    # -- keeping up ------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """The series `version` this window reflects."""
        return self._version

    @property
    def in_sync(self) -> bool:
        """True when every change of the series since the last reload was a folded tick."""
        return self._version == self.series.version

    def reload(self) -> None:
        """Copy the newest bars from the series (O(history); only when out of sync)."""
        t, o, h, low, c, v = self.series.arrays()
        n = len(t)
        forming = self.series.forming_bucket is not None and n > 0
        end = n - 1 if forming else n
        start = max(0, end - self.size)
        self.closed.clear()
        self._x.clear()
        for i in range(start, end):
            self.closed.append((int(t[i]), float(o[i]), float(h[i]), float(low[i]),
                                float(c[i]), int(v[i])))  # fmt: skip
            self._x.append(self._time(int(t[i])))
        if forming:
            self._fb = int(t[-1])
            self._next = self.series.timeframe.next_bucket(self._fb)
            self._fo, self._fh, self._fl, self._fc = (
                float(o[-1]),
                float(h[-1]),
                float(low[-1]),
                float(c[-1]),
            )
            self._fv = int(v[-1])
        else:
            self._fb = None
        self._version = self.series.version
        self.reloads += 1
        self.shape += 1

    def history_before(self) -> tuple[np.ndarray, ...]:
        """Closed bars older than the window, as arrays (t, o, h, l, c, v); O(history)."""
        cols = self.series.arrays()
        end = len(cols[0]) - (1 if self.series.forming_bucket is not None and len(cols[0]) else 0)
        stop = max(0, end - len(self.closed))
        return tuple(col[:stop] for col in cols)

    def add(self, ts_ns: int, price: float, size: int) -> None:
        """Fold one trade in, as `BarSeries.add_trade` does (hot path)."""
        self._version += 1
        fb = self._fb
        if fb is not None and fb <= ts_ns < self._next:
            if price > self._fh:
                self._fh = price
            elif price < self._fl:
                self._fl = price
            self._fc = price
            self._fv += size
            return
        if fb is None or ts_ns >= self._next:
            bucket = self.series.timeframe.bucket(ts_ns)
            if fb is not None:
                self._push((fb, self._fo, self._fh, self._fl, self._fc, self._fv))
            elif self.closed and bucket <= self.closed[-1][0]:
                self._late(ts_ns, price, size)
                return
            self._fb = bucket
            self._next = self.series.timeframe.next_bucket(bucket)
            self._fo = self._fh = self._fl = self._fc = price
            self._fv = size
            self.shape += 1
            return
        self._late(ts_ns, price, size)

    def _push(self, bar: Bar) -> None:
        if len(self.closed) == self.size and self._evicted is not None:
            self._evicted(self.closed[0])
        self.closed.append(bar)
        self._x.append(self._time(bar[0]))

    def _late(self, ts_ns: int, price: float, size: int) -> None:
        bucket = self.series.timeframe.bucket(ts_ns)
        closed = self.closed
        for k in range(len(closed) - 1, -1, -1):
            t, o, h, low, c, v = closed[k]
            if t == bucket:
                closed[k] = (t, o, max(h, price), min(low, price), c, v + size)
                return
            if t < bucket:
                return

    # -- reading ---------------------------------------------------------------------------

    def _time(self, t_ns: int) -> datetime:
        return (_EPOCH + timedelta(microseconds=t_ns // 1000)).astimezone(self.tz)

    def __len__(self) -> int:
        return len(self.closed) + (self._fb is not None)

    def forming(self) -> Bar | None:
        """The forming bar, None before the first trade."""
        if self._fb is None:
            return None
        return (self._fb, self._fo, self._fh, self._fl, self._fc, self._fv)

    def times(self, last: int) -> list[datetime]:
        """Open times of the newest `last` bars (forming included) as aware datetimes in `tz`."""
        x = list(self._x)
        if self._fb is not None:
            x.append(self._time(self._fb))
        return x[-last:]

    def arrays(self) -> tuple[np.ndarray, ...]:
        """(t, o, h, l, c, v) of every bar in the window, oldest first, forming bar last."""
        bars = list(self.closed)
        forming = self.forming()
        if forming is not None:
            bars.append(forming)
        if not bars:
            return tuple(np.empty(0, dtype=d) for d in (np.int64, *[np.float64] * 4, np.int64))
        t, o, h, low, c, v = zip(*bars, strict=True)
        return (
            np.array(t, dtype=np.int64),
            np.array(o, dtype=np.float64),
            np.array(h, dtype=np.float64),
            np.array(low, dtype=np.float64),
            np.array(c, dtype=np.float64),
            np.array(v, dtype=np.int64),
        )
