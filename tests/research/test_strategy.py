"""Strategies on paper: the runner's figures equal the simulator account's, lockstep runs are
deterministic, the same strategy object runs unchanged on a live suite, hooks run in order and
a failing hook surfaces as an error."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from projectx_lab import ProjectX, create_trading_suite
from projectx_lab.client.models import OrderSide
from projectx_lab.research.paper import run_paper, synthetic
from projectx_lab.research.strategy import SmaCross, Strategy, StrategyError, StrategyRuntime
from projectx_lab.sim import SimConfig
from projectx_lab.sim.exchange import Exchange

from ..conftest import SIM_START, sim_options

NS = 1_000_000_000
TIMEOUT = 20.0


class PingPong(Strategy):
    """Buys on the first bar, sells on the second, stops on the third; logs every hook."""

    timeframes = ("1min",)

    def __init__(self) -> None:
        self.calls: list[Any] = []

    async def on_start(self, suite: Any) -> None:
        self.calls.append("start")

    async def on_bar(self, suite: Any, timeframe: str, bar: Any) -> None:
        self.calls.append(("bar", timeframe))
        bars = sum(1 for c in self.calls if c[0] == "bar")
        if bars == 1:
            await suite.orders.place_market_order(suite.instrument, OrderSide.BUY, 1)
        elif bars == 2:
            await suite.orders.place_market_order(suite.instrument, OrderSide.SELL, 1)
        else:
            self.stop()

    def on_fill(self, suite: Any, order: Any) -> None:  # a plain def works as well
        self.calls.append(("fill", int(order.side)))

    async def on_stop(self, suite: Any) -> None:
        self.calls.append("stop")


class Ticks(Strategy):
    timeframes = ("1min",)

    def __init__(self) -> None:
        self.prices: list[float] = []

    async def on_tick(self, suite: Any, tick: Any) -> None:
        self.prices.append(tick.price)


class FirstTickBuyer(Strategy):
    """Buys one contract on its first tick."""

    timeframes = ("1min",)

    def __init__(self) -> None:
        self.first: Any = None

    async def on_tick(self, suite: Any, tick: Any) -> None:
        if self.first is None:
            self.first = tick
            await suite.orders.place_market_order(suite.instrument, OrderSide.BUY, 1)


class Broken(Strategy):
    timeframes = ("1min",)

    async def on_bar(self, suite: Any, timeframe: str, bar: Any) -> None:
        raise ZeroDivisionError("bad idea")


async def test_paper_figures_equal_the_simulator_account() -> None:
    source = synthetic(seed=11, start=SIM_START, duration="30min", trade_rate=3.0)
    result = await run_paper(SmaCross(3, 6), "MNQ", source=source)
    assert result.mode == "lockstep" and result.open_position == 0
    assert result.num_trades >= 2
    # P&L = the simulator account's balance change; costs = the fills' fees and commissions
    assert result.pnl == result.end_balance - result.start_balance
    assert result.pnl == result.gross_pnl - result.fees - result.commissions
    fills = result.fills
    assert result.commissions == Decimal(str(round(fills["commissions"].sum(), 2)))
    assert result.fees == Decimal(str(round(fills["fees"].sum(), 2)))
    # round trips add up to the same money; every contract bought was sold
    trades = result.trades
    assert trades["net_pnl"].sum() == pytest.approx(float(result.pnl))
    assert trades["gross_pnl"].sum() == pytest.approx(float(result.gross_pnl))
    bought = fills.filter(fills["side"] == "buy")["size"].sum()
    assert bought == fills.filter(fills["side"] == "sell")["size"].sum()
    wins = (trades["net_pnl"] > 0).sum()
    assert result.win_rate == pytest.approx(wins / trades.height)
    # the equity curve ends on the final balance; the drawdown is measured on it
    assert result.equity["equity"][-1] == pytest.approx(float(result.end_balance))
    assert result.equity.height == result.bars.height + 1 == 31  # each bar's close, then the end
    assert 0 <= result.max_drawdown
    summary = result.summary()
    assert summary["trades"] == result.num_trades and summary["pnl"] == result.pnl
    figure = result.figure()
    assert [t.type for t in figure.data] == ["candlestick", "scatter", "scatter", "scatter"]
    assert "P&L" in figure.layout.title.text

    again = await run_paper(SmaCross(3, 6), "MNQ", source=source)
    assert again.fills.equals(result.fills)  # lockstep: the same run, fill for fill


async def test_hooks_run_in_order_and_ticks_are_the_tape() -> None:
    strategy = PingPong()
    source = synthetic(seed=7, start=SIM_START, duration="5min", trade_rate=2.0)
    result = await run_paper(strategy, "MNQ", source=source)
    assert strategy.calls[0] == "start" and strategy.calls[-1] == "stop"
    assert strategy.calls[1:-1] == [
        ("bar", "1min"),
        ("fill", OrderSide.BUY),
        ("bar", "1min"),
        ("fill", OrderSide.SELL),
        ("bar", "1min"),
    ]  # the third bar's stop() ends the run there
    assert result.end == SIM_START + timedelta(minutes=3)
    assert result.num_trades == 1 and result.fills.height == 2
    assert result.fills["time"].to_list()[0] == SIM_START + timedelta(minutes=1)

    ticks = Ticks()
    await run_paper(ticks, "MNQ", source=synthetic(seed=7, start=SIM_START, duration="2min"))
    exchange = Exchange(SimConfig(**sim_options()))
    cid = exchange.catalog.by_symbol("MNQ").contract_id
    start = int(SIM_START.timestamp()) * NS
    tape = exchange.tape(cid, start, start + 120 * NS)
    spec = exchange.spec(cid)
    assert ticks.prices == [spec.to_price(p) for p in tape.price.tolist()]


async def test_the_same_strategy_runs_unchanged_on_a_live_suite(
    make_sim: Callable[..., Any],
) -> None:
    sim = await make_sim(speed=120.0, trade_rate=3.0)
    async with ProjectX.for_simulator(sim) as client:
        await client.authenticate()
        suite = await create_trading_suite(
            "MNQ", project_x=client, timeframes=["1min"], initial_bars=20, transport="native"
        )
        async with suite:
            with pytest.raises(ValueError, match=r"does not track \['5min'\]"):
                StrategyRuntime(SmaCross(timeframe="5min"), suite)
            strategy = PingPong()
            async with asyncio.timeout(TIMEOUT):
                await strategy.run(suite)  # returns once on_bar calls stop()
            assert strategy.calls[0] == "start" and strategy.calls[-1] == "stop"
            bars = [c for c in strategy.calls if c[0] == "bar"]
            fills = [c for c in strategy.calls if c[0] == "fill"]
            assert len(bars) == 3 and fills == [("fill", OrderSide.BUY), ("fill", OrderSide.SELL)]
            assert await suite.positions.get_positions() == []
            trades = await client.search_trades()
            assert [t.side for t in sorted(trades, key=lambda t: t.id)] == [0, 1]

            with pytest.raises(StrategyError, match="ZeroDivisionError"):
                async with asyncio.timeout(TIMEOUT):
                    await Broken().run(suite)


async def test_tick_strategy_orders_fill_right_after_the_tick() -> None:
    source = synthetic(seed=3, start=SIM_START, duration="3min", trade_rate=2.0)
    strategy = FirstTickBuyer()
    result = await run_paper(strategy, "MNQ", source=source)
    tick, fill = strategy.first, result.fills.row(0, named=True)
    delay = fill["time"] - datetime.fromtimestamp(tick.ts_ns / NS, UTC)
    assert fill["side"] == "buy" and timedelta(0) <= delay <= timedelta(seconds=1)
    assert abs(fill["price"] - tick.price) <= 2.0  # the market of that tick, not a bar's end

    slow = FirstTickBuyer()
    result = await run_paper(slow, "MNQ", source=source, step="1min")  # an explicit step wins
    assert result.fills["time"][0] == SIM_START + timedelta(minutes=1)


async def test_free_running_paper_run_and_failures() -> None:
    source = synthetic(seed=3, start=SIM_START, duration="3min", trade_rate=3.0)
    result = await run_paper(SmaCross(2, 3), "MNQ", source=source, speed=240.0)
    assert result.mode == "speed 240"
    assert result.pnl == result.end_balance - result.start_balance
    assert result.bars.height == 3

    with pytest.raises(StrategyError, match="bad idea"):
        await run_paper(Broken(), "MNQ", source=source)
    with pytest.raises(ValueError, match="speed"):
        await run_paper(SmaCross(), "MNQ", source=source, speed=-1)
    with pytest.raises(TypeError, match="Strategy"):
        await run_paper(object(), "MNQ", source=source)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fixed length"):
        synthetic(duration="1mo")
    with pytest.raises(ValueError, match="0 < fast < slow"):
        SmaCross(5, 5)
