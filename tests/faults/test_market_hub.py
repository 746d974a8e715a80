"""Market-hub faults through a whole TradingSuite: 20 drops (clean and abort, random moments),
a frozen stream on a healthy socket, and a gap that spans a bar boundary."""

from __future__ import annotations

from projectx_lab.testing import market


async def test_twenty_drops_recover_subscriptions_bars_and_book(
    make_rig,
) -> None:
    rig = await make_rig()
    report = await market.market_drops(rig, drops=20, seed=1)
    assert report.drops == 20 and report.recovered == 20, report
    assert set(report.modes) == {"clean", "abort"}
    assert report.subscriptions_lost == 0
    assert report.duplicate_bars == 0
    assert report.bars_mismatched == 0, "bars differ from the simulator's after the drops"
    assert report.book_equal, "the order book differs from the simulator's after the drops"


async def test_frozen_stream_is_detected_and_restored(make_rig) -> None:
    rig = await make_rig(stale_after=0.8)
    report = await market.frozen_market(rig)
    assert report.detected and "stale" in (report.reason or ""), report
    assert report.restored, "market data did not flow again after the freeze"
    assert report.book_equal, "the order book differs from the simulator's after the freeze"
    assert report.bars_mismatched == 0, "bars differ from the simulator's after the freeze"
    assert report.user_hub_untouched


async def test_bars_after_a_gap_across_a_bar_boundary_equal_the_simulators(make_rig) -> None:
    # the bar in which the stream resumes began during the gap: it must be re-read once closed
    rig = await make_rig()
    assert await market.gap_across_bar_boundary(rig) == 0
