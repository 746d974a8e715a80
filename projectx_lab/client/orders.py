"""Orders: thin typed methods of the `ProjectX` facade, with mutations that are never retried
blindly (gotcha 18).

Every placement carries a unique `customTag` (generated when the caller gives none). When a
mutation's outcome is ambiguous — timeout, dropped connection, HTTP 5xx, unreadable response,
or a gateway "pending"/"unknown error" code — nothing is re-sent: the client reads the order
back (placement: by tag, newest orders first) until the real outcome shows or
`order_lookup_timeout` passes, then returns it or raises `OrderOutcomeUnknownError`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from .errors import (
    NotFoundError,
    OrderNotFoundError,
    OrderOutcomeUnknownError,
    OrderRejectedError,
    ProjectXError,
    RequestRejectedError,
    ValidationError,
)
from .models import (
    BracketSpec,
    Instrument,
    Order,
    OrderPage,
    OrderSide,
    OrderStatus,
    OrderType,
    PlaceOrderResult,
    as_utc,
    format_timestamp,
)
from .readback import TradingBase, is_ambiguous
from .validation import (
    bracket_arg,
    check_bracket_signs,
    choice_arg,
    enum_arg,
    new_custom_tag,
    on_tick_grid,
    order_type_arg,
    positive_int,
    price_arg,
    side_arg,
    tag_arg,
    wire_number,
)

__all__ = ["OrderMethods", "new_custom_tag"]

log = logging.getLogger("projectx_lab.client")

PLACE = "/api/Order/place"
MODIFY = "/api/Order/modify"
CANCEL = "/api/Order/cancel"
ORDER_SEARCH = "/api/Order/search"
ORDER_OPEN = "/api/Order/searchOpen"
ORDER_BY_ID = "/api/Order/searchById"
ORDER_QUERY = "/api/Order/v2/query"

LOOKUP_PAGE = 100
PLACEABLE = frozenset(OrderType) - {OrderType.UNKNOWN}
# Prices each type needs; every other price is refused. StopLimit (3) is not on the documented
# place page: it is sent as stop + limit, as our simulator and the swagger model allow.
_PRICES_FOR: dict[OrderType, frozenset[str]] = {
    OrderType.LIMIT: frozenset({"limit_price"}),
    OrderType.STOP: frozenset({"stop_price"}),
    OrderType.STOP_LIMIT: frozenset({"limit_price", "stop_price"}),
    OrderType.TRAILING_STOP: frozenset({"trail_price"}),
}


class OrderMethods(TradingBase):
    """Mixin of `ProjectX`: `Order/*` endpoints."""

    # ------------------------------------------------------------------ placement

    async def place_order(
        self,
        contract: str | Instrument,
        *,
        side: OrderSide | int | str,
        size: int,
        type: OrderType | int | str = OrderType.MARKET,
        limit_price: Decimal | float | str | None = None,
        stop_price: Decimal | float | str | None = None,
        trail_price: Decimal | float | str | None = None,
        custom_tag: str | None = None,
        stop_loss: BracketSpec | int | None = None,
        take_profit: BracketSpec | int | None = None,
        account_id: int | None = None,
    ) -> PlaceOrderResult:
        """`Order/place`. `contract` is a contract id, symbol or `Instrument`. Bracket legs are
        signed tick offsets from the fill (buy: stop loss < 0 < take profit). `trail_price` is
        the price *level* where a trailing stop starts. Never retried: an ambiguous outcome is
        resolved by looking the order up by its `custom_tag`. Prices must lie on the contract's
        tick grid (checked against its cached spec before anything is sent)."""
        order_side = side_arg(side)
        order_type = order_type_arg(type)
        if order_type not in PLACEABLE:
            raise ValidationError(f"order type {order_type.name} cannot be placed via the API")
        qty = positive_int(size, "size")
        prices = {
            "limit_price": price_arg(limit_price, "limit_price"),
            "stop_price": price_arg(stop_price, "stop_price"),
            "trail_price": price_arg(trail_price, "trail_price"),
        }
        needed = _PRICES_FOR.get(order_type, frozenset())
        for name, value in prices.items():
            if name in needed and value is None:
                raise ValidationError(f"a {order_type.name} order needs {name}")
            if name not in needed and value is not None:
                raise ValidationError(f"{name} does not apply to a {order_type.name} order")
        sl = bracket_arg(stop_loss, OrderType.STOP, "stop_loss")
        tp = bracket_arg(take_profit, OrderType.LIMIT, "take_profit")
        check_bracket_signs(order_side, sl, tp)
        tag = tag_arg(custom_tag)
        instrument = await self._instrument(contract)
        for name, value in prices.items():
            on_tick_grid(value, instrument.tick_size, name, instrument.id)
        contract_id = instrument.id
        account = await self._account_id(account_id)
        body: dict[str, Any] = {
            "accountId": account,
            "contractId": contract_id,
            "type": int(order_type),
            "side": int(order_side),
            "size": qty,
            "limitPrice": wire_number(prices["limit_price"]),
            "stopPrice": wire_number(prices["stop_price"]),
            "trailPrice": wire_number(prices["trail_price"]),
            "customTag": tag,
            "stopLossBracket": sl.to_wire() if sl else None,
            "takeProfitBracket": tp.to_wire() if tp else None,
        }
        try:
            payload = await self._session.write(PLACE, body)
        except ProjectXError as exc:
            if not is_ambiguous(exc, PLACE):
                raise
            return await self._recover_placement(account, contract_id, tag, exc)
        order_id = payload.get("orderId")
        if not isinstance(order_id, int):
            return await self._recover_placement(account, contract_id, tag, None)
        return PlaceOrderResult(order_id, tag)

    async def _recover_placement(
        self, account: int, contract_id: str, tag: str, cause: BaseException | None
    ) -> PlaceOrderResult:
        reason = type(cause).__name__ if cause else "response without orderId"
        self._session.stats.lookups += 1
        log.warning("placement outcome ambiguous (%s): looking up order by tag %s", reason, tag)

        async def probe() -> Order | None:
            return await self.find_order_by_tag(tag, account_id=account, contract_id=contract_id)

        order = await self._poll(probe)
        if order is None:
            raise OrderOutcomeUnknownError(
                f"placement outcome unknown after {reason}: no order tagged {tag!r} appeared "
                f"within {self.settings.order_lookup_timeout:g}s. It was NOT re-sent; look it "
                "up by this tag before placing again.",
                operation="place",
                custom_tag=tag,
                endpoint=PLACE,
            ) from cause
        if order.status == OrderStatus.REJECTED:
            raise OrderRejectedError(
                f"order {order.id} (tag {tag!r}) was rejected; the reason was lost with the "
                "response",
                order_id=order.id,
                endpoint=PLACE,
            ) from cause
        return PlaceOrderResult(order.id, tag, recovered=True, order=order)

    async def find_order_by_tag(
        self, tag: str, *, account_id: int | None = None, contract_id: str | None = None
    ) -> Order | None:
        """The order carrying `tag`, searching the newest orders first (None if absent).

        Uses `Order/v2/query` sorted by id, newest first (no clock involved); falls back to
        `Order/search` over the last day where v2 is unavailable.
        """
        account = await self._account_id(account_id)
        try:
            page = await self.query_orders(
                account_id=account,
                statuses=list(OrderStatus),  # rejected and suspended rows too
                contract_id=contract_id,
                page_size=LOOKUP_PAGE,
                sort_by="id",
                sort_direction="desc",
            )
            orders = page.orders
        except (RequestRejectedError, NotFoundError):
            orders = await self.search_orders(account_id=account)
        for order in orders:
            if order.custom_tag == tag:
                return order
        return None

    # ------------------------------------------------------------------ modify / cancel

    async def modify_order(
        self,
        order_id: int,
        *,
        size: int | None = None,
        limit_price: Decimal | float | str | None = None,
        stop_price: Decimal | float | str | None = None,
        trail_price: Decimal | float | str | None = None,
        account_id: int | None = None,
    ) -> None:
        """`Order/modify` (absolute prices; `trail_price` is a new level). Never retried: an
        ambiguous outcome is resolved by reading the order back."""
        oid = positive_int(order_id, "order_id")
        qty = positive_int(size, "size") if size is not None else None
        limit = price_arg(limit_price, "limit_price")
        stop = price_arg(stop_price, "stop_price")
        trail = price_arg(trail_price, "trail_price")
        if qty is None and limit is None and stop is None and trail is None:
            raise ValidationError("modify_order needs at least one of size/limit/stop/trail price")
        account = await self._account_id(account_id)
        body: dict[str, Any] = {"accountId": account, "orderId": oid}
        for key, value in (("size", qty), ("limitPrice", limit), ("stopPrice", stop)):
            if value is not None:
                body[key] = wire_number(value)
        if trail is not None:
            body["trailPrice"] = wire_number(trail)
        try:
            await self._session.write(MODIFY, body)
        except ProjectXError as exc:
            if not is_ambiguous(exc, MODIFY):
                raise
            await self._confirm_modify(account, oid, qty, limit, stop, trail, exc)

    async def _confirm_modify(
        self,
        account: int,
        oid: int,
        qty: int | None,
        limit: Decimal | None,
        stop: Decimal | None,
        trail: Decimal | None,
        cause: BaseException,
    ) -> None:
        self._session.stats.lookups += 1

        def applied(order: Order) -> bool:
            return (
                (qty is None or order.size == qty)
                and (limit is None or order.limit_price == limit)
                and (stop is None or order.stop_price == stop)
            )

        last: list[Order] = []

        async def probe() -> Order | None:
            order = await self.get_order(oid, account_id=account)
            last[:] = [order]
            return order if order.is_terminal or (trail is None and applied(order)) else None

        order = await self._poll(probe, patience=trail is None)
        if order is not None and not order.is_terminal:
            return
        if order is not None and trail is None:
            if applied(order):  # it took, and then the order ended (a marketable price filled)
                return
            raise OrderRejectedError(
                f"order {oid} is {_status_name(order)} with its old values; the modify had no "
                "effect",
                order_id=oid,
                endpoint=MODIFY,
            ) from cause
        raise OrderOutcomeUnknownError(
            f"modify of order {oid} unknown after {type(cause).__name__}: the order does not "
            "(yet) show the new values" + (" (a trail level cannot be read back)" if trail else ""),
            operation="modify",
            order_id=oid,
            state=last[0] if last else None,
            endpoint=MODIFY,
        ) from cause

    async def cancel_order(self, order_id: int, *, account_id: int | None = None) -> None:
        """`Order/cancel`. Never retried: an ambiguous outcome is resolved by reading back."""
        oid = positive_int(order_id, "order_id")
        account = await self._account_id(account_id)
        try:
            await self._session.write(CANCEL, {"accountId": account, "orderId": oid})
        except ProjectXError as exc:
            if not is_ambiguous(exc, CANCEL):
                raise
            await self._confirm_cancel(account, oid, exc)

    async def _confirm_cancel(self, account: int, oid: int, cause: BaseException) -> None:
        self._session.stats.lookups += 1
        last: list[Order] = []

        async def probe() -> Order | None:
            order = await self.get_order(oid, account_id=account)
            last[:] = [order]
            return order if order.is_terminal else None

        order = await self._poll(probe)
        if order is not None and order.status == OrderStatus.CANCELLED:
            return
        if order is not None:
            raise OrderRejectedError(
                f"order {oid} is {_status_name(order)}; the cancel had no effect",
                order_id=oid,
                endpoint=CANCEL,
            ) from cause
        raise OrderOutcomeUnknownError(
            f"cancel of order {oid} unknown after {type(cause).__name__}: it is still working",
            operation="cancel",
            order_id=oid,
            state=last[0] if last else None,
            endpoint=CANCEL,
        ) from cause

    # ------------------------------------------------------------------ order reads

    async def search_orders(
        self,
        start_date: datetime | str | None = None,
        end_date: datetime | str | None = None,
        *,
        account_id: int | None = None,
    ) -> list[Order]:
        """`Order/search`: every order created in the window (default: the last 24 hours)."""
        body = await self._window_body(start_date, end_date, account_id)
        payload = await self._session.read(ORDER_SEARCH, body)
        return [Order.from_wire(o) for o in payload.get("orders") or ()]

    async def search_open_orders(self, *, account_id: int | None = None) -> list[Order]:
        """`Order/searchOpen`: open orders (suspended bracket children are not included)."""
        account = await self._account_id(account_id)
        payload = await self._session.read(ORDER_OPEN, {"accountId": account})
        return [Order.from_wire(o) for o in payload.get("orders") or ()]

    async def get_order(self, order_id: int, *, account_id: int | None = None) -> Order:
        """`Order/searchById`; `OrderNotFoundError` when it does not exist."""
        oid = positive_int(order_id, "order_id")
        account = await self._account_id(account_id)
        payload = await self._session.read(ORDER_BY_ID, {"accountId": account, "orderId": oid})
        order = payload.get("order")
        if not isinstance(order, dict):
            raise OrderNotFoundError(f"order {oid} not found", endpoint=ORDER_BY_ID)
        return Order.from_wire(order)

    async def query_orders(
        self,
        *,
        statuses: list[OrderStatus | int] | None = None,
        contract_id: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        page_size: int | None = None,
        page_offset: int | None = None,
        sort_by: str | int | None = None,
        sort_direction: str | int | None = None,
        include_total_count: bool = False,
        account_id: int | None = None,
    ) -> OrderPage:
        """`Order/v2/query`: filtered, paged search (`statuses=[1, 8]` also shows suspended
        bracket children). `sort_by` "created_at"|"id", `sort_direction` "asc"|"desc"."""
        account = await self._account_id(account_id)
        flt: dict[str, Any] = {"accountId": account}
        if statuses is not None:
            flt["statuses"] = [int(enum_arg(OrderStatus, s, "statuses")) for s in statuses]
        if contract_id is not None:
            flt["contractId"] = contract_id
        if created_after is not None:
            flt["createdAfter"] = format_timestamp(as_utc(created_after, "created_after"))
        if created_before is not None:
            flt["createdBefore"] = format_timestamp(as_utc(created_before, "created_before"))
        body: dict[str, Any] = {"filter": flt, "includeTotalCount": bool(include_total_count)}
        if page_size is not None:
            body["pageSize"] = positive_int(page_size, "page_size")
        if page_offset is not None:
            if isinstance(page_offset, bool) or not isinstance(page_offset, int) or page_offset < 0:
                raise ValidationError(f"page_offset must be an integer >= 0, got {page_offset!r}")
            body["pageOffset"] = page_offset
        if sort_by is not None:
            body["sortBy"] = choice_arg(sort_by, {"created_at": 0, "id": 1}, "sort_by")
        if sort_direction is not None:
            body["sortDirection"] = choice_arg(
                sort_direction, {"asc": 0, "desc": 1}, "sort_direction"
            )
        payload = await self._session.read(ORDER_QUERY, body)
        orders = [Order.from_wire(o) for o in payload.get("orders") or ()]
        total = payload.get("totalCount")
        return OrderPage(orders, total if isinstance(total, int) else None)


def _status_name(order: Order) -> str:
    status = order.status
    return status.name.lower() if isinstance(status, OrderStatus) else f"status {status}"
