"""OHLCV bars of one timeframe: closed bars in a bounded numpy ring, the forming bar in scalars.

The per-trade path touches a handful of Python floats; a polars DataFrame is only built when
asked for, and cached until the next change.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from projectx_lab.managers.timeframes import Timeframe

_NO_BUCKET = -(2**62)
COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
# Bumped whenever any series' forming bar moves to another bucket: callers caching
# `common_forming_window` recompute it when this changes.
FORMING_MOVES = [0]


class BarSeries:
    """Bars of one timeframe with bounded memory (`capacity` closed bars plus the forming one)."""

    __slots__ = (
        "_c",
        "_cache",
        "_cache_key",
        "_count",
        "_fb",
        "_fc",
        "_fh",
        "_fl",
        "_fo",
        "_fv",
        "_h",
        "_l",
        "_next",
        "_o",
        "_start",
        "_t",
        "_v",
        "capacity",
        "loads",
        "timeframe",
        "version",
    )

    def __init__(self, timeframe: Timeframe | str, capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1 bar, got {capacity}")
        self.timeframe = Timeframe.parse(timeframe)
        self.capacity = capacity
        self._t = np.zeros(capacity, dtype=np.int64)
        self._o = np.zeros(capacity, dtype=np.float64)
        self._h = np.zeros(capacity, dtype=np.float64)
        self._l = np.zeros(capacity, dtype=np.float64)
        self._c = np.zeros(capacity, dtype=np.float64)
        self._v = np.zeros(capacity, dtype=np.int64)
        self._start = 0
        self._count = 0
        self._fb = _NO_BUCKET  # forming bar's open time, ns
        self._next = _NO_BUCKET  # open time of the bar after the forming one
        self._fo = self._fh = self._fl = self._fc = 0.0
        self._fv = 0
        self.version = 0
        self.loads = 0  # bumped by each history merge: bars may then change anywhere
        self._cache: pl.DataFrame | None = None
        self._cache_key: tuple[int, str] | None = None

    # -- hot path -------------------------------------------------------------------------

    def add_trade(self, ts_ns: int, price: float, size: int) -> bool:
        """Fold one trade into the bars; True when it opened a new bar."""
        self.version += 1
        if self._fb <= ts_ns < self._next:
            if price > self._fh:
                self._fh = price
            elif price < self._fl:
                self._fl = price
            self._fc = price
            self._fv += size
            return False
        if ts_ns >= self._next:
            bucket = self.timeframe.bucket(ts_ns)
            if self._fb != _NO_BUCKET:
                self._push(self._fb, self._fo, self._fh, self._fl, self._fc, self._fv)
            elif self._count and bucket <= self._t[(self._start + self._count - 1) % self.capacity]:
                self._late_trade(ts_ns, price, size)  # belongs to a bar loaded from history
                return False
            self._fb = bucket
            self._next = self.timeframe.next_bucket(bucket)
            FORMING_MOVES[0] += 1
            self._fo = self._fh = self._fl = self._fc = price
            self._fv = size
            return True
        self._late_trade(ts_ns, price, size)
        return False

    # -- state ----------------------------------------------------------------------------

    @property
    def forming_bucket(self) -> int | None:
        """Open time (ns) of the forming bar, None before the first trade."""
        return None if self._fb == _NO_BUCKET else self._fb

    @property
    def last_price(self) -> float | None:
        return None if self._fb == _NO_BUCKET else self._fc

    def last_closed(self) -> tuple[int, float, float, float, float, int] | None:
        """The newest closed bar as (t, o, h, l, c, v), or None."""
        if not self._count:
            return None
        i = (self._start + self._count - 1) % self.capacity
        return (
            int(self._t[i]),
            float(self._o[i]),
            float(self._h[i]),
            float(self._l[i]),
            float(self._c[i]),
            int(self._v[i]),
        )

    def closed_after(self, t_ns: int) -> list[tuple[int, float, float, float, float, int]]:
        """Closed bars opened after `t_ns`, oldest first, as (t, o, h, l, c, v): O(their count)."""
        out = []
        for back in range(self._count):
            i = (self._start + self._count - 1 - back) % self.capacity
            t = int(self._t[i])
            if t <= t_ns:
                break
            out.append(
                (t, float(self._o[i]), float(self._h[i]), float(self._l[i]), float(self._c[i]),
                 int(self._v[i]))
            )  # fmt: skip
        out.reverse()
        return out

    def __len__(self) -> int:
        return self._count + (self._fb != _NO_BUCKET)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """(t, o, h, l, c, v) oldest first, forming bar last (copies)."""
        return self.tail(self._count)

    def tail(self, closed: int) -> tuple[np.ndarray, ...]:
        """Like `arrays()`, but only the newest `closed` closed bars (plus the forming bar):
        O(`closed`), whatever the history holds."""
        k = max(0, min(closed, self._count))
        idx = (self._start + self._count - k + np.arange(k)) % self.capacity
        cols = [a[idx] for a in (self._t, self._o, self._h, self._l, self._c, self._v)]
        if self._fb != _NO_BUCKET:
            forming = (self._fb, self._fo, self._fh, self._fl, self._fc, self._fv)
            cols = [np.append(col, value) for col, value in zip(cols, forming, strict=True)]
        return tuple(cols)

    def to_frame(self, bars: int | None = None, tz: str = "America/Chicago") -> pl.DataFrame:
        """The newest `bars` bars (all when None) as a polars DataFrame, oldest first."""
        key = (self.version, tz)
        if self._cache is None or self._cache_key != key:
            t, o, h, low, c, v = self.arrays()
            self._cache = pl.DataFrame(
                {
                    "timestamp": pl.Series(t, dtype=pl.Int64)
                    .cast(pl.Datetime("ns", "UTC"))
                    .dt.convert_time_zone(tz),
                    "open": o,
                    "high": h,
                    "low": low,
                    "close": c,
                    "volume": v,
                }
            )
            self._cache_key = key
        return self._cache if bars is None else self._cache.tail(bars)

    # -- merging history ------------------------------------------------------------------

    def upsert(
        self,
        t: np.ndarray,
        o: np.ndarray,
        h: np.ndarray,
        low: np.ndarray,
        c: np.ndarray,
        v: np.ndarray,
        *,
        last_is_partial: bool = False,
    ) -> None:
        """Merge bars from REST (history or a gap backfill); incoming bars win on equal times.

        With `last_is_partial`, the newest incoming bar becomes the forming bar when it is not
        older than the current forming bar. Without it, incoming bars are closed: a forming bar
        they reach (a gap backfill after a quiet reconnect) is closed too.
        """
        if len(t) == 0:
            return
        order = np.argsort(t, kind="stable")
        incoming = [np.asarray(a)[order] for a in (t, o, h, low, c, v)]
        current = self.arrays()
        has_forming = self._fb != _NO_BUCKET
        keep_forming = has_forming and self._fb > incoming[0][-1]
        if keep_forming:
            forming = tuple(col[-1] for col in current)
            current = tuple(col[:-1] for col in current)
        elif last_is_partial and (not has_forming or incoming[0][-1] >= self._fb):
            forming = tuple(col[-1] for col in incoming)
            incoming = [col[:-1] for col in incoming]
        else:  # closed REST bars reach the forming one (or there is none): it has closed, and
            forming = None  # merges as a closed bar that REST wins over on equal times
        merged_t = np.concatenate([current[0], incoming[0]])
        priority = np.concatenate([np.zeros(len(current[0])), np.ones(len(incoming[0]))])
        order = np.lexsort((priority, merged_t))
        merged_t = merged_t[order]
        last_of_group = np.append(merged_t[1:] != merged_t[:-1], True)[: len(merged_t)]
        pick = order[last_of_group]
        cols = [np.concatenate([a, b])[pick] for a, b in zip(current, incoming, strict=True)]
        if forming is not None and len(cols[0]) and cols[0][-1] >= forming[0]:
            cols = [col[cols[0] < forming[0]] for col in cols]
        self._load(cols, forming)

    def _load(self, cols: list[np.ndarray], forming: tuple | None) -> None:
        keep = min(len(cols[0]), self.capacity)
        columns = (self._t, self._o, self._h, self._l, self._c, self._v)
        for dst, src in zip(columns, cols, strict=True):
            dst[:keep] = src[len(src) - keep :]
        self._start, self._count = 0, keep
        self.loads += 1
        FORMING_MOVES[0] += 1
        if forming is None:
            self._fb = self._next = _NO_BUCKET
        else:
            fb, fo, fh, fl, fc, fv = forming
            self._fb, self._next = int(fb), self.timeframe.next_bucket(int(fb))
            self._fo, self._fh, self._fl, self._fc, self._fv = (
                float(fo),
                float(fh),
                float(fl),
                float(fc),
                int(fv),
            )
        self.version += 1

    # -- internals ------------------------------------------------------------------------

    def _push(self, t: int, o: float, h: float, low: float, c: float, v: int) -> None:
        if self._count < self.capacity:
            i = (self._start + self._count) % self.capacity
            self._count += 1
        else:
            i = self._start
            self._start = (self._start + 1) % self.capacity
        self._t[i], self._o[i], self._h[i], self._l[i], self._c[i], self._v[i] = t, o, h, low, c, v

    def _late_trade(self, ts_ns: int, price: float, size: int) -> None:
        """A trade older than the forming bar: fold it into the closed bar it belongs to."""
        bucket = self.timeframe.bucket(ts_ns)
        for k in range(self._count - 1, -1, -1):
            i = (self._start + k) % self.capacity
            if self._t[i] == bucket:
                self._h[i] = max(self._h[i], price)
                self._l[i] = min(self._l[i], price)
                self._v[i] += size
                return
            if self._t[i] < bucket:
                return


def common_forming_window(series_list: list[BarSeries]) -> tuple[int, int]:
    """`(lo, hi)`: a trade with `lo <= ts < hi` falls in the forming bar of every series (the
    window is empty while any series has no forming bar)."""
    lo = max(series._fb for series in series_list)
    hi = min(series._next for series in series_list)
    return lo, hi


def fold_forming(
    series_list: list[BarSeries], high: float, low: float, close: float, volume: int, count: int
) -> None:
    """Fold `count` trades that all fall in `common_forming_window` into every series at once:
    the same bars and versions as `add_trade` on each trade in turn."""
    for series in series_list:
        series.version += count
        if high > series._fh:
            series._fh = high
        if low < series._fl:
            series._fl = low
        series._fc = close
        series._fv += volume
