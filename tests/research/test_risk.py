"""RiskGuard on the simulator: an order that would break a limit is refused with an error
naming the limit and nothing is sent; a loss limit locks new orders and emits a breach; the
guard flattens when asked (or by itself with `auto_flatten`). The simulated clock is held so
the market cannot move under the assertions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest import approx

from projectx_lab import ProjectX, TradingSuite, create_trading_suite
from projectx_lab.client.models import OrderSide
from projectx_lab.research.risk import Breach, RiskGuard, RiskLimitError
from projectx_lab.sim import Simulator

TIMEOUT = 15.0
PLACE = "/api/Order/place"
MODIFY = "/api/Order/modify"
NS = 1_000_000_000


@pytest.fixture
async def sim(make_sim: Callable[..., Any]) -> Simulator:
    return await make_sim(speed=1.0)


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[ProjectX]:
    async with ProjectX.for_simulator(sim) as c:
        await c.authenticate()
        yield c


@pytest.fixture
async def suite(sim: Simulator, client: ProjectX) -> AsyncIterator[TradingSuite]:
    made = await create_trading_suite(
        "MNQ", project_x=client, timeframes=["1min"], initial_bars=10, transport="native"
    )
    async with made:
        sim.exchange.call(sim.clock.hold)  # a still market from here on
        yield made


class Until:
    """A callback for any event; `wait(predicate)` re-checks on every call (no polling)."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def __call__(self, *_: object) -> None:
        self._changed.set()

    async def wait(self, predicate: Callable[[], bool], within: float = TIMEOUT) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


def watch(suite: TradingSuite) -> Until:
    until = Until()
    suite.positions.on_position_update += until
    suite.orders.on_order_update += until
    suite.realtime.account_event += until
    return until


async def test_max_position_size_refuses_the_order_and_sends_nothing(
    sim: Simulator, suite: TradingSuite
) -> None:
    until = watch(suite)
    async with RiskGuard(suite, max_position_size=1) as guard:
        await suite.orders.place_market_order("MNQ", OrderSide.BUY, 1)
        await until.wait(lambda: guard.status()["contracts"] == 1)
        placed = sim.request_count(PLACE)
        with pytest.raises(RiskLimitError, match="max_position_size 1 would be exceeded") as info:
            await suite.orders.place_market_order("MNQ", OrderSide.BUY, 1)
        assert info.value.rule == "max_position_size" and info.value.value == 2
        assert "Nothing was sent" in str(info.value)
        assert sim.request_count(PLACE) == placed
        # reducing always passes: sell the one lot, then a resting buy counts as exposure
        await suite.orders.place_market_order("MNQ", OrderSide.SELL, 1)
        await until.wait(lambda: guard.status()["contracts"] == 0)
        book_bid = suite.orderbook.best_bid
        await suite.orders.place_limit_order("MNQ", OrderSide.BUY, 1, book_bid - 50)
        with pytest.raises(RiskLimitError, match="working \\+1"):
            await suite.orders.place_limit_order("MNQ", OrderSide.BUY, 1, book_bid - 60)
        assert sim.request_count(PLACE) == placed + 2
        assert guard.lock is None  # the size rule refuses orders, it does not lock
    assert suite.orders.pre_place_checks == []  # closed: disarmed
    await suite.orders.cancel_all_orders()


async def test_growing_a_working_order_is_checked_like_a_new_one(
    sim: Simulator, client: ProjectX, suite: TradingSuite
) -> None:
    """`modify_order(size=...)` must not be a way around the size limit or a loss lock."""
    async with RiskGuard(suite, max_position_size=2) as guard:
        resting = await suite.orders.place_limit_order(
            "MNQ", OrderSide.BUY, 2, suite.orderbook.best_bid - 50
        )
        modified = sim.request_count(MODIFY)
        with pytest.raises(RiskLimitError, match="max_position_size 2 would be exceeded") as info:
            await suite.orders.modify_order(resting, size=3)
        assert info.value.value == 3  # the 2 working plus the 1 added
        assert sim.request_count(MODIFY) == modified
        (order,) = await client.search_open_orders()
        assert order.size == 2  # untouched on the gateway
        assert (await suite.orders.modify_order(resting, size=1)).size == 1  # shrinking passes
    until = watch(suite)
    async with RiskGuard(suite, daily_loss_limit=0.5) as guard:  # costs are 0.61 a side
        await suite.orders.place_market_order("MNQ", OrderSide.BUY, 1)
        await until.wait(lambda: guard.lock is not None)
        with pytest.raises(RiskLimitError, match="daily_loss_limit hit"):
            await suite.orders.modify_order(resting, size=2)
        moved = await suite.orders.modify_order(resting, limit_price=suite.orderbook.best_bid - 60)
        assert moved.size == 1 and sim.request_count(MODIFY) == modified + 2
        await guard.flatten_all()


async def test_daily_loss_locks_orders_emits_a_breach_and_flattens_on_request(
    sim: Simulator, client: ProjectX, suite: TradingSuite
) -> None:
    until = watch(suite)
    breaches: list[Breach] = []
    guard = await RiskGuard(suite, daily_loss_limit=0.5).start()  # costs are 0.61 a side
    guard.on_breach += lambda breach, g: breaches.append(breach) or until()
    await suite.orders.place_market_order("MNQ", OrderSide.BUY, 1)
    await until.wait(lambda: bool(breaches))
    assert breaches[0].rule == "daily_loss_limit" and breaches[0].value >= 0.61
    assert guard.lock is breaches[0] and guard.status()["locked"] is True
    placed = sim.request_count(PLACE)
    with pytest.raises(RiskLimitError, match="daily_loss_limit hit") as info:
        await suite.orders.place_market_order("MNQ", OrderSide.SELL, 1)
    assert "until the next trading day" in str(info.value)
    assert sim.request_count(PLACE) == placed
    outcome = await guard.flatten_all()  # closing is never blocked
    assert list(outcome["closed"]) == [suite.instrument.id]
    assert await client.get_positions() == []
    assert await client.search_open_orders() == []
    assert "LOCKED" in repr(guard) and "<table>" in guard._repr_html_()
    guard.reset()
    assert guard.lock is None
    await suite.orders.place_market_order("MNQ", OrderSide.BUY, 1)  # allowed again
    assert sim.request_count(PLACE) == placed + 1
    await guard.close()
    await suite.orders.flatten("MNQ")


async def test_trailing_drawdown_flattens_by_itself(client: ProjectX, suite: TradingSuite) -> None:
    until = watch(suite)
    breaches: list[Breach] = []
    async with RiskGuard(suite, trailing_drawdown=0.5, auto_flatten=True) as guard:
        guard.on_breach += lambda breach, g: breaches.append(breach)
        await suite.orders.place_market_order("MNQ", OrderSide.BUY, 2)
        await until.wait(lambda: bool(breaches) and guard.status()["contracts"] == 0)
        assert breaches[0].rule == "trailing_drawdown"
        assert guard.lock is not None  # stays locked until reset()
        with pytest.raises(RiskLimitError, match=r"until guard.reset\(\)"):
            await suite.orders.place_market_order("MNQ", OrderSide.BUY, 1)
    assert await client.get_positions() == []


async def test_bad_limits_are_refused(suite: TradingSuite) -> None:
    with pytest.raises(ValueError, match="at least one limit"):
        RiskGuard(suite)
    with pytest.raises(ValueError, match="daily_loss_limit must be a positive number"):
        RiskGuard(suite, daily_loss_limit=-5)
    with pytest.raises(ValueError, match="max_position_size must be a positive int"):
        RiskGuard(suite, max_position_size=1.5)
    assert suite.orders.pre_place_checks == []


def utc_ns(hour: int, minute: int, second: int) -> int:
    """An instant on 2026-10-01 (UTC) in ns; 17:00 Chicago (CDT) is 22:00 UTC that day."""
    return int(datetime(2026, 10, 1, hour, minute, second, tzinfo=UTC).timestamp()) * NS


async def step_to(sim: Simulator, client: ProjectX, ts_ns: int) -> None:
    """Move the held simulated clock to `ts_ns`, let the client read the gateway clock there (the
    ping's `Date`), then pump the market: its prices reach the guard stamped with the new time."""
    sim.exchange.call(sim.clock.advance_to, ts_ns)
    await client.get_health_status()
    sim.exchange.call(sim.exchange.step)


async def test_daily_baseline_rolls_at_the_session_boundary_on_prices_alone(
    make_sim: Callable[..., Any],
) -> None:
    """Short 1 MNQ from 16:51:30 Chicago: it loses 6.00 by 16:57:30 and 23.50 more by 17:02:30,
    29.50 in all against a 26.00 limit. Only prices arrive after 17:00, yet the new day must be
    based on the 16:57:30 equity: no breach (nor flatten) until the new day itself loses 26."""
    cid = "CON.F.US.MNQ.Z26"
    start, before, after, later = (
        utc_ns(21, 51, 30),
        utc_ns(21, 57, 30),
        utc_ns(22, 2, 30),
        utc_ns(22, 6, 30),
    )
    sim = await make_sim(start=datetime(2026, 10, 1, 21, 51, tzinfo=UTC), pump_interval=3600.0)
    spec = sim.exchange.spec(cid)
    assert spec is not None
    point_value = float(spec.tick_value / spec.tick_size)

    def last(ts_ns: int) -> float:  # the simulator's last trade at or before ts_ns
        trade = sim.exchange.last_trade(cid, ts_ns)
        assert trade is not None
        return trade[1] * float(spec.tick_size)

    async with ProjectX.for_simulator(sim) as client:
        await client.authenticate()
        suite = await create_trading_suite(
            "MNQ", project_x=client, timeframes=["1min"], initial_bars=10, transport="native"
        )
        async with suite:
            sim.exchange.call(sim.clock.hold)
            until = watch(suite)
            suite.positions.prices.on_price += until
            await step_to(sim, client, start)
            await suite.orders.place_market_order("MNQ", OrderSide.SELL, 1)
            (position,) = await client.search_open_positions()
            (account,) = [a for a in await client.list_accounts() if a.id == position.account_id]
            assert position.average_price is not None and account.balance is not None
            average, balance = float(position.average_price), float(account.balance)

            def equity_at(ts_ns: int) -> float:
                return balance + (average - last(ts_ns)) * point_value

            await until.wait(lambda: suite.positions.equity.value == approx(equity_at(start)))
            guard = await RiskGuard(suite, daily_loss_limit=26.0, auto_flatten=True).start()
            assert guard.day_base == approx(equity_at(start))
            assert equity_at(start) - equity_at(before) == approx(6.0)
            assert equity_at(before) - equity_at(after) == approx(23.5)

            await step_to(sim, client, before)
            await until.wait(lambda: guard.equity == approx(equity_at(before)))
            await step_to(sim, client, after)
            await until.wait(lambda: guard.equity == approx(equity_at(after)))
            assert guard.breaches == [] and guard.lock is None
            assert guard.day_base == approx(equity_at(before))
            assert guard.daily_pnl == approx(-23.5)
            assert [p.size for p in await client.search_open_positions()] == [1]

            await step_to(sim, client, later)  # the new day itself now loses 30.50
            await until.wait(lambda: guard.status()["contracts"] == 0)
            (breach,) = guard.breaches
            assert breach.rule == "daily_loss_limit"
            assert breach.value == approx(equity_at(before) - equity_at(later)) == approx(30.5)
            moment = datetime.fromtimestamp(later / NS, UTC)
            assert moment <= breach.time < moment + timedelta(seconds=TIMEOUT)
            await guard.close()
