"""Bracket legs in the gateway's terms (gotcha 12) and the result naming all three orders.

The gateway wants each leg as a *signed* tick offset from the entry's fill price: for a buy the
stop-loss is negative and the take-profit positive, for a sell the reverse. Users give either a
distance in ticks (`stop_loss_ticks=8`, always positive) or an absolute price; prices are
converted against a reference entry price (the limit price, or the current market for a market
entry; the gateway then anchors the legs at the actual fill). Everything is validated here, before
anything is sent: wrong side of the entry, a stop closer than the minimum, missing legs.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from projectx_lab.client.errors import ValidationError
from projectx_lab.client.models import BracketSpec, Order, OrderSide, OrderType

from .pricing import CEIL, FLOOR, parse_price, parse_ticks, to_ticks

STOP_LEG_TYPES = {"stop": OrderType.STOP, "trailing": OrderType.TRAILING_STOP}


@dataclass(frozen=True, slots=True)
class BracketLegs:
    """Validated legs: signed tick offsets as the gateway wants them (None = no such leg)."""

    stop_loss: BracketSpec | None
    take_profit: BracketSpec | None


def _leg_ticks(
    name: str,
    ticks: Any,
    price: Any,
    side: OrderSide,
    reference: Decimal | None,
    tick_size: Decimal,
    below_for_buy: bool,
) -> int | None:
    """Unsigned distance of one leg in ticks from either `ticks` or an absolute `price`."""
    if ticks is not None and price is not None:
        raise ValidationError(f"give {name}_ticks or {name} (a price), not both")
    if ticks is not None:
        return parse_ticks(ticks, f"{name}_ticks")
    if price is None:
        return None
    level = parse_price(price, name)
    if reference is None:
        raise ValidationError(
            f"{name} is a price but there is no entry price to measure it from; "
            f"give {name}_ticks instead or an entry_price"
        )
    buy = side == OrderSide.BUY
    below = below_for_buy if buy else not below_for_buy
    # Snap a leg away from the entry (more room, never a tighter stop or a nearer target).
    level_ticks = to_ticks(level, tick_size, FLOOR if below else CEIL)
    ref_ticks = to_ticks(reference, tick_size, CEIL if below else FLOOR)
    distance = ref_ticks - level_ticks if below else level_ticks - ref_ticks
    if distance <= 0:
        where = "below" if below else "above"
        direction = "buy" if buy else "sell"
        raise ValidationError(
            f"{name} {price} is on the wrong side of the entry: for a {direction} it must be "
            f"{where} the entry price {reference}"
        )
    return distance


def build_legs(
    side: OrderSide,
    tick_size: Decimal,
    reference: Decimal | None,
    *,
    stop_loss_ticks: Any = None,
    take_profit_ticks: Any = None,
    stop_loss: Any = None,
    take_profit: Any = None,
    stop_type: str = "stop",
    min_stop_ticks: int = 4,
) -> BracketLegs:
    """Check the legs of a bracket and sign them for the gateway (§4.3 "Brackets")."""
    leg_type = STOP_LEG_TYPES.get(stop_type)
    if leg_type is None:
        raise ValidationError(f"stop_type must be 'stop' or 'trailing', got {stop_type!r}")
    sl = _leg_ticks("stop_loss", stop_loss_ticks, stop_loss, side, reference, tick_size, True)
    tp = _leg_ticks("take_profit", take_profit_ticks, take_profit, side, reference, tick_size,
                    False)  # fmt: skip
    if sl is None and tp is None:
        raise ValidationError(
            "a bracket needs a stop loss or a take profit: give stop_loss_ticks / stop_loss "
            "and/or take_profit_ticks / take_profit"
        )
    if sl is not None and sl < min_stop_ticks:
        raise ValidationError(
            f"the stop loss is {sl} tick(s) from the entry; the gateway requires at least "
            f"{min_stop_ticks} ticks"
        )
    sign = 1 if side == OrderSide.BUY else -1
    return BracketLegs(
        None if sl is None else BracketSpec(-sign * sl, leg_type),
        None if tp is None else BracketSpec(sign * tp, OrderType.LIMIT),
    )


@dataclass(frozen=True, slots=True)
class BracketOrderResult:
    """The three orders of a bracket: ids, tags and the latest known state of each."""

    entry_order_id: int
    stop_order_id: int | None
    target_order_id: int | None
    entry_tag: str
    stop_tag: str | None
    target_tag: str | None
    contract_id: str
    side: OrderSide
    size: int
    stop_loss_ticks: int | None  # signed, as sent
    take_profit_ticks: int | None
    entry: Order | None = None
    stop: Order | None = None
    target: Order | None = None

    @property
    def order_ids(self) -> tuple[int, ...]:
        """Entry, stop and target ids (the legs the bracket has)."""
        ids = (self.entry_order_id, self.stop_order_id, self.target_order_id)
        return tuple(i for i in ids if i is not None)

    def _repr_html_(self) -> str:
        from projectx_lab.notebook.reprs import bracket_html

        return bracket_html(self)

    def __repr__(self) -> str:
        side = "BUY" if self.side == OrderSide.BUY else "SELL"
        return (
            f"BracketOrderResult({side} {self.size} {self.contract_id}, "
            f"entry={self.entry_order_id}, stop={self.stop_order_id} "
            f"({self.stop_loss_ticks} ticks), target={self.target_order_id} "
            f"({self.take_profit_ticks} ticks), tag={self.entry_tag!r})"
        )
