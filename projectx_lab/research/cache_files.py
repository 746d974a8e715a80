"""The on-disk history cache of one (gateway, contract, unit, interval): Parquet files whose names
are the coverage manifest.

A file `20261001T000000-20261101T000000.parquet` holds *every* bar opening in that UTC range, so
the set of file names is the list of fully covered ranges. A file only gets its name by an
atomic rename after its bytes are fsynced, so a crash leaves at most a dot-prefixed temp file
that is never read, and data and coverage can never disagree. Files never cross a chunk period
(see `ranges.py`); a new piece is merged with the files it touches in its chunk, which keeps one
file per contiguous run. Concurrent writers are safe without locks: every merged file still
holds exactly its named range, readers de-duplicate overlaps, and a file vanishing mid-merge is
re-listed. A damaged file (external corruption) is renamed `*.corrupt` and so drops out of the
coverage, to be fetched again.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from ..managers.timeframes import NS
from .ranges import Range, chunk_start, merge, next_chunk

SCHEMA = pl.Schema(
    {
        "timestamp": pl.Datetime("ns", "UTC"),
        "open": pl.Float64,
        "high": pl.Float64,
        "low": pl.Float64,
        "close": pl.Float64,
        "volume": pl.Int64,
    }
)
_STAMP = r"\d{8}T\d{6}(?:\.\d{9})?"
_NAME = re.compile(rf"^({_STAMP})-({_STAMP})\.parquet$")
_STALE_TEMP_SECONDS = 3600.0
_MERGE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class CacheFile:
    """One cache file and the UTC range `[start, end)` (ns) it covers completely."""

    start: int
    end: int
    path: Path


def stamp(ts_ns: int) -> str:
    """File-name form of a UTC time: `20261001T143000`, plus `.nnnnnnnnn` below a second."""
    seconds, frac = divmod(ts_ns, NS)
    text = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y%m%dT%H%M%S")
    return f"{text}.{frac:09d}" if frac else text


def parse_stamp(text: str) -> int:
    """Inverse of `stamp`."""
    whole, _, frac = text.partition(".")
    dt = datetime.strptime(whole, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    return int(dt.timestamp()) * NS + (int(frac) if frac else 0)


def empty_frame() -> pl.DataFrame:
    """A bar frame with no rows and the cache schema."""
    return SCHEMA.to_frame()


class BarDataset:
    """The Parquet files of one bar series in one directory (created on first write)."""

    def __init__(self, root: Path, period: str) -> None:
        self.root = root
        self.period = period

    def __repr__(self) -> str:
        return f"BarDataset({str(self.root)!r}, period={self.period!r})"

    def files(self) -> list[CacheFile]:
        """Complete files, oldest first (temp and quarantined files are not listed)."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            match = _NAME.match(name)
            if match:
                start, end = parse_stamp(match.group(1)), parse_stamp(match.group(2))
                if start < end:
                    found.append(CacheFile(start, end, self.root / name))
        found.sort(key=lambda f: (f.start, f.end))
        return found

    def covered(self) -> list[Range]:
        """The merged UTC ranges whose bars are all on disk."""
        return merge([(f.start, f.end) for f in self.files()])

    def write(self, span: Range, frame: pl.DataFrame) -> Path:
        """Store the bars of `span` (which lies in one chunk), merged with the files it touches
        in that chunk; returns the path of the file now covering it."""
        start, end = span
        first = chunk_start(start, self.period)
        if not start < end <= next_chunk(first, self.period):
            raise ValueError(f"range {span} is empty or crosses a {self.period} edge")
        rows = _conform(frame)
        self.root.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temps()
        last = next_chunk(first, self.period)
        for _ in range(_MERGE_ATTEMPTS):
            touching = [
                f
                for f in self.files()
                if first <= f.start and f.end <= last and f.start <= end and f.end >= start
            ]
            try:
                parts = [pl.read_parquet(f.path) for f in touching]
            except FileNotFoundError:
                continue  # another writer merged it away: look again
            except pl.exceptions.PolarsError:
                self._quarantine_broken(touching)
                continue
            lo = min([start, *(f.start for f in touching)])
            hi = max([end, *(f.end for f in touching)])
            merged = rows
            if parts:
                merged = (
                    pl.concat([*(_conform(p) for p in parts), rows])
                    .unique("timestamp", keep="last")
                    .sort("timestamp")
                )
            target = self.root / f"{stamp(lo)}-{stamp(hi)}.parquet"
            atomic_write(target, merged)
            for old in touching:
                if old.path != target:
                    old.path.unlink(missing_ok=True)
            return target
        raise OSError(f"could not merge into {self.root}: files kept changing")

    def scan(self, start: int, end: int) -> pl.LazyFrame:
        """Lazy bars opening in `[start, end)` from the files covering any of it, oldest first."""
        files = [f for f in self.files() if f.start < end and f.end > start]
        if not files:
            return empty_frame().lazy()
        ts = pl.col("timestamp")
        frame = pl.scan_parquet([f.path for f in files], schema=SCHEMA).filter(
            (ts >= _utc(start)) & (ts < _utc(end))
        )
        if any(a.end > b.start for a, b in itertools.pairwise(files)):
            frame = frame.unique("timestamp", keep="last").sort("timestamp")
        return frame

    def read(self, start: int, end: int) -> tuple[pl.DataFrame, int]:
        """Bars opening in `[start, end)` and how many damaged files were quarantined (> 0 means
        the caller must fetch their ranges again and re-read)."""
        quarantined = 0
        for _ in range(_MERGE_ATTEMPTS):
            try:
                return self.scan(start, end).collect(), quarantined
            except (pl.exceptions.PolarsError, OSError):
                files = [f for f in self.files() if f.start < end and f.end > start]
                quarantined += self._quarantine_broken(files)
        return self.scan(start, end).collect(), quarantined

    def _quarantine_broken(self, files: list[CacheFile]) -> int:
        """Rename the files that do not read back to `*.corrupt`; returns how many."""
        count = 0
        for f in files:
            try:
                pl.read_parquet(f.path)
            except FileNotFoundError:
                continue
            except (pl.exceptions.PolarsError, OSError):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(f.path, f.path.with_name(f.path.name + ".corrupt"))
                    count += 1
        return count

    def _remove_stale_temps(self) -> None:
        """Delete temp files left by writers that died (older than an hour)."""
        cutoff = time.time() - _STALE_TEMP_SECONDS
        for path in self.root.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()


def atomic_write(path: Path, frame: pl.DataFrame) -> None:
    """Write `frame` to a temp file in `path`'s directory, fsync it, rename it into place."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temp, "wb") as fh:
            frame.write_parquet(fh, statistics=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _conform(frame: pl.DataFrame) -> pl.DataFrame:
    """The six cache columns in order and type, timestamps in UTC."""
    ts = frame.schema.get("timestamp")
    if not isinstance(ts, pl.Datetime) or ts.time_zone is None:
        raise ValueError("bar frames need a time-zone-aware 'timestamp' column")
    return frame.select(
        pl.col("timestamp").dt.convert_time_zone("UTC").dt.cast_time_unit("ns"),
        *(pl.col(name).cast(dtype) for name, dtype in SCHEMA.items() if name != "timestamp"),
    )


def _utc(ts_ns: int) -> pl.Expr:
    return pl.lit(ts_ns, dtype=pl.Int64).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")
