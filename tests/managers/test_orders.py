"""OrderManager: tick snapping and bracket legs (pure), then every order type, bracket path,
flatten, reconcile and bad input end to end against the simulator over real sockets."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from projectx_lab import ProjectX
from projectx_lab.client.errors import (
    OrderNotFoundError,
    OrderRejectedError,
    PositionNotFoundError,
    ValidationError,
)
from projectx_lab.client.models import Order, OrderSide, OrderStatus, OrderType
from projectx_lab.managers.brackets import build_legs
from projectx_lab.managers.orders import OrderManager, OrderNotFilledError
from projectx_lab.managers.pricing import (
    CEIL,
    FLOOR,
    parse_side,
    parse_size,
    snap_order_price,
    snap_price,
)
from projectx_lab.realtime import ConnectionState, ProjectXRealtimeClient, create_realtime_client
from projectx_lab.sim import Simulator

Q = Decimal("0.25")  # MNQ tick
RT_FAST = {"keepalive_interval": 0.5, "reconnect_initial": 0.05, "reconnect_max": 0.4}
MUTATIONS = ("/api/Order/place", "/api/Order/modify", "/api/Order/cancel")

# ---------------------------------------------------------------------------- pure: pricing


@pytest.mark.parametrize(
    ("order_type", "side", "price", "expected"),
    [
        (OrderType.LIMIT, OrderSide.BUY, 100.30, "100.25"),  # buy limit: floor
        (OrderType.LIMIT, OrderSide.SELL, 100.30, "100.5"),  # sell limit: ceil
        (OrderType.STOP, OrderSide.BUY, 100.30, "100.5"),  # buy stop: ceil
        (OrderType.STOP, OrderSide.SELL, 100.30, "100.25"),  # sell stop: floor
        (OrderType.TRAILING_STOP, OrderSide.BUY, 100.01, "100.25"),
        (OrderType.TRAILING_STOP, OrderSide.SELL, 100.49, "100.25"),
        (OrderType.LIMIT, OrderSide.SELL, 100.25, "100.25"),  # on the grid: unchanged
        (OrderType.STOP, OrderSide.BUY, 100, "100"),
    ],
)
def test_snapping_is_direction_aware(
    order_type: OrderType, side: OrderSide, price: float, expected: str
) -> None:
    assert snap_order_price(price, Q, order_type, side) == Decimal(expected)


def test_a_stop_limit_snaps_its_stop_like_a_stop_and_its_limit_like_a_limit() -> None:
    buy = OrderSide.BUY
    assert snap_order_price(100.30, Q, OrderType.STOP_LIMIT, buy, "stop_price") == Decimal("100.5")
    assert snap_order_price(100.30, Q, OrderType.STOP_LIMIT, buy, "limit_price") == Decimal(
        "100.25"
    )


def test_float_noise_is_not_a_tick() -> None:
    noisy = 0.1 * 3  # 0.30000000000000004
    assert snap_price(noisy, Decimal("0.1"), CEIL) == Decimal("0.3")
    assert snap_price(21450.25 + 1e-11, Q, CEIL) == Decimal("21450.25")
    assert snap_price(1.08505, Decimal("0.00005"), FLOOR) == Decimal("1.08505")


@given(
    tick=st.sampled_from(["0.25", "0.1", "0.01", "0.00005", "0.015625", "5", "0.0005"]),
    units=st.integers(min_value=1, max_value=10**7),
    frac=st.floats(min_value=0.0, max_value=0.999),
)
def test_snapped_prices_sit_on_the_grid_within_a_tick(tick: str, units: int, frac: float) -> None:
    size = Decimal(tick)
    price = float((units + Decimal(repr(frac))) * size)
    low, high = snap_price(price, size, FLOOR), snap_price(price, size, CEIL)
    for snapped in (low, high):
        assert (snapped / size) == (snapped / size).to_integral_value()
    exact = Decimal(repr(price))
    assert low <= exact + size * Decimal("1e-9") and high >= exact - size * Decimal("1e-9")
    assert high - low in (0, size)


@pytest.mark.parametrize(
    "bad", [math.nan, math.inf, -1.0, 0, "21450", None, True, Decimal("NaN"), [1.0]]
)
def test_unsnappable_prices_are_rejected(bad: Any) -> None:
    with pytest.raises(ValidationError):
        snap_order_price(bad, Q, OrderType.LIMIT, OrderSide.BUY)


def test_sides_and_sizes() -> None:
    assert parse_side("buy") is OrderSide.BUY and parse_side("SELL") is OrderSide.SELL
    assert parse_side(0) is OrderSide.BUY and parse_side(1) is OrderSide.SELL
    for bad in ("hold", 2, -1, True, None, 0.0):
        with pytest.raises(ValidationError, match="side"):
            parse_side(bad)
    assert parse_size(3) == 3
    for bad in (0, -1, 1.5, True, "1", None):
        with pytest.raises(ValidationError, match="size"):
            parse_size(bad)


# ---------------------------------------------------------------------------- pure: brackets


def test_bracket_ticks_are_signed_for_the_gateway() -> None:
    buy = build_legs(OrderSide.BUY, Q, None, stop_loss_ticks=8, take_profit_ticks=12)
    assert (buy.stop_loss.ticks, buy.take_profit.ticks) == (-8, 12)  # type: ignore[union-attr]
    assert (buy.stop_loss.type, buy.take_profit.type) == (OrderType.STOP, OrderType.LIMIT)  # type: ignore[union-attr]
    sell = build_legs(OrderSide.SELL, Q, None, stop_loss_ticks=8, take_profit_ticks=12)
    assert (sell.stop_loss.ticks, sell.take_profit.ticks) == (8, -12)  # type: ignore[union-attr]
    trail = build_legs(OrderSide.BUY, Q, None, stop_loss_ticks=6, stop_type="trailing")
    assert trail.stop_loss.type == OrderType.TRAILING_STOP and trail.take_profit is None  # type: ignore[union-attr]


def test_bracket_prices_become_ticks_from_the_entry() -> None:
    ref = Decimal("100")
    buy = build_legs(OrderSide.BUY, Q, ref, stop_loss=98.0, take_profit=103.0)
    assert (buy.stop_loss.ticks, buy.take_profit.ticks) == (-8, 12)  # type: ignore[union-attr]
    sell = build_legs(OrderSide.SELL, Q, ref, stop_loss=102.0, take_profit=97.5)
    assert (sell.stop_loss.ticks, sell.take_profit.ticks) == (8, -10)  # type: ignore[union-attr]
    # Off-grid legs snap away from the entry: more room, never a tighter stop.
    off = build_legs(OrderSide.BUY, Q, ref, stop_loss=98.1, take_profit=102.9)
    assert (off.stop_loss.ticks, off.take_profit.ticks) == (-8, 12)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("side", "kwargs", "message"),
    [
        (OrderSide.BUY, {"stop_loss": 101.0}, "wrong side"),
        (OrderSide.BUY, {"take_profit": 99.0}, "wrong side"),
        (OrderSide.SELL, {"stop_loss": 99.0}, "wrong side"),
        (OrderSide.SELL, {"take_profit": 101.0}, "wrong side"),
        (OrderSide.BUY, {"stop_loss": 99.5}, "at least 4 ticks"),
        (OrderSide.BUY, {"stop_loss_ticks": 3}, "at least 4 ticks"),
        (OrderSide.BUY, {"stop_loss_ticks": -8}, "positive whole number"),
        (OrderSide.BUY, {"stop_loss_ticks": 8, "stop_loss": 98.0}, "not both"),
        (OrderSide.BUY, {}, "needs a stop loss or a take profit"),
        (OrderSide.BUY, {"stop_loss_ticks": 8, "stop_type": "limit"}, "stop_type"),
    ],
)
def test_bracket_mistakes_are_caught(side: OrderSide, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        build_legs(side, Q, Decimal("100"), **kwargs)


# ---------------------------------------------------------------------------- simulator rig


@dataclass
class Rig:
    sim: Simulator
    px: ProjectX
    rt: ProjectXRealtimeClient
    om: OrderManager
    contract_id: str

    async def last(self) -> Decimal:
        return Decimal(repr(await self.om.prices.wait(self.contract_id, 5.0)))

    def mutations(self) -> tuple[int, ...]:
        return tuple(self.sim.request_count(p) for p in MUTATIONS)

    async def rest_order(self, order_id: int) -> Order:
        return await self.px.get_order(order_id)


@pytest.fixture
async def rig(make_sim: Callable[..., Awaitable[Simulator]]) -> AsyncIterator[Rig]:
    """Simulator at 10× speed, an authenticated client, a real-time client and a manager."""
    sim = await make_sim(speed=10.0)
    px = ProjectX.for_simulator(sim, order_lookup_timeout=1.0, max_connections=8)
    await px.authenticate()
    rt = create_realtime_client(
        px.token_factory,
        user_hub_url=sim.user_hub_url,
        market_hub_url=sim.market_hub_url,
        **RT_FAST,
    )
    await rt.connect()
    om = OrderManager(px, rt)
    await om.initialize()
    contract_id = (await px.get_instrument("MNQ")).id
    try:
        yield Rig(sim, px, rt, om, contract_id)
    finally:
        await om.close()
        await rt.close()
        await px.aclose()


# ---------------------------------------------------------------------------- order types


async def test_market_order_fills_and_fires_fill_events(rig: Rig) -> None:
    fills: list[tuple[int, int]] = []
    async_fills: list[int] = []
    done = asyncio.Event()

    async def on_fill_async(order: Order, qty: int) -> None:
        async_fills.append(qty)
        done.set()

    rig.om.on_fill += lambda order, qty: fills.append((order.id, qty))
    rig.om.on_fill += on_fill_async
    placed = await rig.om.place_market_order("MNQ", "buy", 2)
    filled = await rig.om.wait_for_fill(placed, timeout=5)
    assert filled.status == OrderStatus.FILLED and filled.fill_volume == 2
    assert filled.filled_price is not None and filled.custom_tag == placed.custom_tag
    await asyncio.wait_for(done.wait(), 5)
    assert fills == [(placed.order_id, 2)] and async_fills == [2]
    assert await rig.rest_order(placed.order_id) == filled


async def test_limit_order_is_snapped_rests_modifies_and_cancels(rig: Rig) -> None:
    far = await rig.last() - 200 * Q
    placed = await rig.om.place_limit_order(rig.contract_id, 0, 1, float(far) + 0.1)
    order = await rig.om.wait_for_status(placed, OrderStatus.OPEN, timeout=5)
    assert order.limit_price == far  # buy limit 0.1 above the grid → floored
    moved = await rig.om.modify_order(order, limit_price=float(far) - 0.3, size=2)
    assert moved.limit_price == far - 2 * Q and moved.size == 2
    assert (await rig.rest_order(order.id)).limit_price == far - 2 * Q
    cancelled = await rig.om.cancel_order(order.id)
    assert cancelled.status == OrderStatus.CANCELLED
    assert (await rig.rest_order(order.id)).status == OrderStatus.CANCELLED
    assert rig.om.working_orders() == []


async def test_sell_limit_snaps_up(rig: Rig) -> None:
    far = await rig.last() + 200 * Q
    placed = await rig.om.place_limit_order("MNQ", "sell", 1, float(far) - 0.1)
    order = await rig.om.wait_for_status(placed, OrderStatus.OPEN, timeout=5)
    assert order.limit_price == far  # sell limit 0.1 below the grid → ceiled
    await rig.om.cancel_order(order)


async def test_stop_orders_trigger_with_the_market(rig: Rig) -> None:
    last = await rig.last()  # 8 ticks away: the tape cannot cross them before they land
    above = await rig.om.place_stop_order("MNQ", "buy", 1, float(last + 8 * Q) - 0.1)
    below = await rig.om.place_stop_order("MNQ", "sell", 1, float(last - 8 * Q) + 0.1)
    placed = [await rig.om.get_order(above), await rig.om.get_order(below)]
    assert placed[0].stop_price == last + 8 * Q and placed[1].stop_price == last - 8 * Q
    waits = {asyncio.ensure_future(rig.om.wait_for_fill(o, timeout=30)): o for o in placed}
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    first = done.pop().result()
    assert first.status == OrderStatus.FILLED and first.type == OrderType.STOP
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await rig.om.flatten("MNQ")
    assert rig.om.working_orders() == []


async def test_trailing_stop_by_ticks_and_by_level(rig: Rig) -> None:
    await rig.om.wait_for_fill(await rig.om.place_market_order("MNQ", "buy", 1), timeout=5)
    by_ticks = await rig.om.place_trailing_stop_order("MNQ", "sell", 1, trail_ticks=40)
    order = await rig.om.wait_for_status(by_ticks, OrderStatus.OPEN, timeout=5)
    rest = await rig.rest_order(order.id)
    assert rest.type == OrderType.TRAILING_STOP
    assert rest.trail_distance is not None and abs(rest.trail_distance - 40) <= 4
    await rig.om.cancel_order(order)

    level = await rig.last() - 40 * Q
    by_level = await rig.om.place_trailing_stop_order("MNQ", "sell", 1, float(level) + 0.1)
    order = await rig.om.wait_for_status(by_level, OrderStatus.OPEN, timeout=5)
    assert order.trail_distance is not None and abs(order.trail_distance - 40) <= 4
    before = rig.mutations()
    with pytest.raises(ValidationError, match="below the last price"):
        await rig.om.place_trailing_stop_order("MNQ", "sell", 1, float(await rig.last()) + 5)
    with pytest.raises(ValidationError, match="not a distance"):
        await rig.om.place_trailing_stop_order("MNQ", "sell", 1, 10.0)  # a distance by mistake
    with pytest.raises(ValidationError, match=r"trail_price .* or trail_ticks"):
        await rig.om.place_trailing_stop_order("MNQ", "sell", 1)
    with pytest.raises(ValidationError, match="not a distance"):  # the gateway would accept it
        await rig.om.modify_order(order, trail_price=10.0)
    assert rig.mutations() == before
    await rig.om.flatten("MNQ")


async def test_a_stop_limits_limit_is_modified_and_snapped_like_a_limit(rig: Rig) -> None:
    stop = await rig.last() + 200 * Q
    placed = await rig.px.place_order(
        "MNQ", side="buy", size=1, type=OrderType.STOP_LIMIT, stop_price=stop,
        limit_price=stop + 4 * Q,
    )  # fmt: skip
    await rig.om.wait_for_status(placed.order_id, OrderStatus.OPEN, timeout=5)
    moved = await rig.om.modify_order(placed.order_id, limit_price=float(stop + 8 * Q) + 0.1)
    assert moved.limit_price == stop + 8 * Q  # a buy limit snaps down, never up
    await rig.om.cancel_order(placed.order_id)


# ---------------------------------------------------------------------------- brackets


async def test_bracket_market_entry_full_path(rig: Rig) -> None:
    tick_events: list[tuple[int, int]] = []
    rig.om.on_order_update += lambda o, prev: tick_events.append((o.id, int(o.status)))
    result = await rig.om.place_bracket_order(
        "MNQ", "buy", 1, stop_loss_ticks=4, take_profit_ticks=4, custom_tag="brk-1"
    )
    assert result.entry_tag == "brk-1"
    assert (result.stop_tag, result.target_tag) == ("brk-1-SL", "brk-1-TP")
    assert result.stop_order_id and result.target_order_id
    assert len(set(result.order_ids)) == 3
    assert (result.stop_loss_ticks, result.take_profit_ticks) == (-4, 4)

    entry = await rig.om.wait_for_fill(result, timeout=5)
    stop = await rig.om.wait_for_status(result.stop_order_id, OrderStatus.OPEN, 2, 3, timeout=5)
    target = await rig.om.get_order(result.target_order_id)
    fill = entry.filled_price
    assert stop.parent_order_id == entry.id and target.linked_order_id == stop.id
    rest_stop = await rig.rest_order(stop.id)
    assert rest_stop.stop_price == fill - 4 * Q  # children priced from the fill
    assert (await rig.rest_order(target.id)).limit_price == fill + 4 * Q

    legs = [stop.id, target.id]
    finals = await asyncio.gather(
        *(rig.om.wait_for_status(i, OrderStatus.FILLED, OrderStatus.CANCELLED, timeout=30)
          for i in legs)
    )  # fmt: skip
    statuses = sorted(int(o.status) for o in finals)
    assert statuses == [int(OrderStatus.FILLED), int(OrderStatus.CANCELLED)]  # OCO
    for final in finals:
        assert (await rig.rest_order(final.id)).status == final.status
    assert await rig.px.search_open_positions() == []


async def test_bracket_market_entry_with_absolute_prices(rig: Rig) -> None:
    last = await rig.last()
    result = await rig.om.place_bracket_order(
        "MNQ", "sell", 1, stop_loss=float(last + 40 * Q), take_profit=float(last - 40 * Q)
    )
    sl, tp = result.stop_loss_ticks, result.take_profit_ticks
    assert sl is not None and tp is not None and sl > 0 > tp  # short: stop above, target below
    assert abs(sl - 40) <= 8 and abs(tp + 40) <= 8  # measured from the bid, not the last
    entry = await rig.om.wait_for_fill(result, timeout=5)
    stop = await rig.om.wait_for_status(result.stop_order_id, OrderStatus.OPEN, timeout=5)  # type: ignore[arg-type]
    assert entry.filled_price is not None
    assert (await rig.rest_order(stop.id)).stop_price == entry.filled_price + sl * Q
    await rig.om.flatten("MNQ")
    assert rig.om.working_orders() == []


async def test_bracket_limit_entry_children_are_tracked_while_suspended(rig: Rig) -> None:
    entry_price = await rig.last() - 200 * Q
    result = await rig.om.place_bracket_order(
        "MNQ", "buy", 1, "limit", float(entry_price), stop_loss=float(entry_price - 10 * Q),
        take_profit=float(entry_price + 20 * Q),
    )  # fmt: skip
    assert (result.stop_loss_ticks, result.take_profit_ticks) == (-10, 20)
    assert result.stop is not None and result.stop.status == OrderStatus.SUSPENDED
    assert result.target is not None and result.target.status == OrderStatus.SUSPENDED
    rest_open = {o.id for o in await rig.px.search_open_orders()}
    assert rest_open == {result.entry_order_id}  # REST hides suspended children (gotcha 13)
    mine = {o.id for o in await rig.om.search_open_orders("MNQ")}
    assert mine == set(result.order_ids)
    page = await rig.px.query_orders(statuses=[8])
    assert {o.trail_distance for o in page.orders} == {-10, 20}  # the signed ticks as sent

    await rig.om.cancel_order(result)  # cancelling the entry takes the children with it
    for order_id in (result.stop_order_id, result.target_order_id):
        final = await rig.om.wait_for_status(order_id, OrderStatus.CANCELLED, timeout=5)
        assert final.status == OrderStatus.CANCELLED
    assert rig.om.working_orders() == []


async def user_hub_down(rig: Rig) -> None:
    """Drop the user hub and keep it down: order events stop reaching the manager."""
    down = asyncio.Event()
    rig.rt.state_event += lambda hub, state: (
        down.set() if hub == "user" and state == ConnectionState.RECONNECTING else None
    )
    rig.sim.faults.block_hub("user")
    assert rig.sim.faults.drop_hub("user") == 1
    await asyncio.wait_for(down.wait(), 5)


async def test_bracket_legs_are_found_by_rest_while_the_stream_is_down(rig: Rig) -> None:
    rig.om.child_timeout = 0.2
    entry_price = await rig.last() - 200 * Q
    await user_hub_down(rig)
    result = await rig.om.place_bracket_order(
        "MNQ", "buy", 1, "limit", float(entry_price), stop_loss_ticks=8, take_profit_ticks=8
    )
    assert result.stop_order_id is not None and result.target_order_id is not None
    assert result.stop is not None and result.stop.status == OrderStatus.SUSPENDED  # gotcha 13
    rig.sim.faults.unblock_hub("user")
    await rig.px.cancel_order(result.entry_order_id)


async def test_a_placed_bracket_is_returned_even_when_its_legs_cannot_be_looked_up(
    rig: Rig,
) -> None:
    """Raising after the entry went in would invite a retry: a second entry (gotcha 18)."""
    rig.om.child_timeout = 0.2
    await rig.last()
    await user_hub_down(rig)
    rig.sim.faults.fail_next("/api/Order/v2/query", 1, 400)
    rig.sim.faults.fail_next("/api/Order/search", 10, 503)
    placed = rig.sim.request_count("/api/Order/place")
    result = await rig.om.place_bracket_order(
        "MNQ", "buy", 1, stop_loss_ticks=400, take_profit_ticks=400
    )
    assert result.entry_order_id > 0 and result.stop_order_id is None
    assert rig.sim.request_count("/api/Order/place") == placed + 1
    rig.sim.faults.clear()
    (position,) = await rig.px.search_open_positions()
    assert position.size == 1  # the entry is live, exactly once
    await rig.px.close_position("MNQ")
    for order in await rig.px.search_open_orders():
        await rig.px.cancel_order(order.id)


async def test_flatten_cancels_the_orphans_close_leaves_behind(rig: Rig) -> None:
    result = await rig.om.place_bracket_order(
        "MNQ", "sell", 1, stop_loss_ticks=200, take_profit_ticks=200
    )
    await rig.om.wait_for_fill(result, timeout=5)
    for leg in (result.stop_order_id, result.target_order_id):
        await rig.om.wait_for_status(leg, OrderStatus.OPEN, timeout=5)

    plain = await rig.om.flatten("MNQ", cancel_orphans=False)  # the gateway's own behaviour
    assert plain.closed and plain.cancelled.cancelled == ()
    assert await rig.px.search_open_positions() == []
    orphans = {o.id for o in await rig.px.search_open_orders()}
    assert orphans == {result.stop_order_id, result.target_order_id}  # gotcha 14

    again = await rig.om.flatten("MNQ")  # no position left: still sweeps the orphans
    assert not again.closed
    assert set(again.cancelled.cancelled) == orphans and again.cancelled.failed == {}
    assert await rig.px.search_open_orders() == []
    for leg in orphans:
        assert (await rig.rest_order(leg)).status == OrderStatus.CANCELLED


async def test_cancel_all_orders_includes_suspended_children(rig: Rig) -> None:
    low = await rig.last() - 200 * Q
    placed = [
        await rig.om.place_limit_order("MNQ", "buy", 1, float(low)),
        await rig.om.place_bracket_order(
            "MNQ", "buy", 1, "limit", float(low - Q), stop_loss_ticks=8, take_profit_ticks=8
        ),
        await rig.om.place_stop_order("MNQ", "buy", 1, float(low + 400 * Q)),
    ]
    for order in placed:
        await rig.om.wait_for_status(order, OrderStatus.OPEN, timeout=5)
    assert len(rig.om.working_orders()) == 5
    result = await rig.om.cancel_all_orders()
    assert result.failed == {}
    assert rig.om.working_orders() == []
    assert await rig.px.search_open_orders() == []
    assert (await rig.px.query_orders(statuses=[1, 6, 8])).orders == []


# ---------------------------------------------------------------------------- waiting


async def test_wait_for_fill_times_out_then_reports_a_cancel(rig: Rig) -> None:
    placed = await rig.om.place_limit_order("MNQ", "buy", 1, float(await rig.last() - 200 * Q))
    with pytest.raises(TimeoutError, match="not filled"):
        await rig.om.wait_for_fill(placed, timeout=0.2)
    waiting = asyncio.ensure_future(rig.om.wait_for_fill(placed, timeout=5))
    await rig.om.cancel_order(placed)
    with pytest.raises(OrderNotFilledError, match="cancelled") as info:
        await waiting
    assert info.value.order.id == placed.order_id


async def test_rejected_bracket_in_position_bracket_mode(
    make_sim: Callable[..., Awaitable[Simulator]],
) -> None:
    from projectx_lab.sim import AccountConfig

    sim = await make_sim(accounts=[AccountConfig("PRAC-POS", bracket_mode="position")])
    async with ProjectX.for_simulator(sim, max_connections=8) as px:
        await px.authenticate()
        async with create_realtime_client(
            px.token_factory, user_hub_url=sim.user_hub_url,
            market_hub_url=sim.market_hub_url, **RT_FAST,
        ) as rt, OrderManager(px, rt) as om:  # fmt: skip
            with pytest.raises(OrderRejectedError, match="Auto OCO") as info:
                await om.place_bracket_order("MNQ", "buy", 1, stop_loss_ticks=8)
            assert info.value.order_id is not None  # a rejected order still gets an id
            rejected = await om.wait_for_status(info.value.order_id, OrderStatus.REJECTED)
            assert rejected.fill_volume == 0


# ---------------------------------------------------------------------------- bad input


async def test_bad_input_gets_a_clear_error_and_sends_nothing(rig: Rig) -> None:
    om = rig.om
    resting = await om.place_limit_order("MNQ", "buy", 1, float(await rig.last() - 200 * Q))
    await om.wait_for_status(resting, OrderStatus.OPEN, timeout=5)
    filled = await om.wait_for_fill(await om.place_market_order("MNQ", "buy", 1), timeout=5)
    last = float(await rig.last())
    cases: list[tuple[Callable[[], Awaitable[Any]], type[Exception], str]] = [
        (lambda: om.place_market_order("MNQ", "buy", 0), ValidationError, "size"),
        (lambda: om.place_market_order("MNQ", "buy", 1.5), ValidationError, "size"),
        (lambda: om.place_market_order("MNQ", "hold", 1), ValidationError, "side"),
        (lambda: om.place_market_order("MNQ", 2, 1), ValidationError, "side"),
        (lambda: om.place_limit_order("MNQ", "buy", 1, math.nan), ValidationError, "finite"),
        (lambda: om.place_limit_order("MNQ", "buy", 1, -5), ValidationError, "greater than"),
        (lambda: om.place_limit_order("MNQ", "buy", 1, "20000"), ValidationError, "number"),
        (lambda: om.place_limit_order("MNQ", "buy", 1, 0.1), ValidationError, "below one tick"),
        (lambda: om.place_stop_order("MNQ", "sell", 1, None), ValidationError, "number"),
        (
            lambda: om.place_bracket_order("MNQ", "buy", 1, stop_loss=last + 10),
            ValidationError,
            "wrong side",
        ),
        (
            lambda: om.place_bracket_order("MNQ", "sell", 1, "limit", last, stop_loss=last + 0.5),
            ValidationError,
            "at least 4 ticks",
        ),
        (
            lambda: om.place_bracket_order("MNQ", "buy", 1, "limit", None, stop_loss_ticks=8),
            ValidationError,
            "entry_price",
        ),
        (
            lambda: om.place_bracket_order("MNQ", "buy", 1, "stop", last, stop_loss_ticks=8),
            ValidationError,
            "entry_type",
        ),
        (lambda: om.modify_order(999_999_999, size=2), OrderNotFoundError, "not found"),
        (lambda: om.cancel_order(999_999_999), OrderNotFoundError, "not found"),
        (lambda: om.cancel_order(filled), ValidationError, "filled"),
        (lambda: om.modify_order(resting, stop_price=last), ValidationError, "does not apply"),
        (lambda: om.modify_order(resting, limit_price=math.inf), ValidationError, "finite"),
        (lambda: om.modify_order(resting), ValidationError, "needs"),
        (lambda: om.get_order("abc"), ValidationError, "order"),
    ]
    before = rig.mutations()
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            await call()
    assert rig.mutations() == before, "bad input reached the gateway"
    await om.flatten("MNQ")


async def test_flatten_without_a_position_is_not_an_error(rig: Rig) -> None:
    result = await rig.om.flatten("MNQ")
    assert not result.closed and result.cancelled.cancelled == ()
    with pytest.raises(PositionNotFoundError):
        await rig.px.close_position("MNQ")


# ---------------------------------------------------------------------------- reconnect


async def test_changes_during_a_dropped_user_hub_are_reconciled(rig: Rig) -> None:
    placed = await rig.om.place_limit_order("MNQ", "buy", 1, float(await rig.last() - 200 * Q))
    await rig.om.wait_for_status(placed, OrderStatus.OPEN, timeout=5)
    reconnected = asyncio.Event()
    rig.rt.state_event += lambda hub, state: (
        reconnected.set() if hub == "user" and state == ConnectionState.RECONNECTED else None
    )
    assert rig.sim.faults.drop_hub("user") == 1
    await rig.px.cancel_order(placed.order_id)  # the hub is down: this event is lost
    await asyncio.wait_for(reconnected.wait(), 5)
    final = await rig.om.wait_for_status(placed, OrderStatus.CANCELLED, timeout=5)
    assert final.status == OrderStatus.CANCELLED  # found by the REST reconcile


# ---------------------------------------------------------------------------- lifecycle


async def test_close_leaves_no_tasks_or_threads(
    make_sim: Callable[..., Awaitable[Simulator]],
) -> None:
    sim = await make_sim(speed=10.0)
    baseline_tasks = set(asyncio.all_tasks())
    baseline_threads = set(threading.enumerate())
    async with ProjectX.for_simulator(sim, max_connections=8) as px:
        await px.authenticate()
        async with create_realtime_client(
            px.token_factory, user_hub_url=sim.user_hub_url,
            market_hub_url=sim.market_hub_url, **RT_FAST,
        ) as rt:  # fmt: skip
            om = OrderManager(px, rt)
            seen = asyncio.Event()

            async def slow(order: Order, previous: Order | None) -> None:
                seen.set()
                await asyncio.sleep(30)  # still running at close: must be cancelled

            om.on_order_update += slow
            placed = await om.place_bracket_order(
                "MNQ", "buy", 1, stop_loss_ticks=40, take_profit_ticks=40
            )
            await om.wait_for_fill(placed, timeout=5)
            await asyncio.wait_for(seen.wait(), 5)
            await om.flatten("MNQ")
            await om.close()
    leftover = {t for t in asyncio.all_tasks() if t not in baseline_tasks and not t.done()}
    leftover.discard(asyncio.current_task())  # type: ignore[arg-type]
    assert leftover == set()
    threads = {t for t in threading.enumerate() if t not in baseline_threads and t.is_alive()}
    assert threads == set()
    assert "closed" in repr(om)
