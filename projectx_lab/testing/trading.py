"""Trading scenarios: a user-hub outage while a bracket fills and a leg triggers, and swallowed
responses on every mutation. Outcomes are counted on the simulator, not taken from the SDK."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from projectx_lab.client.errors import OrderOutcomeUnknownError, ProjectXError
from projectx_lab.client.models import OrderStatus
from projectx_lab.realtime import ConnectionState

from .rig import Changes, Rig

PLACE = "/api/Order/place"
MODIFY = "/api/Order/modify"
CANCEL = "/api/Order/cancel"
CLOSE = "/api/Position/closeContract"
_FILLED = 2


@dataclass(slots=True)
class GapReport:
    """Scenario 2: what happened on the simulator during the outage, and whether the suite's
    order and position state equals it after recovery."""

    entry_filled: bool = False
    leg_filled: bool = False
    reconnected: bool = False
    orders_equal: bool = False
    positions_equal: bool = False
    differences: list[str] = field(default_factory=list)


def _order_state(row: dict[str, Any]) -> tuple[int, int]:
    return int(row["status"]), int(row.get("fillVolume") or 0)


def compare_orders(rig: Rig, since_id: int) -> list[str]:
    """Orders (id > since_id) whose status or fill differs between the suite and simulator."""
    tracker = rig.the_suite.orders.tracker
    out = []
    for order_id, row in sorted(rig.sim_orders().items()):
        if order_id <= since_id:
            continue
        ours = tracker.get(order_id)
        mine = None if ours is None else (int(ours.status), ours.fill_volume)
        if mine != _order_state(row):
            out.append(f"order {order_id}: suite {mine}, simulator {_order_state(row)}")
    return out


def compare_positions(rig: Rig) -> list[str]:
    """Contracts whose position (signed size, average) differs between suite and simulator."""
    ours = {
        cid: (p.signed_size, float(p.average_price or 0))
        for cid, p in rig.the_suite.positions._positions.items()
    }
    theirs = rig.sim_positions()
    return [
        f"position {cid}: suite {ours.get(cid)}, simulator {theirs.get(cid)}"
        for cid in sorted(ours.keys() | theirs.keys())
        if ours.get(cid) != theirs.get(cid)
    ]


async def user_hub_gap(rig: Rig, within: float = 20.0) -> GapReport:
    """Keep the user hub down (dropped, reconnects refused) while a bracket's market entry
    fills and one of its 4-tick legs triggers; then let it back and compare state."""
    report = GapReport()
    suite = rig.the_suite
    states = rig.states
    assert states is not None
    faults = rig.sim.faults
    since = max(rig.sim_orders(), default=0)
    lost = states.count("user", ConnectionState.RECONNECTING)
    back = states.count("user", ConnectionState.RECONNECTED)
    faults.block_hub("user")
    faults.drop_hub("user", "abort")
    await states.wait_count("user", ConnectionState.RECONNECTING, lost + 1)
    bracket = await suite.orders.place_bracket_order(
        rig.contract_id, "buy", 1, stop_loss_ticks=4, take_profit_ticks=4
    )
    legs = [i for i in (bracket.stop_order_id, bracket.target_order_id) if i is not None]

    def sim_progress() -> tuple[bool, bool]:
        orders = rig.sim_orders()
        entry = orders.get(bracket.entry_order_id, {})
        filled_legs = [i for i in legs if orders.get(i, {}).get("status") == _FILLED]
        return entry.get("status") == _FILLED, bool(filled_legs)

    rig.sim.clock.speed = rig.options.speed * 4  # a fast market while the hub is away
    ticks = Changes()
    suite.realtime.trade_event += ticks
    try:
        await ticks.until(lambda: all(sim_progress()), within)
    finally:
        suite.realtime.trade_event -= ticks
        rig.resume_clock()
    report.entry_filled, report.leg_filled = sim_progress()
    faults.unblock_hub("user")
    report.reconnected = await states.wait_count("user", ConnectionState.RECONNECTED, back + 1)
    changes = Changes()
    suite.orders.on_order_update += changes
    suite.positions.on_position_update += changes
    try:
        await changes.until(
            lambda: not compare_orders(rig, since) and not compare_positions(rig), within=10.0
        )
    finally:
        suite.orders.on_order_update -= changes
        suite.positions.on_position_update -= changes
    order_diffs, position_diffs = compare_orders(rig, since), compare_positions(rig)
    report.orders_equal, report.positions_equal = not order_diffs, not position_diffs
    report.differences = order_diffs + position_diffs
    await suite.orders.flatten(rig.contract_id)
    return report


@dataclass(slots=True)
class SwallowReport:
    """Scenario 6: per mutation, what the caller got; and duplicates counted on the simulator."""

    outcomes: dict[str, str] = field(default_factory=dict)
    intended_orders: int = 0
    orders_on_sim: int = 0
    duplicate_orders: int = 0
    unknown_error_tag: str | None = None
    unknown_error_named_tag: bool = False
    problems: list[str] = field(default_factory=list)


async def swallowed_mutations(rig: Rig) -> SwallowReport:
    """Swallow the response of a placement, a modify, a cancel and a close (the gateway does
    the work, the answer never comes), and fail one placement before the work (HTTP 503): the
    caller must get the true outcome, or `OrderOutcomeUnknownError` naming the order's tag."""
    report = SwallowReport()
    suite, faults, cid = rig.the_suite, rig.sim.faults, rig.contract_id
    since = max(rig.sim_orders(), default=0)
    last = await suite.data.get_current_price()
    assert last is not None
    far_below = round(last * 0.9 / 0.25) * 0.25

    faults.swallow_next(PLACE)
    placed = await suite.orders.place_limit_order(cid, "buy", 1, far_below, custom_tag="fx-swl-1")
    report.intended_orders += 1
    report.outcomes["place"] = "recovered" if placed.recovered else "answered"

    faults.swallow_next(MODIFY)
    modified = await suite.orders.modify_order(placed, limit_price=far_below - 1)
    sim_row = rig.sim_orders()[placed.order_id]
    ok = float(modified.limit_price or 0) == far_below - 1 == float(sim_row["limitPrice"])
    report.outcomes["modify"] = "applied" if ok else f"wrong: {modified.limit_price}"

    faults.swallow_next(CANCEL)
    cancelled = await suite.orders.cancel_order(placed)
    sim_status = rig.sim_orders()[placed.order_id]["status"]
    ok = cancelled.status == OrderStatus.CANCELLED and sim_status == OrderStatus.CANCELLED
    report.outcomes["cancel"] = "cancelled" if ok else f"wrong: {cancelled.status}/{sim_status}"

    entry = await suite.orders.place_market_order(cid, "buy", 1, custom_tag="fx-swl-2")
    report.intended_orders += 1
    await suite.orders.wait_for_fill(entry, timeout=10.0)
    faults.swallow_next(CLOSE)
    result = await suite.positions.close_position(cid)
    closes = 1 if result.closed else 0
    report.outcomes["close"] = (
        "flat"
        if result.closed and cid not in rig.sim_positions()
        else (f"wrong: closed={result.closed}, simulator {rig.sim_positions().get(cid)}")
    )

    faults.fail_next(PLACE, 1, 503)  # refused before the work: nothing may appear
    try:
        await suite.orders.place_limit_order(cid, "buy", 1, far_below, custom_tag="fx-swl-3")
        report.problems.append("a placement answered 503 reported success")
    except OrderOutcomeUnknownError as exc:
        report.unknown_error_tag = exc.custom_tag
        report.unknown_error_named_tag = "fx-swl-3" in str(exc)
        report.outcomes["place after 503"] = "outcome unknown"
    except ProjectXError as exc:
        report.problems.append(f"placement after 503 raised {type(exc).__name__}: {exc}")

    rows = [row for oid, row in rig.sim_orders().items() if oid > since]
    tags = [row.get("customTag") for row in rows]
    report.orders_on_sim = len(rows)
    expected = report.intended_orders + closes  # the close is a market order on the gateway
    report.duplicate_orders = max(0, len(rows) - expected)
    for tag in ("fx-swl-1", "fx-swl-2"):
        if tags.count(tag) != 1:
            report.problems.append(f"{tags.count(tag)} orders tagged {tag} on the simulator")
    if "fx-swl-3" in tags:
        report.problems.append("the 503'd placement exists on the simulator")
    return report
