"""PositionManager: the account's positions live from the user hub, marked to live prices.

Positions come from `GatewayUserPosition` (flat = `type 0, size 0`, gotcha 21) on top of a REST
load, and are reloaded by REST after every user-hub reconnect (nothing is replayed, gotcha 4);
a hub event newer than the REST read wins. Realized P&L is the sum of the account's fills since
`since` (REST `Trade/search` then `GatewayUserTrade`, de-duplicated by id); unrealized P&L uses
the contract's tick size and value and the last price from the market hub (or a data manager).
Closing a position also cancels the orders the gateway leaves working on it (gotcha 14).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from projectx_lab.client.errors import PositionNotFoundError, ProjectXError, ValidationError
from projectx_lab.client.models import (
    Instrument,
    OrderSide,
    Position,
    PositionType,
    Trade,
    as_utc,
    to_decimal,
)
from projectx_lab.realtime.dispatch import Event
from projectx_lab.realtime.supervisor import ConnectionState

from .account_stream import AccountStream
from .alerts import AlertBook, PnLAlert, PriceAlert, pnl_alert, price_alert
from .orders import CancelResult, FlattenResult, cancel_working_orders
from .pnl import ZERO, Peak, PortfolioPnL, PositionPnL, RiskMetrics, to_money, unrealized_pnl
from .pricing import parse_size

logger = logging.getLogger("projectx_lab.positions")
ALL_HISTORY = datetime(2000, 1, 1, tzinfo=UTC)  # `since=None`: every fill the gateway lists


class _Mark:
    """Float view of one position for the per-quote hot path."""

    __slots__ = ("average", "peak", "point_value", "signed", "upnl")

    def __init__(self, signed: int, average: float, point_value: float) -> None:
        self.signed = signed
        self.average = average
        self.point_value = point_value
        self.upnl: float | None = None
        self.peak = Peak()


class PositionManager(AccountStream):
    """Open positions, P&L, risk metrics, closes and alerts for one account.

    Events (`+=` sync or async callbacks): `on_position_update(position, previous)` (a flat
    position has `size == 0`), `on_alert(alert, value)`.
    """

    def __init__(
        self,
        project_x: Any,
        realtime_client: Any,
        account_id: int | None = None,
        *,
        price_source: Any = None,
        order_manager: Any = None,
        since: datetime | None = None,
        settle_timeout: float = 2.0,
        price_timeout: float = 2.0,
    ) -> None:
        super().__init__(project_x, realtime_client, account_id, price_source)
        self.order_manager = order_manager
        self.since = None if since is None else as_utc(since, "since")  # naive means UTC
        self.settle_timeout = settle_timeout
        self.price_timeout = price_timeout
        self.on_position_update: Event[Position, Position | None] = Event(
            "position_update", self._tasks
        )
        self.alerts = AlertBook(self._tasks)
        self.on_alert = self.alerts.on_alert
        self._positions: dict[str, Position] = {}
        self._marks: dict[str, _Mark] = {}
        self._instruments: dict[str, Instrument] = {}
        self._seq = 0
        self._touched: dict[str, int] = {}
        self._waiters: list[tuple[str, Callable[[Position], bool], asyncio.Future[Position]]] = []
        self._trade_ids: set[int] = set()
        self._last_trade: datetime | None = None
        self.realized = ZERO
        self.fees = ZERO
        self.commissions = ZERO
        self.balance: Decimal | None = None
        self._balance_events = 0  # account events seen: a REST read older than one loses
        self._net_realized_f = 0.0
        self._upnl_total = 0.0
        self.equity = Peak()
        self._background: set[asyncio.Task[Any]] = set()
        self._reconciling: asyncio.Task[Any] | None = None

    def __repr__(self) -> str:
        held = ", ".join(f"{c} {p.signed_size:+d}" for c, p in self._positions.items()) or "flat"
        return (
            f"PositionManager(account_id={self.account_id}, {self._state}, positions=[{held}], "
            f"realized={self.realized:+z.2f}, alerts={len(self.alerts)})"
        )

    # -- lifecycle -------------------------------------------------------------------------

    def _attach(self) -> None:
        rt = self.realtime
        rt.position_event += self._on_position
        rt.user_trade_event += self._on_trade
        rt.account_event += self._on_account
        rt.state_event += self._on_state
        self.prices.on_price += self._on_price

    def _detach(self) -> None:
        rt = self.realtime
        rt.position_event -= self._on_position
        rt.user_trade_event -= self._on_trade
        rt.account_event -= self._on_account
        rt.state_event -= self._on_state
        self.prices.on_price -= self._on_price

    async def _load(self) -> None:
        await self.reconcile()

    async def _release(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        for _, _, future in self._waiters:
            future.cancel()
        self._waiters.clear()
        self.on_position_update.close_streams()
        self.on_alert.close_streams()

    # -- queries ---------------------------------------------------------------------------

    async def get_positions(self) -> list[Position]:
        """Open positions (live from the hub)."""
        await self.initialize()
        return list(self._positions.values())

    async def get_position(self, contract: str | Instrument) -> Position | None:
        """The open position on `contract` (symbol or id), None when flat."""
        await self.initialize()
        return self._positions.get(await self._contract_id(contract))

    async def get_position_pnl(self, contract: str | Instrument) -> PositionPnL | None:
        """One position marked to the last price, None when flat."""
        await self.initialize()
        contract_id = await self._contract_id(contract)
        position = self._positions.get(contract_id)
        return None if position is None else await self._position_pnl(position)

    async def get_portfolio_pnl(self) -> PortfolioPnL:
        """Realized (from fills since `since`), fees, commissions and unrealized P&L."""
        await self.initialize()
        marked = tuple([await self._position_pnl(p) for p in list(self._positions.values())])
        unrealized = sum((m.unrealized for m in marked if m.unrealized is not None), ZERO)
        return PortfolioPnL(
            self.realized, self.fees, self.commissions, unrealized, marked, len(self._trade_ids)
        )

    async def get_risk_metrics(self) -> RiskMetrics:
        """Dollar exposure (gross and net) and drawdowns: per position from its best unrealized
        P&L, for the account from its peak equity (balance + unrealized) since start."""
        await self.initialize()
        marked = tuple([await self._position_pnl(p) for p in list(self._positions.values())])
        gross = net = ZERO
        for m in marked:
            if m.exposure is not None:
                gross += m.exposure
                net += m.exposure if m.signed_size > 0 else -m.exposure
        self._update_equity()
        return RiskMetrics(
            gross, net, self.equity.value, self.equity.peak, self.equity.drawdown,
            self.equity.max_drawdown, marked,
        )  # fmt: skip

    async def _position_pnl(self, position: Position) -> PositionPnL:
        instrument = await self._instrument(position.contract_id)
        last = self.prices.get(position.contract_id)
        if last is None:  # first look at a new position: give its price feed a moment
            with contextlib.suppress(TimeoutError):
                last = await self.prices.wait(position.contract_id, self.price_timeout)
        average = position.average_price or ZERO
        mark = self._marks.get(position.contract_id)
        if last is None:
            return PositionPnL(
                position.contract_id, position.signed_size, average, None, None, None, None, None
            )
        price = to_money(last)
        upnl = unrealized_pnl(
            position.signed_size, average, price, instrument.tick_size, instrument.tick_value
        )
        exposure = abs(position.size) * price * instrument.point_value
        return PositionPnL(
            position.contract_id, position.signed_size, average, price, upnl, exposure,
            mark.peak.peak if mark else None, mark.peak.drawdown if mark else None,
        )  # fmt: skip

    # -- closing ---------------------------------------------------------------------------

    async def close_position(
        self, contract: str | Instrument, *, cancel_orphans: bool = True
    ) -> FlattenResult:
        """Close the whole position at market, then cancel the orders left working on the
        contract (unless `cancel_orphans=False`); returns once the hub shows it flat."""
        await self.initialize()
        contract_id = await self._contract_id(contract)
        flat = self._waiter(contract_id, lambda p: p.size == 0)
        try:
            if self.order_manager is not None:
                result = await self.order_manager.flatten(
                    contract_id, cancel_orphans=cancel_orphans
                )
            else:
                result = await self._flatten(contract_id, cancel_orphans)
            if result.closed:
                await self._settle(flat)
            return result
        finally:
            self._drop_waiter(flat)

    async def _flatten(self, contract_id: str, cancel_orphans: bool) -> FlattenResult:
        try:
            await self.project_x.close_position(contract_id, account_id=self.account_id)
            closed = True
        except PositionNotFoundError:
            closed = False
        cancelled = CancelResult()
        if cancel_orphans:
            cancelled = await cancel_working_orders(self.project_x, self.account_id, contract_id)
        return FlattenResult(contract_id, closed, cancelled)

    async def partially_close_position(self, contract: str | Instrument, size: int) -> Position:
        """Reduce the position by `size` contracts at market; returns the position after the
        fill. The gateway resizes no bracket leg, so working exit orders (the other side)
        larger than what remains are shrunk to it, lest a stop fill flip the position; closing
        all of it is a `close_position` (its orphaned legs are cancelled)."""
        qty = parse_size(size)
        await self.initialize()
        contract_id = await self._contract_id(contract)
        position = self._positions.get(contract_id)
        if position is None:
            await self._load_positions()
            position = self._positions.get(contract_id)
        if position is None:
            raise PositionNotFoundError(f"no open position on {contract_id} to reduce")
        if qty > position.size:
            raise ValidationError(
                f"cannot close {qty} of a {position.size}-lot position on {contract_id}; "
                "use close_position for all of it"
            )
        start = position.size
        done = self._waiter(contract_id, lambda p: p.size != start)
        try:
            if qty == start:
                await self.close_position(contract_id)
            else:
                await self.project_x.partial_close_position(
                    contract_id, qty, account_id=self.account_id
                )
            after = await self._settle(done)
        finally:
            self._drop_waiter(done)
        if 0 < after.size < start:
            await self._shrink_exits(contract_id, after)
        return after

    async def _shrink_exits(self, contract_id: str, position: Position) -> None:
        """Working orders that would close more than `position` holds are cut down to it."""
        exit_side = OrderSide.SELL if position.type == PositionType.LONG else OrderSide.BUY
        rows = await self.project_x.search_open_orders(account_id=self.account_id)
        too_big = [
            o for o in rows
            if o.contract_id == contract_id and o.side == exit_side
            and o.size - o.fill_volume > position.size
        ]  # fmt: skip
        for order in too_big:
            size = order.fill_volume + position.size  # what is left to fill = the position
            try:
                if self.order_manager is not None:
                    await self.order_manager.modify_order(order.id, size=size)
                else:
                    await self.project_x.modify_order(
                        order.id, size=size, account_id=self.account_id
                    )
            except ProjectXError as exc:
                raise ProjectXError(
                    f"the position on {contract_id} is now {position.size}, but exit order "
                    f"{order.id} still closes {order.size - order.fill_volume} ({exc}); resize "
                    "or cancel it before it fills"
                ) from exc

    async def close_all_positions(
        self, *, cancel_orphans: bool = True
    ) -> dict[str, FlattenResult | Exception]:
        """Close every open position (concurrently); per contract the result or the error."""
        await self.initialize()
        contracts = list(self._positions)
        results = await asyncio.gather(
            *(self.close_position(c, cancel_orphans=cancel_orphans) for c in contracts),
            return_exceptions=True,
        )
        out: dict[str, FlattenResult | Exception] = {}
        for contract_id, result in zip(contracts, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result
            out[contract_id] = result
        return out

    def _waiter(
        self, contract_id: str, predicate: Callable[[Position], bool]
    ) -> tuple[str, Callable[[Position], bool], asyncio.Future[Position]]:
        entry = (contract_id, predicate, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        return entry

    def _drop_waiter(self, entry: tuple[str, Any, asyncio.Future[Position]]) -> None:
        if entry in self._waiters:
            self._waiters.remove(entry)
        entry[2].cancel()

    async def _settle(self, entry: tuple[str, Any, asyncio.Future[Position]]) -> Position:
        """Wait for the hub to show the change; after `settle_timeout`, reload by REST."""
        contract_id, _, future = entry
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.settle_timeout)
        except TimeoutError:
            await self._load_positions()
            position = self._positions.get(contract_id)
            return position or _flat(contract_id, self.account_id)

    # -- alerts ----------------------------------------------------------------------------

    async def add_price_alert(
        self,
        contract: str | Instrument,
        *,
        above: Any = None,
        below: Any = None,
        callback: Callable[[Any, float], Any] | None = None,
    ) -> PriceAlert:
        """Alert once when the last price reaches `above` (>=) or `below` (<=)."""
        if callback is not None and not callable(callback):
            raise ValidationError(f"callback must be callable, got {callback!r}")
        await self.initialize()
        contract_id = await self._contract_id(contract)
        alert = price_alert(contract_id, above, below)
        self.alerts.add(alert, callback)
        await self.prices.watch(contract_id)
        last = self.prices.get(contract_id)
        if last is not None:
            self.alerts.check_price(contract_id, last)
        return alert

    async def add_pnl_alert(
        self,
        threshold: Any,
        callback: Callable[[Any, float], Any] | None = None,
        *,
        contract: str | Instrument | None = None,
    ) -> PnLAlert:
        """Alert once when P&L reaches `threshold` dollars (positive: at or above; negative: at
        or below): the account's total (net realized + unrealized), or one position's
        unrealized P&L when `contract` is given."""
        if callback is not None and not callable(callback):
            raise ValidationError(f"callback must be callable, got {callback!r}")
        await self.initialize()
        contract_id = None if contract is None else await self._contract_id(contract)
        alert = pnl_alert(threshold, contract_id)
        self.alerts.add(alert, callback)
        self._check_pnl()
        return alert

    def remove_alert(self, alert: PriceAlert | PnLAlert) -> bool:
        """Disarm an alert; False if it was not armed (or has fired)."""
        return self.alerts.remove(alert)

    # -- stream ----------------------------------------------------------------------------

    def _on_position(self, data: dict[str, Any], action: int | None) -> None:
        if data.get("accountId") != self.account_id:
            return
        position = Position.from_wire(data)
        self._seq += 1
        self._touched[position.contract_id] = self._seq
        self._set(position)

    def _set(self, position: Position) -> None:
        contract_id = position.contract_id
        previous = self._positions.get(contract_id)
        if position.size == 0 or position.type == PositionType.UNDEFINED:
            if previous is None:
                return
            del self._positions[contract_id]
            mark = self._marks.pop(contract_id, None)
            if mark is not None and mark.upnl is not None:
                self._upnl_total -= mark.upnl
        else:
            if previous == position:
                return
            self._positions[contract_id] = position
            if previous is None:  # a new position: make sure its spec and prices are coming
                self._spawn(self._track(contract_id))
            self._remark(position, previous)
        for entry in list(self._waiters):
            cid, predicate, future = entry
            if cid == contract_id and not future.done() and predicate(position):
                future.set_result(position)
        self.on_position_update.emit(position, previous)
        self._update_equity()
        self._check_pnl()

    def _remark(self, position: Position, previous: Position | None) -> None:
        instrument = self._instruments.get(position.contract_id)
        if instrument is None:
            return  # `_track` marks it once the spec is loaded
        old = self._marks.get(position.contract_id)
        mark = _Mark(
            position.signed_size,
            float(position.average_price or 0),
            float(instrument.point_value),
        )
        if old is not None and previous is not None and previous.id == position.id:
            mark.peak = old.peak  # same position scaled: keep its peak
        if old is not None and old.upnl is not None:
            self._upnl_total -= old.upnl
        self._marks[position.contract_id] = mark
        last = self.prices.get(position.contract_id)
        if last is not None:
            self._mark(mark, last)

    async def _track(self, contract_id: str) -> None:
        """Load the contract's tick spec and start its price feed, then mark the position."""
        await self._instrument(contract_id)
        await self.prices.watch(contract_id)
        position = self._positions.get(contract_id)
        if position is not None and contract_id not in self._marks:
            self._remark(position, None)
            self._update_equity()

    def _on_price(self, contract_id: str, price: float) -> None:
        self.alerts.check_price(contract_id, price)
        mark = self._marks.get(contract_id)
        if mark is None:
            return
        self._mark(mark, price)
        self._update_equity()
        if self.alerts.has_pnl:
            self._check_pnl()

    def _mark(self, mark: _Mark, price: float) -> None:
        upnl = (price - mark.average) * mark.point_value * mark.signed
        self._upnl_total += upnl - (mark.upnl or 0.0)
        mark.upnl = upnl
        mark.peak.update(upnl)

    def _update_equity(self) -> None:
        if self.balance is not None:
            self.equity.update(float(self.balance) + self._upnl_total)

    def _check_pnl(self) -> None:
        if self.alerts.has_pnl:
            by_contract = {c: m.upnl for c, m in self._marks.items() if m.upnl is not None}
            self.alerts.check_pnl(self._net_realized_f + self._upnl_total, by_contract)

    def _on_trade(self, data: dict[str, Any], action: int | None) -> None:
        if data.get("accountId") != self.account_id:
            return
        if self._add_trade(Trade.from_wire(data)):
            self._check_pnl()

    def _add_trade(self, trade: Trade) -> bool:
        if trade.id in self._trade_ids or trade.voided:
            return False
        if self.since is not None and trade.creation_timestamp is not None:
            if trade.creation_timestamp < self.since:
                return False
        self._trade_ids.add(trade.id)
        self.realized += trade.profit_and_loss or ZERO
        self.fees += trade.fees or ZERO
        self.commissions += trade.commissions or ZERO
        self._net_realized_f = float(self.realized - self.fees - self.commissions)
        stamp = trade.creation_timestamp
        if stamp is not None and (self._last_trade is None or stamp > self._last_trade):
            self._last_trade = stamp
        return True

    def _on_account(self, data: dict[str, Any], action: int | None) -> None:
        if data.get("id") != self.account_id:
            return
        balance = to_decimal(data.get("balance"))
        if balance is not None:
            self._balance_events += 1
            self.balance = balance
            self._update_equity()

    def _on_state(self, hub: str, state: ConnectionState) -> None:
        if hub == "user" and state == ConnectionState.RECONNECTED and not self._closed:
            running = self._reconciling
            if running is not None and not running.done():
                running.cancel()  # its reads may predate this reconnect: the new one supersedes
            self._reconciling = self._spawn(self.reconcile())

    async def reconcile(self) -> None:
        """Reload missed fills and the balance, then positions, by REST (run after reconnects).

        Positions come last, so a position update after a reconnect already sees P&L that
        includes the fills behind it."""
        await asyncio.gather(self._load_trades(), self._load_balance())
        await self._load_positions()

    # -- REST loads ------------------------------------------------------------------------

    async def _load_positions(self) -> None:
        mark = self._seq
        rows = await self.project_x.search_open_positions(account_id=self.account_id)
        fresh = {p.contract_id: p for p in rows}
        for contract_id in set(self._positions) | set(fresh):
            if self._touched.get(contract_id, 0) > mark:
                continue  # a hub event arrived while REST was answering: it is newer
            self._set(fresh.get(contract_id) or _flat(contract_id, self.account_id))

    async def _load_trades(self) -> None:
        start = self.since or ALL_HISTORY
        if self._last_trade is not None:
            start = self._last_trade - timedelta(minutes=1)
        for trade in await self.project_x.search_trades(start, account_id=self.account_id):
            self._add_trade(trade)
        self._check_pnl()

    async def _load_balance(self) -> None:
        mark = self._balance_events
        accounts = await self.project_x.list_accounts()
        if self._balance_events != mark:
            return  # the hub announced a balance while REST was answering: it is newer
        for account in accounts:
            if account.id == self.account_id and account.balance is not None:
                self.balance = account.balance
                self._update_equity()

    # -- helpers ---------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if isinstance(exc, ProjectXError):
                logger.warning("position background work failed: %s", exc)
            else:
                logger.error("position background work failed", exc_info=exc)

    async def _instrument(self, contract_id: str) -> Instrument:
        held = self._instruments.get(contract_id)
        if held is None:
            held = await self.project_x.get_instrument(contract_id)
            self._instruments[held.id] = held
        return held

    async def _contract_id(self, contract: str | Instrument) -> str:
        if isinstance(contract, Instrument):
            self._instruments.setdefault(contract.id, contract)
            return contract.id
        if not isinstance(contract, str) or not contract.strip():
            raise ValidationError(f"contract must be a symbol or contract id, got {contract!r}")
        if contract in self._positions or contract in self._instruments:
            return contract
        instrument = await self.project_x.get_instrument(contract)
        self._instruments[instrument.id] = instrument
        return instrument.id


def _flat(contract_id: str, account_id: int | None) -> Position:
    return Position(0, account_id or 0, contract_id, None, None, PositionType.UNDEFINED, 0, None)
