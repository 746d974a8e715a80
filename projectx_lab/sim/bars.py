"""Bar buckets (seconds … months, UTC-aligned) and vectorised OHLCV aggregation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import numpy as np

from .tape import DAY_NS, MINUTE_NS, NS

UNIT_SECOND, UNIT_MINUTE, UNIT_HOUR, UNIT_DAY, UNIT_WEEK, UNIT_MONTH = 1, 2, 3, 4, 5, 6
_FIXED_NS = {
    UNIT_SECOND: NS,
    UNIT_MINUTE: MINUTE_NS,
    UNIT_HOUR: 60 * MINUTE_NS,
    UNIT_DAY: DAY_NS,
    UNIT_WEEK: 7 * DAY_NS,
}
_MONDAY_OFFSET_NS = 4 * DAY_NS  # 1970-01-05 was the first Monday after the epoch


# One bar as a plain tuple (cheap to build in bulk): (t open time ns UTC, o, h, l, c ticks, v).
Bar: TypeAlias = tuple[int, int, int, int, int, int]


@dataclass(frozen=True, slots=True)
class Buckets:
    """Maps times to bar ids and back for one (unit, unitNumber).

    Fixed-width units are aligned to the epoch (so divisors of a day align to 00:00 UTC), weeks
    start on Monday 00:00 UTC and months on the 1st at 00:00 UTC.
    """

    unit: int
    number: int

    def __post_init__(self) -> None:
        if self.unit not in (*_FIXED_NS, UNIT_MONTH):
            raise ValueError(f"unit must be 1..6 (Second..Month), got {self.unit!r}")
        if not isinstance(self.number, int) or self.number < 1:
            raise ValueError(f"unitNumber must be a positive integer, got {self.number!r}")

    @property
    def minute_based(self) -> bool:
        """True when every bar is a whole number of UTC minutes (minute aggregates suffice)."""
        return self.unit != UNIT_SECOND or self.number % 60 == 0

    def ids(self, t_ns: np.ndarray) -> np.ndarray:
        """Bar id of each time (non-decreasing for sorted input)."""
        if self.unit == UNIT_MONTH:
            days = (t_ns // DAY_NS).astype("datetime64[D]")
            return days.astype("datetime64[M]").astype(np.int64) // self.number
        offset = _MONDAY_OFFSET_NS if self.unit == UNIT_WEEK else 0
        return (t_ns - offset) // (_FIXED_NS[self.unit] * self.number)

    def starts(self, ids: np.ndarray) -> np.ndarray:
        """Open time (ns) of each bar id."""
        if self.unit == UNIT_MONTH:
            months = (ids * self.number).astype("datetime64[M]")
            return months.astype("datetime64[D]").astype(np.int64) * DAY_NS
        offset = _MONDAY_OFFSET_NS if self.unit == UNIT_WEEK else 0
        return ids * (_FIXED_NS[self.unit] * self.number) + offset

    def id_of(self, t_ns: int) -> int:
        return int(self.ids(np.array([t_ns], dtype=np.int64))[0])

    def start_of(self, bar_id: int) -> int:
        return int(self.starts(np.array([bar_id], dtype=np.int64))[0])


@dataclass(frozen=True, slots=True)
class Atoms:
    """Time-ordered pieces to aggregate: minute aggregates or single trades (o=h=l=c=price)."""

    t: np.ndarray
    o: np.ndarray
    h: np.ndarray
    l: np.ndarray  # noqa: E741
    c: np.ndarray
    v: np.ndarray

    @classmethod
    def concat(cls, parts: list[Atoms]) -> Atoms:
        parts = [p for p in parts if len(p.t)]
        if not parts:
            return cls(*(np.empty(0, np.int64) for _ in range(6)))
        if len(parts) == 1:
            return parts[0]
        return cls(
            *(
                np.concatenate([getattr(p, f) for p in parts])
                for f in ("t", "o", "h", "l", "c", "v")
            )
        )


@dataclass(frozen=True, slots=True)
class BarArrays:
    """Aggregated bars, oldest first, as parallel int64 arrays."""

    t: np.ndarray
    o: np.ndarray
    h: np.ndarray
    l: np.ndarray  # noqa: E741
    c: np.ndarray
    v: np.ndarray

    def __len__(self) -> int:
        return len(self.t)

    @classmethod
    def concat(cls, parts: list[BarArrays]) -> BarArrays:
        return cls(
            *(
                np.concatenate([getattr(p, f) for p in parts])
                for f in ("t", "o", "h", "l", "c", "v")
            )
        )

    def newest_first(self, limit: int) -> list[Bar]:
        """The most recent `limit` bars, newest first."""
        cols = (getattr(self, f)[::-1][:limit].tolist() for f in ("t", "o", "h", "l", "c", "v"))
        return list(zip(*cols, strict=True))


def aggregate(atoms: Atoms, buckets: Buckets) -> BarArrays:
    """OHLCV per bucket over time-ordered atoms (only buckets that contain atoms)."""
    if len(atoms.t) == 0:
        empty = np.empty(0, np.int64)
        return BarArrays(empty, empty, empty, empty, empty, empty)
    ids = buckets.ids(atoms.t)
    first = np.flatnonzero(np.diff(ids, prepend=ids[0] - 1))
    last = np.append(first[1:], len(ids)) - 1
    return BarArrays(
        t=buckets.starts(ids[first]),
        o=atoms.o[first],
        h=np.maximum.reduceat(atoms.h, first),
        l=np.minimum.reduceat(atoms.l, first),
        c=atoms.c[last],
        v=np.add.reduceat(atoms.v, first),
    )
