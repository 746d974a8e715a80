"""Argument checks for the trading methods: bad input becomes a `ValidationError` naming the
argument before anything is sent; accepted values come back in wire form."""

from __future__ import annotations

import math
import secrets
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import ValidationError
from .models import BracketSpec, OrderSide, OrderType, to_decimal

TAG_PREFIX = "pxl-"
_ON_GRID = Decimal("1e-9")  # fraction of a tick treated as float noise
MAX_TAG_LENGTH = 100


def new_custom_tag() -> str:
    """A fresh, practically unique order tag (`pxl-` + 96 random bits)."""
    return TAG_PREFIX + secrets.token_hex(12)


def enum_arg(enum: type[Any], value: Any, name: str) -> Any:
    if isinstance(value, str):
        key = value.strip().upper().replace(" ", "_")
        if key in enum.__members__:
            return enum[key]
    elif isinstance(value, int) and not isinstance(value, bool):
        try:
            return enum(value)
        except ValueError:
            pass
    names = ", ".join(m.lower() for m in enum.__members__)
    raise ValidationError(f"{name} must be one of {names} (or its integer); got {value!r}")


def side_arg(value: Any) -> OrderSide:
    aliases = {
        "bid": OrderSide.BUY,
        "long": OrderSide.BUY,
        "ask": OrderSide.SELL,
        "short": OrderSide.SELL,
    }
    if isinstance(value, str) and value.strip().lower() in aliases:
        return aliases[value.strip().lower()]
    return enum_arg(OrderSide, value, "side")


def order_type_arg(value: Any) -> OrderType:
    return enum_arg(OrderType, value, "type")


def positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def price_arg(value: Any, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        price = to_decimal(value) if not isinstance(value, bool) else None
    except (TypeError, InvalidOperation, ValueError):
        price = None
    if price is None or not price.is_finite() or price <= 0:
        raise ValidationError(f"{name} must be a positive finite number, got {value!r}")
    return price


def on_tick_grid(price: Decimal | None, tick_size: Decimal, name: str, contract: str) -> None:
    """Refuse a price that is not a multiple of the contract's tick (the gateway rejects it,
    gotcha 16), naming the two nearest valid prices."""
    if price is None or not tick_size or tick_size <= 0:
        return
    units = price / tick_size
    nearest = units.to_integral_value()
    if abs(units - nearest) <= _ON_GRID:
        return
    below = (units // 1) * tick_size
    raise ValidationError(
        f"{name} {price} is not on {contract}'s tick grid ({tick_size}); use "
        f"{below.normalize():f} or {(below + tick_size).normalize():f}"
    )


def wire_number(value: Decimal | int | None) -> float | int | None:
    """Numbers go on the wire as JSON numbers (a Decimal's exact shortest float)."""
    if value is None or isinstance(value, int):
        return value
    number = float(value)
    return int(number) if number.is_integer() and math.isfinite(number) else number


def bracket_arg(value: Any, default_type: OrderType, name: str) -> BracketSpec | None:
    if value is None:
        return None
    if isinstance(value, BracketSpec):
        spec = value
    elif isinstance(value, int) and not isinstance(value, bool):
        spec = BracketSpec(value, default_type)
    else:
        raise ValidationError(f"{name} must be a BracketSpec or signed ticks (int), got {value!r}")
    if isinstance(spec.ticks, bool) or not isinstance(spec.ticks, int) or spec.ticks == 0:
        raise ValidationError(f"{name} ticks must be a non-zero integer, got {spec.ticks!r}")
    order_type_arg(int(spec.type))
    return spec


def check_bracket_signs(side: OrderSide, sl: BracketSpec | None, tp: BracketSpec | None) -> None:
    """Ticks are signed offsets from the fill: a long's stop is below (< 0), target above."""
    sign = 1 if side == OrderSide.BUY else -1
    if sl is not None and sl.ticks * sign > 0:
        raise ValidationError(
            f"stop_loss ticks {sl.ticks} on the wrong side: a {side.name.lower()} entry needs "
            f"{'negative' if sign > 0 else 'positive'} stop-loss ticks"
        )
    if tp is not None and tp.ticks * sign < 0:
        raise ValidationError(
            f"take_profit ticks {tp.ticks} on the wrong side: a {side.name.lower()} entry needs "
            f"{'positive' if sign > 0 else 'negative'} take-profit ticks"
        )


def tag_arg(value: str | None) -> str:
    if value is None:
        return new_custom_tag()
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise ValidationError(
            f"custom_tag must be a non-empty string without edge spaces, got {value!r}"
        )
    if len(value) > MAX_TAG_LENGTH:
        raise ValidationError(f"custom_tag longer than {MAX_TAG_LENGTH} characters")
    return value


def choice_arg(value: str | int, table: dict[str, int], name: str) -> int:
    if isinstance(value, str) and value.strip().lower() in table:
        return table[value.strip().lower()]
    if isinstance(value, int) and not isinstance(value, bool) and value in table.values():
        return value
    raise ValidationError(f"{name} must be one of {', '.join(table)}; got {value!r}")
