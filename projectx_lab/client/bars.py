"""Bars as a polars DataFrame: the wire rows (newest first, mixed timestamp forms, overlapping
pages) become one frame, oldest first, de-duplicated, in the chosen timezone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from .errors import ValidationError
from .models import BarUnit, parse_timestamp

MAX_BARS_PER_REQUEST = 20_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

UNITS: dict[str, BarUnit] = {}
for _unit in BarUnit:
    _name = _unit.name.lower()
    UNITS[_name] = UNITS[_name + "s"] = _unit
UNITS.update({"sec": BarUnit.SECOND, "min": BarUnit.MINUTE, "hr": BarUnit.HOUR})

SCHEMA = {
    "timestamp": pl.Int64,
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "volume": pl.Int64,
}


def parse_unit(unit: str | int) -> BarUnit:
    """`"minute"` / `"minutes"` / `"min"` / `BarUnit.MINUTE` / `2` → `BarUnit.MINUTE`."""
    if isinstance(unit, BarUnit):
        return unit
    if isinstance(unit, int) and not isinstance(unit, bool) and unit in BarUnit._value2member_map_:
        return BarUnit(unit)
    if isinstance(unit, str) and unit.strip().lower() in UNITS:
        return UNITS[unit.strip().lower()]
    valid = ", ".join(u.name.lower() for u in BarUnit)
    raise ValidationError(f"unit must be one of {valid}; got {unit!r}")


def epoch_ns(text: Any) -> int:
    """Nanoseconds since the epoch of a wire timestamp (offset, `Z` or naive = UTC)."""
    dt = parse_timestamp(text)
    if dt is None:
        raise ValueError("bar without timestamp")
    return (dt - EPOCH) // _US * 1000


def collect(rows: list[dict[str, Any]], into: dict[int, tuple[Any, ...]]) -> int | None:
    """Add wire bars to `into` keyed by open time (first seen wins); returns the oldest key."""
    oldest: int | None = None
    for row in rows:
        ts = epoch_ns(row["t"])
        if ts not in into:
            into[ts] = (ts, row["o"], row["h"], row["l"], row["c"], row.get("v") or 0)
        if oldest is None or ts < oldest:
            oldest = ts
    return oldest


def to_frame(bars: dict[int, tuple[Any, ...]], tz: str, limit: int | None = None) -> pl.DataFrame:
    """DataFrame with `timestamp` (tz-aware), open, high, low, close, volume; oldest first."""
    rows = sorted(bars.values())
    if limit is not None:
        rows = rows[-limit:]
    frame = pl.DataFrame(rows, schema=SCHEMA, orient="row")
    return frame.with_columns(
        pl.col("timestamp").cast(pl.Datetime("ns", "UTC")).dt.convert_time_zone(tz)
    )
