"""Indicators against straightforward Python loops over small series, warm-up rows included, plus
the same expressions on a history frame and on the live data manager's frame."""

from __future__ import annotations

import math
import random
import statistics
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from projectx_lab import ProjectX
from projectx_lab.managers.data import RealtimeDataManager
from projectx_lab.research.history import HistoryStore
from projectx_lab.research.indicators import (
    add_indicators,
    atr,
    bollinger,
    ema,
    macd,
    rsi,
    sma,
    vwap,
)
from projectx_lab.sim import Simulator

from ..conftest import sim_options

Series = list[float | None]


def bars(count: int, seed: int = 3) -> pl.DataFrame:
    """A random-walk bar frame (1-minute bars from 2026-11-01 20:00 UTC, across the CME session
    edge and the end of US daylight time), with a few zero-volume bars."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, 20, 0, tzinfo=UTC)
    close = 100.0
    rows = []
    for i in range(count):
        open_ = close
        close = round(open_ + rng.gauss(0, 1), 2)
        high = round(max(open_, close) + rng.random(), 2)
        low = round(min(open_, close) - rng.random(), 2)
        volume = 0 if i % 17 == 0 else rng.randint(1, 500)
        rows.append((start + timedelta(minutes=37 * i), open_, high, low, close, volume))
    frame = pl.DataFrame(
        rows,
        schema={
            "timestamp": pl.Datetime("us", "UTC"),
            "open": pl.Float64,
            "high": pl.Float64,
            "low": pl.Float64,
            "close": pl.Float64,
            "volume": pl.Int64,
        },
        orient="row",
    )
    return frame.with_columns(pl.col("timestamp").dt.convert_time_zone("America/Chicago"))


def assert_close(actual: Series, expected: Series, tol: float = 1e-9) -> None:
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        if e is None:
            assert a is None, f"row {i}: expected null (warm-up), got {a}"
        else:
            assert a is not None and math.isclose(a, e, rel_tol=tol, abs_tol=tol), (i, a, e)


# ---------------------------------------------------------------- reference loops


def ref_sma(xs: Series, n: int) -> Series:
    return [None if i < n - 1 else sum(xs[i - n + 1 : i + 1]) / n for i in range(len(xs))]


def ref_ema(xs: Series, n: int, alpha: float, seed: str = "sma") -> Series:
    """Seeded with the mean of the first n non-null values (or the first value)."""
    out: Series = []
    value = None
    window: list[float] = []
    for x in xs:
        if x is None:
            out.append(value)
            continue
        if value is None and seed == "sma":
            window.append(x)
            if len(window) == n:
                value = sum(window) / n
        elif value is None:
            value = x
        else:
            value = alpha * x + (1 - alpha) * value
        out.append(value)
    return out


def ref_rsi(xs: list[float], n: int) -> Series:
    out: Series = [None] * len(xs)
    gains = [max(xs[i] - xs[i - 1], 0.0) for i in range(1, len(xs))]
    losses = [max(xs[i - 1] - xs[i], 0.0) for i in range(1, len(xs))]
    avg_gain = avg_loss = 0.0
    for i in range(n, len(xs)):
        if i == n:
            avg_gain, avg_loss = sum(gains[:n]) / n, sum(losses[:n]) / n
        else:
            avg_gain = (avg_gain * (n - 1) + gains[i - 1]) / n
            avg_loss = (avg_loss * (n - 1) + losses[i - 1]) / n
        total = avg_gain + avg_loss
        out[i] = 50.0 if total == 0 else 100.0 * avg_gain / total
    return out


def ref_atr(high: list[float], low: list[float], close: list[float], n: int) -> Series:
    ranges = [high[0] - low[0]] + [
        max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
        for i in range(1, len(close))
    ]
    out: Series = [None] * len(close)
    for i in range(n - 1, len(close)):
        prev = out[i - 1]
        out[i] = sum(ranges[:n]) / n if i == n - 1 else (prev * (n - 1) + ranges[i]) / n  # type: ignore[operator]
    return out


def ref_vwap(frame: pl.DataFrame, start: time, tz: str) -> Series:
    out: Series = []
    key = None
    pv = vol = 0.0
    zone = ZoneInfo(tz)
    for ts, h, lo, c, v in frame.select("timestamp", "high", "low", "close", "volume").iter_rows():
        local = ts.astimezone(zone)
        session = local.date() + timedelta(days=1 if local.time() >= start else 0)
        if session != key:
            key, pv, vol = session, 0.0, 0.0
        pv += (h + lo + c) / 3 * v
        vol += v
        out.append(pv / vol if vol > 0 else None)
    return out


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("n", [1, 5, 20])
def test_sma_and_ema_match_the_loops(n: int) -> None:
    frame = bars(60)
    xs = frame["close"].to_list()
    out = frame.with_columns(sma(n), ema(n), ema(n, seed="first", name="ema_first"))
    assert_close(out[f"sma_{n}"].to_list(), ref_sma(xs, n))
    assert_close(out[f"ema_{n}"].to_list(), ref_ema(xs, n, 2 / (n + 1)))
    assert_close(out["ema_first"].to_list(), ref_ema(xs, n, 2 / (n + 1), "first"))
    assert out[f"ema_{n}"].null_count() == n - 1  # warm-up rows


def test_ema_seeds_after_leading_nulls() -> None:
    xs = [None, None, None, 3.0, 5.0, 4.0, 8.0, 6.0, 7.0]
    out = pl.DataFrame({"x": xs}, schema={"x": pl.Float64}).select(ema(3, "x"))
    assert_close(out["ema_3"].to_list(), ref_ema(xs, 3, 0.5))
    assert out["ema_3"].to_list()[:5] == [None] * 5 and out["ema_3"][5] == 4.0


def test_seed_skips_a_null_inside_the_first_n_values() -> None:
    xs = [None, None, 1.0, 2.0, None, 3.0, 4.0, 5.0, 6.0, 7.0]
    out = pl.DataFrame({"x": xs}, schema={"x": pl.Float64}).select(ema(3, "x"), rsi(3, "x"))
    # ema: mean of 1, 2, 3 at the third non-null value, then α = 0.5
    assert out["ema_3"].to_list() == [None] * 5 + [2.0, 3.0, 4.0, 5.0, 6.0]
    # changes are non-null at rows 3, 6, 7, ...: the third of them (row 7) seeds the RSI
    assert out["rsi_3"].to_list() == [None] * 7 + [100.0] * 3


@pytest.mark.parametrize("n", [2, 14])
def test_rsi_matches_wilders_loop(n: int) -> None:
    frame = bars(80)
    xs = frame["close"].to_list()
    out = frame.select(rsi(n))[f"rsi_{n}"].to_list()
    assert_close(out, ref_rsi(xs, n))
    assert out[n - 1] is None and out[n] is not None


def test_rsi_edge_cases_flat_rising_falling() -> None:
    frame = pl.DataFrame({"close": [5.0] * 6 + [6.0, 7.0, 6.5]})
    out = frame.select(rsi(3))["rsi_3"].to_list()
    assert out[:3] == [None] * 3 and out[3:6] == [50.0] * 3
    assert_close(out, ref_rsi(frame["close"].to_list(), 3))
    up = pl.DataFrame({"close": [1.0, 2.0, 3.0, 4.0]}).select(rsi(2))["rsi_2"].to_list()
    down = pl.DataFrame({"close": [4.0, 3.0, 2.0, 1.0]}).select(rsi(2))["rsi_2"].to_list()
    assert up == [None, None, 100.0, 100.0] and down == [None, None, 0.0, 0.0]


@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (3, 6, 4)])
def test_macd_matches_the_loop(fast: int, slow: int, signal: int) -> None:
    frame = bars(70)
    xs = frame["close"].to_list()
    fast_ema = ref_ema(xs, fast, 2 / (fast + 1))
    slow_ema = ref_ema(xs, slow, 2 / (slow + 1))
    line = [None if s is None else f - s for f, s in zip(fast_ema, slow_ema, strict=True)]  # type: ignore[operator]
    sig = ref_ema(line, signal, 2 / (signal + 1))
    hist = [None if g is None else m - g for m, g in zip(line, sig, strict=True)]  # type: ignore[operator]
    out = add_indicators(frame, macd(fast, slow, signal))
    assert_close(out["macd_line"].to_list(), line)
    assert_close(out["macd_signal"].to_list(), sig)
    assert_close(out["macd_hist"].to_list(), hist)
    assert out["macd_line"].null_count() == slow - 1
    assert out["macd_signal"].null_count() == slow + signal - 2


def test_atr_matches_wilders_loop() -> None:
    frame = bars(50)
    h, lo, c = (frame[name].to_list() for name in ("high", "low", "close"))
    for n in (1, 5, 14):
        out = frame.select(atr(n))[f"atr_{n}"].to_list()
        assert_close(out, ref_atr(h, lo, c, n))


def test_bollinger_matches_the_loop() -> None:
    frame = bars(40)
    xs = frame["close"].to_list()
    n, k = 20, 2.5
    mid = ref_sma(xs, n)
    dev = [None if i < n - 1 else statistics.pstdev(xs[i - n + 1 : i + 1]) for i in range(len(xs))]
    out = add_indicators(frame, bollinger(n, k))
    assert_close(out["bb_middle"].to_list(), mid)
    pairs = list(zip(mid, dev, strict=True))
    upper = [None if m is None or d is None else m + k * d for m, d in pairs]
    lower = [None if m is None or d is None else m - k * d for m, d in pairs]
    assert_close(out["bb_upper"].to_list(), upper)
    assert_close(out["bb_lower"].to_list(), lower)


@pytest.mark.parametrize(("start", "tz"), [("17:00", "America/Chicago"), ("00:00", "UTC")])
def test_vwap_is_anchored_per_session(start: str, tz: str) -> None:
    frame = bars(120)  # 74 hours: several sessions and the 2026-11-01 DST change
    out = frame.select(vwap(session_start=start, tz=tz))["vwap"].to_list()
    assert_close(out, ref_vwap(frame, time.fromisoformat(start), tz))
    assert out[0] is None  # the first bar has no volume


def test_indicators_work_on_lazy_frames_and_reject_bad_input() -> None:
    frame = bars(40)
    lazy = add_indicators(frame.lazy(), sma(5), macd(3, 6, 4), bollinger(10)).collect()
    eager = add_indicators(frame, sma(5), macd(3, 6, 4), bollinger(10))
    assert_frame_equal(lazy, eager, rel_tol=1e-12)  # engines may sum windows differently
    assert {"macd_line", "macd_signal", "macd_hist", "bb_upper"} <= set(eager.columns)
    for bad in (lambda: sma(0), lambda: ema(2.5), lambda: rsi(True), lambda: macd(26, 12)):
        with pytest.raises(ValueError):
            bad()
    with pytest.raises(ValueError, match="seed"):
        ema(3, seed="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="session_start"):
        vwap(session_start="5pm")
    with pytest.raises(ValueError, match="k must be"):
        bollinger(20, k=0)


async def test_same_values_on_history_and_live_manager_frames(tmp_path: Path) -> None:
    everything = (sma(20), ema(20), rsi(), macd(), atr(), bollinger(), vwap())
    async with Simulator(**sim_options()) as sim, ProjectX.for_simulator(sim) as client:
        manager = RealtimeDataManager("MNQ", client, None, ["1min"], initial_bars=300)
        await manager.initialize()
        live = (await manager.get_data("1min")).head(-1)  # drop the forming bar
        store = HistoryStore(client, cache_dir=tmp_path, progress=False)
        first, last = live["timestamp"][0], live["timestamp"][-1]
        history = await store.get("MNQ", first, last + timedelta(minutes=1))
    assert history.equals(live)
    live_out = add_indicators(live, *everything)
    history_out = add_indicators(history, *everything)
    assert live_out.equals(history_out)
    assert live_out["rsi_14"].null_count() == 14 and live_out["macd_signal"].null_count() == 33
