"""Market-hub faults through a whole TradingSuite: 20 drops (clean and abort, random moments),
a frozen stream on a healthy socket, and a gap that spans a bar boundary."""

from __future__ import annotations

import pytest

from projectx_lab.testing import market


async def test_twenty_drops_all_recover_with_subscriptions_book_and_no_duplicate_bars(
    make_rig,
) -> None:
    rig = await make_rig()
    report = await market.market_drops(rig, drops=20, seed=1)
    assert report.drops == 20 and report.recovered == 20, report
    assert set(report.modes) == {"clean", "abort"}
    assert report.subscriptions_lost == 0
    assert report.duplicate_bars == 0
    assert report.book_equal, "the order book differs from the simulator's after the drops"


async def test_frozen_stream_is_detected_and_restored(make_rig) -> None:
    rig = await make_rig(stale_after=0.8)
    report = await market.frozen_market(rig)
    assert report.detected and "stale" in (report.reason or ""), report
    assert report.restored, "market data did not flow again after the freeze"
    assert report.book_equal, "the order book differs from the simulator's after the freeze"
    assert report.user_hub_untouched


@pytest.mark.xfail(
    strict=True,
    reason="managers/data.py: after a reconnect the bucket in which trades resume is never "
    "re-read (and the gap start is taken at RECONNECTED, after resumed trades moved "
    "last_trade_ns), so a gap crossing a bar boundary leaves wrong bars. Reported to the lead.",
)
async def test_bars_after_a_gap_across_a_bar_boundary_equal_the_simulators(make_rig) -> None:
    rig = await make_rig()
    assert await market.gap_across_bar_boundary(rig) == 0
