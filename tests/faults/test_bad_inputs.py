"""The bad-input catalogue: every wrong call across the public API and the magics raises a
clear error naming the fix, sends nothing and leaves the suite working."""

from __future__ import annotations

from projectx_lab.testing import bad_inputs


async def test_every_bad_input_is_a_clear_error_and_sends_nothing(make_rig) -> None:
    rig = await make_rig()
    report = await bad_inputs.run_catalogue(rig)
    assert report.total >= 30
    assert report.failures == [] and report.clear == report.total
    assert report.suite_alive
    assert report.magics == f"{len(bad_inputs.MAGIC_CASES)} cases", report.magics
