"""Seeded tape generation: daily price walk, per-minute day skeletons and per-hour trade chunks.

Three levels, each a pure function of (seed, product, index) via counter-based seeding:
the daily open walk (mean-reverting log price), a day skeleton fixing every minute's trade count,
OHLC and volume, and hour chunks holding the individual trades, built to reproduce their minutes'
skeleton exactly. Minute bars therefore never need the trades, and trades always agree with bars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Self

import numpy as np

NS = 1_000_000_000
MINUTE_NS = 60 * NS
DAY_NS = 86_400 * NS
MINUTES_PER_DAY = 1440
CHUNK_MINUTES = 60
CHUNK_NS = CHUNK_MINUTES * MINUTE_NS
CHUNKS_PER_DAY = MINUTES_PER_DAY // CHUNK_MINUTES

_KIND_WALK, _KIND_DAY, _KIND_CHUNK = 1, 2, 3
_WALK_BLOCK = 4096  # days generated per daily-walk block
_HALF_LIFE_DAYS = 365.0  # mean reversion of the daily log price towards the reference level
_DAYS_PER_YEAR = 365.25  # the simulated market trades every calendar day
_MAX_SLOPE = 2.0  # ticks per trade the tape may drift towards a minute's high or low


def _season() -> np.ndarray:
    """Relative trade activity per UTC minute (mean 1): Asia quiet, Europe medium, US busy."""
    hours = np.arange(MINUTES_PER_DAY) / 60.0
    act = np.full(MINUTES_PER_DAY, 0.35)
    act[(hours >= 7.0) & (hours < 13.5)] = 0.8
    act[(hours >= 7.0) & (hours < 8.0)] = 1.2
    us = (hours >= 13.5) & (hours < 20.0)
    act[us] = 1.4 + 2.2 * np.exp(-(hours[us] - 13.5) / 0.6)  # cash open spike, decaying
    act[(hours >= 16.5) & (hours < 18.5)] = 1.1  # lunch lull
    act[(hours >= 19.5) & (hours < 20.0)] = 2.2  # into the close
    act[(hours >= 20.0) & (hours < 21.0)] = 0.5
    act[(hours >= 21.0) & (hours < 22.0)] = 0.05  # daily maintenance window: nearly silent
    act[(hours >= 22.0) & (hours < 23.0)] = 0.5  # Asia open
    act /= act.mean()
    act.setflags(write=False)
    return act


SEASON = _season()


@dataclass(frozen=True, slots=True)
class Trades:
    """Time-ordered trade prints: ts_ns int64, price int64 ticks, size int32, side int8.

    side 0 = buy aggressor (printed at the ask), 1 = sell aggressor (at the bid).
    Arrays may be read-only views into the model's cache.
    """

    ts_ns: np.ndarray
    price: np.ndarray
    size: np.ndarray
    side: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_ns)

    @classmethod
    def empty(cls) -> Self:
        return cls(
            np.empty(0, np.int64),
            np.empty(0, np.int64),
            np.empty(0, np.int32),
            np.empty(0, np.int8),
        )

    @classmethod
    def concat(cls, parts: list[Self]) -> Self:
        """Join consecutive, time-ordered pieces (no copy for a single piece)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        return cls(
            np.concatenate([p.ts_ns for p in parts]),
            np.concatenate([p.price for p in parts]),
            np.concatenate([p.size for p in parts]),
            np.concatenate([p.side for p in parts]),
        )

    def window(self, start_ns: int, end_ns: int) -> Self:
        """Trades with start_ns < ts <= end_ns (views, no copy)."""
        lo = int(np.searchsorted(self.ts_ns, start_ns, side="right"))
        hi = int(np.searchsorted(self.ts_ns, end_ns, side="right"))
        return type(self)(self.ts_ns[lo:hi], self.price[lo:hi], self.size[lo:hi], self.side[lo:hi])


@dataclass(frozen=True, slots=True)
class TapeParams:
    """What shapes one product's tape: seed key, tick size, reference level, vol, trade rate."""

    seed: int
    product_key: int
    tick: float
    ref_price: float
    annual_vol: float
    trade_rate: float

    @property
    def daily_vol(self) -> float:
        return self.annual_vol / math.sqrt(_DAYS_PER_YEAR)


def rng_for(params: TapeParams, kind: int, index: int) -> np.random.Generator:
    """Counter-based generator for one (seed, product, kind, index) cell."""
    entropy = [params.seed, params.product_key, kind, index + (1 << 40)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


class DailyWalk:
    """Log price at each UTC day's open: an Ornstein-Uhlenbeck walk anchored at 1970-01-01."""

    def __init__(self, params: TapeParams) -> None:
        self._params = params
        self._mean = math.log(params.ref_price)
        self._opens = np.array([self._mean])

    def opens(self, first_day: int, last_day: int) -> np.ndarray:
        """Log opens for days first_day..last_day inclusive (days since the epoch, >= 0)."""
        if first_day < 0:
            raise ValueError("the simulated market starts on 1970-01-01")
        while len(self._opens) <= last_day:
            self._extend()
        return self._opens[first_day : last_day + 1]

    def _extend(self) -> None:
        block = (len(self._opens) - 1) // _WALK_BLOCK
        eps = rng_for(self._params, _KIND_WALK, block).standard_normal(_WALK_BLOCK)
        kappa = math.log(2.0) / _HALF_LIFE_DAYS
        a = math.exp(-kappa)
        b = self._params.daily_vol * math.sqrt((1.0 - a * a) / (2.0 * kappa))
        k = np.arange(1, _WALK_BLOCK + 1)
        # Y_k = a^k (Y_0 + b * sum_{j<k} a^-(j+1) eps_j): the OU recursion in closed form.
        y0 = self._opens[-1] - self._mean
        path = a**k * (y0 + b * np.cumsum(eps * a ** -(k.astype(float))))
        self._opens = np.concatenate([self._opens, self._mean + path])


@dataclass(frozen=True, slots=True)
class DaySkeleton:
    """Per-minute plan of one UTC day: trade count, OHLC ticks, volume, noise scale, spread odds."""

    n: np.ndarray  # int32 trades per minute
    o: np.ndarray  # int32 ticks
    h: np.ndarray
    l: np.ndarray  # noqa: E741
    c: np.ndarray
    v: np.ndarray  # int32 contracts per minute
    sigma: np.ndarray  # float32 price noise per minute, ticks
    wide: np.ndarray  # float32 probability that the spread is 2 ticks


def make_day(params: TapeParams, day: int, open_log: float, next_open_log: float) -> DaySkeleton:
    """Plan day `day`: activity with bursts, a Brownian bridge between the two daily opens."""
    rng = rng_for(params, _KIND_DAY, day)
    m = MINUTES_PER_DAY
    burst = np.ones(m)
    for _ in range(rng.poisson(3.0)):
        start = int(rng.integers(0, m))
        length = 1 + int(rng.exponential(8.0))
        burst[start : start + length] += rng.uniform(1.0, 4.0)
    act = SEASON * burst
    act *= math.exp(rng.normal(0.0, 0.25) - 0.25**2 / 2) / act.mean()
    n = rng.poisson(params.trade_rate * 60.0 * act)

    weight = act / act.sum()  # variance runs on the trade clock
    steps = rng.standard_normal(m) * np.sqrt(weight) * params.daily_vol
    walk = np.concatenate([[0.0], np.cumsum(steps)])
    clock = np.concatenate([[0.0], np.cumsum(weight)])
    log_mid = open_log + walk - clock * (walk[-1] - (next_open_log - open_log))
    mid = np.exp(log_mid) / params.tick  # ticks, m + 1 points

    o = np.maximum(np.rint(mid[:-1] + rng.uniform(-0.5, 0.5, m)), 1.0)
    c = np.maximum(np.rint(mid[1:] + rng.uniform(-0.5, 0.5, m)), 1.0)
    c = np.where(n == 1, o, c)
    sigma = params.daily_vol * np.sqrt(weight) * mid[:-1]
    # A thin minute only reaches the extremes its trades can walk to at _MAX_SLOPE ticks each.
    reach = np.maximum(np.floor((_MAX_SLOPE * (n - 1) - np.abs(c - o)) / 4), 0.0)
    up = np.minimum(np.floor(np.abs(rng.standard_normal(m)) * 0.6 * sigma), reach)
    down = np.minimum(np.floor(np.abs(rng.standard_normal(m)) * 0.6 * sigma), reach)
    room = n >= 3  # an extra high and an extra low each need an interior trade
    one_only = n == 3
    coin = rng.random(m) < 0.5
    up = np.where(room & ~(one_only & coin), up, 0.0)
    down = np.where(room & ~(one_only & ~coin), down, 0.0)
    h = np.maximum(o, c) + up
    low = np.maximum(np.minimum(o, c) - down, 1.0)
    extra = rng.negative_binomial(np.maximum(n, 1) * 0.35, 0.3)
    v = np.where(n > 0, n + extra, 0)
    wide = 0.03 + 0.08 * (burst > 1.0)

    def frozen(values: np.ndarray, dtype: type) -> np.ndarray:
        out = values.astype(dtype)
        out.setflags(write=False)
        return out

    return DaySkeleton(
        n=frozen(n, np.int32),
        o=frozen(o, np.int32),
        h=frozen(h, np.int32),
        l=frozen(low, np.int32),
        c=frozen(c, np.int32),
        v=frozen(v, np.int32),
        sigma=frozen(sigma, np.float32),
        wide=frozen(wide, np.float32),
    )


@dataclass(frozen=True, slots=True)
class Chunk:
    """One hour of trades plus the spread quoted with each trade (for the book)."""

    trades: Trades
    spread: np.ndarray  # int8 ticks between bid and ask right after each trade


def _first_per_group(candidates: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Indices of the first True of `candidates` in each group (groups are sorted)."""
    idx = np.flatnonzero(candidates)
    _, first = np.unique(group[idx], return_index=True)
    return idx[first]


def make_chunk(params: TapeParams, skeleton: DaySkeleton, chunk: int) -> Chunk:
    """Trades of hour `chunk` (hours since the epoch) reproducing the skeleton's minutes exactly."""
    m0 = (chunk % CHUNKS_PER_DAY) * CHUNK_MINUTES
    sl = slice(m0, m0 + CHUNK_MINUTES)
    n = skeleton.n[sl].astype(np.int64)
    total = int(n.sum())
    if total == 0:
        return Chunk(Trades.empty(), np.empty(0, np.int8))
    rng = rng_for(params, _KIND_CHUNK, chunk)
    minute = np.repeat(np.arange(CHUNK_MINUTES), n)  # minute of each trade within the chunk
    first = np.cumsum(n) - n
    last = first + n - 1
    k = np.arange(total) - first[minute]
    nk = n[minute]

    # Times: uniform inside the minute, strictly increasing, never on a minute boundary.
    base = chunk * CHUNK_NS + minute * MINUTE_NS + 1
    ts = base + (rng.random(total) * (MINUTE_NS - nk - 1)).astype(np.int64)
    ts.sort()
    ramp = np.arange(total)
    ts = np.maximum.accumulate(ts - ramp) + ramp

    # Prices: a Brownian bridge from open to close picks where the minute peaks and bottoms;
    # the path is then re-bridged through those extremes, so the tape walks to the minute's
    # high and low instead of printing them as lone spikes, and clipped to [low, high].
    o, c = skeleton.o[sl].astype(np.float64), skeleton.c[sl].astype(np.float64)
    hi, lo = skeleton.h[sl].astype(np.float64), skeleton.l[sl].astype(np.float64)
    noise = np.clip(rng.standard_normal(total), -3.0, 3.0)  # no 4-sigma leaps in one print
    steps = noise * (skeleton.sigma[sl][minute] / np.sqrt(nk))
    steps[k == 0] = 0.0
    walk = np.cumsum(steps)
    walk -= walk[first[minute]]
    frac = k / np.maximum(nk - 1, 1)
    q = o[minute] + (c - o)[minute] * frac + walk - frac * walk[last[minute]]
    interior = (k > 0) & (k < nk - 1)
    need_up = (hi > np.maximum(o, c))[minute] & interior
    need_down = (lo < np.minimum(o, c))[minute] & interior
    top = _group_extreme(q, need_up, minute, np.maximum)
    need_down[top] = False
    bottom = _group_extreme(q, need_down, minute, np.minimum)
    level = np.full(total, np.nan)
    busy = n > 0
    level[first[busy]], level[last[busy]] = o[busy], c[busy]
    kt, kb = np.full(CHUNK_MINUTES, -1), np.full(CHUNK_MINUTES, -1)
    kt[minute[top]], kb[minute[bottom]] = k[top], k[bottom]
    for pos, value, has in _place_extremes(n, o, c, hi, lo, kt, kb):
        level[first[has] + pos[has]] = value[has]
    q = _bridge_through(level, walk)
    price = np.clip(np.rint(q), lo[minute], hi[minute]).astype(np.int64)

    # Aggressor side follows the move; unchanged prints lean to the side of the last move.
    move = np.sign(np.diff(price, prepend=price[0]))
    marks = np.where(move != 0, ramp, 0)
    last_move = move[np.maximum.accumulate(marks)]
    p_buy = np.where(move > 0, 0.95, np.where(move < 0, 0.05, 0.5 + 0.25 * last_move))
    side = (rng.random(total) >= p_buy).astype(np.int8)

    size = _sizes(rng, skeleton.v[sl].astype(np.int64) - n, first, last, total)
    spread = (1 + (rng.random(total) < skeleton.wide[sl][minute])).astype(np.int8)
    for arr in (ts, price, size, side, spread):
        arr.setflags(write=False)
    return Chunk(Trades(ts, price, size, side), spread)


def _place_extremes(
    n: np.ndarray,
    o: np.ndarray,
    c: np.ndarray,
    hi: np.ndarray,
    lo: np.ndarray,
    kt: np.ndarray,
    kb: np.ndarray,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]:
    """Where each minute reaches its high and low (trade index in the minute, level, present).

    The first bridge's peak (kt) and bottom (kb, -1 when absent) set the order and, where the
    minute has the trades for it, roughly the place; the places are moved so that the straight
    legs open -> first extreme -> second extreme -> close move at most _MAX_SLOPE ticks a trade,
    or, in minutes too thin for that, share the trades in proportion to the legs' lengths.
    """
    has_t, has_b = kt >= 0, kb >= 0
    two = has_t & has_b
    top_first = has_t & (~has_b | (kt < kb))
    v1 = np.where(top_first, hi, lo)  # the first extreme reached (if any)
    v2 = np.where(top_first, lo, hi)  # the second one (minutes with two)
    k1, k2 = np.where(two, np.minimum(kt, kb), np.maximum(kt, kb)), np.maximum(kt, kb)
    d1 = np.abs(v1 - o)
    d2 = np.where(two, np.abs(v2 - v1), np.abs(c - v1))
    d3 = np.where(two, np.abs(c - v2), 0.0)
    steps = n - 1
    a1, a2, a3 = (np.maximum(np.ceil(d / _MAX_SLOPE), 1) for d in (d1, d2, d3))
    a3 = np.where(two, a3, 0)
    fits = a1 + a2 + a3 <= steps
    legs = np.maximum(d1 + d2 + d3, 1.0)
    p1 = np.rint(steps * d1 / legs)
    p2 = np.rint(steps * (d1 + d2) / legs)
    last1 = steps - 1 - two  # a second extreme needs an interior trade after the first
    k1 = np.where(fits, np.clip(k1, a1, steps - a2 - a3), np.clip(p1, 1, np.maximum(last1, 1)))
    k2 = np.where(
        fits, np.clip(k2, k1 + a2, steps - a3), np.clip(p2, k1 + 1, np.maximum(steps - 1, 1))
    )
    has1 = has_t | has_b
    return (k1.astype(np.int64), v1, has1), (k2.astype(np.int64), v2, two)


def _bridge_through(level: np.ndarray, walk: np.ndarray) -> np.ndarray:
    """The path through every set (non-NaN) `level`: straight lines between consecutive anchors
    plus the walk's noise, pinned to zero at each anchor (a chain of Brownian bridges)."""
    idx = np.arange(len(level))
    anchor = ~np.isnan(level)
    prev = np.maximum.accumulate(np.where(anchor, idx, 0))
    nxt = np.minimum.accumulate(np.where(anchor, idx, len(level))[::-1])[::-1]
    span = nxt - prev
    f = np.where(span > 0, (idx - prev) / np.maximum(span, 1), 0.0)
    line = level[prev] + (level[nxt] - level[prev]) * f
    return line + walk - walk[prev] - f * (walk[nxt] - walk[prev])


def _group_extreme(q: np.ndarray, mask: np.ndarray, group: np.ndarray, fn: np.ufunc) -> np.ndarray:
    """Index of the max (fn=np.maximum) or min of q among masked trades, one per group."""
    if not mask.any():
        return np.empty(0, np.int64)
    fill = -np.inf if fn is np.maximum else np.inf
    masked = np.where(mask, q, fill)
    best = np.full(CHUNK_MINUTES, fill)
    fn.at(best, group[mask], q[mask])
    return _first_per_group(mask & (masked == best[group]), group)


def _sizes(
    rng: np.random.Generator, extra: np.ndarray, first: np.ndarray, last: np.ndarray, total: int
) -> np.ndarray:
    """Trade sizes >= 1 summing to each minute's volume; Pareto weights give a fat tail."""
    units = int(extra.sum())
    if units == 0:
        return np.ones(total, np.int32)
    weights = rng.pareto(1.3, total) + 0.2
    cum = np.cumsum(weights)
    first = np.minimum(first, total - 1)  # empty minutes own no units; keep their indices valid
    last = np.maximum(last, first)
    before = cum[first] - weights[first]
    owner = np.repeat(np.arange(CHUNK_MINUTES), extra)
    target = before[owner] + rng.random(units) * (cum[last] - before)[owner]
    idx = np.clip(np.searchsorted(cum, target, side="right"), first[owner], last[owner])
    return (1 + np.bincount(idx, minlength=total)).astype(np.int32)
