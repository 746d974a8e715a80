"""PositionManager against the simulator over real sockets: live positions, P&L equal to the
simulator's own account figures, risk metrics, full/partial/all closes (orphans cancelled),
alerts, REST reconcile after a dropped hub, and bad input that sends nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from projectx_lab import ProjectX
from projectx_lab.client.errors import PositionNotFoundError, ValidationError
from projectx_lab.client.models import OrderStatus, Position, PositionType
from projectx_lab.managers.alerts import AlertBook, PnLAlert, PriceAlert
from projectx_lab.managers.orders import OrderManager
from projectx_lab.managers.pnl import Peak, unrealized_pnl
from projectx_lab.managers.positions import PositionManager
from projectx_lab.realtime import ConnectionState, ProjectXRealtimeClient, create_realtime_client
from projectx_lab.realtime.dispatch import CallbackTasks
from projectx_lab.sim import Simulator

RT_FAST = {"keepalive_interval": 0.5, "reconnect_initial": 0.05, "reconnect_max": 0.4}
START_BALANCE = Decimal(50_000)  # the simulator's first account

# ---------------------------------------------------------------------------- pure parts


def test_unrealized_pnl_uses_tick_size_and_value() -> None:
    # MNQ: 0.25 tick worth $0.50 → $2 a point. Long 3 from 100 marked at 101.25: +7.50.
    assert (
        unrealized_pnl(3, Decimal(100), Decimal("101.25"), Decimal("0.25"), Decimal("0.5")) == 7.5
    )
    # Short 2 ZN (1/64 tick worth $15.625) from 110.5 at 110.53125: two ticks against, -62.5.
    zn = unrealized_pnl(-2, Decimal("110.5"), Decimal("110.53125"), Decimal("0.015625"),
                        Decimal("15.625"))  # fmt: skip
    assert zn == Decimal("-62.5")


def test_peak_tracks_drawdown_from_the_high() -> None:
    peak = Peak()
    for value in (0.0, 5.0, 2.0, 7.0, 1.0, 3.0):
        peak.update(value)
    assert (peak.peak, peak.drawdown, peak.max_drawdown) == (7.0, 4.0, 6.0)


async def test_alerts_fire_once_and_validate() -> None:
    book = AlertBook(CallbackTasks())
    hits: list[tuple[int, float]] = []
    alert = book.add(PriceAlert("C", 10.0, None), lambda a, v: hits.append((a.id, v)))
    book.check_price("C", 9.0)
    book.check_price("C", 10.5)
    book.check_price("C", 11.0)
    assert hits == [(alert.id, 10.5)] and alert.fired and len(book) == 0
    loss = book.add(PnLAlert(-100.0), None)
    book.check_pnl(-50.0, {})
    assert not loss.fired
    book.check_pnl(-100.0, {})
    assert loss.fired and loss.fired_value == -100.0


# ---------------------------------------------------------------------------- simulator rig


@dataclass
class Rig:
    sim: Simulator
    px: ProjectX
    rt: ProjectXRealtimeClient
    om: OrderManager
    pm: PositionManager
    mnq: str
    mes: str

    async def buy(self, size: int, contract: str = "MNQ", side: str = "buy") -> None:
        placed = await self.om.place_market_order(contract, side, size)
        await self.om.wait_for_fill(placed, timeout=5)

    async def position_is(
        self, contract_id: str, size: int, pm: PositionManager | None = None
    ) -> Position | None:
        """Wait (on position events) until the manager shows `size` on `contract_id`."""
        pm = pm or self.pm
        changed = asyncio.Event()

        def wake(position: Position, previous: Position | None) -> None:
            changed.set()

        pm.on_position_update += wake
        try:
            async with asyncio.timeout(5):
                while True:
                    current = await pm.get_position(contract_id)
                    if (current.size if current else 0) == size:
                        return current
                    changed.clear()
                    await changed.wait()
        finally:
            pm.on_position_update -= wake

    async def rest_balance(self) -> Decimal:
        accounts = await self.px.list_accounts()
        return next(a.balance for a in accounts if a.id == self.pm.account_id)  # type: ignore[return-value]

    async def rest_trades(self) -> list[Any]:
        start = datetime.fromtimestamp(self.sim.clock.now_ns() / 1e9, UTC) - timedelta(days=1)
        return await self.px.search_trades(start)


@pytest.fixture
async def rig(make_sim: Callable[..., Awaitable[Simulator]]) -> AsyncIterator[Rig]:
    sim = await make_sim(speed=10.0)
    px = ProjectX.for_simulator(sim, order_lookup_timeout=1.0, max_connections=8)
    await px.authenticate()
    rt = create_realtime_client(
        px.token_factory, user_hub_url=sim.user_hub_url, market_hub_url=sim.market_hub_url,
        **RT_FAST,
    )  # fmt: skip
    await rt.connect()
    om = OrderManager(px, rt)
    pm = PositionManager(px, rt, order_manager=om, price_source=om.prices)
    await om.initialize()
    await pm.initialize()
    mnq, mes = (await px.get_instrument("MNQ")).id, (await px.get_instrument("MES")).id
    try:
        yield Rig(sim, px, rt, om, pm, mnq, mes)
    finally:
        await pm.close()
        await om.close()
        await rt.close()
        await px.aclose()


# ---------------------------------------------------------------------------- positions


async def test_positions_follow_the_hub(rig: Rig) -> None:
    updates: list[tuple[int, int | None]] = []
    rig.pm.on_position_update += lambda p, prev: updates.append((p.size, prev and prev.size))
    await rig.buy(2)
    long2 = await rig.position_is(rig.mnq, 2)
    assert long2 is not None and long2.type == PositionType.LONG
    await rig.buy(1)
    long3 = await rig.position_is(rig.mnq, 3)
    assert long3 is not None and long3.id == long2.id  # scaling in keeps the row
    rest = await rig.px.search_open_positions()
    assert [(p.contract_id, p.size, p.average_price) for p in rest] == [
        (rig.mnq, 3, long3.average_price)
    ]
    await rig.buy(3, side="sell")
    assert await rig.position_is(rig.mnq, 0) is None
    assert await rig.pm.get_positions() == []
    assert updates[0] == (2, None) and updates[-1] == (0, 3)  # flat = size 0 (gotcha 21)


async def test_pnl_equals_the_simulators_account_figures(rig: Rig) -> None:
    await rig.buy(2)
    await rig.buy(1, "MES", "sell")
    await rig.buy(1)
    await rig.pm.partially_close_position("MNQ", 2)
    await rig.buy(1, "MES")
    await rig.position_is(rig.mes, 0)  # the hub has delivered the last fill (trade before position)
    position = await rig.position_is(rig.mnq, 1)
    assert position is not None

    trades = await rig.rest_trades()
    assert len(trades) == 5
    portfolio = await rig.pm.get_portfolio_pnl()
    assert portfolio.trades == 5
    assert portfolio.realized == sum(t.profit_and_loss or 0 for t in trades)
    assert portfolio.fees == sum(t.fees or 0 for t in trades)
    assert portfolio.commissions == sum(t.commissions or 0 for t in trades)
    balance = await rig.rest_balance()
    assert portfolio.net_realized == balance - START_BALANCE  # what moved the balance
    assert rig.pm.balance == balance

    instrument = await rig.px.get_instrument("MNQ")
    (marked,) = portfolio.positions
    assert marked.price is not None and marked.average_price == position.average_price
    expected = (
        (marked.price - marked.average_price)
        / instrument.tick_size * instrument.tick_value * position.signed_size
    )  # fmt: skip
    assert marked.unrealized == expected == portfolio.unrealized
    assert marked.exposure == marked.price * instrument.point_value
    assert portfolio.total == portfolio.net_realized + portfolio.unrealized

    risk = await rig.pm.get_risk_metrics()
    assert risk.gross_exposure == risk.net_exposure > 0  # one long position
    assert risk.equity is not None and risk.account_drawdown >= 0
    assert risk.max_account_drawdown >= risk.account_drawdown
    await rig.pm.close_position("MNQ")
    final = await rig.pm.get_portfolio_pnl()
    assert final.unrealized == 0 and final.net_realized == await rig.rest_balance() - START_BALANCE


# ---------------------------------------------------------------------------- closing


async def test_close_position_cancels_orphans(rig: Rig) -> None:
    bracket = await rig.om.place_bracket_order(
        "MNQ", "buy", 2, stop_loss_ticks=300, take_profit_ticks=300
    )
    await rig.om.wait_for_fill(bracket, timeout=5)
    await rig.om.wait_for_status(bracket.target_order_id, 1, timeout=5)  # type: ignore[arg-type]
    result = await rig.pm.close_position("MNQ")
    assert result.closed
    assert set(result.cancelled.cancelled) == {bracket.stop_order_id, bracket.target_order_id}
    assert await rig.pm.get_positions() == []
    assert await rig.px.search_open_positions() == []
    assert await rig.px.search_open_orders() == []


async def test_partial_close_and_its_bad_input(rig: Rig) -> None:
    await rig.buy(3)
    await rig.position_is(rig.mnq, 3)
    path = "/api/Position/partialCloseContract"
    before = rig.sim.request_count(path)
    with pytest.raises(ValidationError, match="cannot close 4 of a 3-lot"):
        await rig.pm.partially_close_position("MNQ", 4)
    for bad in (0, -1, 1.5, None):
        with pytest.raises(ValidationError, match="size"):
            await rig.pm.partially_close_position("MNQ", bad)  # type: ignore[arg-type]
    with pytest.raises(PositionNotFoundError):
        await rig.pm.partially_close_position("MES", 1)
    assert rig.sim.request_count(path) == before
    after = await rig.pm.partially_close_position("MNQ", 2)
    assert after.size == 1 and after.type == PositionType.LONG
    assert [p.size for p in await rig.px.search_open_positions()] == [1]


async def test_partial_close_shrinks_the_bracket_legs_and_a_full_one_cancels_them(
    rig: Rig,
) -> None:
    """The gateway leaves bracket legs at their size: a stop for 2 on a 1-lot would flip the
    account short when it fires. The legs follow the position down; closing all of it through
    `partially_close_position` leaves no orphan."""
    bracket = await rig.om.place_bracket_order(
        "MNQ", "buy", 2, stop_loss_ticks=300, take_profit_ticks=300
    )
    await rig.om.wait_for_fill(bracket, timeout=5)
    for leg in (bracket.stop_order_id, bracket.target_order_id):
        await rig.om.wait_for_status(leg, OrderStatus.OPEN, timeout=5)  # type: ignore[arg-type]
    after = await rig.pm.partially_close_position("MNQ", 1)
    assert after.size == 1
    legs = {o.id: o.size for o in await rig.px.search_open_orders()}
    assert legs == {bracket.stop_order_id: 1, bracket.target_order_id: 1}
    flat = await rig.pm.partially_close_position("MNQ", 1)
    assert flat.size == 0
    assert await rig.px.search_open_positions() == []
    assert await rig.px.search_open_orders() == []  # the legs went with the position


async def test_close_all_positions_without_an_order_manager(
    rig: Rig,
) -> None:
    bare = PositionManager(rig.px, rig.rt)  # REST sweep for orphans, its own price feed
    await bare.initialize()
    try:
        bracket = await rig.om.place_bracket_order("MES", "sell", 1, stop_loss_ticks=300)
        await rig.om.wait_for_fill(bracket, timeout=5)
        await rig.buy(2)
        await rig.om.wait_for_status(bracket.stop_order_id, 1, timeout=5)  # type: ignore[arg-type]
        assert {p.contract_id for p in await bare.get_positions()} <= {rig.mnq, rig.mes}
        await rig.position_is(rig.mes, 1)
        await rig.position_is(rig.mnq, 2)
        results = await bare.close_all_positions()
        assert set(results) == {rig.mnq, rig.mes}
        mes = results[rig.mes]
        assert not isinstance(mes, Exception) and mes.cancelled.cancelled == (
            bracket.stop_order_id,
        )
        assert await bare.get_positions() == [] and await rig.px.search_open_positions() == []
        assert await rig.px.search_open_orders() == []
    finally:
        await bare.close()


# ---------------------------------------------------------------------------- alerts


async def test_price_and_pnl_alerts_fire_once(rig: Rig) -> None:
    last = await rig.om.prices.wait(rig.mnq, 5)
    hits: list[tuple[str, float]] = []
    fired = asyncio.Event()

    async def async_hit(alert: Any, value: float) -> None:
        hits.append(("async", value))
        fired.set()

    up = await rig.pm.add_price_alert("MNQ", above=last + 0.5, callback=async_hit)
    down = await rig.pm.add_price_alert(
        "MNQ", below=last - 0.5, callback=lambda a, v: (hits.append(("sync", v)), fired.set())
    )
    await asyncio.wait_for(fired.wait(), 10)
    first = up if up.fired else down
    assert first.fired and first.fired_value is not None
    assert first not in rig.pm.alerts.armed()
    # More prices keep coming; the fired alert stays quiet.
    seen = asyncio.Event()
    count = [0]

    def tick(contract_id: str, price: float) -> None:
        count[0] += 1
        if count[0] >= 5:
            seen.set()

    rig.om.prices.on_price += tick
    await asyncio.wait_for(seen.wait(), 10)
    assert len([h for h in hits if h[0] == ("async" if first is up else "sync")]) == 1

    await rig.buy(1)
    await rig.position_is(rig.mnq, 1)  # the fill's trade event (fees) came before it
    rig.sim.faults.freeze_market(rig.mnq)  # hold P&L still: two ticks up outweigh the fees
    now = float((await rig.pm.get_portfolio_pnl()).total)
    assert now != 0  # fees and commission (0.61) are never a whole number of ticks (0.50)
    crossed: list[float] = []
    breached = await rig.pm.add_pnl_alert(now / 2, lambda a, v: crossed.append(v))
    assert breached.fired and crossed == [pytest.approx(now)]  # already past: fires at once
    rig.sim.faults.unfreeze_market(rig.mnq)
    far = await rig.pm.add_pnl_alert(1_000_000)
    assert not far.fired and rig.pm.remove_alert(far) and not rig.pm.remove_alert(far)
    with pytest.raises(ValidationError):
        await rig.pm.add_pnl_alert(0)
    with pytest.raises(ValidationError):
        await rig.pm.add_price_alert("MNQ")
    with pytest.raises(ValidationError):
        await rig.pm.add_price_alert("MNQ", above=1.0, below=2.0)
    await rig.pm.close_position("MNQ")


# ---------------------------------------------------------------------------- reconnect


async def test_position_closed_during_a_hub_drop_is_reconciled(rig: Rig) -> None:
    await rig.buy(2)
    await rig.position_is(rig.mnq, 2)
    reconnected = asyncio.Event()
    rig.rt.state_event += lambda hub, state: (
        reconnected.set() if hub == "user" and state == ConnectionState.RECONNECTED else None
    )
    assert rig.sim.faults.drop_hub("user") == 1
    await rig.px.close_position("MNQ")  # flat while the hub is down: the events are lost
    await asyncio.wait_for(reconnected.wait(), 5)
    assert await rig.position_is(rig.mnq, 0) is None  # restored by the REST reload
    portfolio = await rig.pm.get_portfolio_pnl()
    assert portfolio.trades == 2  # the closing fill came back through Trade/search
    assert portfolio.net_realized == await rig.rest_balance() - START_BALANCE


# ---------------------------------------------------------------------------- price sources


async def test_a_data_manager_feeds_the_marks(rig: Rig) -> None:
    from projectx_lab.managers.data import RealtimeDataManager

    dm = RealtimeDataManager("MNQ", rig.px, rig.rt, timeframes=["1min"], initial_bars=10)
    await dm.initialize()
    await dm.start_realtime_feed()
    pm = PositionManager(rig.px, rig.rt, price_source=dm)
    await pm.initialize()
    try:
        await rig.buy(1)
        await rig.position_is(rig.mnq, 1, pm)
        marked = await pm.get_position_pnl("MNQ")
        assert marked is not None and marked.price is not None and marked.unrealized is not None
        assert rig.rt.market_subscriptions[rig.mnq] == {"trades"}  # no extra quote feed
        moved = asyncio.Event()
        pm.prices.on_price += lambda contract_id, price: moved.set()
        await asyncio.wait_for(moved.wait(), 10)
        assert pm.prices.get(rig.mnq) == dm.last_price
    finally:
        await pm.close()
        await dm.stop_realtime_feed()
        await rig.pm.close_position("MNQ")


# ---------------------------------------------------------------------------- lifecycle


async def test_close_leaves_no_tasks_behind(make_sim: Callable[..., Awaitable[Simulator]]) -> None:
    sim = await make_sim(speed=10.0)
    baseline = set(asyncio.all_tasks())
    async with ProjectX.for_simulator(sim, max_connections=8) as px:
        await px.authenticate()
        async with (
            create_realtime_client(
                px.token_factory, user_hub_url=sim.user_hub_url,
                market_hub_url=sim.market_hub_url, **RT_FAST,
            ) as rt,
            OrderManager(px, rt) as om,
            PositionManager(px, rt, order_manager=om, price_source=om.prices) as pm,
        ):  # fmt: skip
            started = asyncio.Event()

            async def slow(alert: Any, value: float) -> None:
                started.set()
                await asyncio.sleep(30)  # still running at close: must be cancelled

            await pm.add_pnl_alert(-0.01, slow)
            await om.wait_for_fill(await om.place_market_order("MNQ", "buy", 1), timeout=5)
            await asyncio.wait_for(started.wait(), 5)
            await pm.close_position("MNQ")
    leftover = {t for t in asyncio.all_tasks() if t not in baseline and not t.done()}
    leftover.discard(asyncio.current_task())  # type: ignore[arg-type]
    assert leftover == set()
    assert "closed" in repr(pm) and "closed" in repr(om)


async def test_a_naive_since_is_taken_as_utc(rig: Rig) -> None:
    await rig.buy(1)
    await rig.position_is(rig.mnq, 1)
    naive = datetime.fromtimestamp(rig.sim.clock.now_ns() / 1e9, UTC) - timedelta(hours=1)
    pm = PositionManager(rig.px, rig.rt, since=naive.replace(tzinfo=None))
    await pm.initialize()  # compared with the gateway's aware times: no TypeError
    try:
        assert pm.since == naive and (await pm.get_portfolio_pnl()).trades == 1
    finally:
        await pm.close()
    await rig.pm.close_position("MNQ")
