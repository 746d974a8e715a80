"""REST faults on reads and auth: a 429 storm with 5xx bursts (complete within the retry
budget or fail clearly, never hang), and token expiry mid-session (silent refresh; hubs
reconnect with a fresh token even after a server-side revocation)."""

from __future__ import annotations

from projectx_lab.testing import rest


async def test_429_storm_and_5xx_bursts_complete_or_fail_clearly(make_rig) -> None:
    rig = await make_rig(client={"timeout": 2.0})
    report = await rest.rate_limit_storm(rig)
    assert report.hung == [] and report.unclear == [], report.outcomes
    assert max(report.elapsed_s.values()) < report.budget_s
    completed = {name for name, outcome in report.outcomes.items() if outcome == "completed"}
    assert completed == {"bars after 2×429", "positions after a 5xx burst",
                         "open orders after 429+502"}, report.outcomes  # fmt: skip
    assert report.outcomes["products, 5xx beyond the attempts"].startswith("ServerError")
    assert report.outcomes["contract, 429 beyond the attempts"].startswith("RateLimitError")
    assert report.placement_on_429.startswith("RateLimitError")
    assert report.orders_after_429 == 0


async def test_token_expiry_is_silent_for_rest_and_hubs(make_rig) -> None:
    rig = await make_rig(token_ttl=2.0)
    report = await rest.token_expiry(rig)
    assert report.refreshed_in_background
    assert report.unauthorized_before_revocation == 0
    assert report.errors == [] and report.reads_ok == 4
    assert report.hubs_reconnected, "hubs did not come back after the tokens were revoked"
    assert report.events_after, "no user event after the hubs reconnected"
