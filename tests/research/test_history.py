"""HistoryStore against the simulator: multi-page pulls equal the simulator's own bars, repeat and
overlapping pulls fetch only what is missing (counted on the simulator), downloads resume after a
failure, temp and damaged files are never read as complete, the forming bar is never cached."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from projectx_lab import ProjectX
from projectx_lab.client.errors import ServerError, ValidationError
from projectx_lab.managers.timeframes import NS, Timeframe
from projectx_lab.research.history import CACHE_ENV, HistoryStore, default_cache_dir
from projectx_lab.research.ranges import merge, split, subtract
from projectx_lab.sim import Simulator

from ..conftest import SIM_START, sim_options

BARS = "/api/History/retrieveBars"
PAGE = 20_000
TIMEOUT = 20.0


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[tuple[Simulator, ProjectX, HistoryStore]]:
    async with Simulator(**sim_options()) as sim:
        async with ProjectX.for_simulator(sim) as client:
            await client.authenticate()
            yield sim, client, HistoryStore(client, cache_dir=tmp_path / "cache", progress=False)


def ns(dt: datetime) -> int:
    return int(dt.timestamp()) * NS


def truth(sim: Simulator, contract_id: str, tf: Timeframe, start: datetime, end: datetime):
    """The simulator's own closed bars opening in [start, end), oldest first, as floats."""
    spec = sim.exchange.spec(contract_id)
    rows = sim.exchange.market(contract_id).bars(
        tf.gateway_unit, tf.number, ns(start), ns(end), 10**8, False, sim.clock.now_ns()
    )
    px = spec.to_price
    return [(t, px(o), px(h), px(lo), px(c), v) for t, o, h, lo, c, v in reversed(rows)]


def rows(frame: pl.DataFrame):
    """(ns, o, h, l, c, v) tuples of a bar frame."""
    out = frame.with_columns(pl.col("timestamp").dt.epoch("ns"))
    return list(out.iter_rows())


def pages_for(count: int) -> int:
    """Requests a backwards pull of `count` bars takes: full pages plus the one that ends it."""
    return count // PAGE + 1


def files(store: HistoryStore, contract_id: str, tf: Timeframe) -> list[Path]:
    return [f.path for f in store._dataset(contract_id, tf).files()]


async def test_multi_page_minute_pull_equals_the_simulators_bars(rig) -> None:
    sim, client, store = rig
    start, end = SIM_START - timedelta(days=35), SIM_START - timedelta(days=5)
    frame = await store.get("MNQ", start, end, unit="minute", interval=1)
    instrument = await client.get_instrument("MNQ")
    tf = Timeframe(1, "minute")
    expected = truth(sim, instrument.id, tf, start, end)
    assert len(expected) > 2 * PAGE
    assert rows(frame) == expected  # no gap, no duplicate, same OHLCV
    assert frame["timestamp"].is_sorted() and frame["timestamp"].n_unique() == frame.height
    assert frame.schema["timestamp"] == pl.Datetime("ns", "America/Chicago")
    assert sim.request_count(BARS) == pages_for(len(expected))
    names = [p.name for p in files(store, instrument.id, tf)]  # cut at the UTC month edge
    assert names == ["20260827T143000-20260901T000000.parquet",
                     "20260901T000000-20260926T143000.parquet"]  # fmt: skip


async def test_multi_page_second_pull_across_a_day_edge(rig) -> None:
    sim, client, store = rig
    start = datetime(2026, 9, 29, 21, 0, tzinfo=UTC)
    end = start + timedelta(hours=10)
    frame = await store.get("MNQ", start, end, unit="second", interval=1, tz="UTC")
    instrument = await client.get_instrument("MNQ")
    expected = truth(sim, instrument.id, Timeframe(1, "second"), start, end)
    assert len(expected) > PAGE
    assert rows(frame) == expected
    assert sim.request_count(BARS) == pages_for(len(expected))
    assert len(files(store, instrument.id, Timeframe(1, "second"))) == 2


async def test_long_pull_is_paced_by_the_clients_history_limiter(tmp_path: Path) -> None:
    async with Simulator(**sim_options(history_rate=(4, 0.5))) as sim:  # a tight bucket
        async with ProjectX.for_simulator(sim) as client:  # adopts it: no second limiter
            store = HistoryStore(client, cache_dir=tmp_path, progress=False)
            start, end = SIM_START - timedelta(days=100), SIM_START - timedelta(days=1)
            frame = await store.get("MNQ", start, end)
            assert sim.request_count(BARS) == pages_for(frame.height) > 4
            assert client.stats.rate_limited == 0 and client.stats.retries == 0


async def test_repeat_pull_reads_the_cache_without_requests(rig, tmp_path: Path) -> None:
    sim, client, store = rig
    start, end = SIM_START - timedelta(days=20), SIM_START - timedelta(days=2)
    first = await store.get("MNQ", start, end, interval=5)
    used = sim.request_count(BARS)
    again = await store.get("MNQ", start, end, interval=5)
    inside = await store.get("MNQ", start + timedelta(days=3), end - timedelta(days=3), interval=5)
    reopened = HistoryStore(client, cache_dir=tmp_path / "cache", progress=False)
    later = await reopened.get("MNQ", start, end, interval=5)
    assert sim.request_count(BARS) == used
    assert again.equals(first) and later.equals(first)
    lo, hi = start + timedelta(days=3), end - timedelta(days=3)
    ts = first["timestamp"].dt.epoch("ns")
    assert inside.equals(first.filter((ts >= ns(lo)) & (ts < ns(hi))))
    instrument = await client.get_instrument("MNQ")
    lazy = store.scan(instrument.id, interval=5, start=lo, end=hi)
    assert isinstance(lazy, pl.LazyFrame) and lazy.collect().equals(inside)
    assert store.scan(instrument, interval=5).collect().equals(first)
    assert store.coverage(instrument, interval=5) == [(start, end)]
    stored = files(store, instrument.id, Timeframe(5, "minute"))
    assert store.clear(instrument.id) == len(stored) == 1
    assert store.coverage(instrument, interval=5) == [] and store.clear() == 0


async def test_overlapping_pull_fetches_only_the_missing_part(rig) -> None:
    sim, client, store = rig
    d0 = datetime(2026, 9, 5, tzinfo=UTC)
    await store.get("MNQ", date(2026, 9, 5), "2026-09-15T00:00:00Z")  # dates are 00:00 UTC
    before = sim.request_count(BARS)
    frame = await store.get("MNQ", d0 + timedelta(days=5), d0 + timedelta(days=15))
    instrument = await client.get_instrument("MNQ")
    tf = Timeframe(1, "minute")
    missing = truth(sim, instrument.id, tf, d0 + timedelta(days=10), d0 + timedelta(days=15))
    assert sim.request_count(BARS) - before == pages_for(len(missing))
    expected = truth(sim, instrument.id, tf, d0 + timedelta(days=5), d0 + timedelta(days=15))
    assert rows(frame) == expected
    assert store.coverage(instrument) == [(d0, d0 + timedelta(days=15))]
    assert len(files(store, instrument.id, tf)) == 1  # touching pieces of one month are merged


async def test_interrupted_download_resumes_from_the_chunks_it_finished(
    rig, tmp_path: Path, wait_for
) -> None:
    sim, client, resumed = rig
    start, end = datetime(2026, 6, 15, tzinfo=UTC), datetime(2026, 9, 15, tzinfo=UTC)
    instrument = await client.get_instrument("MNQ")
    tf = Timeframe(1, "minute")
    sim.faults.add_latency(0.05, BARS)
    async with ProjectX.for_simulator(sim, retry_attempts=1) as fragile:
        store = HistoryStore(fragile, cache_dir=tmp_path / "cache", progress=False)
        pull = asyncio.ensure_future(store.get("MNQ", start, end))
        await wait_for(lambda: files(store, instrument.id, tf) or pull.done(), within=TIMEOUT)
        sim.faults.fail_next(BARS, 1, 503)
        with pytest.raises(ServerError):
            await asyncio.wait_for(pull, TIMEOUT)
    sim.faults.clear()
    kept = {p: p.stat().st_ino for p in files(store, instrument.id, tf)}
    assert kept and store.coverage(instrument)[0][1] == end  # newest chunks were stored
    covered_from = store.coverage(instrument)[0][0]
    assert covered_from > start
    before = sim.request_count(BARS)
    frame = await resumed.get("MNQ", start, end)  # same cache directory, a healthy client
    missing = truth(sim, instrument.id, tf, start, covered_from)
    assert sim.request_count(BARS) - before == pages_for(len(missing))
    assert rows(frame) == truth(sim, instrument.id, tf, start, end)
    assert all(p.exists() and p.stat().st_ino == ino for p, ino in kept.items())


async def test_temp_files_are_ignored_and_damaged_files_refetched(rig) -> None:
    sim, client, store = rig
    start, end = datetime(2026, 9, 2, tzinfo=UTC), datetime(2026, 9, 3, tzinfo=UTC)
    first = await store.get("MNQ", start, end)
    instrument = await client.get_instrument("MNQ")
    tf = Timeframe(1, "minute")
    [path] = files(store, instrument.id, tf)
    data = path.read_bytes()
    # a crash mid-write leaves a truncated temp file: never listed, never read
    (path.parent / f".{path.name}.4242.deadbeef.tmp").write_bytes(data[: len(data) // 2])
    stale = path.parent / ".20260903T000000-20260904T000000.parquet.1.cafe.tmp"
    stale.write_bytes(b"PAR1")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    used = sim.request_count(BARS)
    assert (await store.get("MNQ", start, end)).equals(first)
    assert sim.request_count(BARS) == used
    assert store.coverage(instrument) == [(start, end)]
    # a damaged complete file (external corruption) is quarantined and fetched again
    path.write_bytes(data[: len(data) // 2])
    again = await store.get("MNQ", start, end)
    assert again.equals(first)
    assert sim.request_count(BARS) == used + 1
    assert path.with_name(path.name + ".corrupt").exists()
    assert not stale.exists()  # temp files of dead writers are swept on the next write


async def test_the_forming_bar_and_recent_bars_are_never_cached(rig) -> None:
    sim, client, store = rig
    frame = await store.get("MNQ", timedelta(minutes=30), tz="UTC")
    now = sim.clock.now_ns()
    instrument = await client.get_instrument("MNQ")
    tf = Timeframe(1, "minute")
    last_open = rows(frame)[-1][0]
    assert last_open + 60 * NS <= now  # closed bars only
    [(_, covered_end)] = store.coverage(instrument)
    assert ns(covered_end) <= tf.bucket(now - int(store.settle * NS))
    for path in files(store, instrument.id, tf):
        stored = pl.read_parquet(path)["timestamp"].dt.epoch("ns")
        assert stored.max() < ns(covered_end)
    first_open = rows(frame)[0][0]
    expected = truth(sim, instrument.id, tf, datetime.fromtimestamp(first_open / NS, UTC),
                     datetime.fromtimestamp(last_open / NS + 60, UTC))  # fmt: skip
    assert rows(frame) == expected


async def test_bad_input_is_a_clear_error_and_changes_nothing(rig, tmp_path: Path) -> None:
    sim, client, store = rig
    start, end = SIM_START - timedelta(days=2), SIM_START - timedelta(days=1)
    cases = [
        ({"unit": "fortnight"}, "unit must be one of"),
        ({"interval": 0}, "interval must be an integer"),
        ({"tz": "Mars/Olympus"}, "unknown timezone"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValidationError, match=message):
            await store.get("MNQ", start, end, **kwargs)
    with pytest.raises(ValidationError, match="not before"):
        await store.get("MNQ", end, start)
    with pytest.raises(ValidationError, match="start must be a datetime"):
        await store.get("MNQ", "yesterday-ish", end)
    with pytest.raises(ValidationError, match="settle"):
        HistoryStore(client, settle=-1)
    assert sim.request_count(BARS) == 0
    assert not (tmp_path / "cache").exists()


@given(
    span=st.tuples(st.integers(0, 60), st.integers(0, 60)),
    ranges=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), max_size=6),
)
def test_missing_ranges_are_exactly_the_uncovered_points(span, ranges) -> None:
    covered = merge(ranges)
    assert all(a < b for a, b in covered)
    assert all(b1 < a2 for (_, b1), (a2, _) in itertools.pairwise(covered))
    inside = {t for a, b in covered for t in range(a, b)}
    assert inside == {t for a, b in ranges for t in range(a, b)}
    gaps = subtract(span, covered)
    assert {t for a, b in gaps for t in range(a, b)} == set(range(*span)) - inside
    assert all(a < b for a, b in gaps)


def test_pieces_never_cross_a_chunk_edge() -> None:
    start, end = ns(datetime(2025, 12, 30, 5, tzinfo=UTC)), ns(datetime(2026, 3, 2, tzinfo=UTC))
    pieces = split((start, end), "month")
    assert [datetime.fromtimestamp(a // NS, UTC).strftime("%m-%d") for a, _ in pieces] == [
        "12-30", "01-01", "02-01", "03-01"
    ]  # fmt: skip
    assert pieces[0][0] == start and pieces[-1][1] == end
    assert all(b == a2 for (_, b), (a2, _) in itertools.pairwise(pieces))
    assert len(split((start, end), "year")) == 2 and len(split((start, end), "day")) == 62


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "projectx_lab" / "history"
