"""Order inputs checked and put on the contract's tick grid before anything is sent (gotcha 16).

Snapping is direction-aware and always moves a price to the *less aggressive* side, never
through it:

| order                        | rounding | why                                          |
|------------------------------|----------|----------------------------------------------|
| buy limit (and buy JoinBid)  | floor    | never pay more than asked                    |
| sell limit                   | ceil     | never sell for less than asked               |
| buy stop / buy trailing stop | ceil     | a stop above the market triggers no earlier  |
| sell stop / sell trailing    | floor    | a stop below the market triggers no earlier  |
| stop-limit                   | its stop price as a stop, its limit price as a limit    |

A price already on the grid (within 1e-9 of a tick, so float noise like 0.30000000000000004
counts as 0.3) is kept as is. Prices are `Decimal` multiples of the tick size.
"""

from __future__ import annotations

import numbers
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from projectx_lab.client.errors import ValidationError
from projectx_lab.client.models import OrderSide, OrderType

_ON_GRID = Decimal("1e-9")  # fraction of a tick treated as float noise
_SIDE_NAMES = {"buy": OrderSide.BUY, "sell": OrderSide.SELL, "bid": OrderSide.BUY,
               "ask": OrderSide.SELL}  # fmt: skip
FLOOR = ROUND_FLOOR
CEIL = ROUND_CEILING


def parse_side(side: Any) -> OrderSide:
    """`"buy"`/`"sell"` (any case), 0/1 or an `OrderSide` → `OrderSide`; anything else raises."""
    if isinstance(side, str):
        found = _SIDE_NAMES.get(side.strip().lower())
        if found is not None:
            return found
    elif isinstance(side, numbers.Integral) and not isinstance(side, bool) and side in (0, 1):
        return OrderSide(int(side))
    raise ValidationError(f"side must be 'buy', 'sell', 0 (buy) or 1 (sell), got {side!r}")


def parse_size(size: Any, what: str = "size") -> int:
    """A positive whole number of contracts, or a `ValidationError`."""
    if isinstance(size, numbers.Integral) and not isinstance(size, bool) and size > 0:
        return int(size)
    raise ValidationError(f"{what} must be a positive whole number of contracts, got {size!r}")


def parse_ticks(ticks: Any, what: str) -> int:
    """A positive whole number of ticks (a distance; the sign is set from the side)."""
    if isinstance(ticks, numbers.Integral) and not isinstance(ticks, bool) and ticks > 0:
        return int(ticks)
    raise ValidationError(
        f"{what} must be a positive whole number of ticks (a distance; the sign is set from "
        f"the order side), got {ticks!r}"
    )


def parse_price(value: Any, what: str = "price") -> Decimal:
    """A finite, positive number as `Decimal` (floats via their shortest repr)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real | Decimal):
        raise ValidationError(f"{what} must be a number, got {type(value).__name__} {value!r}")
    try:
        price = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    except (InvalidOperation, ValueError, OverflowError):
        raise ValidationError(f"{what} must be a finite number, got {value!r}") from None
    if not price.is_finite():
        raise ValidationError(f"{what} must be a finite number, got {value!r}")
    if price <= 0:
        raise ValidationError(f"{what} must be greater than zero, got {value!r}")
    return price


def _tick(tick_size: Decimal | float) -> Decimal:
    tick = tick_size if isinstance(tick_size, Decimal) else Decimal(repr(float(tick_size)))
    if not tick.is_finite() or tick <= 0:
        raise ValidationError(f"the contract's tick size is unusable: {tick_size!r}")
    return tick


def to_ticks(price: Decimal, tick_size: Decimal | float, rounding: str) -> int:
    """Index of `price` on the grid of `tick_size`, rounded with FLOOR or CEIL when off grid."""
    units = price / _tick(tick_size)
    nearest = units.to_integral_value()
    if abs(units - nearest) <= _ON_GRID:
        return int(nearest)
    return int(units.to_integral_value(rounding=rounding))


def from_ticks(ticks: int, tick_size: Decimal | float) -> Decimal:
    """Price of tick index `ticks` (exact, normalised: `21450.25`, not `21450.2500`)."""
    price = ticks * _tick(tick_size)
    return Decimal(int(price)) if price == price.to_integral_value() else price.normalize()


def rounding_for(order_type: int, side: int, field: str = "") -> str:
    """Direction of the snap for an order's price `field` (see the module table): FLOOR or
    CEIL."""
    buy = side == OrderSide.BUY
    stop_like = order_type in (OrderType.STOP, OrderType.TRAILING_STOP) or (
        order_type == OrderType.STOP_LIMIT and field != "limit_price"
    )
    if stop_like:
        return CEIL if buy else FLOOR
    return FLOOR if buy else CEIL


def snap_price(
    value: Any, tick_size: Decimal | float, rounding: str, what: str = "price"
) -> Decimal:
    """Validate `value` and put it on the tick grid in the given direction."""
    price = parse_price(value, what)
    ticks = to_ticks(price, tick_size, rounding)
    if ticks <= 0:
        raise ValidationError(f"{what} {value!r} is below one tick ({tick_size}) of the contract")
    return from_ticks(ticks, tick_size)


def snap_order_price(
    value: Any, tick_size: Decimal | float, order_type: int, side: int, what: str = "price"
) -> Decimal:
    """Validate and snap an order's limit/stop/trail price the direction-aware way (`what`
    names the field: a stop-limit's `limit_price` snaps like a limit)."""
    return snap_price(value, tick_size, rounding_for(order_type, side, what), what)
