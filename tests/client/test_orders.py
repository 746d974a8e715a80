"""Order, position and fill methods against the simulator, and the no-blind-retry rule: every
ambiguous mutation is resolved by reading back, never by sending it again."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from projectx_lab import (
    BracketSpec,
    OrderNotFoundError,
    OrderOutcomeUnknownError,
    OrderRejectedError,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionNotFoundError,
    PositionType,
    ProjectXError,
    RateLimitError,
    ValidationError,
)

PLACE = "/api/Order/place"
MODIFY = "/api/Order/modify"
CANCEL = "/api/Order/cancel"
CLOSE = "/api/Position/closeContract"
PARTIAL = "/api/Position/partialCloseContract"
QUERY = "/api/Order/v2/query"


async def far_bid(client, sim) -> Decimal:
    """A tick-aligned buy-limit price 200 points under the market: it rests, never fills."""
    end = sim.clock.now()
    bars = await client.get_bars("MNQ", start_time=end - timedelta(hours=1), end_time=end)
    return Decimal(str(bars["close"][-1])) - 200


async def orders_tagged(client, tag: str) -> list:
    page = await client.query_orders(statuses=list(range(9)), page_size=1000)
    return [o for o in page.orders if o.custom_tag == tag]


async def test_market_order_shows_up_in_every_read(client, sim):
    result = await client.place_order("MNQ", side="buy", size=2)
    assert result.custom_tag.startswith("pxl-") and not result.recovered
    order = await client.get_order(result.order_id)
    assert order.status == OrderStatus.FILLED and order.fill_volume == 2
    assert order.custom_tag == result.custom_tag and order.side == OrderSide.BUY
    (position,) = await client.search_open_positions()
    assert position.type == PositionType.LONG and position.size == 2
    assert position.average_price == order.filled_price
    assert await client.get_positions() == [position]
    since = sim.clock.now() - timedelta(minutes=5)
    orders = await client.search_orders(start_date=since)
    assert [o.id for o in orders] == [result.order_id]
    trades = await client.search_trades(start_date=since)
    assert sum(t.size for t in trades) == 2 and all(t.order_id == order.id for t in trades)
    assert all(t.profit_and_loss is None for t in trades)  # opening fills
    page = await client.query_orders(statuses=[OrderStatus.FILLED], include_total_count=True)
    assert page.total_count == 1 and page.orders[0].id == order.id


async def test_limit_order_modify_and_cancel(client, sim):
    price = await far_bid(client, sim)
    result = await client.place_order(
        "MNQ", side=OrderSide.BUY, size=1, type="limit", limit_price=price, custom_tag="rest-1"
    )
    assert result.custom_tag == "rest-1"
    assert [o.id for o in await client.search_open_orders()] == [result.order_id]
    await client.modify_order(result.order_id, limit_price=price - Decimal("0.25"), size=2)
    order = await client.get_order(result.order_id)
    assert order.limit_price == price - Decimal("0.25") and order.size == 2
    await client.cancel_order(result.order_id)
    assert (await client.get_order(result.order_id)).status == OrderStatus.CANCELLED
    assert await client.search_open_orders() == []
    with pytest.raises(OrderRejectedError) as info:  # cancelling a terminal order
        await client.cancel_order(result.order_id)
    assert info.value.error_name == "Rejected" and info.value.error_code == 3
    with pytest.raises(OrderNotFoundError):
        await client.cancel_order(999_999_999)
    with pytest.raises(OrderNotFoundError):
        await client.get_order(999_999_999)


async def test_bracket_children_carry_the_tag_suffixes(client):
    result = await client.place_order(
        "MNQ",
        side="buy",
        size=1,
        stop_loss=-10,
        take_profit=BracketSpec(20, OrderType.LIMIT),
        custom_tag="brk",
    )
    page = await client.query_orders(statuses=[OrderStatus.OPEN, OrderStatus.SUSPENDED])
    children = {o.custom_tag: o for o in page.orders}
    assert set(children) == {"brk-SL", "brk-TP"}
    assert all(o.parent_order_id == result.order_id for o in children.values())
    assert children["brk-SL"].type == OrderType.STOP


async def test_gateway_rejections_carry_code_and_message(client, sim):
    with pytest.raises(OrderRejectedError) as info:  # 2 ticks: under the gateway's minimum
        await client.place_order("MNQ", side="buy", size=1, stop_loss=-2)
    assert info.value.error_code == 2 and info.value.error_name == "OrderRejected"
    assert "at least 4 ticks" in info.value.gateway_message
    await client.place_order("MNQ", side="buy", size=1, custom_tag="once")
    with pytest.raises(OrderRejectedError, match="unique"):
        await client.place_order("MNQ", side="buy", size=1, custom_tag="once")
    locked = await client.select_account("PRAC-V2-SIM-LOCKED")
    with pytest.raises(OrderRejectedError) as info:
        await client.place_order("MNQ", side="sell", size=1, account_id=locked.id)
    assert info.value.error_name == "AccountRejected"


async def test_bad_input_is_refused_before_anything_is_sent(client, sim):
    bad = (
        {"side": "buy", "size": 0},
        {"side": "sideways", "size": 1},
        {"side": "buy", "size": 1, "type": "limit"},
        {"side": "buy", "size": 1, "limit_price": 21000},
        {"side": "buy", "size": 1, "type": "stop", "stop_price": -5},
        {"side": "buy", "size": 1, "stop_loss": 10},
        {"side": "sell", "size": 1, "take_profit": 10},
        {"side": "buy", "size": 1, "custom_tag": " padded"},
        {"side": "buy", "size": True},
    )
    for kwargs in bad:
        with pytest.raises(ValidationError):
            await client.place_order("MNQ", **kwargs)
    with pytest.raises(ValidationError):
        await client.modify_order(1)
    with pytest.raises(ValidationError):
        await client.partial_close_position("MNQ", 0)
    with pytest.raises(ValidationError):
        await client.query_orders(sort_by="price")
    assert sim.request_count(PLACE) == sim.request_count(MODIFY) == 0
    assert sim.request_count(PARTIAL) == 0


async def test_close_and_partial_close(client):
    await client.place_order("MNQ", side="sell", size=3)
    await client.partial_close_position("MNQ", 1)
    (position,) = await client.search_open_positions()
    assert position.type == PositionType.SHORT and position.signed_size == -2
    await client.close_position(position.contract_id)
    assert await client.search_open_positions() == []
    with pytest.raises(PositionNotFoundError):
        await client.close_position("MNQ")


# ---------------------------------------------------------------------- ambiguous outcomes


async def test_placement_5xx_is_not_retried_and_reports_the_tag(client, sim):
    sim.faults.fail_next(PLACE, 1, 503)
    with pytest.raises(OrderOutcomeUnknownError) as info:
        await client.place_order("MNQ", side="buy", size=1)
    tag = info.value.custom_tag
    assert tag and tag in str(info.value) and info.value.operation == "place"
    assert sim.request_count(PLACE) == 1
    assert await orders_tagged(client, tag) == []
    assert client.stats.lookups == 1


async def test_swallowed_placement_is_recovered_by_tag_without_a_duplicate(sim, make_client):
    client = await make_client(sim, timeout=0.5)
    await client.authenticate()
    sim.faults.swallow_next(PLACE)
    result = await client.place_order("MNQ", side="buy", size=1)
    assert result.recovered and result.order.status == OrderStatus.FILLED
    assert sim.request_count(PLACE) == 1
    assert [o.id for o in await orders_tagged(client, result.custom_tag)] == [result.order_id]
    (position,) = await client.search_open_positions()
    assert position.size == 1


async def test_placement_timeout_before_processing_places_nothing(sim, make_client):
    client = await make_client(sim, timeout=0.3, order_lookup_timeout=1.5)
    await client.authenticate()
    sim.faults.add_latency(0.8, PLACE)  # the client gives up first; the gateway then drops it
    with pytest.raises(OrderOutcomeUnknownError) as info:
        await client.place_order("MNQ", side="buy", size=1, custom_tag="slow-1")
    assert info.value.custom_tag == "slow-1" and sim.request_count(PLACE) == 1
    assert await orders_tagged(client, "slow-1") == []
    assert await client.search_open_positions() == []


async def test_placement_429_is_raised_not_retried(client, sim):
    sim.faults.fail_next(PLACE, 1, 429)
    with pytest.raises(RateLimitError):
        await client.place_order("MNQ", side="buy", size=1)
    assert sim.request_count(PLACE) == 1 and client.stats.lookups == 0


async def test_placement_401_is_replayed_once_with_the_same_tag(client, sim):
    mnq = await client.get_instrument("MNQ")
    sim.faults.expire_all_tokens()
    result = await client.place_order(mnq, side="buy", size=1, custom_tag="after-401")
    assert sim.request_count(PLACE) == 2  # refused (401), then replayed after re-login
    assert [o.id for o in await orders_tagged(client, "after-401")] == [result.order_id]


async def test_tag_lookup_falls_back_to_order_search(sim, make_client):
    client = await make_client(sim, timeout=0.5)
    await client.authenticate()
    sim.faults.fail_next(QUERY, 1, 404)
    sim.faults.swallow_next(PLACE)
    result = await client.place_order("MNQ", side="sell", size=1)
    assert result.recovered and sim.request_count("/api/Order/search") >= 1
    assert sim.request_count(PLACE) == 1


async def test_swallowed_cancel_and_modify_are_confirmed_by_reading_back(sim, make_client):
    client = await make_client(sim, timeout=0.5)
    await client.authenticate()
    price = await far_bid(client, sim)
    placed = await client.place_order("MNQ", side="buy", size=1, type="limit", limit_price=price)
    sim.faults.swallow_next(MODIFY)
    await client.modify_order(placed.order_id, limit_price=price - 1)
    assert (await client.get_order(placed.order_id)).limit_price == price - 1
    sim.faults.swallow_next(CANCEL)
    await client.cancel_order(placed.order_id)
    assert (await client.get_order(placed.order_id)).status == OrderStatus.CANCELLED
    assert sim.request_count(MODIFY) == sim.request_count(CANCEL) == 1


async def test_a_swallowed_modify_that_filled_the_order_is_reported_applied(sim, make_client):
    """A marketable new price fills the order at once; the read-back sees it finished with the
    new price: the modify worked, whatever the order did next."""
    client = await make_client(sim, timeout=0.5)
    await client.authenticate()
    price = await far_bid(client, sim)
    placed = await client.place_order("MNQ", side="buy", size=1, type="limit", limit_price=price)
    through = price + 2_000  # far above the ask: fills on arrival
    sim.faults.swallow_next(MODIFY)
    await client.modify_order(placed.order_id, limit_price=through)
    order = await client.get_order(placed.order_id)
    assert order.status == OrderStatus.FILLED and order.limit_price == through
    (position,) = await client.search_open_positions()
    assert position.size == 1
    await client.close_position("MNQ")


async def test_cancel_5xx_with_order_still_working_is_unknown(client, sim):
    placed = await client.place_order(
        "MNQ", side="buy", size=1, type="limit", limit_price=await far_bid(client, sim)
    )
    sim.faults.fail_next(CANCEL, 1, 502)
    with pytest.raises(OrderOutcomeUnknownError) as info:
        await client.cancel_order(placed.order_id)
    assert info.value.order_id == placed.order_id
    assert info.value.state.status == OrderStatus.OPEN and sim.request_count(CANCEL) == 1


async def test_swallowed_close_is_confirmed_flat(sim, make_client):
    client = await make_client(sim, timeout=0.5)
    await client.place_order("MNQ", side="buy", size=2)
    sim.faults.swallow_next(CLOSE)
    await client.close_position("MNQ")
    assert await client.search_open_positions() == [] and sim.request_count(CLOSE) == 1


async def test_ambiguous_partial_close_reports_the_position(client, sim):
    await client.place_order("MNQ", side="buy", size=3)
    sim.faults.fail_next(PARTIAL, 1, 500)
    with pytest.raises(OrderOutcomeUnknownError) as info:
        await client.partial_close_position("MNQ", 1)
    assert info.value.state.size == 3 and "+3" in str(info.value)
    assert sim.request_count(PARTIAL) == 1


async def test_failed_relogin_before_a_placement_is_not_ambiguous(client, sim):
    mnq = await client.get_instrument("MNQ")
    sim.faults.expire_all_tokens()
    sim.faults.fail_next("/api/Auth/loginKey", 10, 503)
    with pytest.raises(ProjectXError) as info:
        await client.place_order(mnq, side="buy", size=1)
    assert not isinstance(info.value, OrderOutcomeUnknownError)
    assert info.value.endpoint == "/api/Auth/loginKey" and client.stats.lookups == 0
    assert sim.request_count(PLACE) == 1  # the 401'd attempt; nothing after the failed login


async def test_find_order_by_tag(client):
    placed = await client.place_order("MNQ", side="sell", size=1, custom_tag="find-me")
    assert (await client.find_order_by_tag("find-me")).id == placed.order_id
    assert await client.find_order_by_tag("never-used") is None
