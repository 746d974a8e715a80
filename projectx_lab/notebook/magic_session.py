"""The connection behind the magics and what each trading magic does, as coroutines.

`MagicSession` owns (or borrows) a simulator, a client and a `TradingSuite`. Every order action
checks its whole input first — symbols resolved, legs measured, the safety gate (`arming.py`)
passed — and only then sends; each prints what happened (order ids, fills) and returns the
result objects. Errors are `MagicUsageError` (bad input or refused, nothing sent) or the
client's `ProjectXError` (the gateway said no).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any, NamedTuple

from projectx_lab.client import ProjectX
from projectx_lab.client.errors import (
    InstrumentNotFoundError,
    OrderNotFoundError,
    OrderOutcomeUnknownError,
    ProjectXError,
    ValidationError,
)
from projectx_lab.client.models import Account, Instrument, Order, OrderSide, OrderStatus, Position
from projectx_lab.client.validation import new_custom_tag
from projectx_lab.managers.brackets import BracketOrderResult, build_legs
from projectx_lab.managers.order_tracker import is_working
from projectx_lab.managers.orders import CancelResult, FlattenResult
from projectx_lab.sim import Simulator
from projectx_lab.suite import TradingSuite

from .arming import Armed, Arming, is_paper
from .loop import unowned
from .magic_args import ArmRequest, BracketRequest, CancelRequest, ConnectRequest, MagicUsageError
from .magic_format import (
    bracket_line,
    cancel_line,
    flatten_line,
    money,
    or_dash,
    side_name,
    status_name,
    table,
    type_name,
)

# an order's status once the gateway has taken it (working, or how it ended)
_SETTLED = (OrderStatus.OPEN, OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED,
            OrderStatus.REJECTED)  # fmt: skip


class MagicSession:
    """Simulator / client / suite of the magics, plus the arming state.

    `fill_timeout` bounds how long `%bracket` waits to report a market entry's fill.
    """

    def __init__(self, *, fill_timeout: float = 5.0) -> None:
        self.fill_timeout = fill_timeout
        self.sim: Simulator | None = None
        self.client: ProjectX | None = None
        self.suite: TradingSuite | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.arming = Arming()
        self._owns_sim = False

    def __repr__(self) -> str:
        if self.suite is None:
            return "MagicSession(disconnected)"
        kind = "simulator" if self.sim is not None else "gateway"
        return f"MagicSession({kind}, {self.suite!r}, armed={len(self.arming)})"

    # -- state -----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.suite is not None and not self.suite.closed

    @property
    def embedded(self) -> bool:
        """True when the client talks to an in-process `Simulator`."""
        return self.sim is not None

    @property
    def api_url(self) -> str:
        return self._client().settings.api_url

    def account(self) -> Account:
        """The account the magics trade (the suite's)."""
        account = self._client().account_info
        if account is None:
            raise MagicUsageError("not logged in; run %px_connect")
        return account

    def _client(self) -> ProjectX:
        if self.client is None or not self.connected:
            raise MagicUsageError(
                "not connected: run %px_connect (embedded simulator) or %px_connect --env"
            )
        return self.client

    def _suite(self) -> TradingSuite:
        self._client()
        assert self.suite is not None
        return self.suite

    # -- connect / disconnect --------------------------------------------------------------

    async def connect(
        self, request: ConnectRequest, namespace: Mapping[str, Any] | None = None
    ) -> TradingSuite:
        """Start (or adopt) a simulator or read the environment, log in, pick the account and
        start a suite for `request.symbol`; only then close the previous connection, so a
        failure leaves it working."""
        opened = await _open(request, _borrowed_sim(request, namespace or {}))
        previous = self._detach()
        self.loop = asyncio.get_running_loop()
        self.suite, self.client, self.sim, self._owns_sim = opened
        await previous.close()
        print(self._describe())
        return self._suite()

    def _describe(self) -> str:
        suite, account = self._suite(), self.account()
        instrument = suite.instrument
        if self.sim is not None:
            where = f"embedded simulator at {self.sim.api_url} (speed {self.sim.clock.speed:g}x)"
        else:
            where = f"gateway {self.api_url}"
        if is_paper(account, self.embedded):
            mode = "paper: no arming needed"
        else:
            mode = f"NOT paper: order magics need %px_arm {account.name} --max-size N"
        last = suite.data.last_price
        price = f", last {last}" if last is not None else ""
        return (
            f"connected: {where}\n"
            f"  account {account.name} (id {account.id}, simulated={account.simulated}) — {mode}\n"
            f"  {instrument.symbol} = {instrument.id}, tick {instrument.tick_size}{price}"
        )

    async def disconnect(self, *, quiet: bool = False) -> bool:
        """Close the suite, the client and an owned simulator; drop every arm."""
        previous = self._detach()
        if previous.suite is None and previous.client is None:
            if not quiet:
                print("not connected")
            return False
        await previous.close()
        if not quiet:
            print("disconnected")
        return True

    def forget(self) -> None:
        """Drop a connection whose event loop is gone, without touching it."""
        self._detach()

    def _detach(self) -> _Connection:
        """Take the connection out of the session (dropping every arm) without closing it."""
        previous = _Connection(self.suite, self.client, self.sim, self._owns_sim)
        self.suite = self.client = self.sim = None
        self._owns_sim = False
        self.arming.disarm()
        return previous

    # -- brackets --------------------------------------------------------------------------

    async def bracket(self, requests: list[BracketRequest]) -> list[BracketOrderResult]:
        """Check every request (symbols, legs, safety), then place them in order; print the
        three order ids of each and, for market entries, the fill."""
        suite = self._suite()
        instruments = [await self._instrument(r.symbol) for r in requests]
        await self._require_armed(requests, instruments)
        for number, (request, instrument) in enumerate(zip(requests, instruments, strict=True)):
            await self._check_legs(request, instrument, number if len(requests) > 1 else None)
        # tagged before sending, so that an interrupted placement can be named and looked up
        requests = [replace(r, tag=r.tag or new_custom_tag()) for r in requests]
        results: list[BracketOrderResult] = []
        for request, instrument in zip(requests, instruments, strict=True):
            try:
                what = f"placing %bracket {request}"
                with _in_flight("place", what, "%orders for its tag", request.tag):
                    result = await self._place(suite, request, instrument)
            except ProjectXError:
                if results:
                    print(f"placed {len(results)} of {len(requests)} before this failure")
                raise
            results.append(result)
            print(bracket_line(result, instrument, request))
        await self._report_fills(suite, requests, results)
        return results

    async def _instrument(self, symbol: str) -> Instrument:
        try:
            return await self._client().get_instrument(symbol)
        except InstrumentNotFoundError as exc:
            raise MagicUsageError(f"unknown symbol {symbol!r}: {exc}") from None

    async def _require_armed(
        self, requests: list[BracketRequest], instruments: list[Instrument]
    ) -> Armed | None:
        account = self.account()
        if is_paper(account, self.embedded):
            return None
        positions = self._suite().positions
        exposure: dict[str, int] = {}
        sizes: list[tuple[int, int]] = []
        for request, instrument in zip(requests, instruments, strict=True):
            cid = instrument.id
            if cid not in exposure:
                held = await positions.get_position(cid)
                exposure[cid] = held.signed_size if held is not None else 0
            exposure[cid] += request.signed_size
            sizes.append((request.size, abs(exposure[cid])))
        return self.arming.require(self.api_url, account, self.embedded, sizes)

    async def _check_legs(
        self, request: BracketRequest, instrument: Instrument, number: int | None
    ) -> None:
        """The manager's own leg checks, run for every order before any is sent."""
        orders = self._suite().orders
        absolute = any(leg is not None and leg.price is not None
                       for leg in (request.stop, request.target))  # fmt: skip
        reference: Decimal | None = request.limit
        if reference is None and absolute:
            try:
                await orders.prices.wait(instrument.id, orders.price_timeout)
            except TimeoutError:
                raise MagicUsageError(
                    f"no live price for {instrument.id} to measure absolute legs from; "
                    "use ticks (8t) instead"
                ) from None
            estimate = orders.prices.entry_estimate(instrument.id, request.side == OrderSide.BUY)
            reference = Decimal(repr(estimate)) if estimate is not None else None
        try:
            build_legs(
                request.side,
                instrument.tick_size,
                reference,
                **_leg_kwargs(request),
                min_stop_ticks=orders.min_stop_ticks,
            )
        except ValidationError as exc:
            where = f"order {number + 1} ({request}): " if number is not None else ""
            raise MagicUsageError(f"{where}{exc}") from None

    async def _place(
        self, suite: TradingSuite, request: BracketRequest, instrument: Instrument
    ) -> BracketOrderResult:
        entry = "limit" if request.limit is not None else "market"
        return await suite.orders.place_bracket_order(
            instrument,
            request.side,
            request.size,
            entry,
            request.limit,
            custom_tag=request.tag,
            **_leg_kwargs(request),
        )

    async def _report_fills(
        self,
        suite: TradingSuite,
        requests: list[BracketRequest],
        results: list[BracketOrderResult],
    ) -> None:
        """Each entry's state as the gateway reports it: filled (with the legs' prices),
        working, or how it ended."""
        orders = suite.orders
        for request, result in zip(requests, results, strict=True):
            entry_id = result.entry_order_id
            try:
                if request.limit is None:
                    entry = await orders.wait_for_fill(entry_id, self.fill_timeout)
                else:
                    entry = await orders.wait_for_status(
                        entry_id, *_SETTLED, timeout=self.fill_timeout
                    )
            except TimeoutError:
                print(f"  entry {entry_id} not filled within {self.fill_timeout:g}s")
                continue
            except ProjectXError as exc:
                print(f"  entry {entry_id}: {exc}")
                continue
            if entry.status != OrderStatus.FILLED:
                working = f"working: limit {entry.limit_price}" if is_working(entry) else None
                print(f"  entry {entry_id} {working or status_name(entry)}")
                continue
            legs = [await _leg_state(orders, i) for i in (result.stop_order_id,
                                                          result.target_order_id) if i]  # fmt: skip
            shown = "".join(f" · {leg}" for leg in legs)
            print(f"  filled {entry.fill_volume} @ {entry.filled_price}{shown}")

    # -- flatten / cancel ------------------------------------------------------------------

    async def flatten(self, symbol: str | None) -> list[FlattenResult]:
        """Close the position and cancel the working orders of one symbol, or of every
        contract that has either."""
        suite = self._suite()
        self.arming.require(self.api_url, self.account(), self.embedded)
        if symbol is not None:
            contracts = [(await self._instrument(symbol)).id]
        else:
            held = {p.contract_id for p in await suite.positions.get_positions()}
            working = {o.contract_id for o in await suite.orders.search_open_orders()}
            contracts = sorted(held | working)
        if not contracts:
            print("nothing to flatten: no position and no working order")
            return []
        results: list[FlattenResult] = []
        for contract_id in contracts:
            before = await suite.positions.get_position(contract_id)
            with _in_flight("close", f"flattening {contract_id}", "%positions and %orders"):
                result = await suite.orders.flatten(contract_id)
            results.append(result)
            print(flatten_line(result, before))
        _raise_if_still_working([r.cancelled for r in results], "%flatten")
        return results

    async def cancel(self, request: CancelRequest) -> CancelResult:
        """Cancel the given working orders (all checked first) or every working order."""
        orders = self._suite().orders
        self.arming.require(self.api_url, self.account(), self.embedded)
        if request.all:
            contract = None if request.symbol is None else await self._instrument(request.symbol)
            with _in_flight("cancel", "cancelling every working order", "%orders"):
                result = await orders.cancel_all_orders(contract)
        else:
            targets: list[Order] = []
            for order_id in request.order_ids:
                try:
                    order = await orders.get_order(order_id)
                except OrderNotFoundError:
                    raise MagicUsageError(f"no order {order_id} on this account") from None
                if not is_working(order):
                    raise MagicUsageError(
                        f"order {order_id} is {status_name(order)}: nothing to cancel; nothing sent"
                    )
                targets.append(order)
            cancelled: list[int] = []
            failed: dict[int, str] = {}
            with _in_flight("cancel", f"cancelling {len(targets)} order(s)", "%orders"):
                for order in targets:
                    try:
                        await orders.cancel_order(order.id)
                        cancelled.append(order.id)
                    except ProjectXError as exc:
                        failed[order.id] = str(exc)
            result = CancelResult(tuple(cancelled), failed)
        print(cancel_line(result))
        _raise_if_still_working([result], "%cancel")
        return result

    # -- reads -----------------------------------------------------------------------------

    async def positions(self) -> list[Position]:
        """Print and return the open positions (live from the user hub), marked to market."""
        manager = self._suite().positions
        held = await manager.get_positions()
        if not held:
            print("no open positions")
            return held
        rows = []
        for position in held:
            pnl = await manager.get_position_pnl(position.contract_id)
            last = pnl.price if pnl is not None else None
            upnl = pnl.unrealized if pnl is not None else None
            rows.append((
                position.contract_id, f"{position.signed_size:+d}",
                str(position.average_price), or_dash(last), money(upnl),
            ))  # fmt: skip
        print(table(("contract", "size", "avg price", "last", "unrealized"), rows))
        return held

    async def orders(self, symbol: str | None) -> list[Order]:
        """Print and return the working orders (suspended bracket legs included)."""
        manager = self._suite().orders
        contract = None if symbol is None else await self._instrument(symbol)
        working = await manager.search_open_orders(contract)
        if not working:
            print("no working orders")
            return working
        rows = [(
            str(o.id), o.contract_id, side_name(o.side), type_name(o), str(o.size),
            or_dash(o.limit_price), or_dash(o.stop_price), status_name(o),
            or_dash(o.parent_order_id), o.custom_tag or "",
        ) for o in working]  # fmt: skip
        header = ("id", "contract", "side", "type", "size", "limit", "stop", "status", "parent",
                  "tag")  # fmt: skip
        print(table(header, rows))
        return working

    # -- arming ----------------------------------------------------------------------------

    async def arm(self, request: ArmRequest) -> Armed | None:
        """Arm one account of the connected gateway (it must exist) up to a size."""
        client = self._client()
        accounts = await client.list_accounts(only_active=False)
        account = _find_account(accounts, request.account)
        if is_paper(account, self.embedded):
            print(f"{account.name} is a paper account on the embedded simulator: no arming needed")
            return None
        armed = self.arming.arm(self.api_url, account, request.max_size)
        print(f"ARMED: order magics may trade {armed} on {self.api_url}. %px_disarm to withdraw.")
        current = self.account()
        if current.id != account.id:
            print(
                f"  note: the magics trade {current.name}; "
                f"%px_connect --account {account.name} to trade this one"
            )
        return armed

    def disarm(self, account_name: str | None) -> list[Armed]:
        """Withdraw arming (one account or all); prints what was withdrawn."""
        removed = self.arming.disarm(account_name)
        if removed:
            print("disarmed: " + ", ".join(str(a) for a in removed))
        else:
            print("nothing was armed" + (f" for {account_name!r}" if account_name else ""))
        return removed

    # -- doctor ----------------------------------------------------------------------------

    def doctor_facts(self) -> tuple[list[tuple[str, str]], list[str]]:
        """Connection facts and warnings for `%px_doctor`."""
        if not self.connected:
            return [("connection", "not connected (run %px_connect)")], []
        suite, account = self._suite(), self.account()
        kind = "embedded simulator" if self.embedded else "gateway"
        realtime = suite.realtime
        hubs = ", ".join(f"{h} {realtime.state(h).name.lower()}" for h in ("user", "market"))
        armed = self.arming.get(self.api_url, account)
        safety = f"armed: {armed}" if armed else "not armed (order magics refused)"
        if is_paper(account, self.embedded):
            safety = "paper (no arming needed)"
        facts = [
            ("connection", f"{kind} {self.api_url}"),
            ("account", f"{account.name} (id {account.id}, simulated={account.simulated})"),
            ("trading", safety),
            ("realtime", hubs),
            ("instrument", f"{suite.instrument.id}, last {or_dash(suite.data.last_price)}, "
                           f"{suite.data.trades_seen} trades seen"),
        ]  # fmt: skip
        warnings = []
        if not realtime.is_connected:
            warnings.append(f"the real-time connection is down ({hubs}): widgets will not move")
        with contextlib.suppress(RuntimeError):
            running = asyncio.get_running_loop()
            if self.loop is not None and running is not self.loop:
                warnings.append(
                    "connected from another event loop than the one running here; "
                    "run %px_connect again"
                )
        return facts, warnings


class _Connection(NamedTuple):
    """What one `%px_connect` opened, closed together (the simulator only when owned)."""

    suite: TradingSuite | None
    client: ProjectX | None
    sim: Simulator | None
    owns_sim: bool

    async def close(self) -> None:
        """Close the suite, then the client, then the simulator if owned."""
        if self.suite is not None:
            await self.suite.close()
        if self.client is not None:
            await self.client.aclose()
        if self.sim is not None and self.owns_sim:
            await self.sim.stop()


async def _open(request: ConnectRequest, borrowed: Simulator | None) -> _Connection:
    """The connection `request` asks for; what it started is closed again if it fails."""
    sim, owns_sim = borrowed, False
    client: ProjectX | None = None
    try:
        if request.env:
            try:
                client = ProjectX.from_env()
            except ValidationError as exc:
                raise MagicUsageError(f"--env: {exc}") from None
        else:
            if sim is None:
                sim, owns_sim = Simulator(seed=request.seed, speed=request.speed), True
                await sim.start()
            client = ProjectX.for_simulator(sim)
        if request.account is not None:
            await client.select_account(request.account)
        else:
            await client.authenticate()
        with unowned():  # the session closes it, not a re-run of the cell
            suite = await TradingSuite.create(
                request.symbol, project_x=client, timeframes=request.timeframes
            )
    except BaseException:
        await _Connection(None, client, sim, owns_sim).close()
        raise
    return _Connection(suite, client, sim, owns_sim)


@contextlib.contextmanager
def _in_flight(operation: str, what: str, check: str, tag: str | None = None) -> Iterator[None]:
    """Interrupted (Ctrl-C, cancelled) while `what` was on its way, its outcome is unknown: say
    so and where to look, as the ambiguous-outcome error, not as a long traceback."""
    try:
        yield
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise OrderOutcomeUnknownError(
            f"interrupted while {what}: it may have reached the gateway; check {check} "
            "before sending it again",
            operation=operation,
            custom_tag=tag,
        ) from None


def _borrowed_sim(request: ConnectRequest, namespace: Mapping[str, Any]) -> Simulator | None:
    if request.sim is None:
        return None
    found = namespace.get(request.sim)
    if not isinstance(found, Simulator):
        raise MagicUsageError(f"--sim {request.sim}: no Simulator by that name in the namespace")
    if not found.running:
        raise MagicUsageError(f"--sim {request.sim}: that simulator is not running")
    return found


def _find_account(accounts: list[Account], wanted: str) -> Account:
    key = wanted.strip()
    for account in accounts:
        if account.name == key or str(account.id) == key:
            return account
    for account in accounts:
        if account.name.casefold() == key.casefold():
            return account
    names = ", ".join(a.name for a in accounts) or "none"
    raise MagicUsageError(f"no account {wanted!r} on this gateway; accounts: {names}")


def _leg_kwargs(request: BracketRequest) -> dict[str, Any]:
    stop, target = request.stop, request.target
    return {
        "stop_loss_ticks": stop.ticks if stop else None,
        "stop_loss": stop.price if stop else None,
        "take_profit_ticks": target.ticks if target else None,
        "take_profit": target.price if target else None,
    }


async def _leg_state(orders: Any, order_id: int) -> str:
    """`stop 124 @ 21448.25` once the leg is working, else its status."""
    try:
        order = await orders.wait_for_status(order_id, *_SETTLED, timeout=1)
    except TimeoutError:
        order = await orders.get_order(order_id)
    name = "stop" if order.custom_tag and order.custom_tag.endswith("-SL") else "target"
    price = order.stop_price if order.stop_price is not None else order.limit_price
    return (
        f"{name} {order.id} @ {price}"
        if price is not None
        else f"{name} {order.id} {status_name(order)}"
    )


def _raise_if_still_working(results: list[CancelResult], magic: str) -> None:
    """Orders the gateway refused to cancel are still live: say so as an error, loudly."""
    failed = {i: why for r in results for i, why in r.failed.items()}
    if failed:
        reasons = "; ".join(f"{i}: {why}" for i, why in failed.items())
        raise MagicUsageError(
            f"{len(failed)} order(s) are STILL WORKING after {magic}: the gateway refused to "
            f"cancel them ({reasons}). Cancel them in the trading platform."
        )
