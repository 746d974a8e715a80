"""BarSeries: live aggregation equals an independent aggregation; merges; bounded memory."""

from __future__ import annotations

import random

import numpy as np
import pytest

from projectx_lab.managers.bars import BarSeries
from projectx_lab.managers.timeframes import Timeframe

NS = 1_000_000_000
T0 = 1_790_000_000 * NS  # 2026-09-21 UTC


def reference_bars(trades, tf: Timeframe):
    """Straightforward dict aggregation: open time → [o, h, l, c, v]."""
    out: dict[int, list] = {}
    for ts, price, size in trades:
        b = tf.bucket(ts)
        if b not in out:
            out[b] = [price, price, price, price, size]
        else:
            bar = out[b]
            bar[1] = max(bar[1], price)
            bar[2] = min(bar[2], price)
            bar[3] = price
            bar[4] += size
    return [(b, *vals) for b, vals in sorted(out.items())]


def random_tape(n: int, seed: int = 1, start: int = T0, mean_gap_s: float = 0.7):
    rng = random.Random(seed)
    ts, price, out = start, 21000.0, []
    for _ in range(n):
        ts += int(rng.expovariate(1 / mean_gap_s) * NS)
        price += rng.choice((-0.25, 0, 0.25))
        out.append((ts, price, rng.choice((1, 1, 2, 3, 7))))
    return out


@pytest.mark.parametrize("label", ["15s", "1min", "5min", "1hr", "4h", "1d", "1w", "1mo"])
def test_live_bars_equal_reference(label):
    tf = Timeframe.parse(label)
    tape = random_tape(5000, mean_gap_s=90 if tf.unit in ("day", "week", "month") else 0.7)
    series = BarSeries(tf, capacity=100_000)
    for ts, price, size in tape:
        series.add_trade(ts, price, size)
    got = list(zip(*(col.tolist() for col in series.arrays()), strict=True))
    assert got == reference_bars(tape, tf)


def test_new_bar_flag_and_frame_tz():
    series = BarSeries("1min")
    assert series.add_trade(T0 + 1, 10.0, 1) is True
    assert series.add_trade(T0 + 2 * NS, 11.0, 2) is False
    assert series.add_trade(T0 + 61 * NS, 9.0, 1) is True
    frame = series.to_frame()
    assert frame.columns == ["timestamp", "open", "high", "low", "close", "volume"]
    assert str(frame["timestamp"].dtype.time_zone) == "America/Chicago"
    assert frame["volume"].to_list() == [3, 1]
    assert series.to_frame(bars=1)["close"].to_list() == [9.0]


def test_frame_is_cached_until_next_change():
    series = BarSeries("1min")
    series.add_trade(T0, 10.0, 1)
    first = series.to_frame()
    assert series.to_frame() is first
    series.add_trade(T0 + NS, 10.25, 1)
    assert series.to_frame() is not first


def test_capacity_bounds_memory():
    series = BarSeries("1s", capacity=100)
    for i in range(10_000):
        series.add_trade(T0 + i * NS, 100.0 + (i % 7), 1)
    assert len(series) == 101  # 100 closed + the forming bar
    t = series.arrays()[0]
    assert np.all(np.diff(t) == NS) and t[-1] == T0 + 9999 * NS


def test_upsert_history_then_live_continues_without_duplicates():
    tf = Timeframe.parse("1min")
    tape = random_tape(3000)
    ref = reference_bars(tape, tf)
    cut = ref[-10][0]  # history covers every bar before `cut` plus a partial one at `cut`
    hist = [b for b in ref if b[0] < cut]
    partial_trades = [tr for tr in tape if tf.bucket(tr[0]) == cut][:3]
    partial = reference_bars(partial_trades, tf)[0]
    series = BarSeries(tf)
    cols = [np.array(c) for c in zip(*([*hist, partial]), strict=True)]
    series.upsert(*cols, last_is_partial=True)
    for tr in tape:
        if tr[0] > partial_trades[-1][0]:
            series.add_trade(*tr)
    got = list(zip(*(col.tolist() for col in series.arrays()), strict=True))
    assert got == ref


def test_upsert_backfill_replaces_gap_bars_and_keeps_forming():
    tf = Timeframe.parse("1min")
    tape = random_tape(3000)
    ref = reference_bars(tape, tf)
    gap_start, gap_end = ref[20][0], ref[30][0]
    series = BarSeries(tf)
    for tr in tape:
        if not gap_start <= tf.bucket(tr[0]) < gap_end:
            series.add_trade(*tr)
    backfill = [b for b in ref if gap_start - 60 * NS <= b[0] < gap_end]
    series.upsert(*[np.array(c) for c in zip(*backfill, strict=True)])
    got = list(zip(*(col.tolist() for col in series.arrays()), strict=True))
    assert got == ref


def test_backfill_after_a_quiet_reconnect_closes_the_stale_forming_bar():
    """No live trade since the drop: the series still holds the bar that was forming then,
    and the gateway's closed bars run past it. They all land, the stale bar is replaced by the
    gateway's (closed) version, and the next trade opens a new bar after them."""
    tf = Timeframe.parse("1min")
    tape = random_tape(3000)
    ref = reference_bars(tape, tf)
    drop = ref[20][0]
    series = BarSeries(tf)
    for tr in tape:
        if tf.bucket(tr[0]) > drop:
            break
        series.add_trade(*tr)  # up to a few trades into the bar forming at the drop
    assert series.forming_bucket == drop
    backfill = [b for b in ref if drop <= b[0] <= ref[30][0]]  # closed bars to "now"
    series.upsert(*[np.array(c) for c in zip(*backfill, strict=True)])
    assert series.forming_bucket is None
    got = list(zip(*(col.tolist() for col in series.arrays()), strict=True))
    assert got == ref[:31]
    for tr in tape:
        if tf.bucket(tr[0]) > ref[30][0]:
            series.add_trade(*tr)
    got = list(zip(*(col.tolist() for col in series.arrays()), strict=True))
    assert got == ref


def test_late_trade_folds_into_closed_bar():
    series = BarSeries("1min")
    series.add_trade(T0, 10.0, 1)
    series.add_trade(T0 + 60 * NS, 10.0, 1)
    series.add_trade(T0 + 5 * NS, 12.0, 4)  # arrives late
    _, _, h, _, c, v = series.arrays()
    assert h[0] == 12.0 and v[0] == 5 and c[0] == 10.0


def test_bad_capacity_is_clear():
    with pytest.raises(ValueError, match="capacity"):
        BarSeries("1min", capacity=0)


def test_upsert_of_a_single_partial_bar_into_an_empty_series():
    series = BarSeries("1min")
    series.upsert(*[np.array([v]) for v in (T0, 1.0, 2.0, 0.5, 1.5, 3)], last_is_partial=True)
    assert series.forming_bucket == T0 and len(series) == 1
    series.add_trade(T0 + NS, 2.5, 1)
    assert series.arrays()[2][-1] == 2.5 and series.arrays()[5][-1] == 4
