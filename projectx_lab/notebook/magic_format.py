"""Plain-text output of the trading magics: one line per bracket / flatten / cancel, small
tables for positions and orders (no I/O, nothing secret)."""

from __future__ import annotations

from decimal import Decimal

from projectx_lab.client.models import (
    Instrument,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
)
from projectx_lab.managers.brackets import BracketOrderResult
from projectx_lab.managers.orders import CancelResult, FlattenResult
from projectx_lab.managers.pricing import snap_order_price

from .magic_args import BracketRequest


def bracket_line(
    result: BracketOrderResult, instrument: Instrument, request: BracketRequest
) -> str:
    """`bracket BUY 1 MNQ (CON…): entry 1 · stop 2 (8t) · target 3 (16t)`, with the prices as
    sent (snapped to the tick grid, "rounded from" the price asked when that moved it)."""
    side = "BUY" if result.side == OrderSide.BUY else "SELL"
    tick = instrument.tick_size
    parts = [f"entry {result.entry_order_id}"]
    limit = None
    if request.limit is not None:
        limit = snap_order_price(request.limit, tick, OrderType.LIMIT, result.side)
        rounded = "" if limit == request.limit else f" (rounded from {request.limit})"
        parts[0] += f" limit {_on_grid(limit, tick)}{rounded}"
    for name, order_id, leg, ticks in (
        ("stop", result.stop_order_id, request.stop, result.stop_loss_ticks),
        ("target", result.target_order_id, request.target, result.take_profit_ticks),
    ):
        if leg is None or ticks is None:
            continue
        distance = f"{abs(ticks)}t"
        if leg.price is None:
            parts.append(f"{name} {order_id} ({distance})")
        elif limit is not None:  # the gateway sets legs from the fill: here, at the limit
            price = limit + ticks * tick
            rounded = "" if leg.price == price else f", rounded from {leg.price}"
            parts.append(f"{name} {order_id} @ {_on_grid(price, tick)} ({distance}{rounded})")
        else:
            parts.append(f"{name} {order_id} ({distance} from the fill, for {leg.price})")
    return f"bracket {side} {result.size} {instrument.symbol} ({result.contract_id}): " + (
        " · ".join(parts)
    )


def _on_grid(price: Decimal, tick: Decimal) -> str:
    """A price with as many decimals as the tick size has."""
    decimals = max(0, -int(tick.normalize().as_tuple().exponent))
    return f"{price:.{decimals}f}"


def flatten_line(result: FlattenResult, before: Position | None) -> str:
    """What `%flatten` did on one contract."""
    parts = []
    if result.closed:
        was = f" (was {before.signed_size:+d})" if before is not None else ""
        parts.append(f"position closed{was}")
    else:
        parts.append("no position")
    cancelled = result.cancelled.cancelled
    parts.append(f"cancelled {len(cancelled)} order(s)"
                 + (f": {', '.join(map(str, cancelled))}" if cancelled else ""))  # fmt: skip
    if result.cancelled.failed:
        parts.append("FAILED to cancel: " + "; ".join(
            f"{i}: {why}" for i, why in result.cancelled.failed.items()))  # fmt: skip
    return f"flatten {result.contract_id}: " + ", ".join(parts)


def cancel_line(result: CancelResult) -> str:
    """Ids cancelled and those the gateway refused."""
    text = f"cancelled {len(result.cancelled)} order(s)"
    if result.cancelled:
        text += ": " + ", ".join(map(str, result.cancelled))
    if result.failed:
        text += "; FAILED: " + "; ".join(f"{i}: {why}" for i, why in result.failed.items())
    return text


def side_name(side: int) -> str:
    """buy / sell."""
    return "buy" if side == OrderSide.BUY else "sell"


def status_name(order: Order) -> str:
    """An order status in lower case (unknown ints kept)."""
    status = order.status
    return status.name.lower() if isinstance(status, OrderStatus) else f"status {status}"


def type_name(order: Order) -> str:
    """An order type in lower case (unknown ints kept)."""
    kind = order.type
    return kind.name.lower() if hasattr(kind, "name") else f"type {kind}"


def money(value: Decimal | None) -> str:
    """Dollars to the cent with a sign (`+12.50`); zero, however signed, is `0.00`."""
    if value is None:
        return "—"
    cents = round(value, 2)
    return "0.00" if cents == 0 else f"{cents:+.2f}"


def or_dash(value: object) -> str:
    """The value as text, an em dash for None."""
    return "—" if value is None else str(value)


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns under a header."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)
