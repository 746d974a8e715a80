"""Timeframes ("1min", "5m", "1h", "1d", …): parsing and bucket alignment as the gateway cuts bars.

Seconds, minutes and hours are aligned on multiples of their length since the Unix epoch (UTC);
days start at 00:00 UTC (gotcha 6), weeks on Monday 00:00 UTC, months on the 1st at 00:00 UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

NS = 1_000_000_000
_UNIT_NS = {"second": NS, "minute": 60 * NS, "hour": 3600 * NS, "day": 86400 * NS}
_WEEK_NS = 7 * 86400 * NS
_MONDAY_ZERO_NS = 4 * 86400 * NS  # 1970-01-05 was the first Monday after the epoch
GATEWAY_UNIT = {"second": 1, "minute": 2, "hour": 3, "day": 4, "week": 5, "month": 6}

_ALIASES = {
    "s": "second", "sec": "second", "secs": "second", "second": "second", "seconds": "second",
    "m": "minute", "min": "minute", "mins": "minute", "minute": "minute", "minutes": "minute",
    "h": "hour", "hr": "hour", "hrs": "hour", "hour": "hour", "hours": "hour",
    "d": "day", "day": "day", "days": "day",
    "w": "week", "wk": "week", "week": "week", "weeks": "week",
    "mo": "month", "mon": "month", "month": "month", "months": "month",
}  # fmt: skip
_PATTERN = re.compile(r"^\s*(\d+)\s*([a-zA-Z]+)\s*$")
_LABEL = {"second": "sec", "minute": "min", "hour": "hr", "day": "day", "week": "wk", "month": "mo"}


@dataclass(frozen=True, slots=True)
class Timeframe:
    """A bar length: `number` × `unit`, with the gateway's unit code and bucket alignment."""

    number: int
    unit: str

    @classmethod
    def parse(cls, value: str | Timeframe) -> Timeframe:
        """Accept "1min", "1m", "5 minutes", "15s", "1h", "4hr", "1d", "1w", "1mo" and the like."""
        if isinstance(value, Timeframe):
            return value
        if not isinstance(value, str):
            raise TypeError(f"timeframe must be a string like '1min', got {type(value).__name__}")
        match = _PATTERN.match(value)
        unit = _ALIASES.get(match.group(2).lower()) if match else None
        if match is None or unit is None or int(match.group(1)) <= 0:
            raise ValueError(
                f"unknown timeframe {value!r}: use a positive number and a unit, e.g. '15s', "
                "'1min' (or '1m'), '5min', '1h', '4hr', '1d', '1w', '1mo'"
            )
        return cls(int(match.group(1)), unit)

    @property
    def label(self) -> str:
        """Canonical name, e.g. "5min", "1hr", "1day"."""
        return f"{self.number}{_LABEL[self.unit]}"

    @property
    def gateway_unit(self) -> int:
        """AggregateBarUnit code for `History/retrieveBars`."""
        return GATEWAY_UNIT[self.unit]

    @property
    def fixed_ns(self) -> int | None:
        """Length in ns for fixed-length units (seconds to weeks); None for months."""
        if self.unit == "month":
            return None
        if self.unit == "week":
            return self.number * _WEEK_NS
        return self.number * _UNIT_NS[self.unit]

    @property
    def approx_ns(self) -> int:
        """Length in ns, months counted as 31 days (for sizing history windows)."""
        return self.fixed_ns or self.number * 31 * 86400 * NS

    def bucket(self, ts_ns: int) -> int:
        """Open time (ns, UTC) of the bar that contains `ts_ns`."""
        size = self.fixed_ns
        if size is not None:
            if self.unit == "week":
                return ts_ns - (ts_ns - _MONDAY_ZERO_NS) % size
            return ts_ns - ts_ns % size
        dt = datetime.fromtimestamp(ts_ns // NS, tz=UTC)
        index = (dt.year * 12 + dt.month - 1) // self.number * self.number
        start = datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)
        return int(start.timestamp()) * NS

    def next_bucket(self, bucket_ns: int) -> int:
        """Open time of the bar after the one opening at `bucket_ns`."""
        size = self.fixed_ns
        if size is not None:
            return bucket_ns + size
        dt = datetime.fromtimestamp(bucket_ns // NS, tz=UTC)
        index = dt.year * 12 + dt.month - 1 + self.number
        return int(datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC).timestamp()) * NS

    def __str__(self) -> str:
        return self.label
