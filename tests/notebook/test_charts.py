"""CandlestickChart against the simulator: candles equal the data manager's bars after live
ticks (window trimmed, new bars appended), the x axis stays a date axis fed datetimes (in the
figure and on the wire), late views get the current figure, overlays follow orders and the
position, indicators equal full-history polars results, frames are throttled, and re-running a
cell replaces the chart instead of doubling its handlers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import polars as pl
import pytest

from projectx_lab import ProjectX
from projectx_lab.notebook import EMA, SMA, VWAP, CandlestickChart, cell_scope, registry
from projectx_lab.sim import Simulator

from ..conftest import sim_options
from .widget_support import (  # noqa: F401  (fixtures)
    TIMEOUT,
    comms_fixture,
    frames_until,
    freeze,
    live_fixture,
    open_suite,
)


async def drawn_current(chart: CandlestickChart) -> None:
    """Wait until the figure shows every tick the series has seen (sim time frozen first)."""
    await frames_until(chart, lambda: chart.drawn_version == chart.series.version)


def figure_frame(chart: CandlestickChart) -> dict[str, list]:
    candle = chart.figure.data[0]
    return {
        "timestamp": list(candle.x),
        "open": list(candle.open),
        "high": list(candle.high),
        "low": list(candle.low),
        "close": list(candle.close),
    }


async def test_candles_equal_the_managers_bars_after_live_ticks(live) -> None:
    sim, suite = live
    series = suite.data.series("1min")
    chart = CandlestickChart(suite.data, "1min", bars=30, fps=20)
    try:
        assert len(chart.figure.data[0].x) == 30  # history (60 bars) trimmed to the window
        first_closed = series.last_closed()[0]
        seen = suite.data.trades_seen
        await frames_until(
            chart,
            lambda: suite.data.trades_seen >= seen + 40 and series.last_closed()[0] > first_closed,
        )
        freeze(sim)
        await drawn_current(chart)

        expected = series.to_frame(30)
        got = figure_frame(chart)
        assert len(got["timestamp"]) == 30
        for column in ("timestamp", "open", "high", "low", "close"):
            assert got[column] == expected[column].to_list(), column
        assert list(chart.figure.data[1].y) == expected["volume"].to_list()
        _, o, h, low, c, _ = series.arrays()
        last = (got["open"][-1], got["high"][-1], got["low"][-1], got["close"][-1])
        assert last == (o[-1], h[-1], low[-1], c[-1])

        # a date axis fed aware datetimes in the manager's zone, never epoch numbers
        assert chart.figure.layout.xaxis.type == "date"
        assert all(isinstance(x, datetime) and x.tzinfo is not None for x in got["timestamp"])
        assert str(got["timestamp"][-1].tzinfo) == "America/Chicago"
        # the tick path kept the window current: at most the initial load plus backfills
        assert chart.window.reloads <= 3
        assert chart.frames >= 1
    finally:
        chart.close()
    assert chart.closed and chart.throttle.closed
    assert chart._on_tick not in suite.data.on_tick._callbacks


async def test_wire_messages_keep_a_date_axis_and_one_update_per_frame(live, comms) -> None:
    _, suite = live
    series = suite.data.series("1min")
    chart = CandlestickChart(suite.data, bars=20, fps=20)
    try:
        channel = chart.figure.comm
        frames0, sent0 = chart.frames, len(channel.messages)
        start_bar = series.forming_bucket
        await frames_until(chart, lambda: series.forming_bucket != start_bar)  # a new bar
        await chart.next_frame()
        frames = chart.frames - frames0
        updates = channel.updates("_py2js_update")
        assert 0 < len(updates) <= frames + 1  # one plotly update per frame at most
        # which plotly sends as 4 comm messages: the update, its reset, two edit counters
        sent = [data["state"] for _, data, _ in channel.messages[sent0:]]
        assert {key for state in sent for key in state} == {
            "_py2js_update", "_last_trace_edit_id", "_last_layout_edit_id"
        }  # fmt: skip
        assert len(sent) <= 4 * frames
        x_sent = 0
        for message in channel.wire():
            state = message.get("state") or {}
            update = state.get("_py2js_update") or state.get("_py2js_restyle")
            if not update:
                continue
            style = update.get("style_data") or update.get("restyle_data") or {}
            for xs in style.get("x", []):
                x_sent += 1
                assert all(isinstance(x, str) and x[:4] == "2026" for x in xs), xs[:3]
            layout = update.get("layout_data") or {}
            assert layout.get("xaxis.type", "date") == "date"
        assert x_sent > 0  # the new bar re-sent the x axis, as ISO strings
        assert chart.figure.layout.xaxis.type == "date"
    finally:
        chart.close()
    assert channel.messages[-1][0] == "comm_close"


async def test_late_views_get_the_current_chart(live, comms) -> None:
    sim, suite = live
    chart = CandlestickChart(suite.data, bars=20, fps=20)
    try:
        channel = chart.figure.comm
        await frames_until(chart, lambda: chart.frames >= 3)
        freeze(sim)
        await drawn_current(chart)
        current = figure_frame(chart)
        before = len(channel.messages)

        # a page reload / Voila / another browser asks the kernel for the model's state
        channel.frontend({"method": "request_state"})
        state = channel.updates("_widget_data")[-1]
        candle = state["_widget_data"][0]
        assert (
            np.frombuffer(candle["close"]["buffer"], dtype=candle["close"]["dtype"]).tolist()
            == (current["close"])
        )
        assert candle["x"] == current["timestamp"]
        assert state["_widget_layout"]["xaxis"]["type"] == "date"

        # a new view reports itself through _view_count: the next frame re-sends everything
        channel.frontend({"method": "update", "state": {"_view_count": 1}, "buffer_paths": []})
        await chart.next_frame()
        sent = [s["_py2js_update"] for s in channel.updates("_py2js_update")]
        full = [u for u in sent if {"x", "open", "high", "low", "close"} <= set(u["style_data"])]
        assert full and full[-1]["style_traces"] == [0]
        assert full[-1]["style_data"]["x"][0] == current["timestamp"]
        assert len(channel.messages) > before
    finally:
        chart.close()


def _level(chart: CandlestickChart, key: str):
    return next((lv for lv in chart.levels if lv.key == key), None)


def _shape_y(chart: CandlestickChart, key: str) -> float | None:
    return next((s.y0 for s in chart.figure.layout.shapes if s.name == key), None)


async def test_overlays_follow_orders_and_the_position(live) -> None:
    _, suite = live
    cid = suite.instrument.id
    tick = suite.instrument.tick_size
    chart = CandlestickChart(suite.data, bars=20, overlays=suite, fps=20)
    try:
        last = Decimal(repr(await suite.data.get_current_price()))
        price = (last - 200 * tick).quantize(tick)
        placed = await suite.orders.place_limit_order(cid, "buy", 1, price)
        key = f"order:{placed.order_id}"
        await frames_until(chart, lambda: _shape_y(chart, key) == float(price))
        label = _level(chart, key).label.split()
        assert label[:3] == ["BUY", "1", "LMT"] and float(label[3]) == float(price)

        lower = price - 8 * tick
        await suite.orders.modify_order(placed.order_id, limit_price=lower)
        await frames_until(chart, lambda: _shape_y(chart, key) == float(lower))

        await suite.orders.cancel_order(placed.order_id)
        await frames_until(chart, lambda: _shape_y(chart, key) is None)

        bracket = await suite.orders.place_bracket_order(
            cid, "buy", 1, stop_loss_ticks=200, take_profit_ticks=400
        )
        await suite.orders.wait_for_fill(bracket.entry_order_id, timeout=TIMEOUT)
        stop_key, target_key = f"stop:{bracket.stop_order_id}", f"target:{bracket.target_order_id}"
        await frames_until(
            chart,
            lambda: {"entry:position", stop_key, target_key} <= {lv.key for lv in chart.levels},
        )
        position = await suite.positions.get_position(cid)
        assert _shape_y(chart, "entry:position") == float(position.average_price)
        stop = await suite.orders.get_order(bracket.stop_order_id)
        target = await suite.orders.get_order(bracket.target_order_id)
        assert _shape_y(chart, stop_key) == float(stop.stop_price)
        assert _shape_y(chart, target_key) == float(target.limit_price)
        assert _level(chart, "entry:position").label.startswith("LONG 1 @")

        await suite.orders.flatten(cid)
        await frames_until(chart, lambda: not chart.levels)
        assert len(chart.figure.layout.shapes) == 0
    finally:
        chart.close()
    assert chart._levels._order_changed not in suite.orders.on_order_update._callbacks


async def test_indicators_equal_full_history_results_across_a_session_start() -> None:
    # 21:58 UTC: the CME session (17:00 Chicago) starts two simulated minutes in
    start = datetime(2026, 10, 1, 21, 58, tzinfo=UTC)
    async with (
        Simulator(**sim_options(speed=120.0, start=start)) as sim,
        ProjectX.for_simulator(sim) as client,
    ):
        await client.authenticate()
        async with await open_suite(sim, client, initial_bars=100) as suite:
            series = suite.data.series("1min")
            chart = CandlestickChart(
                suite.data, bars=20, indicators=[SMA(5), "ema10", VWAP()], fps=30
            )
            try:
                boundary = int(datetime(2026, 10, 1, 22, 2, tzinfo=UTC).timestamp()) * 10**9
                await frames_until(chart, lambda: (series.last_closed() or [0])[0] >= boundary)
                freeze(sim)
                await frames_until(chart, lambda: chart.drawn_version == series.version)
                full = series.to_frame()
                local = full["timestamp"].dt.replace_time_zone(None)  # Chicago wall time
                session = (local - timedelta(hours=17)).dt.date()
                typical = (full["high"] + full["low"] + full["close"]) / 3
                vwap = (
                    pl.DataFrame(
                        {"s": session, "pv": typical * full["volume"], "v": full["volume"]}
                    )
                    .select(pl.col("pv").cum_sum().over("s") / pl.col("v").cum_sum().over("s"))
                    .to_series()
                )
                expected = {
                    "SMA 5": full["close"].rolling_mean(5),
                    "EMA 10": full["close"].ewm_mean(span=10, adjust=False),
                    "VWAP": vwap,
                }
                assert session.n_unique() >= 2 and session.tail(20).n_unique() == 2
                for trace in chart.figure.data[2:]:
                    want = expected[trace.name].tail(20).to_numpy()
                    np.testing.assert_allclose(np.asarray(trace.y), want, rtol=1e-12, atol=1e-9)
                assert EMA(10).name == "EMA 10"
            finally:
                chart.close()


async def test_frames_are_throttled_and_coalesced(live) -> None:
    _, suite = live
    chart = CandlestickChart(suite.data, bars=50, fps=5)
    try:
        await chart.next_frame()
        loop = asyncio.get_running_loop()
        t0, frames0, ticks0 = loop.time(), chart.frames, suite.data.trades_seen
        while loop.time() - t0 < 1.2:
            await chart.next_frame()
        elapsed = loop.time() - t0
        frames = chart.frames - frames0
        ticks = suite.data.trades_seen - ticks0
        assert frames <= 5 * elapsed + 1
        assert ticks > 2 * frames  # many ticks per frame: coalesced
        chart.fps = 20
        assert chart.fps == 20
    finally:
        chart.close()


async def test_rerunning_a_cell_replaces_the_chart(live) -> None:
    _, suite = live
    handlers = len(suite.data.on_tick)
    try:
        with cell_scope("chart-cell"):
            first = CandlestickChart(suite.data, bars=20, overlays=suite)
        assert len(suite.data.on_tick) == handlers + 1
        orders_handlers = len(suite.orders.on_order_update)
        with cell_scope("chart-cell"):  # the same cell, run again
            second = CandlestickChart(suite.data, bars=20, overlays=suite)
        assert first.closed and not second.closed
        assert len(suite.data.on_tick) == handlers + 1
        assert len(suite.orders.on_order_update) == orders_handlers
        await second.next_frame()
    finally:
        registry.dispose("chart-cell")
    assert second.closed and len(suite.data.on_tick) == handlers


async def test_bad_arguments_raise_and_leave_nothing_behind(live) -> None:
    _, suite = live
    handlers = len(suite.data.on_tick)
    bad = [
        ({"bars": 0}, ValueError, "bars"),
        ({"timeframe": "5min"}, ValueError, "not tracked"),
        ({"fps": 0}, ValueError, "fps"),
        ({"indicators": ["rsi14"]}, ValueError, "unknown indicator"),
        ({"indicators": [SMA(5), 3]}, TypeError, "not an indicator"),
        ({"overlays": object()}, TypeError, "overlays"),
        ({"height": 10}, ValueError, "height"),
    ]
    for kwargs, error, text in bad:
        with pytest.raises(error, match=text):
            CandlestickChart(suite.data, **kwargs)
    with pytest.raises(ValueError, match="period"):
        SMA(0)
    with pytest.raises(ValueError, match="session_start"):
        VWAP(session_start="25:00")
    assert len(suite.data.on_tick) == handlers
