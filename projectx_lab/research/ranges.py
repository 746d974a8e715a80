"""Half-open time ranges in UTC nanoseconds: union, difference, and cutting at cache-chunk edges.

The history cache keeps one Parquet file per contiguous covered run inside a chunk period (a UTC
day for second bars, a UTC month for minute bars, a UTC year for coarser bars), so downloads are
split at those edges and each finished piece can be stored on its own.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ..managers.timeframes import NS

Range = tuple[int, int]

CHUNK_PERIOD = {
    "second": "day",
    "minute": "month",
    "hour": "year",
    "day": "year",
    "week": "year",
    "month": "year",
}


def merge(ranges: list[Range]) -> list[Range]:
    """Sorted, disjoint union of `ranges`; touching ranges are joined, empty ones dropped."""
    out: list[Range] = []
    for start, end in sorted(r for r in ranges if r[0] < r[1]):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def subtract(span: Range, covered: list[Range]) -> list[Range]:
    """The parts of `span` not inside `covered` (a merged list), oldest first."""
    start, end = span
    gaps: list[Range] = []
    cursor = start
    for c0, c1 in covered:
        if c1 <= cursor or c0 >= end:
            continue
        if c0 > cursor:
            gaps.append((cursor, min(c0, end)))
        cursor = max(cursor, c1)
        if cursor >= end:
            break
    if cursor < end:
        gaps.append((cursor, end))
    return gaps


def chunk_start(ts_ns: int, period: str) -> int:
    """Start (ns) of the UTC day, month or year that contains `ts_ns`."""
    dt = datetime.fromtimestamp(ts_ns // NS, tz=UTC)
    if period == "day":
        edge = datetime(dt.year, dt.month, dt.day, tzinfo=UTC)
    elif period == "month":
        edge = datetime(dt.year, dt.month, 1, tzinfo=UTC)
    else:
        edge = datetime(dt.year, 1, 1, tzinfo=UTC)
    return int(edge.timestamp()) * NS


def next_chunk(chunk_ns: int, period: str) -> int:
    """Start of the chunk after the one starting at `chunk_ns`."""
    dt = datetime.fromtimestamp(chunk_ns // NS, tz=UTC)
    if period == "day":
        return chunk_ns + 86_400 * NS
    if period == "month":
        year, month = divmod(dt.year * 12 + dt.month, 12)
        edge = datetime(year, month + 1, 1, tzinfo=UTC)
    else:
        edge = datetime(dt.year + 1, 1, 1, tzinfo=UTC)
    return int(edge.timestamp()) * NS


def split(span: Range, period: str) -> list[Range]:
    """`span` cut at chunk edges, oldest first; each piece lies inside one chunk."""
    start, end = span
    pieces: list[Range] = []
    while start < end:
        edge = min(next_chunk(chunk_start(start, period), period), end)
        pieces.append((start, edge))
        start = edge
    return pieces
