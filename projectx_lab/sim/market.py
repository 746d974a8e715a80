"""`MarketModel`: one contract's seeded tape, bars, depth book and quote as pure functions of time.

History and live are one series: bars aggregate exactly what `trades()` returns. Generated days
and hours sit in bounded LRU caches; minute bars come from day skeletons without building trades.
"""

from __future__ import annotations

import math
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Generic, TypeVar

import numpy as np

from .bars import Atoms, Bar, BarArrays, Buckets, aggregate
from .book import Book, build_book
from .catalog import ContractSpec
from .config import SimConfig
from .tape import (
    CHUNK_MINUTES,
    CHUNK_NS,
    CHUNKS_PER_DAY,
    DAY_NS,
    MINUTE_NS,
    MINUTES_PER_DAY,
    NS,
    Chunk,
    DailyWalk,
    DaySkeleton,
    TapeParams,
    Trades,
    make_chunk,
    make_day,
)

__all__ = ["Bar", "Book", "MarketModel", "Quote", "Trades"]


K = TypeVar("K")
V = TypeVar("V")


class _Lru(Generic[K, V]):
    """Bounded least-recently-used map filled by a factory."""

    def __init__(self, capacity: int, factory: Callable[[K], V]) -> None:
        if capacity < 1:
            raise ValueError(f"cache capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self._factory = factory
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V:
        value = self._data.get(key)
        if value is None:
            value = self._factory(key)
            self._data[key] = value
            if len(self._data) > self._capacity:
                self._data.popitem(last=False)
        else:
            self._data.move_to_end(key)
        return value


@dataclass(frozen=True, slots=True)
class Quote:
    """Top of book, last trade and UTC-day session stats at one instant (prices in ticks)."""

    ts_ns: int
    last_ts: int | None
    last: int | None
    bid: int
    ask: int
    open: int | None
    high: int | None
    low: int | None
    volume: int  # contracts traded since 00:00 UTC
    prev_close: int | None  # last trade before 00:00 UTC

    @property
    def change(self) -> int | None:
        if self.last is None or self.prev_close is None:
            return None
        return self.last - self.prev_close

    @property
    def change_percent(self) -> float | None:
        if self.change is None or not self.prev_close:
            return None
        return 100.0 * self.change / self.prev_close

    def fields(self, spec: ContractSpec) -> dict[str, float | int]:
        """GatewayQuote price/volume fields as wire numbers; unknown values are left out."""
        out: dict[str, float | int] = {
            "bestBid": spec.to_price(self.bid),
            "bestAsk": spec.to_price(self.ask),
            "volume": self.volume,
        }
        for name, ticks in (
            ("lastPrice", self.last),
            ("open", self.open),
            ("high", self.high),
            ("low", self.low),
            ("change", self.change),
        ):
            if ticks is not None:
                out[name] = spec.to_price(ticks)
        if self.change_percent is not None:
            out["changePercent"] = round(self.change_percent, 4)
        return out


class MarketModel:
    """Seeded market of one contract: trades, bars, book and quotes for any simulated time.

    `start_ns` is the simulated clock start; history exists from 00:00 UTC `history_days` before
    it (default: `config.start`, else the wall clock at construction).
    """

    def __init__(
        self,
        spec: ContractSpec,
        seed: int,
        config: SimConfig,
        *,
        start_ns: int | None = None,
        day_cache: int = 512,
        chunk_cache: int = 48,
    ) -> None:
        if not config.trade_rate > 0 or not math.isfinite(config.trade_rate):
            raise ValueError(f"trade_rate must be a positive number, got {config.trade_rate!r}")
        if config.book_levels < 1 or config.book_interval_ms < 1 or config.history_days < 0:
            raise ValueError("book_levels and book_interval_ms must be >= 1, history_days >= 0")
        self.spec = spec
        self.config = config
        product_key = zlib.crc32(spec.root.encode())
        self._params = TapeParams(
            seed=seed % (1 << 64),
            product_key=product_key,
            tick=float(spec.tick_size),
            ref_price=float(spec.ref_price),
            annual_vol=spec.annual_vol,
            trade_rate=float(config.trade_rate),
        )
        self._book_key = (self._params.seed * 0x100000001B3 + product_key) & ((1 << 64) - 1)
        self._interval_ns = config.book_interval_ms * 1_000_000
        if start_ns is None:
            start = config.start
            if start is not None and start.tzinfo is None:
                start = start.replace(tzinfo=UTC)
            start_ns = int(start.timestamp()) * NS if start is not None else time.time_ns()
        self.history_start_ns = (start_ns // DAY_NS - config.history_days) * DAY_NS
        self._walk = DailyWalk(self._params)
        self._days: _Lru[int, DaySkeleton] = _Lru(day_cache, self._make_day)
        self._chunks: _Lru[int, Chunk] = _Lru(chunk_cache, self._make_chunk)

    # --- generation -------------------------------------------------------------------------

    def _make_day(self, day: int) -> DaySkeleton:
        opens = self._walk.opens(day, day + 1)
        return make_day(self._params, day, float(opens[0]), float(opens[1]))

    def _make_chunk(self, chunk: int) -> Chunk:
        return make_chunk(self._params, self._days.get(chunk // CHUNKS_PER_DAY), chunk)

    # --- tape -------------------------------------------------------------------------------

    def trades(self, start_ns: int, end_ns: int) -> Trades:
        """Trades with start_ns < ts <= end_ns, in time order."""
        if end_ns < start_ns:
            raise ValueError(f"end ({end_ns}) is before start ({start_ns})")
        lo = max(start_ns, self.history_start_ns - 1)
        if end_ns <= lo:
            return Trades.empty()
        return Trades.concat(
            [
                self._chunks.get(chunk).trades.window(lo, end_ns)
                for chunk in range((lo + 1) // CHUNK_NS, end_ns // CHUNK_NS + 1)
            ]
        )

    def _last(self, ts_ns: int) -> tuple[Chunk, int] | None:
        """Chunk and index of the last trade at or before ts_ns."""
        if ts_ns < self.history_start_ns:
            return None
        chunk_id = ts_ns // CHUNK_NS
        chunk = self._chunks.get(chunk_id)
        i = int(np.searchsorted(chunk.trades.ts_ns, ts_ns, side="right")) - 1
        if i >= 0:
            return chunk, i
        # Nothing earlier in this hour: find the last busy minute before it from the skeletons.
        minute = chunk_id * CHUNK_MINUTES
        first_day = self.history_start_ns // DAY_NS
        for day in range(minute // MINUTES_PER_DAY, first_day - 1, -1):
            counts = self._days.get(day).n[: minute - day * MINUTES_PER_DAY]
            busy = np.flatnonzero(counts)
            if busy.size:
                prev = self._chunks.get((day * MINUTES_PER_DAY + int(busy[-1])) // CHUNK_MINUTES)
                return prev, len(prev.trades) - 1
            minute = day * MINUTES_PER_DAY
        return None

    def last_trade(self, ts_ns: int) -> tuple[int, int] | None:
        """(ts_ns, price_ticks) of the last trade at or before ts_ns."""
        found = self._last(ts_ns)
        if found is None:
            return None
        chunk, i = found
        return int(chunk.trades.ts_ns[i]), int(chunk.trades.price[i])

    # --- book -------------------------------------------------------------------------------

    def _top(self, ts_ns: int) -> tuple[int, int]:
        """Best bid and ask in force at ts_ns, as left by the last trade."""
        found = self._last(ts_ns)
        if found is None:
            day = max(ts_ns, 0) // DAY_NS
            mid = max(round(math.exp(float(self._walk.opens(day, day)[0])) / self._params.tick), 2)
            return mid - 1, mid
        chunk, i = found
        price = int(chunk.trades.price[i])
        spread = int(chunk.spread[i])
        if chunk.trades.side[i] == 0:
            return price - spread, price
        return price, price + spread

    def book(self, ts_ns: int) -> Book:
        """Depth book in force at ts_ns: best prices from the last trade, sizes per grid step."""
        bid, ask = self._top(ts_ns)
        return build_book(
            self._book_key, ts_ns // self._interval_ns, bid, ask, self.config.book_levels
        )

    def book_times(self, start_ns: int, end_ns: int) -> list[int]:
        """Book resample grid points in (start_ns, end_ns]."""
        step = self._interval_ns
        return list(range((start_ns // step + 1) * step, end_ns + 1, step))

    # --- quote ------------------------------------------------------------------------------

    def quote_changed(self, start_ns: int, end_ns: int) -> bool:
        """Whether the quote moves in (start_ns, end_ns] without a trade: never for this model
        (its quote follows its trades); a replayed recording's can."""
        return False

    def quote(self, ts_ns: int) -> Quote:
        """Last trade, top of book and UTC-day open/high/low/volume at ts_ns."""
        bid, ask = self._top(ts_ns)
        day_start = ts_ns - ts_ns % DAY_NS
        open_ = high = low = None
        volume = 0
        if day_start >= self.history_start_ns:
            minute = (ts_ns - day_start) // MINUTE_NS
            skeleton = self._days.get(day_start // DAY_NS)
            busy = np.flatnonzero(skeleton.n[:minute])
            if busy.size:
                open_ = int(skeleton.o[busy[0]])
                high = int(skeleton.h[busy].max())
                low = int(skeleton.l[busy].min())
                volume = int(skeleton.v[busy].sum(dtype=np.int64))
            now = self.trades(day_start + minute * MINUTE_NS - 1, ts_ns)
            if len(now):
                open_ = int(now.price[0]) if open_ is None else open_
                high = max(int(now.price.max()), high if high is not None else -1)
                low = min(int(now.price.min()), low if low is not None else 1 << 62)
                volume += int(now.size.sum(dtype=np.int64))
        last = self.last_trade(ts_ns)
        prev = self.last_trade(day_start - 1)
        return Quote(
            ts_ns=ts_ns,
            last_ts=last[0] if last else None,
            last=last[1] if last else None,
            bid=bid,
            ask=ask,
            open=open_,
            high=high,
            low=low,
            volume=volume,
            prev_close=prev[1] if prev else None,
        )

    # --- bars -------------------------------------------------------------------------------

    def bars(
        self,
        unit: int,
        unit_number: int,
        start_ns: int,
        end_ns: int,
        limit: int,
        include_partial: bool,
        now_ns: int,
    ) -> list[Bar]:
        """Bars opening in [start_ns, end_ns) and not after now_ns, newest first, at most `limit`.

        Only bars with trades; the bar containing now_ns (aggregating trades up to now_ns) only
        when include_partial.
        """
        buckets = Buckets(unit, unit_number)
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        top = min(end_ns - 1, now_ns)
        if top < start_ns or top < self.history_start_ns:
            return []
        hi_id = buckets.id_of(top)
        if hi_id == buckets.id_of(now_ns) and not include_partial:
            hi_id -= 1
        lo_id = buckets.id_of(start_ns)
        if buckets.start_of(lo_id) < start_ns:
            lo_id += 1
        lo_id = max(lo_id, buckets.id_of(self.history_start_ns))
        if lo_id > hi_id:
            return []

        # Walk back from the newest bar, doubling the span, until `limit` bars or the start.
        parts: list[BarArrays] = []
        count, span = 0, limit
        upper_ns = min(buckets.start_of(hi_id + 1), now_ns + 1)
        while True:
            first_id = max(lo_id, hi_id - span + 1)
            lower_ns = buckets.start_of(first_id)
            part = aggregate(self._atoms(buckets, lower_ns, upper_ns), buckets)
            parts.append(part)
            count += len(part)
            if count >= limit or first_id == lo_id:
                break
            hi_id, upper_ns, span = first_id - 1, lower_ns, span * 2
        return BarArrays.concat(parts[::-1]).newest_first(limit)

    def _atoms(self, buckets: Buckets, lower_ns: int, upper_ns: int) -> Atoms:
        """Pieces covering trades in [lower_ns, upper_ns): minute aggregates where possible."""
        lower_ns = max(lower_ns, self.history_start_ns)
        if upper_ns <= lower_ns:
            return Atoms.concat([])
        if not buckets.minute_based:
            return _trade_atoms(self.trades(lower_ns - 1, upper_ns - 1))
        whole_end = upper_ns - upper_ns % MINUTE_NS
        parts = [self._minute_atoms(lower_ns // MINUTE_NS, whole_end // MINUTE_NS)]
        if upper_ns > whole_end:
            parts.append(_trade_atoms(self.trades(max(whole_end, lower_ns) - 1, upper_ns - 1)))
        return Atoms.concat(parts)

    def _minute_atoms(self, first_minute: int, end_minute: int) -> Atoms:
        """Skeleton aggregates of the busy minutes in [first_minute, end_minute)."""
        parts: list[Atoms] = []
        for day in range(first_minute // MINUTES_PER_DAY, -(-end_minute // MINUTES_PER_DAY)):
            base = day * MINUTES_PER_DAY
            lo, hi = max(first_minute - base, 0), min(end_minute - base, MINUTES_PER_DAY)
            if hi <= lo:
                continue
            sk = self._days.get(day)
            idx = np.flatnonzero(sk.n[lo:hi]) + lo
            parts.append(
                Atoms(
                    t=(base + idx) * MINUTE_NS,
                    o=sk.o[idx].astype(np.int64),
                    h=sk.h[idx].astype(np.int64),
                    l=sk.l[idx].astype(np.int64),
                    c=sk.c[idx].astype(np.int64),
                    v=sk.v[idx].astype(np.int64),
                )
            )
        return Atoms.concat(parts)


def _trade_atoms(trades: Trades) -> Atoms:
    price = trades.price
    return Atoms(trades.ts_ns, price, price, price, price, trades.size.astype(np.int64))
