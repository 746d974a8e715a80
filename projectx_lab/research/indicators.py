"""Technical indicators as polars expressions, for historical and live bar frames alike.

Each function returns a `pl.Expr` over the usual bar columns (timestamp, open, high, low,
close, volume), so `frame.with_columns(sma(20), rsi(14))` works on `HistoryStore.get(...)`
results and on `suite.data.get_data("1min")` (whose last row is the still-forming bar: its
values are provisional). Rows must be oldest first. Multi-output indicators (MACD, Bollinger)
return a struct; `add_indicators(frame, ...)` adds everything and unnests structs into columns.
For a frame holding several instruments append `.over("symbol")` (VWAP excepted: it already
partitions by session, so compute it per instrument).

Warm-up (textbook conventions: Wilder's for RSI and ATR as StockCharts tabulates them, EMA
seeding as TA-Lib; TA-Lib starts ATR one row later and aligns MACD's fast EMA differently):

| indicator | first non-null row (0-based) | seed |
|---|---|---|
| `sma(n)`, `bollinger(n)` | n − 1 | — (population standard deviation for the bands) |
| `ema(n)` | n − 1 | SMA of the first n values; `seed="first"`: row 0, seeded by the first value |
| `rsi(n)` (Wilder) | n | averages of the first n gains / losses, then Wilder smoothing (α = 1/n) |
| `macd(f, s, g)` | line s − 1, signal and histogram s + g − 2 | each EMA seeded as above |
| `atr(n)` (Wilder) | n − 1 | mean of the first n true ranges (the first is high − low) |
| `vwap()` | 0 | none: anchored at each session's first bar |

Nulls in the input (e.g. another indicator's warm-up, or gaps) are skipped: an EMA's seed is the
mean of the first n non-null values, taken at the n-th. RSI is 50 when a window has neither
gains nor losses.
"""

from __future__ import annotations

from datetime import time
from typing import Literal, TypeVar

import polars as pl

Column = str | pl.Expr
Seed = Literal["sma", "first"]
FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


def sma(period: int = 20, column: Column = "close", *, name: str | None = None) -> pl.Expr:
    """Simple moving average of the last `period` values; null for the first period − 1 rows."""
    n = _period(period)
    return _col(column).rolling_mean(n).alias(name or f"sma_{n}")


def ema(
    period: int = 20, column: Column = "close", *, seed: Seed = "sma", name: str | None = None
) -> pl.Expr:
    """Exponential moving average, α = 2 / (period + 1). `seed="sma"` starts at row period − 1
    with the SMA of the first `period` values (TA-Lib); `seed="first"` starts at row 0 with the
    first value (pandas `ewm(span=period, adjust=False)`)."""
    n = _period(period)
    return _ema(_col(column), n, 2.0 / (n + 1), seed).alias(name or f"ema_{n}")


def rsi(period: int = 14, column: Column = "close", *, name: str | None = None) -> pl.Expr:
    """Wilder's relative strength index (0–100): first value at row `period`, from the mean
    gain and loss of the first `period` changes, then smoothed with α = 1 / period."""
    n = _period(period)
    change = _col(column).diff()
    gain = _ema(change.clip(lower_bound=0.0), n, 1.0 / n, "sma")
    loss = _ema((-change).clip(lower_bound=0.0), n, 1.0 / n, "sma")
    total = gain + loss
    value = pl.when(total == 0).then(pl.lit(50.0)).otherwise(100.0 * gain / total)
    return value.alias(name or f"rsi_{n}")


def macd(
    fast: int = 12,
    slow: int = 26,
    signal: int = 9,
    column: Column = "close",
    *,
    seed: Seed = "sma",
    name: str = "macd",
) -> pl.Expr:
    """MACD as a struct of `{name}_line` (EMA fast − EMA slow), `{name}_signal` (EMA of the
    line) and `{name}_hist` (line − signal)."""
    f, s, g = _period(fast, "fast"), _period(slow, "slow"), _period(signal, "signal")
    if f >= s:
        raise ValueError(f"fast period ({f}) must be shorter than slow period ({s})")
    x = _col(column)
    line = _ema(x, f, 2.0 / (f + 1), seed) - _ema(x, s, 2.0 / (s + 1), seed)
    sig = _ema(line, g, 2.0 / (g + 1), seed)
    return pl.struct(
        line.alias(f"{name}_line"), sig.alias(f"{name}_signal"), (line - sig).alias(f"{name}_hist")
    ).alias(name)


def atr(
    period: int = 14,
    *,
    high: str = "high",
    low: str = "low",
    close: str = "close",
    name: str | None = None,
) -> pl.Expr:
    """Wilder's average true range: first value at row period − 1 (mean of the first `period`
    true ranges, the first being high − low), then smoothed with α = 1 / period."""
    n = _period(period)
    h, lo, prev = pl.col(high), pl.col(low), pl.col(close).shift(1)
    true_range = pl.max_horizontal(h - lo, (h - prev).abs(), (lo - prev).abs())
    return _ema(true_range, n, 1.0 / n, "sma").alias(name or f"atr_{n}")


def bollinger(
    period: int = 20, k: float = 2.0, column: Column = "close", *, name: str = "bb"
) -> pl.Expr:
    """Bollinger bands as a struct of `{name}_middle` (SMA), `{name}_upper` and `{name}_lower`
    (middle ± k population standard deviations of the same window)."""
    n = _period(period)
    if isinstance(k, bool) or not isinstance(k, int | float) or not k > 0:
        raise ValueError(f"k must be a positive number, got {k!r}")
    x = _col(column)
    middle = x.rolling_mean(n)
    width = k * x.rolling_std(n, ddof=0)
    return pl.struct(
        middle.alias(f"{name}_middle"),
        (middle + width).alias(f"{name}_upper"),
        (middle - width).alias(f"{name}_lower"),
    ).alias(name)


def vwap(
    *,
    session_start: str | time = "17:00",
    tz: str = "America/Chicago",
    timestamp: str = "timestamp",
    name: str = "vwap",
) -> pl.Expr:
    """Volume-weighted average of the typical price (high + low + close) / 3, anchored at each
    session: a session starts at `session_start` local time in `tz` (default the CME day,
    17:00 Chicago; use `"00:00"` for calendar days). Null while the session has no volume.
    The timestamp column must be time-zone aware (bar frames of this kit are)."""
    start = _clock_time(session_start)
    local = pl.col(timestamp).dt.convert_time_zone(tz)
    day = local.dt.date()
    session = day
    if start != time(0):
        session = pl.when(local.dt.time() >= start).then(day.dt.offset_by("1d")).otherwise(day)
    volume = pl.col("volume").cast(pl.Float64)
    typical = (pl.col("high") + pl.col("low") + pl.col("close")) / 3.0
    cum_pv = (typical * volume).cum_sum().over(session)
    cum_v = volume.cum_sum().over(session)
    return pl.when(cum_v > 0).then(cum_pv / cum_v).alias(name)


def add_indicators(frame: FrameT, *indicators: pl.Expr) -> FrameT:
    """`frame` with the indicator columns added; struct results (MACD, Bollinger) become one
    column per field. Works on DataFrames and LazyFrames."""
    if not indicators:
        return frame
    out = frame.with_columns(*indicators)
    schema = out.collect_schema()
    names = [expr.meta.output_name() for expr in indicators]
    structs = [n for n in names if isinstance(schema[n], pl.Struct)]
    return out.unnest(structs) if structs else out


def _ema(x: pl.Expr, n: int, alpha: float, seed: Seed) -> pl.Expr:
    """Recursive average e = α·x + (1 − α)·e₋₁; `"sma"` seeds it with the mean of the first n
    non-null values (null before), `"first"` with the first value."""
    if seed == "first":
        return x.ewm_mean(alpha=alpha, adjust=False)
    if seed != "sma":
        raise ValueError(f"seed must be 'sma' or 'first', got {seed!r}")
    seen = x.is_not_null().cum_sum()
    seed_mean = x.cum_sum() / n  # null at null rows, so the seed sits on the n-th non-null value
    seeded = pl.when(seen < n).then(None).when(seen == n).then(seed_mean).otherwise(x)
    return seeded.ewm_mean(alpha=alpha, adjust=False)


def _col(column: Column) -> pl.Expr:
    if isinstance(column, pl.Expr):
        return column
    if not isinstance(column, str) or not column:
        raise ValueError(f"column must be a column name or an expression, got {column!r}")
    return pl.col(column)


def _period(value: int, what: str = "period") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
    return value


def _clock_time(value: str | time) -> time:
    if isinstance(value, time):
        return value
    try:
        return time.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"session_start must be a time like '17:00', got {value!r}") from None
