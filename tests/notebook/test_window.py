"""`BarWindow` over a real `BarSeries`: each read is the series' newest bars, every closed bar
that scrolls out reaches the evict hook exactly once and in order, and anything evictions
cannot explain (a history merge, more than a window of new bars) is reported as a rebase."""

from __future__ import annotations

from datetime import UTC

import numpy as np

from projectx_lab.managers.bars import BarSeries
from projectx_lab.notebook.window import BarWindow

MIN = 60 * 1_000_000_000
T0 = 1_700_000_040 * 1_000_000_000 // MIN * MIN


def history(series: BarSeries, bars: int) -> None:
    t = T0 + MIN * np.arange(bars, dtype=np.int64)
    close = 100.0 + np.arange(bars, dtype=np.float64)
    series.upsert(t, close, close + 1, close - 1, close, np.full(bars, 10, dtype=np.int64))


def trade_in_bar(series: BarSeries, index: int, price: float = 500.0) -> None:
    series.add_trade(int(T0 + MIN * index + 1), price, 1)


def test_window_follows_the_series_and_reports_evictions_and_rebases() -> None:
    series = BarSeries("1min", capacity=1_000)
    history(series, 50)
    window = BarWindow(series, 10, UTC)
    evicted: list[int] = []
    window.on_evict(lambda bar: evicted.append(bar[0]))

    t, *_ = window.read()
    assert window.rebased and window.reloads == 1  # first read: carried state is built
    assert list(t) == list(T0 + MIN * np.arange(40, 50))
    assert len(window.history_before()[0]) == 40

    for i in range(50, 54):  # four new bars: the forming one plus three that closed
        trade_in_bar(series, i)
    t, o, h, low, c, v = window.read()
    assert not window.rebased and window.reloads == 1
    assert evicted == [int(T0 + MIN * i) for i in range(40, 43)]  # oldest first, once each
    assert t[-1] == T0 + MIN * 53 and c[-1] == 500.0 and len(t) == 11  # 10 closed + forming
    assert [list(col) for col in (t, o, h, low, c, v)] == [
        list(col[-11:]) for col in series.arrays()
    ]
    shape = window.shape
    trade_in_bar(series, 53, 501.0)  # same forming bar: nothing scrolls, x axis unchanged
    assert window.read()[4][-1] == 501.0 and window.shape == shape and len(evicted) == 3

    for i in range(60, 80):  # more than a window of bars at once: evictions cannot say
        trade_in_bar(series, i)
    window.read()
    assert window.rebased and window.reloads == 2 and len(evicted) == 3

    history(series, 30)  # a backfill rewrote bars inside the history
    window.read()
    assert window.rebased and window.reloads == 3


def test_tail_is_the_end_of_arrays() -> None:
    series = BarSeries("1min", capacity=8)
    history(series, 20)  # the ring keeps the newest 8
    trade_in_bar(series, 20)
    full = series.arrays()
    for k in (0, 3, 8, 50):
        tail = series.tail(k)
        assert [list(col) for col in tail] == [list(col[len(col) - len(tail[0]) :]) for col in full]
        assert len(tail[0]) == min(k, 8) + 1
