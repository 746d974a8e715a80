"""A market out of session (CME's daily halt, a weekend): orders are refused with a reason a
trader can act on, a close is refused without touching the position, the other contracts
trade on, and everything works again when the session reopens."""

from __future__ import annotations

import pytest

from projectx_lab.client.errors import OrderRejectedError
from projectx_lab.client.models import OrderSide

PLACE = "/api/Order/place"


async def test_orders_outside_trading_hours_fail_clearly_and_change_nothing(make_rig) -> None:
    rig = await make_rig()
    suite, client, sim = rig.the_suite, rig.the_client, rig.sim
    mnq = rig.contract_id
    await suite.orders.place_market_order("MNQ", OrderSide.BUY, 1)
    sim.faults.halt_market(mnq)

    with pytest.raises(OrderRejectedError, match="market is closed") as info:
        await suite.orders.place_bracket_order(
            "MNQ", OrderSide.BUY, 1, stop_loss_ticks=20, take_profit_ticks=40
        )
    assert info.value.error_name == "OutsideTradingHours" and info.value.error_code == 5
    assert "session is open" in str(info.value)  # what to do about it
    with pytest.raises(OrderRejectedError):
        await suite.positions.close_position("MNQ")
    (held,) = await client.get_positions()
    assert held.contract_id == mnq and held.size == 1  # the refused close left it alone
    assert await client.search_open_orders() == []  # no bracket leg slipped through

    placed = await suite.orders.place_market_order("MES", OrderSide.BUY, 1)  # MES is in session
    assert placed.order_id > 0

    sim.faults.resume_market(mnq)
    reopened = await suite.orders.place_market_order("MNQ", OrderSide.SELL, 1)
    assert reopened.order_id > 0
    await suite.positions.close_position("MES")
    assert await client.get_positions() == []  # both flat again
