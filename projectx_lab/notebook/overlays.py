"""Price levels of the user's trading on one contract: working orders and the open position's
entry, stop and target, kept current from the order and position managers' events.

A working order sits at its limit price (limit, join) or stop price (stop, stop-limit, trailing
stop once the gateway reports its level). When a position is open, or the order is a bracket
leg, a stop-type order closing it is its *stop* and a limit order its *target*.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from projectx_lab.client.models import Order, OrderSide, OrderStatus, OrderType, Position

from .reprs import type_code

log = logging.getLogger("projectx_lab.notebook")
_STOP_TYPES = (OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP)


def order_price(order: Order) -> float | None:
    """The price level a working order rests at, None for market orders (no level)."""
    if order.type in _STOP_TYPES:
        price = order.stop_price
    else:
        price = order.limit_price
    return None if price is None else float(price)


@dataclass(frozen=True, slots=True)
class Level:
    """One horizontal level: `role` is "entry", "stop", "target" or "order"."""

    price: float
    role: str
    label: str
    side: int  # 0 buy, 1 sell (entry: 0 long, 1 short)
    order_id: int | None = None
    pending: bool = False  # a bracket leg waiting for its entry to fill

    @property
    def key(self) -> str:
        return f"{self.role}:{self.order_id if self.order_id is not None else 'position'}"


def _role(order: Order, position: Position | None) -> str:
    closes = (
        position is not None
        and position.signed_size != 0
        and ((order.side == OrderSide.SELL) == (position.signed_size > 0))
    )
    if not (closes or order.parent_order_id is not None):
        return "order"
    return "stop" if order.type in _STOP_TYPES else "target"


def levels_for(
    contract_id: str, orders: list[Order], position: Position | None
) -> tuple[Level, ...]:
    """Levels for a position (entry) and working orders on `contract_id`, highest price first."""
    out: list[Level] = []
    if position is not None and position.size and position.average_price is not None:
        long = position.signed_size > 0
        label = f"{'LONG' if long else 'SHORT'} {position.size} @ {position.average_price}"
        out.append(Level(float(position.average_price), "entry", label, 0 if long else 1))
    for order in orders:
        price = order_price(order)
        if order.contract_id != contract_id or price is None:
            continue
        role = _role(order, position)
        side = "BUY" if order.side == OrderSide.BUY else "SELL"
        head = role.upper() if role != "order" else side
        tail = f"{side} " if role != "order" else ""
        label = f"{head} {tail}{order.size} {type_code(order.type)} {price:.12g} #{order.id}"
        pending = order.status == OrderStatus.SUSPENDED
        out.append(Level(price, role, label, int(order.side), order.id, pending))
    out.sort(key=lambda lv: (-lv.price, lv.key))
    return tuple(out)


class TradeLevels:
    """Live `levels` for one contract from an order manager and/or a position manager;
    `on_change()` runs (on the loop) whenever they may have changed."""

    def __init__(
        self,
        contract_id: str,
        on_change: Callable[[], None],
        *,
        orders: Any = None,
        positions: Any = None,
    ) -> None:
        self.contract_id = contract_id
        self.orders = orders
        self.positions = positions
        self._on_change = on_change
        self.position: Position | None = None
        self._load: asyncio.Task[None] | None = None
        if orders is not None:
            orders.on_order_update += self._order_changed
        if positions is not None:
            positions.on_position_update += self._position_changed
            self._load = asyncio.get_running_loop().create_task(
                self._load_position(), name="chart-position-load"
            )

    def levels(self) -> tuple[Level, ...]:
        working = self.orders.working_orders(self.contract_id) if self.orders is not None else []
        return levels_for(self.contract_id, working, self.position)

    def _order_changed(self, order: Order, previous: Order | None) -> None:
        if order.contract_id == self.contract_id:
            self._on_change()

    def _position_changed(self, position: Position, previous: Position | None) -> None:
        if position.contract_id == self.contract_id:
            self.position = position if position.size else None
            self._on_change()

    async def _load_position(self) -> None:
        try:
            position = await self.positions.get_position(self.contract_id)
        except Exception as exc:
            log.warning("chart: could not read the position on %s: %s", self.contract_id, exc)
            return
        self.position = position if position is not None and position.size else None
        self._on_change()

    def close(self) -> None:
        if self.orders is not None:
            self.orders.on_order_update -= self._order_changed
        if self.positions is not None:
            self.positions.on_position_update -= self._position_changed
        if self._load is not None:
            self._load.cancel()


def split_sources(overlays: Any) -> tuple[Any, Any]:
    """(order manager, position manager) from a TradingSuite, a manager, or a list of them."""
    if overlays is None:
        return None, None
    if hasattr(overlays, "orders") and hasattr(overlays, "positions"):
        return overlays.orders, overlays.positions
    items = overlays if isinstance(overlays, list | tuple) else [overlays]
    orders = positions = None
    for item in items:
        if hasattr(item, "on_order_update") and hasattr(item, "working_orders"):
            orders = item
        elif hasattr(item, "on_position_update") and hasattr(item, "get_position"):
            positions = item
        else:
            raise TypeError(
                f"overlays takes a TradingSuite, an OrderManager and/or a PositionManager; "
                f"got {type(item).__name__}"
            )
    return orders, positions
