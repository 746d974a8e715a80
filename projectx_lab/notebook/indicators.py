"""Chart indicators computed with polars over a bar window, exact with respect to full history.

A chart keeps only a window of bars, so each indicator states how many extra bars it needs
before the first one shown (`lookback`) and carries what it needs from older bars (`carry`),
updated as bars leave the window (`evict`). SMA needs `period - 1` extra bars; EMA carries its
value at the bar before the window; VWAP carries the session's Σ price·volume and Σ volume.

Indicators are given as objects (`SMA(20)`, `EMA(50)`, `VWAP()`) or strings ("sma20",
"ema(50)", "vwap").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import polars as pl

Bar = tuple[int, float, float, float, float, int]
_MINUTE_NS = 60 * 1_000_000_000
_DAY_NS = 1440 * _MINUTE_NS
_MAX_FIXED_SPAN_NS = 60 * _DAY_NS  # DST changes are months apart: none hides inside this span
_SPEC = re.compile(r"^\s*(sma|ema)\s*[:(]?\s*(\d+)\s*\)?\s*$|^\s*(vwap)\s*$", re.IGNORECASE)


class Indicator(Protocol):
    """What a chart needs from an indicator."""

    @property
    def name(self) -> str: ...

    @property
    def lookback(self) -> int: ...

    def carry(self, before: tuple[np.ndarray, ...]) -> Any:
        """State from the closed bars older than the window: (t, o, h, l, c, v) arrays."""

    def evict(self, carry: Any, bar: Bar) -> Any:
        """State after `bar`, the oldest bar of the window, left it."""

    def compute(self, frame: pl.DataFrame, carry: Any) -> np.ndarray:
        """One value per row of `frame` (t, open, high, low, close, volume), NaN where undefined."""


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class SMA:
    """Simple moving average of the close over `period` bars."""

    period: int = 20

    def __post_init__(self) -> None:
        _positive("SMA period", self.period)

    @property
    def name(self) -> str:
        return f"SMA {self.period}"

    @property
    def lookback(self) -> int:
        return self.period - 1

    def carry(self, before: tuple[np.ndarray, ...]) -> None:
        return None

    def evict(self, carry: None, bar: Bar) -> None:
        return None

    def compute(self, frame: pl.DataFrame, carry: None) -> np.ndarray:
        return frame["close"].rolling_mean(self.period).to_numpy()


@dataclass(frozen=True, slots=True)
class EMA:
    """Exponential moving average of the close, `span` bars (alpha = 2 / (span + 1)), seeded
    with the first close of the series."""

    span: int = 20

    def __post_init__(self) -> None:
        _positive("EMA span", self.span)

    @property
    def name(self) -> str:
        return f"EMA {self.span}"

    @property
    def lookback(self) -> int:
        return 0

    @property
    def alpha(self) -> float:
        return 2.0 / (self.span + 1)

    def carry(self, before: tuple[np.ndarray, ...]) -> float | None:
        closes = before[4]
        if len(closes) == 0:
            return None
        return float(pl.Series(closes).ewm_mean(span=self.span, adjust=False)[-1])

    def evict(self, carry: float | None, bar: Bar) -> float:
        close = bar[4]
        return close if carry is None else self.alpha * close + (1 - self.alpha) * carry

    def compute(self, frame: pl.DataFrame, carry: float | None) -> np.ndarray:
        closes = frame["close"]
        if carry is None:
            return closes.ewm_mean(span=self.span, adjust=False).to_numpy()
        seeded = pl.concat([pl.Series("close", [carry]), closes])
        return seeded.ewm_mean(span=self.span, adjust=False).to_numpy()[1:]


@dataclass(frozen=True, slots=True)
class VWAP:
    """Session VWAP of the typical price (h + l + c) / 3; a session starts each day at
    `session_start` (HH:MM) in `tz` (default: CME Globex, 17:00 America/Chicago)."""

    session_start: str = "17:00"
    tz: str = "America/Chicago"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", self.session_start):
            raise ValueError(f"session_start must be 'HH:MM', got {self.session_start!r}")
        try:
            ZoneInfo(self.tz)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(f"unknown time zone {self.tz!r}") from None

    @property
    def name(self) -> str:
        return "VWAP"

    @property
    def lookback(self) -> int:
        return 0

    def sessions(self, t_ns: np.ndarray | pl.Series) -> np.ndarray:
        """Session key (days since the epoch) of each bar time (ns, UTC, ascending): the date
        of the local wall time minus `session_start`. When the zone's UTC offset is the same at
        both ends of a span shorter than any gap between DST changes, one offset serves all
        (plain integer arithmetic); otherwise polars converts each time."""
        t = np.asarray(t_ns, dtype=np.int64)
        hours, minutes = (int(part) for part in self.session_start.split(":"))
        start_ns = (hours * 60 + minutes) * _MINUTE_NS
        if len(t) and t[-1] - t[0] < _MAX_FIXED_SPAN_NS:
            first, last = self._offset_ns(int(t[0])), self._offset_ns(int(t[-1]))
            if first == last:
                return (t + first - start_ns) // _DAY_NS
        local = (
            pl.Series("t", t, dtype=pl.Int64)
            .cast(pl.Datetime("ns", "UTC"))
            .dt.convert_time_zone(self.tz)
            .dt.replace_time_zone(None)
        )
        shifted = local - timedelta(hours=hours, minutes=minutes)
        return shifted.dt.date().cast(pl.Int64).to_numpy()

    def _offset_ns(self, t_ns: int) -> int:
        offset = datetime.fromtimestamp(t_ns // 1_000_000_000, ZoneInfo(self.tz)).utcoffset()
        return int(offset.total_seconds()) * 1_000_000_000 if offset else 0

    def carry(self, before: tuple[np.ndarray, ...]) -> tuple[int, float, float] | None:
        t, _, h, low, c, v = before
        if len(t) == 0:
            return None
        keys = self.sessions(t)
        mask = keys == keys[-1]
        vol = v[mask].astype(np.float64)
        pv = float(((h[mask] + low[mask] + c[mask]) / 3.0 * vol).sum())
        return int(keys[-1]), pv, float(vol.sum())

    def evict(self, carry: tuple[int, float, float] | None, bar: Bar) -> tuple[int, float, float]:
        t, _, h, low, c, v = bar
        key = int(self.sessions(np.array([t]))[0])
        pv = (h + low + c) / 3.0 * v
        if carry is not None and carry[0] == key:
            return key, carry[1] + pv, carry[2] + v
        return key, pv, float(v)

    def compute(self, frame: pl.DataFrame, carry: tuple[int, float, float] | None) -> np.ndarray:
        key, pv0, v0 = carry if carry is not None else (-(2**31), 0.0, 0.0)
        out = (
            frame.select(
                session=pl.Series(self.sessions(frame["t"].to_numpy())),
                pv=(pl.col("high") + pl.col("low") + pl.col("close")) / 3.0 * pl.col("volume"),
                v=pl.col("volume").cast(pl.Float64),
            )
            .with_columns(first=pl.col("session") == key)
            .select(
                (
                    (
                        pl.col("pv").cum_sum().over("session")
                        + pl.when(pl.col("first")).then(pv0).otherwise(0.0)
                    )
                    / (
                        pl.col("v").cum_sum().over("session")
                        + pl.when(pl.col("first")).then(v0).otherwise(0.0)
                    )
                ).alias("vwap")
            )
        )
        values = out["vwap"].to_numpy()
        return np.where(np.isfinite(values), values, np.nan)


def parse_indicator(spec: Indicator | str) -> Indicator:
    """An indicator object from itself or a string: "sma20", "sma(20)", "ema:50", "vwap"."""
    if not isinstance(spec, str):
        if all(hasattr(spec, a) for a in ("name", "lookback", "carry", "evict", "compute")):
            return spec
        raise TypeError(f"not an indicator: {spec!r}; use SMA(n), EMA(n), VWAP() or 'sma20'")
    match = _SPEC.match(spec)
    if match is None:
        raise ValueError(f"unknown indicator {spec!r}; use e.g. 'sma20', 'ema(50)', 'vwap'")
    if match.group(3):
        return VWAP()
    kind, n = match.group(1).lower(), int(match.group(2))
    return SMA(n) if kind == "sma" else EMA(n)
