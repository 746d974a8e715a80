"""Order-book analytics as pure functions over plain lists, plus the iceberg refill tracker.

Nothing here runs per depth item except `LevelTrack` bookkeeping; frames are built only when asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import median

import numpy as np
import polars as pl

from projectx_lab.managers.ticks import parse_ts_ns

LEVEL_SCHEMA = {"price": pl.Float64, "size": pl.Int64, "cumulative_size": pl.Int64}


class LevelTrack:
    """Refill history of one price level that trades have hit (iceberg heuristic state).

    `clip` is the displayed size the level is refilled to, `traded` the volume traded at the
    level since the last refill, `hidden` the sum of replenished sizes (the hidden estimate).
    """

    __slots__ = ("clip", "hidden", "last_refill", "refills", "total_traded", "traded")

    def __init__(self, clip: float) -> None:
        self.clip = clip
        self.traded = 0
        self.total_traded = 0
        self.refills = 0
        self.hidden = 0
        self.last_refill: str | None = None

    def observe(self, old: float, new: float, tolerance: float, timestamp: object) -> None:
        """Count a size increase `old → new` as a refill when trades hit the level since the
        last refill and the new size is within `tolerance` (a fraction) of the clip size."""
        if self.traded > 0 and abs(new - self.clip) <= tolerance * self.clip:
            self.refills += 1
            self.hidden += new - old
            self.clip = new
            self.traded = 0
            self.last_refill = timestamp if isinstance(timestamp, str) else None
        elif self.traded == 0:
            self.clip = new  # a resize nobody traded against: the displayed size is just new


def levels_frame(prices: Sequence[float], sizes: Sequence[float]) -> pl.DataFrame:
    """Price levels best first as a DataFrame with price, size and running cumulative size."""
    if not prices:
        return pl.DataFrame(schema=LEVEL_SCHEMA)
    size = np.asarray(sizes, dtype=np.int64)
    return pl.DataFrame(
        {
            "price": np.asarray(prices, dtype=np.float64),
            "size": size,
            "cumulative_size": np.cumsum(size),
        }
    )


def imbalance(bid_sizes: Sequence[float], ask_sizes: Sequence[float]) -> float | None:
    """(Σbid − Σask) / (Σbid + Σask) in [−1, 1]; None when both sides are empty."""
    b = sum(bid_sizes)
    a = sum(ask_sizes)
    total = b + a
    return None if total <= 0 else (b - a) / total


def cumulative_depth(
    bids: tuple[Sequence[float], Sequence[float]],
    asks: tuple[Sequence[float], Sequence[float]],
) -> pl.DataFrame:
    """Both sides as one long frame (side, level, price, size, cumulative_size) for depth charts."""
    frames = []
    for name, (prices, sizes) in (("bid", bids), ("ask", asks)):
        frame = levels_frame(prices, sizes)
        frames.append(
            frame.with_columns(
                pl.lit(name).alias("side"),
                pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias("level"),
            ).select("side", "level", "price", "size", "cumulative_size")
        )
    return pl.concat(frames)


def volume_profile(
    prices: Sequence[float],
    volumes: Sequence[int],
    sides: Sequence[int],
    tick_size: float,
    decimals: int,
    bucket_ticks: int = 1,
) -> pl.DataFrame:
    """Traded volume per price bucket of `bucket_ticks` ticks (bucket = its lowest price),
    split by aggressor: buy (0, lifted the ask) and sell (1, hit the bid); sorted by price."""
    schema = {
        "price": pl.Float64,
        "buy_volume": pl.Int64,
        "sell_volume": pl.Int64,
        "total_volume": pl.Int64,
        "delta": pl.Int64,
    }
    if not prices:
        return pl.DataFrame(schema=schema)
    ticks = np.rint(np.asarray(prices, dtype=np.float64) / tick_size).astype(np.int64)
    vol = np.asarray(volumes, dtype=np.int64)
    sell = np.asarray(sides, dtype=np.int8) == 1
    frame = pl.DataFrame(
        {
            "bucket": (ticks // bucket_ticks) * bucket_ticks,
            "buy_volume": np.where(sell, 0, vol),
            "sell_volume": np.where(sell, vol, 0),
        }
    )
    return (
        frame.group_by("bucket")
        .agg(pl.col("buy_volume").sum(), pl.col("sell_volume").sum())
        .sort("bucket")
        .select(
            (pl.col("bucket").cast(pl.Float64) * tick_size).round(decimals).alias("price"),
            "buy_volume",
            "sell_volume",
            (pl.col("buy_volume") + pl.col("sell_volume")).alias("total_volume"),
            (pl.col("buy_volume") - pl.col("sell_volume")).alias("delta"),
        )
        .cast(schema)
    )


def liquidity_levels(
    bids: tuple[Sequence[float], Sequence[float]],
    asks: tuple[Sequence[float], Sequence[float]],
    k: float,
) -> pl.DataFrame:
    """Levels (either side) whose size is at least `k` × the median size of all given levels,
    largest first, with `ratio` = size / median."""
    schema = {"side": pl.String, "price": pl.Float64, "size": pl.Int64, "ratio": pl.Float64}
    sizes = [*bids[1], *asks[1]]
    if not sizes:
        return pl.DataFrame(schema=schema)
    med = median(sizes)
    rows: list[tuple[str, float, float, float]] = []
    if med > 0:
        threshold = k * med
        for name, (prices, level_sizes) in (("bid", bids), ("ask", asks)):
            rows.extend(
                (name, p, s, s / med)
                for p, s in zip(prices, level_sizes, strict=True)
                if s >= threshold
            )
    rows.sort(key=lambda r: r[2], reverse=True)
    return pl.DataFrame(rows, schema=schema, orient="row")


def trade_flow(volumes: Sequence[int], sides: Sequence[int]) -> dict[str, float | int | None]:
    """Aggressor flow of a tape slice: buy/sell volume, trade count, and
    (buy − sell) / (buy + sell) as `imbalance` (None without volume)."""
    buy = sell = 0
    for v, s in zip(volumes, sides, strict=True):
        if s == 0:
            buy += v
        else:
            sell += v
    total = buy + sell
    return {
        "trades": len(volumes),
        "buy_volume": buy,
        "sell_volume": sell,
        "imbalance": None if total <= 0 else (buy - sell) / total,
    }


def count_within(timestamps: Sequence[str], seconds: float) -> int:
    """How many of the newest `timestamps` (oldest first) lie within `seconds` of the newest one."""
    n = len(timestamps)
    if n == 0:
        return 0
    cutoff = parse_ts_ns(timestamps[-1]) - int(seconds * 1_000_000_000)
    i = n - 1
    while i >= 0 and parse_ts_ns(timestamps[i]) >= cutoff:
        i -= 1
    return n - 1 - i


def iceberg_frame(
    tracks: Sequence[tuple[str, float, LevelTrack, float]], min_refills: int
) -> pl.DataFrame:
    """Iceberg candidates from (side, price, track, visible size) rows, most hidden volume first."""
    schema = {
        "side": pl.String,
        "price": pl.Float64,
        "refills": pl.Int64,
        "hidden_volume": pl.Int64,
        "clip_size": pl.Int64,
        "traded_volume": pl.Int64,
        "visible_size": pl.Int64,
        "last_refill": pl.String,
    }
    rows = [
        (side, price, t.refills, t.hidden, t.clip, t.total_traded, visible, t.last_refill)
        for side, price, t, visible in tracks
        if t.refills >= min_refills
    ]
    rows.sort(key=lambda r: (r[3], r[2]), reverse=True)
    return pl.DataFrame(rows, schema=schema, orient="row")
