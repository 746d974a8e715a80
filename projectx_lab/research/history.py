"""`HistoryStore`: historical bars for any date range, downloaded once and kept as Parquet.

    store = HistoryStore(client)                       # cache in ~/.cache/projectx_lab/history
    bars = await store.get("MNQ", "2026-01-01", "2026-07-01", unit="minute", interval=1)

A request is cut into what the cache already covers and what is missing. Missing ranges are
paged backwards through `History/retrieveBars` (at most 20,000 bars per request, paced by the
client's History rate limiter) and every chunk period (UTC day / month / year, see `ranges.py`)
is written as soon as all of its bars have arrived, so an interrupted download resumes where it
stopped. Only closed bars are cached: bars opening at or after the *closed horizon* (the bar
containing the gateway's now minus `settle` seconds) are fetched on every call and never
stored, so the still-forming bar and the current incomplete period are never taken as complete.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl
from tqdm.auto import tqdm

from ..client.bars import MAX_BARS_PER_REQUEST, parse_unit
from ..client.errors import ProjectXError, ValidationError
from ..client.models import Instrument, as_utc
from ..managers.timeframes import NS, Timeframe
from .cache_files import BarDataset, empty_frame
from .ranges import CHUNK_PERIOD, Range, split, subtract

if TYPE_CHECKING:
    from ..client import ProjectX

CACHE_ENV = "PROJECTX_HISTORY_DIR"
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")
_MAX_PASSES = 3


def default_cache_dir() -> Path:
    """`$PROJECTX_HISTORY_DIR`, else `$XDG_CACHE_HOME/projectx_lab/history`, else
    `~/.cache/projectx_lab/history`."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "projectx_lab" / "history"


class HistoryStore:
    """Bars by date range through a local Parquet cache that fetches only what is missing.

    `cache_dir` defaults to `default_cache_dir()`; `tz` (default: the client's) is the time
    zone of returned timestamps; `namespace` separates gateways sharing one cache directory
    (default: the REST host, plus `+live` for live market data); `settle` is how many seconds a
    bar must have been closed (by the gateway's clock, read from 1 s-resolution `Date` headers)
    before it is cached, so a bar the feed publishes late never leaves a permanent hole (recent
    bars cost nothing extra: a pull up to now always asks for the newest bars anyway);
    `progress` shows a tqdm bar: True always, False never, None (default) only for pulls
    lasting over a second.
    """

    def __init__(
        self,
        client: ProjectX,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        tz: str | None = None,
        namespace: str | None = None,
        settle: float = 60.0,
        progress: bool | None = None,
    ) -> None:
        if isinstance(settle, bool) or not isinstance(settle, int | float) or not settle >= 0:
            raise ValidationError(f"settle must be a number of seconds >= 0, got {settle!r}")
        if progress is not None and not isinstance(progress, bool):
            raise ValidationError(f"progress must be True, False or None, got {progress!r}")
        if namespace is not None and (not isinstance(namespace, str) or not namespace.strip()):
            raise ValidationError(f"namespace must be a non-empty string, got {namespace!r}")
        self._client = client
        self.tz = _check_zone(tz or client.settings.timezone)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.namespace = _safe(namespace or _default_namespace(client))
        self.settle = float(settle)
        self.progress = progress
        self._locks: dict[Path, asyncio.Lock] = {}

    def __repr__(self) -> str:
        return (
            f"HistoryStore(cache_dir={str(self.cache_dir)!r}, namespace={self.namespace!r}, "
            f"tz={self.tz!r})"
        )

    async def get(
        self,
        symbol: str | Instrument,
        start: datetime | date | str | timedelta,
        end: datetime | date | str | None = None,
        *,
        unit: str | int = "minute",
        interval: int = 1,
        tz: str | None = None,
        progress: bool | None = None,
    ) -> pl.DataFrame:
        """Bars opening in `[start, end)` (end defaults to the gateway's now) as a DataFrame:
        timestamp (tz-aware), open, high, low, close, volume; oldest first, closed bars only.

        Times are datetimes (naive = UTC), dates (00:00 UTC) or ISO strings; `start` may be a
        timedelta meaning "that long before `end`". Missing ranges are downloaded and cached.
        """
        tf = _timeframe(unit, interval)
        zone = _check_zone(tz or self.tz)
        show = self.progress if progress is None else progress
        end_dt = _as_time(end, "end") if end is not None else None
        lookback = start if isinstance(start, timedelta) else None
        start_dt = _as_time(start, "start") if lookback is None else None
        if lookback is not None and not lookback > timedelta(0):
            raise ValidationError(f"a timedelta start must be positive, got {lookback!r}")
        if start_dt is not None and end_dt is not None and start_dt >= end_dt:
            raise ValidationError(f"start {start_dt} is not before end {end_dt}")
        instrument = await self._client.get_instrument(symbol)
        now = _ns(self._client.gateway_time())
        stop = min(_ns(end_dt), now) if end_dt is not None else now
        begin = _ns(start_dt) if start_dt is not None else stop - _td_ns(lookback or timedelta())
        if begin >= stop:
            raise ValidationError("the requested range has not begun yet by the gateway's clock")
        first = _ceil(tf, begin)
        if stop < now:
            stop = _ceil(tf, stop)  # same bars, bar-aligned range
        horizon = min(tf.bucket(now - int(self.settle * NS)), stop)
        dataset = self._dataset(instrument.id, tf)
        lock = self._locks.setdefault(dataset.root, asyncio.Lock())
        async with lock:
            cached = await self._cached(dataset, instrument, tf, (first, horizon), show)
        frame = cached
        recent = (max(first, horizon), stop)
        if recent[0] < recent[1]:  # closed too recently to cache: fetched on every call
            tail = [page async for page, _ in self._pages(instrument, tf, recent)]
            frame = pl.concat([cached, *reversed(tail)])
        return frame.with_columns(pl.col("timestamp").dt.convert_time_zone(zone))

    def scan(
        self,
        contract: str | Instrument,
        *,
        unit: str | int = "minute",
        interval: int = 1,
        start: datetime | date | str | None = None,
        end: datetime | date | str | None = None,
        tz: str | None = None,
    ) -> pl.LazyFrame:
        """Lazy bars of one contract id already in the cache (no network), oldest first."""
        tf = _timeframe(unit, interval)
        zone = _check_zone(tz or self.tz)
        dataset = self._dataset(_contract_id(contract), tf)
        lo = _ns(_as_time(start, "start")) if start is not None else -(2**62)
        hi = _ns(_as_time(end, "end")) if end is not None else 2**62
        frame = dataset.scan(lo, hi)
        return frame.with_columns(pl.col("timestamp").dt.convert_time_zone(zone))

    def coverage(
        self, contract: str | Instrument, *, unit: str | int = "minute", interval: int = 1
    ) -> list[tuple[datetime, datetime]]:
        """The UTC ranges `[start, end)` whose bars of this contract are all in the cache."""
        dataset = self._dataset(_contract_id(contract), _timeframe(unit, interval))
        return [(_dt(a), _dt(b)) for a, b in dataset.covered()]

    def clear(self, contract: str | Instrument | None = None) -> int:
        """Delete the cached bars of one contract (every unit and interval), or of every
        contract in this store's namespace; returns how many files were removed. Do not call it
        while a download into the same cache is running."""
        base = self.cache_dir / self.namespace
        root = base / _safe(_contract_id(contract)) if contract is not None else base
        if not root.is_dir():
            return 0
        count = sum(1 for path in root.rglob("*") if path.is_file())
        shutil.rmtree(root)
        return count

    # ------------------------------------------------------------------ internals

    def _dataset(self, contract_id: str, tf: Timeframe) -> BarDataset:
        root = self.cache_dir / self.namespace / _safe(contract_id) / f"{tf.unit}-{tf.number}"
        return BarDataset(root, CHUNK_PERIOD[tf.unit])

    async def _cached(
        self,
        dataset: BarDataset,
        instrument: Instrument,
        tf: Timeframe,
        span: Range,
        show: bool | None,
    ) -> pl.DataFrame:
        """Bars of `span` from the cache after downloading whatever it lacks."""
        if span[0] >= span[1]:
            return empty_frame()
        for _ in range(_MAX_PASSES):
            gaps = subtract(span, dataset.covered())
            if gaps:
                await self._download(dataset, instrument, tf, gaps, show)
            frame, quarantined = await asyncio.to_thread(dataset.read, *span)
            if not quarantined:
                return frame
        raise ProjectXError(f"cache files in {dataset.root} keep failing to read back")

    async def _download(
        self,
        dataset: BarDataset,
        instrument: Instrument,
        tf: Timeframe,
        gaps: list[Range],
        show: bool | None,
    ) -> None:
        """Fetch the gaps newest first, writing each chunk piece once all its bars are in."""
        slot = tf.approx_ns
        total = sum(b - a for a, b in gaps)
        with tqdm(
            total=max(1, total // slot),
            unit="bar",
            unit_scale=True,
            desc=f"{instrument.name} {tf.label}",
            disable=show is False,
            delay=0.0 if show else 1.0,
            leave=bool(show),
        ) as bar:
            done = 0
            for gap in reversed(gaps):
                pieces = split(gap, dataset.period)
                buffer = empty_frame()
                previous = gap[1]
                async for page, known_from in self._pages(instrument, tf, gap):
                    buffer = pl.concat([page, buffer]) if buffer.height else page
                    while pieces and pieces[-1][0] >= known_from:
                        piece = pieces.pop()
                        edge = _utc_lit(piece[0])
                        rows = buffer.filter(pl.col("timestamp") >= edge)
                        await asyncio.to_thread(dataset.write, piece, rows)
                        buffer = buffer.filter(pl.col("timestamp") < edge)
                    done += previous - known_from
                    previous = known_from
                    bar.update(done // slot - bar.n)

    async def _pages(
        self, instrument: Instrument, tf: Timeframe, span: Range
    ) -> AsyncIterator[tuple[pl.DataFrame, int]]:
        """Closed bars opening in `span`, one gateway page at a time, newest page first. Yields
        `(page, known_from)`: every bar in `[known_from, span end)` has now been received."""
        start, page_end = span
        while True:
            raw = await self._client.get_bars(
                instrument,
                unit=tf.gateway_unit,
                interval=tf.number,
                start_time=_dt(start),
                end_time=_dt(page_end),
                limit=MAX_BARS_PER_REQUEST,
                use_cache=False,
                tz="UTC",
            )
            ts = pl.col("timestamp")
            page = raw.filter((ts >= _utc_lit(start)) & (ts < _utc_lit(page_end)))
            if raw.height < MAX_BARS_PER_REQUEST:
                yield page, start
                return
            if page.is_empty():
                raise ProjectXError(
                    "History/retrieveBars returned a full page outside the requested window; "
                    "cannot page further back"
                )
            oldest = page["timestamp"].dt.epoch("ns")[0]
            yield page, oldest
            if oldest <= start:
                return
            page_end = oldest


def _timeframe(unit: str | int, interval: int) -> Timeframe:
    bar_unit = parse_unit(unit)
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise ValidationError(f"interval must be an integer >= 1, got {interval!r}")
    return Timeframe(interval, bar_unit.name.lower())


def _ceil(tf: Timeframe, ts_ns: int) -> int:
    """The first bar open at or after `ts_ns` (bars opening in [t, …) = in [ceil(t), …))."""
    bucket = tf.bucket(ts_ns)
    return bucket if bucket == ts_ns else tf.next_bucket(bucket)


def _as_time(value: Any, name: str) -> datetime:
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return as_utc(value, name)


def _ns(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(microseconds=1) * 1000


def _td_ns(value: timedelta) -> int:
    return value // timedelta(microseconds=1) * 1000


def _dt(ts_ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ts_ns // 1000)


def _utc_lit(ts_ns: int) -> pl.Expr:
    return pl.lit(ts_ns, dtype=pl.Int64).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")


def _contract_id(contract: str | Instrument) -> str:
    if isinstance(contract, Instrument):
        return contract.id
    if not isinstance(contract, str) or not contract.strip():
        raise ValidationError(f"contract must be a contract id or an Instrument, got {contract!r}")
    return contract.strip()


def _default_namespace(client: ProjectX) -> str:
    settings = client.settings
    host = settings.api_url.split("://", 1)[-1].split("/", 1)[0]
    return f"{host}+live" if settings.live else host


def _safe(name: str) -> str:
    """A path component: anything but letters, digits and `._+-` becomes `_`."""
    cleaned = _UNSAFE.sub("_", name.strip())
    return "_" + cleaned if cleaned in ("", ".", "..") else cleaned


def _check_zone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValidationError(f"unknown timezone {tz!r}") from None
    return tz


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
