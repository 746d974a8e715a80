"""User-hub outage while a bracket's entry fills and a leg triggers: afterwards the suite's
orders and positions equal the simulator's."""

from __future__ import annotations

from projectx_lab.testing import trading


async def test_bracket_filled_during_an_outage_is_reconciled(make_rig) -> None:
    rig = await make_rig()
    report = await trading.user_hub_gap(rig)
    assert report.entry_filled and report.leg_filled, "the market never hit a leg"
    assert report.reconnected
    assert report.orders_equal and report.positions_equal, report.differences
