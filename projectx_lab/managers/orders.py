"""OrderManager: place (see `placement.py`), modify, cancel and follow one account's orders.

Every input is checked and every price snapped to the contract's tick grid (see `pricing.py`)
before anything is sent; bad input raises `ValidationError` and sends nothing. Order state comes
from the user hub (suspended bracket children included, gotcha 13) and is reconciled by REST
after each reconnect. Placement is never retried here: the client resolves an ambiguous
outcome by the order's `customTag` (gotcha 18). `flatten` closes a position *and* cancels the
working orders the gateway leaves behind on that contract (gotcha 14).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from projectx_lab.client.errors import (
    OrderNotFoundError,
    PositionNotFoundError,
    ProjectXError,
    ValidationError,
)
from projectx_lab.client.models import Instrument, Order, OrderStatus, OrderType, PlaceOrderResult
from projectx_lab.realtime.dispatch import Event
from projectx_lab.realtime.supervisor import ConnectionState

from .account_stream import AccountStream
from .brackets import BracketOrderResult
from .order_tracker import OrderTracker, is_working
from .placement import OrderPlacement, PlaceCheck, PlaceRequest
from .pricing import parse_price, parse_size, parse_ticks, snap_order_price

logger = logging.getLogger("projectx_lab.orders")
_LIMIT_TYPES = (OrderType.LIMIT, OrderType.JOIN_BID, OrderType.JOIN_ASK)
_PRICE_FIELDS = {
    "limit_price": (*_LIMIT_TYPES, OrderType.STOP_LIMIT),
    "stop_price": (OrderType.STOP, OrderType.STOP_LIMIT),
    "trail_price": (OrderType.TRAILING_STOP,),
}
OrderRef = int | Order | PlaceOrderResult | BracketOrderResult


class OrderNotFilledError(ProjectXError):
    """`wait_for_fill` saw the order end without filling (cancelled, rejected, expired)."""

    def __init__(self, message: str, *, order: Order) -> None:
        super().__init__(message)
        self.order = order


@dataclass(frozen=True, slots=True)
class CancelResult:
    """Outcome of a bulk cancel: ids cancelled and, per id, why a cancel failed."""

    cancelled: tuple[int, ...] = ()
    failed: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FlattenResult:
    """Outcome of `flatten`: whether a position was closed and which orders were cancelled."""

    contract_id: str
    closed: bool
    cancelled: CancelResult


class OrderManager(AccountStream, OrderPlacement):
    """Orders of one account: typed placement helpers, brackets, live state, fills.

    Events (`+=` sync or async callbacks): `on_order_update(order, previous)` on every change,
    `on_fill(order, quantity)` when an order's filled volume grows.
    """

    def __init__(
        self,
        project_x: Any,
        realtime_client: Any,
        account_id: int | None = None,
        *,
        price_source: Any = None,
        min_stop_ticks: int = 4,
        child_timeout: float = 2.0,
        price_timeout: float = 3.0,
        max_tracked: int = 5_000,
    ) -> None:
        super().__init__(project_x, realtime_client, account_id, price_source)
        self.min_stop_ticks = parse_ticks(min_stop_ticks, "min_stop_ticks")
        self.child_timeout = child_timeout
        self.price_timeout = price_timeout
        self.on_order_update: Event[Order, Order | None] = Event("order_update", self._tasks)
        self.on_fill: Event[Order, int] = Event("fill", self._tasks)
        self.tracker = OrderTracker(max_tracked)
        self.pre_place_checks: list[PlaceCheck] = []
        self._instruments: dict[str, Instrument] = {}
        self._reconciling: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        working = len(self.tracker.working())
        return (
            f"OrderManager(account_id={self.account_id}, {self._state}, "
            f"tracked={len(self.tracker)}, working={working})"
        )

    # -- lifecycle -------------------------------------------------------------------------

    def _attach(self) -> None:
        self.realtime.order_event += self._on_order
        self.realtime.state_event += self._on_state

    def _detach(self) -> None:
        self.realtime.order_event -= self._on_order
        self.realtime.state_event -= self._on_state

    async def _load(self) -> None:
        for order in await self.project_x.search_open_orders(account_id=self.account_id):
            self._apply(order)

    async def _release(self) -> None:
        task = self._reconciling
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.tracker.close()
        self.on_order_update.close_streams()
        self.on_fill.close_streams()

    # -- modify / cancel -------------------------------------------------------------------

    async def modify_order(
        self,
        order: OrderRef,
        *,
        size: int | None = None,
        limit_price: Any = None,
        stop_price: Any = None,
        trail_price: Any = None,
    ) -> Order:
        """Change size and/or price of a working order (prices snapped by its type and side);
        returns the order as the gateway reports it after the change. A size increase passes
        the `pre_place_checks` first, as a placement of the added contracts would."""
        changes = {"limit_price": limit_price, "stop_price": stop_price, "trail_price": trail_price}
        given = {k: v for k, v in changes.items() if v is not None}
        qty = None if size is None else parse_size(size)
        if qty is None and not given:
            raise ValidationError("modify_order needs size, limit_price, stop_price or trail_price")
        for name, value in given.items():
            parse_price(value, name)
        await self.initialize()
        current = await self.get_order(order)
        if not is_working(current):
            raise ValidationError(f"order {current.id} is {_status(current)}; it cannot change")
        if qty is not None and qty <= current.fill_volume:
            raise ValidationError(
                f"size {qty} must exceed the {current.fill_volume} already filled on {current.id}"
            )
        instrument = await self._instrument(current.contract_id)
        snapped: dict[str, Decimal] = {}
        for name, value in given.items():
            if current.type not in _PRICE_FIELDS[name]:
                raise ValidationError(
                    f"{name} does not apply to order {current.id} ({_type(current)})"
                )
            snapped[name] = snap_order_price(
                value, instrument.tick_size, current.type, current.side, name
            )
        if "trail_price" in snapped:  # a level, checked as on placement: modify caps nothing
            await self._last_price(instrument.id)
            self._check_trail_level(instrument, current.side, snapped["trail_price"])
        if qty is not None and qty > current.size and self.pre_place_checks:
            added = qty - current.size  # more exposure: checked like a placement of the extra
            await self._run_checks(
                PlaceRequest(
                    instrument, current.type, current.side, added, current.custom_tag,
                    dict(snapped), modifies=current.id,
                )
            )  # fmt: skip
        waiter = self.tracker.waiter(current.id, _shows_change(current, qty, snapped))
        try:
            await self.project_x.modify_order(
                current.id, size=qty, account_id=self.account_id, **snapped
            )
            return await self._settle(current.id, waiter)
        finally:
            self.tracker.discard(current.id, waiter)

    async def cancel_order(self, order: OrderRef) -> Order:
        """Cancel a working order; returns it as cancelled. Unknown or finished → error, nothing
        sent."""
        await self.initialize()
        current = await self.get_order(order)
        if not is_working(current):
            raise ValidationError(f"order {current.id} is {_status(current)}; nothing to cancel")
        waiter = self.tracker.waiter(current.id, _finished)
        try:
            await self.project_x.cancel_order(current.id, account_id=self.account_id)
            return await self._settle(current.id, waiter)
        finally:
            self.tracker.discard(current.id, waiter)

    async def _settle(self, order_id: int, waiter: asyncio.Future[Order]) -> Order:
        """The order after a mutation: from the stream, else read back by REST."""
        try:
            return await asyncio.wait_for(waiter, self.child_timeout)
        except TimeoutError:
            return self._apply(await self.project_x.get_order(order_id, account_id=self.account_id))

    async def cancel_all_orders(self, contract: str | Instrument | None = None) -> CancelResult:
        """Cancel every working order (optionally of one contract), suspended children included.

        Entries go first (their suspended children go with them), then what is still working.
        """
        await self.initialize()
        contract_id = None if contract is None else (await self._instrument(contract)).id
        working = {o.id: o for o in self.tracker.working(contract_id)}
        for order in await self.project_x.search_open_orders(account_id=self.account_id):
            if contract_id is None or order.contract_id == contract_id:
                self._apply(order)
                if is_working(order):
                    working.setdefault(order.id, order)
        parents = [o.id for o in working.values() if o.parent_order_id not in working]
        children = [o.id for o in working.values() if o.parent_order_id in working]
        first = await cancel_orders(self.project_x, self.account_id, parents, self._apply)
        still = [i for i in children if is_working(self.tracker.get(i) or working[i])]
        then = await cancel_orders(self.project_x, self.account_id, still, self._apply)
        cancelled = tuple(sorted(first.cancelled + then.cancelled))
        await self._settle_all(cancelled)
        return CancelResult(cancelled, {**first.failed, **then.failed})

    async def _settle_all(self, order_ids: tuple[int, ...]) -> None:
        """Wait for the stream to show the orders finished; read the stragglers by REST."""
        waiters = {i: self.tracker.waiter(i, _finished) for i in order_ids}
        try:
            if waiters:
                await asyncio.wait(waiters.values(), timeout=self.child_timeout)
            for order_id, waiter in waiters.items():
                if not waiter.done():
                    self._apply(
                        await self.project_x.get_order(order_id, account_id=self.account_id)
                    )
        finally:
            for order_id, waiter in waiters.items():
                self.tracker.discard(order_id, waiter)
                waiter.cancel()

    # -- flatten ---------------------------------------------------------------------------

    async def flatten(
        self, contract: str | Instrument, *, cancel_orphans: bool = True
    ) -> FlattenResult:
        """Close the position on `contract` at market, then cancel every order still working on
        it (the gateway leaves bracket legs and stops behind, gotcha 14) unless
        `cancel_orphans=False`. Closing first keeps the stops in place if the close fails; a
        leg that fills in between (opening a new position) is closed too."""
        await self.initialize()
        instrument = await self._instrument(contract)
        try:
            await self.project_x.close_position(instrument, account_id=self.account_id)
            closed = True
        except PositionNotFoundError:
            closed = False
        if not cancel_orphans:
            return FlattenResult(instrument.id, closed, CancelResult())
        cancelled = await self.cancel_all_orders(instrument)
        rows = await self.project_x.search_open_positions(account_id=self.account_id)
        if any(p.contract_id == instrument.id and p.size for p in rows):
            # a leg filled between the close and the sweep and opened a new position
            logger.warning("%s: an exit order filled during flatten; closing again", instrument.id)
            with contextlib.suppress(PositionNotFoundError):  # it closed by itself meanwhile
                await self.project_x.close_position(instrument, account_id=self.account_id)
            closed = True
        return FlattenResult(instrument.id, closed, cancelled)

    async def close_position(
        self, contract: str | Instrument, *, cancel_orphans: bool = True
    ) -> FlattenResult:
        """Same as `flatten`."""
        return await self.flatten(contract, cancel_orphans=cancel_orphans)

    # -- queries ---------------------------------------------------------------------------

    async def search_open_orders(self, contract: str | Instrument | None = None) -> list[Order]:
        """Working orders by REST (`searchOpen`) plus the pending and suspended ones the stream
        shows but REST hides (gotcha 13), oldest id first."""
        await self.initialize()
        contract_id = None if contract is None else (await self._instrument(contract)).id
        rows = await self.project_x.search_open_orders(account_id=self.account_id)
        found = {o.id: self._apply(o) for o in rows}
        for order in self.tracker.working(contract_id):
            found.setdefault(order.id, order)
        return sorted(
            (o for o in found.values() if contract_id is None or o.contract_id == contract_id),
            key=lambda o: o.id,
        )

    def working_orders(self, contract_id: str | None = None) -> list[Order]:
        """Working orders as the stream reports them (no I/O)."""
        return self.tracker.working(contract_id)

    async def get_order(self, order: OrderRef) -> Order:
        """Latest state of an order: from the stream, else by REST (`OrderNotFoundError` if the
        gateway does not know it)."""
        order_id = _order_id(order)
        await self.initialize()
        held = self.tracker.get(order_id)
        if held is not None:
            return held
        try:
            found = await self.project_x.get_order(order_id, account_id=self.account_id)
        except OrderNotFoundError as exc:
            raise OrderNotFoundError(
                f"order {order_id} not found on account {self.account_id}",
                endpoint=exc.endpoint,
                error_code=exc.error_code,
                error_name=exc.error_name,
            ) from None
        return self._apply(found)

    async def wait_for_fill(
        self,
        order: OrderRef,
        timeout: float = 30.0,
    ) -> Order:
        """Wait (event-driven) until the order is completely filled and return it.

        Raises `OrderNotFilledError` if it ends otherwise and `TimeoutError` after `timeout` s
        (the order is read back by REST once before giving up). For a bracket, waits for the
        entry.
        """
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValidationError(f"timeout must be a positive number of seconds, got {timeout!r}")
        current = await self.get_order(order)
        waiter = self.tracker.waiter(current.id, _finished)
        try:
            final = await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            final = self._apply(
                await self.project_x.get_order(current.id, account_id=self.account_id)
            )
            if is_working(final):
                raise TimeoutError(
                    f"order {current.id} not filled within {timeout:g}s "
                    f"({_status(final)}, {final.fill_volume}/{final.size} filled)"
                ) from None
        finally:
            self.tracker.discard(current.id, waiter)
        if final.status != OrderStatus.FILLED:
            raise OrderNotFilledError(
                f"order {final.id} ended {_status(final)} with {final.fill_volume}/{final.size} "
                "filled",
                order=final,
            )
        return final

    async def wait_for_status(
        self,
        order: OrderRef,
        *statuses: OrderStatus | int,
        timeout: float = 30.0,
    ) -> Order:
        """Wait (event-driven) until the order has one of `statuses` (default: any terminal
        status) and return it; `TimeoutError` after `timeout` s."""
        wanted = frozenset(statuses) or frozenset({2, 3, 4, 5})
        current = await self.get_order(order)
        waiter = self.tracker.waiter(current.id, lambda o: o.status in wanted)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"order {current.id} did not reach status {sorted(map(int, wanted))} within "
                f"{timeout:g}s (now {_status(self.tracker.get(current.id) or current)})"
            ) from None
        finally:
            self.tracker.discard(current.id, waiter)

    async def reconcile(self) -> None:
        """Bring every tracked order up to date by REST (run after each user-hub reconnect)."""
        await self.initialize()
        account = self.account_id
        rows = {o.id: o for o in await self.project_x.search_open_orders(account_id=account)}
        working = self.tracker.working()
        stamps = [o.creation_timestamp for o in working if o.creation_timestamp]
        if self.tracker.latest is not None:
            stamps.append(self.tracker.latest)
        if stamps:  # orders that finished during the gap (server clock, with a margin)
            start = min(stamps) - timedelta(seconds=5)
            for order in await self.project_x.search_orders(start, account_id=account):
                rows.setdefault(order.id, order)
        for order in rows.values():
            self._apply(order)
        unseen = [o.id for o in self.tracker.working() if o.id not in rows]
        for order_id in unseen:
            try:
                self._apply(await self.project_x.get_order(order_id, account_id=account))
            except OrderNotFoundError:
                logger.warning("tracked order %s is unknown to the gateway", order_id)

    # -- stream ----------------------------------------------------------------------------

    def _on_order(self, data: dict[str, Any], action: int | None) -> None:
        if data.get("accountId") != self.account_id:
            return
        self._apply(Order.from_wire(data))

    def _apply(self, order: Order) -> Order:
        accepted, previous = self.tracker.apply(order)
        if not accepted:
            return previous  # type: ignore[return-value]
        if previous is None or previous != order:
            self.on_order_update.emit(order, previous)
        filled = order.fill_volume - (previous.fill_volume if previous else 0)
        if filled > 0:
            self.on_fill.emit(order, filled)
        return order

    def _on_state(self, hub: str, state: ConnectionState) -> None:
        if hub != "user" or state != ConnectionState.RECONNECTED or self._closed:
            return
        if self._reconciling is None or self._reconciling.done():
            self._reconciling = asyncio.get_running_loop().create_task(
                self._reconcile_logged(), name="orders-reconcile"
            )

    async def _reconcile_logged(self) -> None:
        try:
            await self.reconcile()
        except ProjectXError as exc:
            logger.warning("order reconcile after reconnect failed: %s", exc)

    # -- helpers ---------------------------------------------------------------------------

    async def _ready_instrument(self, contract: str | Instrument) -> Instrument:
        await self.initialize()
        return await self._instrument(contract)

    async def _instrument(self, contract: str | Instrument) -> Instrument:
        if isinstance(contract, Instrument):
            return contract
        if not isinstance(contract, str) or not contract.strip():
            raise ValidationError(f"contract must be a symbol or contract id, got {contract!r}")
        held = self._instruments.get(contract)
        if held is None:
            held = await self.project_x.get_instrument(contract)
            if not held.tick_size or held.tick_size <= 0:
                raise ValidationError(f"{held.id} has no usable tick size ({held.tick_size})")
            self._instruments[contract] = held
        return held


async def cancel_orders(
    project_x: Any,
    account_id: int | None,
    order_ids: list[int],
    seen: Callable[[Order], Any] | None = None,
) -> CancelResult:
    """Cancel orders concurrently. A refused cancel of an order that had already finished (a
    benign race with a fill or an OCO cancel) is not a failure; `seen` gets read-back orders."""
    results = await asyncio.gather(
        *(project_x.cancel_order(i, account_id=account_id) for i in order_ids),
        return_exceptions=True,
    )
    cancelled: list[int] = []
    failed: dict[int, str] = {}
    for order_id, outcome in zip(order_ids, results, strict=True):
        if not isinstance(outcome, BaseException):
            cancelled.append(order_id)
            continue
        if not isinstance(outcome, ProjectXError):
            raise outcome
        try:
            order = await project_x.get_order(order_id, account_id=account_id)
        except ProjectXError:
            order = None
        if order is not None and seen is not None:
            seen(order)
        if order is None or is_working(order):
            failed[order_id] = str(outcome)
    return CancelResult(tuple(cancelled), failed)


async def cancel_working_orders(
    project_x: Any, account_id: int | None, contract_id: str
) -> CancelResult:
    """REST-only sweep for callers without an OrderManager: cancel every open order of one
    contract (after a close, the legs the gateway left behind; gotcha 14)."""
    rows = await project_x.search_open_orders(account_id=account_id)
    ids = [o.id for o in rows if o.contract_id == contract_id and is_working(o)]
    return await cancel_orders(project_x, account_id, ids)


def _finished(order: Order) -> bool:
    return not is_working(order)


def _shows_change(
    current: Order, qty: int | None, prices: dict[str, Decimal]
) -> Callable[[Order], bool]:
    """Waiter predicate of a modify: an update that carries the new size and prices (or ends
    the order). A stale or duplicate event of the old state never satisfies it; a trail change
    (read back as a distance) is recognised by a newer update."""

    def shows(order: Order) -> bool:
        if order is current:
            return False
        if not is_working(order):
            return True
        if "trail_price" in prices:
            return _newer(order, current)
        return (qty is None or order.size == qty) and all(
            getattr(order, name) == value for name, value in prices.items()
        )

    return shows


def _newer(order: Order, than: Order) -> bool:
    a, b = order.update_timestamp, than.update_timestamp
    return a is None or b is None or a >= b


def _order_id(order: OrderRef) -> int:
    if isinstance(order, BracketOrderResult):
        return order.entry_order_id
    if isinstance(order, PlaceOrderResult):
        return order.order_id
    if isinstance(order, Order):
        return order.id
    if isinstance(order, int) and not isinstance(order, bool) and order > 0:
        return order
    raise ValidationError(
        f"order must be an order id, Order, PlaceOrderResult or BracketOrderResult, got {order!r}"
    )


def _status(order: Order) -> str:
    status = order.status
    return status.name.lower() if isinstance(status, OrderStatus) else f"status {status}"


def _type(order: Order) -> str:
    kind = order.type
    return kind.name.lower() if isinstance(kind, OrderType) else f"type {kind}"
