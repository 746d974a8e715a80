"""Order placement for the OrderManager: typed helpers for every order type and brackets.

Mixed into `OrderManager`. Each helper validates side, size and prices and snaps prices to the
contract's tick grid (`pricing.py`) before anything is sent; bracket legs are signed the way
the gateway wants (`brackets.py`). The client never re-sends a placement: an ambiguous outcome
is resolved by the order's `customTag` (gotcha 18), which brackets also use to find their
children (`<tag>-SL`, `<tag>-TP`) on the stream.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from projectx_lab.client.errors import ProjectXError, ValidationError
from projectx_lab.client.models import (
    Instrument,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    PlaceOrderResult,
)
from projectx_lab.client.orders import new_custom_tag

from .brackets import BracketOrderResult, build_legs
from .pricing import (
    FLOOR,
    from_ticks,
    parse_price,
    parse_side,
    parse_size,
    parse_ticks,
    snap_order_price,
    to_ticks,
)

if TYPE_CHECKING:
    from .order_tracker import OrderTracker
    from .prices import LivePrices

MAX_TRAIL_TICKS = 1000

logger = logging.getLogger("projectx_lab.orders")


@dataclass(frozen=True, slots=True)
class PlaceRequest:
    """A validated placement about to be sent: what pre-placement checks get to inspect.

    `prices` holds the snapped `limit_price` / `stop_price` / `trail_price` and the bracket legs
    (`stop_loss`, `take_profit`) as they will be sent. A size increase through `modify_order`
    is checked as a request for the added contracts only, with `modifies` = the order's id.
    """

    instrument: Instrument
    type: OrderType
    side: OrderSide
    size: int
    custom_tag: str | None
    prices: dict[str, Any]
    modifies: int | None = None


# A check raises (e.g. `ValidationError`) to stop the placement; it may be async.
PlaceCheck = Callable[[PlaceRequest], Awaitable[None] | None]


class OrderPlacement:
    """Mixin of `OrderManager`: `place_*_order` helpers. Needs the attributes declared below.

    `pre_place_checks` run, in order, on every placement (and every size increase by
    `modify_order`) after validation and before anything is sent; one that raises stops it (a
    risk guard hooks in here).
    """

    project_x: Any
    account_id: int | None
    pre_place_checks: list[PlaceCheck]
    tracker: OrderTracker
    prices: LivePrices
    min_stop_ticks: int
    child_timeout: float
    price_timeout: float

    if TYPE_CHECKING:

        async def _ready_instrument(self, contract: str | Instrument) -> Instrument: ...

        def _apply(self, order: Order) -> Order: ...

    async def place_market_order(
        self, contract: str | Instrument, side: Any, size: int, *, custom_tag: str | None = None
    ) -> PlaceOrderResult:
        """Market order."""
        order_side, qty = parse_side(side), parse_size(size)
        instrument = await self._ready_instrument(contract)
        return await self._place(instrument, OrderType.MARKET, order_side, qty, custom_tag)

    async def place_limit_order(
        self,
        contract: str | Instrument,
        side: Any,
        size: int,
        limit_price: Any,
        *,
        custom_tag: str | None = None,
    ) -> PlaceOrderResult:
        """Limit order; the price is snapped away from the market (buy floor, sell ceil)."""
        return await self._place_priced(
            contract, side, size, OrderType.LIMIT, "limit_price", limit_price, custom_tag
        )

    async def place_stop_order(
        self,
        contract: str | Instrument,
        side: Any,
        size: int,
        stop_price: Any,
        *,
        custom_tag: str | None = None,
    ) -> PlaceOrderResult:
        """Stop-market order; the stop is snapped away from the market (buy ceil, sell floor)."""
        return await self._place_priced(
            contract, side, size, OrderType.STOP, "stop_price", stop_price, custom_tag
        )

    async def _place_priced(
        self,
        contract: str | Instrument,
        side: Any,
        size: int,
        order_type: OrderType,
        field: str,
        raw_price: Any,
        custom_tag: str | None,
    ) -> PlaceOrderResult:
        """Validate, snap `raw_price` onto the tick grid away from the market, and place it as
        `field` (limit_price or stop_price)."""
        order_side, qty = parse_side(side), parse_size(size)
        parse_price(raw_price, field)
        instrument = await self._ready_instrument(contract)
        price = snap_order_price(raw_price, instrument.tick_size, order_type, order_side, field)
        return await self._place(
            instrument, order_type, order_side, qty, custom_tag, **{field: price}
        )

    async def place_trailing_stop_order(
        self,
        contract: str | Instrument,
        side: Any,
        size: int,
        trail_price: Any = None,
        *,
        trail_ticks: int | None = None,
        custom_tag: str | None = None,
    ) -> PlaceOrderResult:
        """Trailing stop. `trail_price` is the price *level* where the trail starts (the gateway
        fixes the distance as |last − level| in ticks, gotcha 15); or give `trail_ticks`, a
        distance, turned into a level from the current last price."""
        order_side, qty = parse_side(side), parse_size(size)
        if (trail_price is None) == (trail_ticks is None):
            raise ValidationError("give trail_price (a price level) or trail_ticks (a distance)")
        ticks = None if trail_ticks is None else parse_ticks(trail_ticks, "trail_ticks")
        if trail_price is not None:
            parse_price(trail_price, "trail_price")
        if ticks is not None and ticks > MAX_TRAIL_TICKS:
            raise ValidationError(f"trail_ticks {ticks} exceeds the gateway's {MAX_TRAIL_TICKS}")
        instrument = await self._ready_instrument(contract)
        tick = instrument.tick_size
        buy = order_side == OrderSide.BUY
        if ticks is not None:
            last = await self._last_price(instrument.id)
            last_ticks = to_ticks(parse_price(last, "last price"), tick, FLOOR)
            level = from_ticks(last_ticks + ticks if buy else last_ticks - ticks, tick)
            if level <= 0:
                raise ValidationError(f"trail_ticks {ticks} puts the trail level below zero")
        else:
            level = snap_order_price(
                trail_price, tick, OrderType.TRAILING_STOP, order_side, "trail_price"
            )
            self._check_trail_level(instrument, order_side, level)
        return await self._place(
            instrument, OrderType.TRAILING_STOP, order_side, qty, custom_tag, trail_price=level
        )

    def _check_trail_level(self, instrument: Instrument, side: OrderSide, level: Decimal) -> None:
        """With a live price at hand: level on the protective side, within 1000 ticks."""
        last = self.prices.get(instrument.id)
        if last is None:
            return
        last_d = parse_price(last, "last price")
        buy = side == OrderSide.BUY
        if (level <= last_d) if buy else (level >= last_d):
            where = "above" if buy else "below"
            raise ValidationError(
                f"trail_price {level} must be {where} the last price {last_d} for a "
                f"{'buy' if buy else 'sell'} trailing stop (it is a price level, not a distance)"
            )
        distance = to_ticks(abs(last_d - level), instrument.tick_size, FLOOR)
        if distance > MAX_TRAIL_TICKS:
            raise ValidationError(
                f"trail_price {level} is {distance} ticks from the last price {last_d}; the "
                f"gateway allows {MAX_TRAIL_TICKS}. trail_price is a level, not a distance: "
                "use trail_ticks= for a distance"
            )

    async def place_bracket_order(
        self,
        contract: str | Instrument,
        side: Any,
        size: int,
        entry_type: str = "market",
        entry_price: Any = None,
        *,
        stop_loss_ticks: int | None = None,
        take_profit_ticks: int | None = None,
        stop_loss: Any = None,
        take_profit: Any = None,
        stop_type: str = "stop",
        custom_tag: str | None = None,
    ) -> BracketOrderResult:
        """Entry (market or limit) with an Auto-OCO stop loss and/or take profit.

        Legs are given as distances in ticks (`stop_loss_ticks=8`) or as absolute prices
        (`stop_loss=21440.25`), measured from `entry_price` for a limit entry or from the
        current market (ask for a buy, bid for a sell) for a market entry; the gateway anchors
        them at the actual fill. The result names the entry, stop and target orders.
        """
        order_side, qty = parse_side(side), parse_size(size)
        if entry_type not in ("market", "limit"):
            raise ValidationError(f"entry_type must be 'market' or 'limit', got {entry_type!r}")
        if entry_type == "limit":
            if entry_price is None:
                raise ValidationError("a limit entry needs entry_price")
            parse_price(entry_price, "entry_price")
        elif entry_price is not None:
            raise ValidationError("entry_price applies to entry_type='limit' only")
        for name, value in (("stop_loss_ticks", stop_loss_ticks),
                            ("take_profit_ticks", take_profit_ticks)):  # fmt: skip
            if value is not None:
                parse_ticks(value, name)
        for name, value in (("stop_loss", stop_loss), ("take_profit", take_profit)):
            if value is not None:
                parse_price(value, name)
        instrument = await self._ready_instrument(contract)
        tick = instrument.tick_size
        limit = None
        if entry_type == "limit":
            limit = snap_order_price(entry_price, tick, OrderType.LIMIT, order_side, "entry_price")
            reference: Decimal | None = limit
        elif stop_loss is not None or take_profit is not None:
            reference = await self._entry_estimate(instrument.id, order_side)
        else:
            reference = None
        legs = build_legs(
            order_side,
            tick,
            reference,
            stop_loss_ticks=stop_loss_ticks,
            take_profit_ticks=take_profit_ticks,
            stop_loss=stop_loss,
            take_profit=take_profit,
            stop_type=stop_type,
            min_stop_ticks=self.min_stop_ticks,
        )
        tag = custom_tag if custom_tag is not None else new_custom_tag()
        stop_tag = f"{tag}-SL" if legs.stop_loss else None
        target_tag = f"{tag}-TP" if legs.take_profit else None
        waiters = {t: self.tracker.waiter(t, _any) for t in (stop_tag, target_tag) if t}
        try:
            result = await self._place(
                instrument,
                OrderType.LIMIT if limit is not None else OrderType.MARKET,
                order_side,
                qty,
                tag,
                limit_price=limit,
                stop_loss=legs.stop_loss,
                take_profit=legs.take_profit,
            )
            children = await self._find_children(result.order_id, instrument.id, waiters)
        finally:
            for key, waiter in waiters.items():
                self.tracker.discard(key, waiter)
                waiter.cancel()
        stop = children.get(stop_tag) if stop_tag else None
        target = children.get(target_tag) if target_tag else None
        return BracketOrderResult(
            entry_order_id=result.order_id,
            stop_order_id=stop.id if stop else None,
            target_order_id=target.id if target else None,
            entry_tag=result.custom_tag,
            stop_tag=stop_tag,
            target_tag=target_tag,
            contract_id=instrument.id,
            side=order_side,
            size=qty,
            stop_loss_ticks=legs.stop_loss.ticks if legs.stop_loss else None,
            take_profit_ticks=legs.take_profit.ticks if legs.take_profit else None,
            entry=self.tracker.get(result.order_id),
            stop=stop,
            target=target,
        )

    async def _find_children(
        self, entry_id: int, contract_id: str, waiters: dict[str, asyncio.Future[Order]]
    ) -> dict[str, Order]:
        """Bracket children by tag: from the stream (event-driven, `child_timeout`), else REST;
        what cannot be found is left out (logged), never raised."""
        found: dict[str, Order] = {}
        if not waiters:
            return found
        done, _ = await asyncio.wait(waiters.values(), timeout=self.child_timeout)
        for tag, waiter in waiters.items():
            if waiter in done and not waiter.cancelled():
                found[tag] = waiter.result()
        if len(found) < len(waiters):
            missing = set(waiters) - set(found)
            try:
                rows = await self._recent_orders(contract_id)
            except ProjectXError as exc:  # the entry is placed: never raise (a retry would
                logger.warning(  # place a second one); the legs stay unnamed in the result
                    "bracket entry %s is placed but its legs could not be looked up (%s); "
                    "see search_open_orders()",
                    entry_id,
                    exc,
                )
                return found
            for order in rows:
                if order.custom_tag in missing and order.parent_order_id == entry_id:
                    self._apply(order)
                    found[order.custom_tag] = order
        return found

    async def _recent_orders(self, contract_id: str) -> list[Order]:
        """The account's newest orders on `contract_id` in every status (suspended legs of an
        unfilled entry included, which `Order/v2/query` leaves out unless asked)."""
        try:
            page = await self.project_x.query_orders(
                account_id=self.account_id,
                contract_id=contract_id,
                statuses=list(OrderStatus),
                page_size=50,
                sort_by="id",
                sort_direction="desc",
            )
            return page.orders
        except ProjectXError:  # `Order/v2/query` is swagger-only: fall back to the window
            return await self.project_x.search_orders(account_id=self.account_id)

    async def _place(
        self,
        instrument: Instrument,
        order_type: OrderType,
        side: OrderSide,
        size: int,
        custom_tag: str | None,
        **prices: Any,
    ) -> PlaceOrderResult:
        if self.pre_place_checks:
            await self._run_checks(
                PlaceRequest(instrument, order_type, side, size, custom_tag, prices)
            )
        return await self.project_x.place_order(
            instrument,
            side=side,
            size=size,
            type=order_type,
            custom_tag=custom_tag,
            account_id=self.account_id,
            **prices,
        )

    async def _run_checks(self, request: PlaceRequest) -> None:
        """Run `pre_place_checks` in order; the first that raises stops the request."""
        for check in tuple(self.pre_place_checks):
            outcome = check(request)
            if inspect.isawaitable(outcome):
                await outcome

    async def _last_price(self, contract_id: str) -> float:
        try:
            return await self.prices.wait(contract_id, self.price_timeout)
        except TimeoutError:
            raise ValidationError(
                f"no live price for {contract_id} within {self.price_timeout:g}s to measure "
                "from; give absolute prices instead"
            ) from None

    async def _entry_estimate(self, contract_id: str, side: OrderSide) -> Decimal:
        await self._last_price(contract_id)
        price = self.prices.entry_estimate(contract_id, side == OrderSide.BUY)
        return parse_price(price, "market price")


def _any(_: Order) -> bool:
    return True
