"""Swallowed responses on place, modify, cancel and close, and a placement refused with 503:
exactly the intended orders exist on the simulator, the caller gets the true outcome or an
`OrderOutcomeUnknownError` naming the order's tag."""

from __future__ import annotations

from projectx_lab.testing import trading


async def test_swallowed_mutations_resolve_to_the_true_outcome(make_rig) -> None:
    rig = await make_rig(client={"timeout": 0.5})
    report = await trading.swallowed_mutations(rig)
    assert report.outcomes == {
        "place": "recovered",
        "modify": "applied",
        "cancel": "cancelled",
        "close": "flat",
        "place after 503": "outcome unknown",
    }
    assert report.duplicate_orders == 0 and report.problems == [], report
    assert report.unknown_error_tag == "fx-swl-3" and report.unknown_error_named_tag
