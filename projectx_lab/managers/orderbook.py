"""Level-2 order book of one contract, built from `GatewayDepth` per the DomType rules (§6.6).

Hot paths (`apply_depth`, `apply_trades`, `apply_quote`) touch only dicts, floats and a
preallocated tape ring: no DataFrames, no locks (one writer: the event loop that delivers
market events). DataFrames are built only by the query methods.

Book rules (the simulator's contract, docs/architecture.md):

* 6 Reset clears the book; the full book follows as 1 Ask / 2 Bid items.
* 1 Ask / 2 Bid set the level's size to `volume`; `volume` 0 removes the level.
* 3 BestAsk / 4 BestBid / 10 NewBestAsk / 9 NewBestBid set that level on that side and drop
  every level on that side better than it (ghost levels never survive a new best).
* 5 Trade / 11 Fill are prints (`last_print`), 7 Low / 8 High session notifications; neither
  changes the book. 0 Unknown and unknown types are ignored (counted in `ignored_items`).
* After each batch a crossed book (best bid ≥ best ask) is uncrossed in favour of the side whose
  top was set last: the other side's crossing levels are stale and are dropped.

Memory is bounded: each side keeps at most `max_levels` levels plus a small slack (the levels
farthest from the top are trimmed), the tape is a preallocated numpy ring of `max_trades`
trades (values, no per-trade objects), and iceberg tracking holds at most `2 × max_levels`
levels per side.

Timestamps are kept as the wire strings' bytes until asked for; they are parsed then with
`ticks.parse_ts_ns` (per-second prefix cache).
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import polars as pl

from projectx_lab.managers import book_analytics as ba
from projectx_lab.managers.book_analytics import LevelTrack
from projectx_lab.managers.ticks import Tick, parse_ts_ns

log = logging.getLogger(__name__)

INF = math.inf
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STAMP_BYTES = 48  # wire timestamps are 33 characters (`2026-10-02T14:31:05.1234567+00:00`)
_BOOK_TYPES = frozenset((1, 2, 3, 4, 9, 10))
_PRICED_TYPES = frozenset((5, 7, 8, 11))

UpdateCallback = Callable[["OrderBook"], None]
TradeCallback = Callable[["OrderBook", Sequence[Mapping[str, Any]]], None]


def _is_number(x: object) -> bool:
    """A finite int/float that is not a bool (JSON numbers after decoding)."""
    t = type(x)
    return (t is float or t is int) and x - x == 0  # type: ignore[operator]


def _as_batch(items: object, what: str) -> Sequence[Mapping[str, Any]]:
    if type(items) is list or type(items) is tuple:
        return items  # type: ignore[return-value]
    if isinstance(items, Mapping):
        return (items,)
    raise TypeError(f"{what} data must be a list of dicts or one dict, got {type(items).__name__}")


def _bad(stream: str, i: int, field: str, want: str, got: object) -> ValueError:
    return ValueError(f"{stream} item {i}: {field!r} must be {want}, got {got!r}")


def _check_depth(items: Sequence[Mapping[str, Any]]) -> None:
    """Raise ValueError/TypeError naming the first bad item; the book is untouched then."""
    for i, it in enumerate(items):
        if not isinstance(it, Mapping):
            raise TypeError(f"GatewayDepth item {i} must be a dict, got {type(it).__name__}")
        t = it.get("type")
        if type(t) is not int:
            raise _bad("GatewayDepth", i, "type", "an int DomType", t)
        if t in _BOOK_TYPES:
            v = it.get("volume")
        elif t in _PRICED_TYPES:
            v = it.get("volume", 0)  # optional on prints and session notifications
        else:
            continue
        if not _is_number(v) or v < 0:
            raise _bad("GatewayDepth", i, "volume", "a number >= 0", v)
        if not _is_number(it.get("price")):
            raise _bad("GatewayDepth", i, "price", "a finite number", it.get("price"))


def _check_trades(items: Sequence[Mapping[str, Any]]) -> None:
    """Raise naming the first malformed trade; nothing is recorded then."""
    for i, it in enumerate(items):
        if not isinstance(it, Mapping):
            raise TypeError(f"GatewayTrade item {i} must be a dict, got {type(it).__name__}")
        p = it.get("price")
        v = it.get("volume")
        s = it.get("type")
        ts = it.get("timestamp")
        if not _is_number(p):
            raise _bad("GatewayTrade", i, "price", "a finite number", p)
        if not _is_number(v) or v < 0:
            raise _bad("GatewayTrade", i, "volume", "a number >= 0", v)
        if type(s) is not int or (s != 0 and s != 1):
            raise _bad("GatewayTrade", i, "type", "0 (buy) or 1 (sell)", s)
        if type(ts) is not str:
            raise _bad("GatewayTrade", i, "timestamp", "an ISO-8601 string", ts)


def _positive_int(name: str, value: object) -> int:
    if type(value) is not int or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class BookSnapshot(dict):
    """`get_orderbook_snapshot()`'s result: a plain dict with a one-line repr and an HTML
    ladder in Jupyter (rendered by `projectx_lab.notebook.reprs`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        from projectx_lab.notebook.reprs import book_snapshot_text

        return book_snapshot_text(self)

    def _repr_html_(self) -> str:
        from projectx_lab.notebook.reprs import book_snapshot_html

        return book_snapshot_html(self)


class OrderBook:
    """Live level-2 book, trade tape and book analytics for one contract."""

    __slots__ = (
        "_ask_dirty",
        "_ask_lo",
        "_bid_dirty",
        "_bid_hi",
        "_decimals",
        "_ice_asks",
        "_ice_bids",
        "_ice_cap",
        "_quote",
        "_tape_n",
        "_tp",
        "_trim_at",
        "_ts",
        "_tt",
        "_tv",
        "asks",
        "bids",
        "contract_id",
        "depth_items",
        "feed",
        "iceberg_tolerance",
        "ignored_items",
        "last_print",
        "last_update",
        "max_levels",
        "max_trades",
        "on_trade",
        "on_update",
        "session_high",
        "session_low",
        "tick_size",
    )

    def __init__(
        self,
        contract_id: str,
        tick_size: float,
        *,
        max_levels: int = 200,
        max_trades: int = 50_000,
        iceberg_tolerance: float = 0.3,
    ) -> None:
        if not isinstance(contract_id, str) or not contract_id:
            raise ValueError(f"contract_id must be a non-empty string, got {contract_id!r}")
        if not _is_number(tick_size) or tick_size <= 0:
            raise ValueError(f"tick_size must be a finite number > 0, got {tick_size!r}")
        if not _is_number(iceberg_tolerance) or not 0 <= iceberg_tolerance < 1:
            raise ValueError(f"iceberg_tolerance must be in [0, 1), got {iceberg_tolerance!r}")
        self.feed: Any = None  # the BookFeed keeping this book live, when there is one
        self.contract_id = contract_id
        self.tick_size = float(tick_size)
        self.max_levels = _positive_int("max_levels", max_levels)
        self.max_trades = _positive_int("max_trades", max_trades)
        self.iceberg_tolerance = float(iceberg_tolerance)
        self._decimals = max(0, -int(Decimal(str(self.tick_size)).normalize().as_tuple().exponent))
        self._trim_at = max_levels + max(8, max_levels // 4)
        self._ice_cap = 2 * max_levels
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self._bid_hi = -INF  # upper bound of the best bid; exact unless _bid_dirty
        self._ask_lo = INF  # lower bound of the best ask; exact unless _ask_dirty
        self._bid_dirty = False
        self._ask_dirty = False
        self._ice_bids: dict[float, LevelTrack] = {}
        self._ice_asks: dict[float, LevelTrack] = {}
        # the tape ring holds values, not per-trade objects: its memory is committed here
        # (np.full writes every page) and long-lived trades pin no allocator pools
        self._tp = np.full(max_trades, 0.0)
        self._tv = np.full(max_trades, 0, dtype=np.int64)
        self._ts = np.full(max_trades, 0, dtype=np.int8)
        self._tt = np.full(max_trades, b"", dtype=f"S{_STAMP_BYTES}")
        self._tape_n = 0
        self._quote: dict[str, Any] = {}
        self.last_update: str | None = None
        self.last_print: tuple[float, float] | None = None
        self.session_low: float | None = None
        self.session_high: float | None = None
        self.depth_items = 0
        self.ignored_items = 0
        self.on_update: list[UpdateCallback] = []
        self.on_trade: list[TradeCallback] = []

    # -- hot paths -------------------------------------------------------------------------

    def apply_depth(self, items: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> None:
        """Apply one `GatewayDepth` batch (a list of items, or one item) and fire `on_update`
        once. A malformed item raises before anything is applied."""
        batch = _as_batch(items, "GatewayDepth")
        if not batch:
            return
        _check_depth(batch)
        bids = self.bids
        asks = self.asks
        bhi = self._bid_hi
        alo = self._ask_lo
        bdirty = self._bid_dirty
        adirty = self._ask_dirty
        ice_b = self._ice_bids
        ice_a = self._ice_asks
        tol = self.iceberg_tolerance
        top = 0  # side whose top was set last: 2 bid, 1 ask
        ignored = 0
        for it in batch:
            t = it["type"]
            if t == 2:
                p = it["price"]
                v = it["volume"]
                if ice_b and p in ice_b:
                    old = bids.get(p, 0)
                    if v > old:
                        ice_b[p].observe(old, v, tol, it.get("timestamp"))
                if v > 0:
                    bids[p] = v
                    if p >= bhi:
                        bhi = p
                        bdirty = False
                        top = 2
                    elif p >= alo:
                        top = 2
                elif p in bids:
                    del bids[p]
                    if p == bhi:
                        bdirty = True
            elif t == 1:
                p = it["price"]
                v = it["volume"]
                if ice_a and p in ice_a:
                    old = asks.get(p, 0)
                    if v > old:
                        ice_a[p].observe(old, v, tol, it.get("timestamp"))
                if v > 0:
                    asks[p] = v
                    if p <= alo:
                        alo = p
                        adirty = False
                        top = 1
                    elif p <= bhi:
                        top = 1
                elif p in asks:
                    del asks[p]
                    if p == alo:
                        adirty = True
            elif t == 4 or t == 9:
                p = it["price"]
                v = it["volume"]
                if ice_b and p in ice_b:
                    old = bids.get(p, 0)
                    if v > old:
                        ice_b[p].observe(old, v, tol, it.get("timestamp"))
                if bhi > p:
                    for k in [k for k in bids if k > p]:
                        del bids[k]
                if v > 0:
                    bids[p] = v
                    bdirty = False
                else:
                    bids.pop(p, None)
                    bdirty = True
                bhi = p
                top = 2
            elif t == 3 or t == 10:
                p = it["price"]
                v = it["volume"]
                if ice_a and p in ice_a:
                    old = asks.get(p, 0)
                    if v > old:
                        ice_a[p].observe(old, v, tol, it.get("timestamp"))
                if alo < p:
                    for k in [k for k in asks if k < p]:
                        del asks[k]
                if v > 0:
                    asks[p] = v
                    adirty = False
                else:
                    asks.pop(p, None)
                    adirty = True
                alo = p
                top = 1
            elif t == 6:
                bids.clear()
                asks.clear()
                ice_b.clear()
                ice_a.clear()
                bhi = -INF
                alo = INF
                bdirty = adirty = False
                top = 0
            elif t == 5 or t == 11:
                self.last_print = (it["price"], it.get("volume", 0))
            elif t == 7:
                self.session_low = it["price"]
            elif t == 8:
                self.session_high = it["price"]
            else:
                ignored += 1
        if bhi >= alo:  # bounds overlap: maybe crossed, settle with exact bests
            if bdirty:
                bhi = max(bids) if bids else -INF
                bdirty = False
            if adirty:
                alo = min(asks) if asks else INF
                adirty = False
            if bhi >= alo:
                if top == 1:
                    for k in [k for k in bids if k >= alo]:
                        del bids[k]
                    bhi = max(bids) if bids else -INF
                else:
                    for k in [k for k in asks if k <= bhi]:
                        del asks[k]
                    alo = min(asks) if asks else INF
        self._bid_hi = bhi
        self._ask_lo = alo
        self._bid_dirty = bdirty
        self._ask_dirty = adirty
        if len(bids) > self._trim_at:
            self._trim(bids, heapq.nlargest)
        if len(asks) > self._trim_at:
            self._trim(asks, heapq.nsmallest)
        self.depth_items += len(batch) - ignored
        self.ignored_items += ignored
        ts = batch[-1].get("timestamp")
        if type(ts) is str:
            self.last_update = ts
        for cb in self.on_update:
            try:
                cb(self)
            except Exception:
                log.exception("OrderBook %s: on_update callback failed", self.contract_id)

    def apply_trades(self, items: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> None:
        """Record one `GatewayTrade` batch on the tape ring, feed iceberg tracking, and fire
        `on_trade` once. A malformed trade raises before anything is recorded."""
        batch = _as_batch(items, "GatewayTrade")
        if not batch:
            return
        _check_trades(batch)
        tp = self._tp
        tv = self._tv
        ts = self._ts
        tt = self._tt
        cap = self.max_trades
        n = self._tape_n
        i = n % cap
        bids = self.bids
        asks = self.asks
        ice_b = self._ice_bids
        ice_a = self._ice_asks
        for it in batch:
            p = it["price"]
            v = it["volume"]
            s = it["type"]
            tp[i] = p
            tv[i] = v
            ts[i] = s
            tt[i] = it["timestamp"].encode()
            i += 1
            if i == cap:
                i = 0
            # a buy aggressor lifts the ask at p, a sell aggressor hits the bid at p
            if s == 0:
                ice = ice_a
                book = asks
            else:
                ice = ice_b
                book = bids
            track = ice.get(p)
            if track is None:
                if p not in book:
                    continue
                if len(ice) >= self._ice_cap:
                    del ice[next(iter(ice))]
                track = ice[p] = LevelTrack(max(book[p], v))
            track.traded += v
            track.total_traded += v
        self._tape_n = n + len(batch)
        for cb in self.on_trade:
            try:
                cb(self, batch)
            except Exception:
                log.exception("OrderBook %s: on_trade callback failed", self.contract_id)

    def apply_quote(self, data: Mapping[str, Any]) -> None:
        """Merge a (partial) `GatewayQuote` into `quote`; missing keys mean unchanged (gotcha 3)."""
        if not isinstance(data, Mapping):
            raise TypeError(f"GatewayQuote data must be a dict, got {type(data).__name__}")
        self._quote.update(data)

    def reset(self) -> None:
        """Clear the book (levels, bests, iceberg state, last update) before a rebuild from the
        next snapshot, e.g. on reconnect. The tape, quote and session low/high are kept."""
        self.bids.clear()
        self.asks.clear()
        self._ice_bids.clear()
        self._ice_asks.clear()
        self._bid_hi = -INF
        self._ask_lo = INF
        self._bid_dirty = self._ask_dirty = False
        self.last_update = None

    def _trim(self, side: dict[float, float], pick: Callable[..., list[float]]) -> None:
        keep = pick(self.max_levels, side)
        kept = {p: side[p] for p in keep}
        side.clear()
        side.update(kept)

    # -- top of book -----------------------------------------------------------------------

    @property
    def best_bid(self) -> float | None:
        """Highest bid price, None when the bid side is empty."""
        if self._bid_dirty:
            self._bid_hi = max(self.bids) if self.bids else -INF
            self._bid_dirty = False
        return None if self._bid_hi == -INF else self._bid_hi

    @property
    def best_ask(self) -> float | None:
        """Lowest ask price, None when the ask side is empty."""
        if self._ask_dirty:
            self._ask_lo = min(self.asks) if self.asks else INF
            self._ask_dirty = False
        return None if self._ask_lo == INF else self._ask_lo

    @property
    def spread(self) -> float | None:
        """Best ask − best bid (rounded to the tick's decimals); None unless both sides exist."""
        b, a = self.best_bid, self.best_ask
        return None if b is None or a is None else round(a - b, self._decimals)

    @property
    def mid(self) -> float | None:
        """(best bid + best ask) / 2; None unless both sides exist."""
        b, a = self.best_bid, self.best_ask
        return None if b is None or a is None else round((a + b) / 2, self._decimals + 1)

    @property
    def last_trade(self) -> Tick | None:
        """Newest trade on the tape, None before the first."""
        if not self._tape_n:
            return None
        i = (self._tape_n - 1) % self.max_trades
        return Tick(
            parse_ts_ns(self._tt[i].decode()),
            float(self._tp[i]),
            int(self._tv[i]),
            int(self._ts[i]),
            self.contract_id,
        )

    @property
    def quote(self) -> dict[str, Any]:
        """The merged quote so far (a copy)."""
        return dict(self._quote)

    @property
    def trade_count(self) -> int:
        """Trades held on the tape ring (at most `max_trades`)."""
        return min(self._tape_n, self.max_trades)

    # -- snapshots -------------------------------------------------------------------------

    def _side(self, bid: bool, levels: int | None) -> tuple[list[float], list[float]]:
        side = self.bids if bid else self.asks
        if levels is not None and (type(levels) is not int or levels < 1):
            raise ValueError(f"levels must be a positive int or None, got {levels!r}")
        n = len(side) if levels is None else min(levels, len(side))
        prices = heapq.nlargest(n, side) if bid else heapq.nsmallest(n, side)
        return prices, [side[p] for p in prices]

    def get_orderbook_bids(self, levels: int | None = 10) -> pl.DataFrame:
        """Top `levels` bids (all when None), best first: price, size, cumulative_size."""
        return ba.levels_frame(*self._side(True, levels))

    def get_orderbook_asks(self, levels: int | None = 10) -> pl.DataFrame:
        """Top `levels` asks (all when None), best first: price, size, cumulative_size."""
        return ba.levels_frame(*self._side(False, levels))

    def get_orderbook_snapshot(self, levels: int | None = 10) -> dict[str, Any]:
        """Bids/asks frames of the top `levels` plus best bid/ask, spread, mid, imbalance
        (over those levels), level counts and the last update time (UTC datetime or None)."""
        bid_side = self._side(True, levels)
        ask_side = self._side(False, levels)
        snapshot = {
            "contract_id": self.contract_id,
            "bids": ba.levels_frame(*bid_side),
            "asks": ba.levels_frame(*ask_side),
            "best_bid": self.best_bid,
            "best_ask": self.best_ask,
            "spread": self.spread,
            "mid": self.mid,
            "imbalance": ba.imbalance(bid_side[1], ask_side[1]),
            "bid_levels": len(self.bids),
            "ask_levels": len(self.asks),
            "timestamp": self._time(self.last_update),
        }
        return BookSnapshot(snapshot)

    @staticmethod
    def _time(ts: str | None) -> datetime | None:
        return None if ts is None else _EPOCH + timedelta(microseconds=parse_ts_ns(ts) // 1000)

    # -- analytics -------------------------------------------------------------------------

    def get_cumulative_depth(self, levels: int | None = 10) -> pl.DataFrame:
        """Both sides' top `levels` as side, level, price, size, cumulative_size."""
        return ba.cumulative_depth(self._side(True, levels), self._side(False, levels))

    def get_imbalance(self, levels: int | None = 5) -> float | None:
        """Order-book imbalance over the top `levels`: (bid − ask) / (bid + ask) size."""
        return ba.imbalance(self._side(True, levels)[1], self._side(False, levels)[1])

    def get_liquidity_levels(self, k: float = 2.0, levels: int | None = None) -> pl.DataFrame:
        """Levels within the top `levels` per side whose size ≥ `k` × the median level size."""
        if not _is_number(k) or k <= 0:
            raise ValueError(f"k must be a finite number > 0, got {k!r}")
        return ba.liquidity_levels(self._side(True, levels), self._side(False, levels), k)

    def _tape(self, last_n: int | None) -> tuple[list[float], list[float], list[int], list[str]]:
        """The newest `last_n` tape entries (all when None) oldest first, as copied lists."""
        if last_n is not None and (type(last_n) is not int or last_n < 1):
            raise ValueError(f"last_n must be a positive int or None, got {last_n!r}")
        held = self.trade_count
        n = held if last_n is None else min(last_n, held)
        end = self._tape_n % self.max_trades
        start = end - n
        cols = (self._tp, self._tv, self._ts, self._tt)
        if start >= 0:
            prices, volumes, sides, stamps = (c[start:end].tolist() for c in cols)
        else:
            prices, volumes, sides, stamps = (
                np.concatenate((c[start:], c[:end])).tolist() for c in cols
            )
        return prices, volumes, sides, [t.decode() for t in stamps]

    def get_recent_trades(self, last_n: int | None = 100) -> pl.DataFrame:
        """The newest `last_n` trades of the tape (all when None): timestamp (UTC), price,
        volume, side (0 buy aggressor, 1 sell)."""
        prices, volumes, sides, times = self._tape(last_n)
        return pl.DataFrame(
            {
                "timestamp": pl.Series([parse_ts_ns(t) for t in times], dtype=pl.Int64).cast(
                    pl.Datetime("ns", "UTC")
                ),
                "price": pl.Series(prices, dtype=pl.Float64),
                "volume": pl.Series(volumes, dtype=pl.Int64),
                "side": pl.Series(sides, dtype=pl.Int8),
            }
        )

    def get_volume_profile(self, bucket_ticks: int = 1, last_n: int | None = None) -> pl.DataFrame:
        """Volume by price from the tape (newest `last_n` trades, all held when None) in buckets
        of `bucket_ticks` ticks: price, buy_volume, sell_volume, total_volume, delta."""
        _positive_int("bucket_ticks", bucket_ticks)
        prices, volumes, sides, _ = self._tape(last_n)
        return ba.volume_profile(
            prices, volumes, sides, self.tick_size, self._decimals, bucket_ticks
        )

    def get_trade_flow(
        self, last_n: int | None = None, seconds: float | None = None
    ) -> dict[str, float | int | None]:
        """Market-order flow over the newest `last_n` trades and/or the last `seconds` of tape
        time (before the newest trade): trades, buy_volume, sell_volume, imbalance."""
        if seconds is not None and (not _is_number(seconds) or seconds <= 0):
            raise ValueError(f"seconds must be a finite number > 0, got {seconds!r}")
        _, volumes, sides, times = self._tape(last_n)
        if seconds is not None:
            n = ba.count_within(times, seconds)
            volumes, sides = volumes[len(volumes) - n :], sides[len(sides) - n :]
        return ba.trade_flow(volumes, sides)

    def detect_iceberg_orders(self, min_refills: int = 2) -> pl.DataFrame:
        """Levels refilled to a similar size after trades hit them at least `min_refills` times.

        Heuristic: a level becomes tracked when a trade hits it (sell aggressor → bid, buy →
        ask); its clip size is the larger of the displayed size and the trade's volume. A later
        size increase counts as a refill if trades hit the level since the previous refill and
        the new size is within `iceberg_tolerance` of the clip. Each refill adds the replenished
        size (new − old) to `hidden_volume`. Columns: side, price, refills, hidden_volume,
        clip_size, traded_volume, visible_size, last_refill (wire timestamp)."""
        _positive_int("min_refills", min_refills)
        rows = [
            (name, p, t, side.get(p, 0))
            for name, ice, side in (
                ("bid", self._ice_bids, self.bids),
                ("ask", self._ice_asks, self.asks),
            )
            for p, t in ice.items()
        ]
        return ba.iceberg_frame(rows, min_refills)

    def __repr__(self) -> str:
        return f"OrderBook({self.contract_id!r}, bid={self.best_bid}, ask={self.best_ask})"
