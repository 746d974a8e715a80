"""REST-side scenarios: a 429 storm with 5xx bursts on reads, and token expiry mid-session
(natural expiry refreshed in the background, then server-side revocation)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from projectx_lab.client.errors import ProjectXError, RateLimitError
from projectx_lab.realtime import ConnectionState

from .rig import Changes, Rig

AVAILABLE = "/api/Contract/available"
BY_ID = "/api/Contract/searchById"
BARS = "/api/History/retrieveBars"
ORDERS_OPEN = "/api/Order/searchOpen"
POSITIONS = "/api/Position/searchOpen"
PLACE = "/api/Order/place"
RETRY_AFTER = 1.0  # what the simulator's 429 asks for


@dataclass(slots=True)
class StormReport:
    """Scenario 4: per read, its outcome and time; the budget none may exceed."""

    budget_s: float = 0.0
    outcomes: dict[str, str] = field(default_factory=dict)
    elapsed_s: dict[str, float] = field(default_factory=dict)
    hung: list[str] = field(default_factory=list)
    unclear: list[str] = field(default_factory=list)
    placement_on_429: str = ""
    orders_after_429: int = 0  # orders the 429'd placement left on the simulator


def retry_budget(settings: Any) -> float:
    """Worst case of one read: every attempt answered, each wait at its longest."""
    waits = (settings.retry_attempts - 1) * max(RETRY_AFTER + settings.retry_initial_wait,
                                                settings.retry_max_wait)  # fmt: skip
    return settings.retry_attempts * settings.timeout + waits + 1.0


async def rate_limit_storm(rig: Rig) -> StormReport:
    """Answer reads with bursts of 429s and 5xx (fewer than the attempts: must complete; more:
    must fail with a clear error) and a placement with a 429 (never retried, never placed)."""
    client, suite, faults = rig.the_client, rig.the_suite, rig.sim.faults
    attempts = client.settings.retry_attempts
    report = StormReport(budget_s=retry_budget(client.settings))
    faults.fail_next(BARS, 2, 429)
    faults.fail_next(POSITIONS, attempts - 1, 503)
    faults.fail_next(ORDERS_OPEN, 1, 429)
    faults.fail_next(ORDERS_OPEN, 1, 502)
    faults.fail_next(AVAILABLE, attempts + 2, 500)
    faults.fail_next(BY_ID, attempts + 2, 429)
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "bars after 2×429": lambda: client.get_bars(rig.contract_id, days=1, use_cache=False),
        "positions after a 5xx burst": suite.positions.reconcile,
        "open orders after 429+502": suite.orders.search_open_orders,
        "products, 5xx beyond the attempts": lambda: client.list_available_instruments(
            use_cache=False
        ),
        "contract, 429 beyond the attempts": lambda: client.get_instrument_by_id(
            rig.contract_id, use_cache=False
        ),
    }

    async def run(name: str, call: Callable[[], Awaitable[Any]]) -> None:
        started = time.monotonic()
        try:
            async with asyncio.timeout(report.budget_s):
                await call()
            report.outcomes[name] = "completed"
        except TimeoutError:
            report.hung.append(name)
            report.outcomes[name] = "hung"
        except ProjectXError as exc:
            text = str(exc)
            report.outcomes[name] = f"{type(exc).__name__}: {text}"
            if (
                not exc.endpoint
                or exc.endpoint not in text
                or not any(word in text for word in ("HTTP", "rate limited"))
            ):
                report.unclear.append(name)
        report.elapsed_s[name] = round(time.monotonic() - started, 3)

    await asyncio.gather(*(run(name, call) for name, call in calls.items()))
    before = len(rig.sim_orders())
    faults.fail_next(PLACE, 1, 429)
    try:
        await suite.orders.place_market_order(rig.contract_id, "buy", 1)
        report.placement_on_429 = "reported success"
    except RateLimitError as exc:
        report.placement_on_429 = f"RateLimitError: {exc}"
    report.orders_after_429 = len(rig.sim_orders()) - before
    return report


@dataclass(slots=True)
class ExpiryReport:
    """Scenario 5: refreshes, 401s seen, and hub reconnects with a fresh token."""

    refreshed_in_background: bool = False
    reads_ok: int = 0
    unauthorized_before_revocation: int = 0
    relogins_after_revocation: int = 0
    hubs_reconnected: bool = False
    events_after: bool = False
    errors: list[str] = field(default_factory=list)


async def token_expiry(rig: Rig) -> ExpiryReport:
    """With short-lived tokens: the client refreshes before expiry without a 401 and hubs
    rebuilt after the first token's expiry connect; then every token is revoked server-side
    while both hubs drop: the next read re-logs in silently and the hubs come back."""
    report = ExpiryReport()
    client, suite, states = rig.the_client, rig.the_suite, rig.states
    assert states is not None
    first = client.session_token
    ttl = rig.options.token_ttl
    deadline = time.monotonic() + 2 * ttl
    while client.session_token == first and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # the refresher runs on its own timer: nothing to await
    report.refreshed_in_background = client.session_token != first
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))  # outlive the first token
    for _ in range(3):
        await _read(client, report)
    report.unauthorized_before_revocation = client.stats.unauthorized
    back = {hub: states.count(hub, ConnectionState.RECONNECTED) for hub in ("user", "market")}
    rig.sim.faults.drop_hub("all", "abort")  # rebuilt with the refreshed token
    rig.sim.faults.expire_all_tokens()
    rig.sim.faults.drop_hub("all", "abort")  # and again after a server-side revocation
    reconnected = [
        await states.wait_count(hub, ConnectionState.RECONNECTED, back[hub] + 1, within=10.0)
        for hub in ("user", "market")
    ]
    report.hubs_reconnected = all(reconnected) and suite.realtime.is_connected
    logins = client._session.auth.logins
    await _read(client, report)
    report.relogins_after_revocation = client._session.auth.logins - logins
    seen = Changes()
    suite.orders.on_order_update += seen
    try:
        placed = await suite.orders.place_market_order(rig.contract_id, "buy", 1)
        report.events_after = await seen.until(
            lambda: suite.orders.tracker.get(placed.order_id) is not None
        )
        await suite.orders.flatten(rig.contract_id)
    finally:
        suite.orders.on_order_update -= seen
    return report


async def _read(client: Any, report: ExpiryReport) -> None:
    try:
        await client.list_accounts()
        report.reads_ok += 1
    except ProjectXError as exc:
        report.errors.append(f"{type(exc).__name__}: {exc}")
