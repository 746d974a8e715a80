"""Plain-text output of the trading magics: one line per bracket / flatten / cancel, small
tables for positions and orders (no I/O, nothing secret)."""

from __future__ import annotations

from projectx_lab.client.models import Instrument, Order, OrderSide, OrderStatus, Position
from projectx_lab.managers.brackets import BracketOrderResult
from projectx_lab.managers.orders import CancelResult, FlattenResult

from .magic_args import BracketRequest


def bracket_line(
    result: BracketOrderResult, instrument: Instrument, request: BracketRequest
) -> str:
    """`bracket BUY 1 MNQ (CON…): entry 1 · stop 2 (8t) · target 3 (16t)`."""
    side = "BUY" if result.side == OrderSide.BUY else "SELL"
    legs = []
    if request.stop is not None:
        legs.append(f"stop {result.stop_order_id} ({request.stop})")
    if request.target is not None:
        legs.append(f"target {result.target_order_id} ({request.target})")
    return (
        f"bracket {side} {result.size} {instrument.symbol} ({result.contract_id}): "
        f"entry {result.entry_order_id} · " + " · ".join(legs)
    )


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


def or_dash(value: object) -> str:
    """The value as text, an em dash for None."""
    return "—" if value is None else str(value)


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns under a header."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)
