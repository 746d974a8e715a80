"""The bad-input catalogue: wrong calls across the public API and the notebook magics.

Each must raise a clear error naming the fix (its text matches the case's pattern), send no
mutation (and no request at all unless the case must ask the gateway, e.g. "does order N
exist"), and leave the suite working. Counted on the simulator, not by the SDK.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from projectx_lab.client import ProjectX
from projectx_lab.client.errors import ProjectXError
from projectx_lab.managers.data import RealtimeDataManager
from projectx_lab.suite import TradingSuite

from .rig import Rig

Call = Callable[[Rig], Awaitable[Any] | Any]


@dataclass(frozen=True, slots=True)
class BadCall:
    """One wrong call: what it does, the error it must raise, and the hint its text needs."""

    name: str
    call: Call
    error: type[BaseException] | tuple[type[BaseException], ...]
    hint: str  # regex the message must match: it names the fix
    may_read: bool = False  # it has to ask the gateway (unknown ids): reads allowed, no writes


@dataclass(slots=True)
class Outcome:
    """How one bad call went."""

    name: str
    clear: bool
    detail: str


@dataclass(slots=True)
class CatalogueReport:
    """Scenario 8: `clear` of `total` calls passed every check; the suite still works."""

    total: int = 0
    clear: int = 0
    failures: list[Outcome] = field(default_factory=list)
    suite_alive: bool = False
    magics: str = "not run"


def _price(rig: Rig) -> float:
    price = rig.the_suite.data.last_price
    assert price is not None
    return price


def _client(rig: Rig) -> ProjectX:
    return rig.the_client


def _finished_order_id(rig: Rig) -> int:
    """A known, cancelled order (set up by `run_catalogue`)."""
    return int(rig.scratch["finished_order_id"])


async def _closed_suite_order(rig: Rig) -> Any:
    suite = await TradingSuite.create(
        "MNQ", project_x=rig.the_client, timeframes=["1min"], initial_bars=5,
        realtime_options=rig.options.realtime(),
    )  # fmt: skip
    await suite.close()
    return await suite.orders.place_market_order(rig.contract_id, "buy", 1)


def catalogue() -> list[BadCall]:
    """Every wrong call: REST client, managers, suite and real-time client (44 cases)."""
    v = ProjectXError  # client-side checks raise ValidationError (a ProjectXError, ValueError)
    cid = "CON.F.US.MNQ.Z26"
    when = datetime(2026, 10, 1, tzinfo=UTC)
    return [
        # -- the REST client -------------------------------------------------------------
        BadCall("side that is not a side", lambda r: _client(r).place_order(
            "MNQ", side="sideways", size=1), v, r"side must be one of buy, sell"),
        BadCall("size zero", lambda r: _client(r).place_order("MNQ", side="buy", size=0),
                v, r"size must be an integer >= 1"),
        BadCall("fractional size", lambda r: _client(r).place_order(
            "MNQ", side="buy", size=1.5), v, r"size must be an integer >= 1"),
        BadCall("limit order without a price", lambda r: _client(r).place_order(
            "MNQ", side="buy", size=1, type="limit"), v, r"needs limit_price"),
        BadCall("price on a market order", lambda r: _client(r).place_order(
            "MNQ", side="buy", size=1, limit_price=21000), v, r"does not apply"),
        BadCall("off-grid limit price", lambda r: _client(r).place_order(
            "MNQ", side="buy", size=1, type="limit", limit_price=_price(r) - 10.1), v,
            r"not on .* tick grid .* use \d+(\.\d+)? or \d+(\.\d+)?"),
        BadCall("negative stop price", lambda r: _client(r).place_order(
            "MNQ", side="buy", size=1, type="stop", stop_price=-5), v, r"positive finite"),
        BadCall("stop loss on the wrong side", lambda r: _client(r).place_order(
            "MNQ", side="buy", size=1, stop_loss=10), v, r"needs negative stop-loss ticks"),
        BadCall("unknown order type", lambda r: _client(r).place_order(
            "MNQ", side="buy", size=1, type="banana"), v, r"type must be one of"),
        BadCall("padded custom tag", lambda r: _client(r).place_order(
            "MNQ", side="buy", size=1, custom_tag=" x"), v, r"without edge spaces"),
        BadCall("order id zero", lambda r: _client(r).cancel_order(0), v,
                r"order_id must be an integer >= 1"),
        BadCall("order id as text", lambda r: _client(r).modify_order("12", size=2), v,
                r"order_id must be an integer >= 1"),
        BadCall("modify with nothing to change", lambda r: _client(r).modify_order(12), v,
                r"needs at least one of size/limit/stop/trail"),
        BadCall("unknown bar unit", lambda r: _client(r).get_bars(cid, unit="fortnight"), v,
                r"unit must be one of second, minute"),
        BadCall("bar interval zero", lambda r: _client(r).get_bars(cid, interval=0), v,
                r"interval must be an integer >= 1"),
        BadCall("days and start_time together", lambda r: _client(r).get_bars(
            cid, days=1, start_time=when), v, r"either days or start_time"),
        BadCall("unknown timezone", lambda r: _client(r).get_bars(cid, tz="Mars/Olympus"), v,
                r"unknown timezone"),
        BadCall("empty symbol", lambda r: _client(r).get_instrument("  "), v,
                r"symbol must be a non-empty string"),
        BadCall("window that ends before it starts", lambda r: _client(r).search_orders(
            when, datetime(2026, 9, 1, tzinfo=UTC)), v, r"is not before end_date"),
        BadCall("unknown sort field", lambda r: _client(r).query_orders(sort_by="price"), v,
                r"sort_by must be one of created_at, id"),
        BadCall("account given as a float", lambda r: _client(r).select_account(3.5), v,
                r"account must be a name or an id"),
        BadCall("client without credentials", lambda r: ProjectX(
            username="", api_key="", api_url=r.sim.api_url), v, r"missing credentials"),
        BadCall("negative timeout setting", lambda r: ProjectX.for_simulator(r.sim, timeout=-1),
                v, r"timeout must be a positive number"),
        BadCall("unknown account id", lambda r: _client(r).select_account(999), v,
                r"no account 999; available: ", may_read=True),
        # -- managers and suite ----------------------------------------------------------
        BadCall("limit price as text", lambda r: r.the_suite.orders.place_limit_order(
            cid, "buy", 1, "cheap"), v, r"limit_price must be a number"),
        BadCall("size as text", lambda r: r.the_suite.orders.place_market_order(
            cid, "buy", "1"), v, r"size must be a positive whole number"),
        BadCall("negative bracket ticks", lambda r: r.the_suite.orders.place_bracket_order(
            cid, "buy", 1, stop_loss_ticks=-8), v, r"positive whole number of ticks"),
        BadCall("limit entry without a price", lambda r: r.the_suite.orders.place_bracket_order(
            cid, "buy", 1, "limit", stop_loss_ticks=8), v, r"limit entry needs entry_price"),
        BadCall("trail price and ticks together", lambda r: r.the_suite.orders
                .place_trailing_stop_order(cid, "sell", 1, _price(r) - 5, trail_ticks=8), v,
                r"give trail_price .* or trail_ticks"),
        BadCall("trail beyond 1000 ticks", lambda r: r.the_suite.orders
                .place_trailing_stop_order(cid, "sell", 1, trail_ticks=5000), v,
                r"exceeds the gateway's 1000"),
        BadCall("cancel an unknown order", lambda r: r.the_suite.orders.cancel_order(
            987_654_321), v, r"order 987654321 not found", may_read=True),
        BadCall("modify a finished order", lambda r: r.the_suite.orders.modify_order(
            _finished_order_id(r), size=2), v, r"cannot change", may_read=True),
        BadCall("wait with a zero timeout", lambda r: r.the_suite.orders.wait_for_fill(
            _finished_order_id(r), timeout=0), v, r"timeout must be a positive number"),
        BadCall("untracked timeframe", lambda r: r.the_suite.data.get_data("7min"), ValueError,
                r"not tracked; this manager has .*Pass it in timeframes"),
        BadCall("negative bar count", lambda r: r.the_suite.data.get_data("1min", bars=-3),
                ValueError, r"bars must be a positive int"),
        BadCall("unknown timeframe unit", lambda r: RealtimeDataManager(
            "MNQ", _client(r), r.the_suite.realtime, ["7 parsecs"]), ValueError,
            r"unknown timeframe"),
        BadCall("partial close of zero", lambda r: r.the_suite.positions
                .partially_close_position(cid, 0), v, r"size must be a positive whole number"),
        BadCall("partial close without a position", lambda r: r.the_suite.positions
                .partially_close_position(cid, 1), v, r"no open position on", may_read=True),
        BadCall("price alert without a level", lambda r: r.the_suite.positions
                .add_price_alert(cid), v, r"needs above= and/or below="),
        BadCall("unknown suite key", lambda r: r.the_suite["crystal_ball"], KeyError, r"keys"),
        BadCall("unknown suite feature", lambda r: TradingSuite.create(
            "MNQ", project_x=_client(r), features=["crystal_ball"]), ValueError,
            r"unknown features .* known: \['orderbook'\]"),
        BadCall("empty contract id on the hub", lambda r: r.the_suite.realtime
                .subscribe_market(""), ValueError, r"contract_id must be a non-empty"),
        BadCall("unknown real-time event", lambda r: r.the_suite.realtime.on(
            "GatewayGossip", print), ValueError, r"unknown event .* known: "),
        BadCall("order through a closed suite", _closed_suite_order, RuntimeError,
                r"closed .*create a new one", may_read=True),
    ]  # fmt: skip


MAGIC_CASES = (
    ("bracket", "MNQ sideways 1 --stop 8t", r"side must be buy or sell"),
    ("bracket", "MNQ buy 0 --stop 8t", r"size must be a positive whole number"),
    ("bracket", "MNQ buy 1 --stop 8x", r"neither ticks \(like 8t\) nor a price"),
    ("bracket", "MNQ buy 1 --stop -8t --target 16t", r"positive \(8t, not -8t\)"),
    ("cancel", "abc", r"positive whole number.*%cancel all"),
    ("px_connect", "--speed fast", r"expected a number"),
)


async def _check(rig: Rig, case: BadCall) -> Outcome:
    writes, total = rig.mutation_requests(), rig.total_requests()
    try:
        result = case.call(rig)
        if hasattr(result, "__await__"):
            await result
    except case.error as exc:
        raised = type(exc).__name__
        if not re.search(case.hint, str(exc)):
            return Outcome(case.name, False, f"unclear message: {str(exc)!r}")
    except Exception as exc:
        return Outcome(case.name, False, f"crashed with {type(exc).__name__}: {exc}")
    else:
        return Outcome(case.name, False, "no error raised")
    if rig.mutation_requests() != writes:
        return Outcome(case.name, False, "a mutation reached the gateway")
    if not case.may_read and rig.total_requests() != total:
        return Outcome(case.name, False, f"{rig.total_requests() - total} request(s) sent")
    return Outcome(case.name, True, raised)


def run_magic_cases(rig: Rig, report: CatalogueReport) -> None:
    """The magics' wrong lines through a real IPython shell (parse errors: nothing sent)."""
    try:
        from IPython.core.error import UsageError
        from IPython.core.interactiveshell import InteractiveShell

        from projectx_lab.notebook.magics import load_ipython_extension
    except ImportError as exc:
        report.magics = f"skipped: {exc}"
        return
    shell = InteractiveShell.instance()
    load_ipython_extension(shell)
    for magic, line, hint in MAGIC_CASES:
        name = f"%{magic} {line}"
        total = rig.total_requests()
        report.total += 1
        try:
            shell.run_line_magic(magic, line)
            outcome = Outcome(name, False, "no error raised")
        except UsageError as exc:
            ok = bool(re.search(hint, str(exc))) and "usage" in str(exc).lower()
            outcome = Outcome(name, ok, str(exc) if not ok else "UsageError")
        except Exception as exc:
            outcome = Outcome(name, False, f"crashed with {type(exc).__name__}: {exc}")
        if outcome.clear and rig.total_requests() != total:
            outcome = Outcome(name, False, "a request was sent")
        report.clear += outcome.clear
        if not outcome.clear:
            report.failures.append(outcome)
    report.magics = f"{len(MAGIC_CASES)} cases"


async def run_catalogue(rig: Rig, *, magics: bool = True) -> CatalogueReport:
    """Run every case against a live rig; then check the suite still trades and streams."""
    suite = rig.the_suite
    report = CatalogueReport()
    await rig.trades(1)  # a live last price for the cases that need one
    placed = await suite.orders.place_limit_order(
        rig.contract_id, "buy", 1, _price(rig) * 0.9, custom_tag="fx-bad-setup"
    )
    await suite.orders.cancel_order(placed)
    rig.scratch["finished_order_id"] = placed.order_id
    for case in catalogue():
        outcome = await _check(rig, case)
        report.total += 1
        report.clear += outcome.clear
        if not outcome.clear:
            report.failures.append(outcome)
    if magics:
        run_magic_cases(rig, report)
    report.suite_alive = suite.realtime.is_connected and await rig.trades(2)
    report.suite_alive = report.suite_alive and bool(await suite.orders.search_open_orders() == [])
    return report
