"""Order, position and half-trade records of the paper broker, and their gateway wire dicts.

Prices are integer ticks inside the records; `ContractInfo` turns them into wire numbers.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from enum import IntEnum
from typing import Any, Protocol

from .wire import iso


class OrderType(IntEnum):
    """Gateway `OrderType` (§3)."""

    UNKNOWN = 0
    LIMIT = 1
    MARKET = 2
    STOP_LIMIT = 3
    STOP = 4
    TRAILING_STOP = 5
    JOIN_BID = 6
    JOIN_ASK = 7


class OrderStatus(IntEnum):
    """Gateway `OrderStatus` (§3)."""

    NONE = 0
    OPEN = 1
    FILLED = 2
    CANCELLED = 3
    EXPIRED = 4
    REJECTED = 5
    PENDING = 6
    PENDING_CANCELLATION = 7
    SUSPENDED = 8


BUY = 0
SELL = 1
TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED,
                      OrderStatus.REJECTED})  # fmt: skip
LIMIT_LIKE = frozenset({OrderType.LIMIT, OrderType.JOIN_BID, OrderType.JOIN_ASK})

# Nullable order keys that hub payloads leave out instead of sending null (gateway-api §2, §6.5).
_HUB_OMIT_IF_NULL = (
    "limitPrice",
    "stopPrice",
    "filledPrice",
    "trailPrice",
    "trailDistance",
    "parentOrderId",
    "linkedOrderId",
)


class ContractSpecView(Protocol):
    """What the broker reads from a contract spec (the catalogue's `ContractSpec` satisfies it)."""

    contract_id: str
    symbol_id: str
    tick_size: Decimal
    tick_value: Decimal
    active: bool

    @property
    def fee_per_side(self) -> Any: ...
    @property
    def commission_per_side(self) -> Any: ...
    def to_price(self, ticks: int) -> float: ...
    def to_ticks(self, price: Any) -> int | None: ...
    def wire(self) -> dict[str, Any]: ...


def _display_name(spec: ContractSpecView) -> str:
    """`contractDisplayName` as live positions show it: exchange symbol + month + 2-digit year."""
    name = str(spec.wire().get("name") or spec.contract_id)
    suffix = spec.contract_id.rsplit(".", 1)[-1]  # e.g. "U26"
    if name.endswith(suffix) or len(suffix) != 3:
        return name
    if name[-2:] == suffix[0] + suffix[-1]:
        return name[:-2] + suffix
    return name


class ContractInfo:
    """Money facts of one contract as Decimals, plus tick → wire-price conversion."""

    __slots__ = (
        "commission",
        "contract_id",
        "display_name",
        "fee",
        "spec",
        "symbol_id",
        "tick_size",
        "tick_value",
        "to_price",
    )

    def __init__(self, spec: ContractSpecView) -> None:
        self.spec = spec
        self.contract_id = spec.contract_id
        self.symbol_id = spec.symbol_id
        self.tick_size = Decimal(str(spec.tick_size))
        self.tick_value = Decimal(str(spec.tick_value))
        self.fee = Decimal(str(spec.fee_per_side))
        self.commission = Decimal(str(spec.commission_per_side))
        self.display_name = _display_name(spec)
        self.to_price = spec.to_price

    def avg_price(self, cost_ticks: int, qty: int) -> float:
        """Wire price of an average `cost_ticks / qty` ticks (exact when it lands on the grid)."""
        whole, rest = divmod(cost_ticks, qty)
        if rest == 0:
            return self.to_price(whole)
        return float(Decimal(cost_ticks) * self.tick_size / qty)

    def offset_price(self, ticks: int) -> float:
        """A signed tick offset in price units (bracket `trailPrice`, trailing distance)."""
        return float(ticks * self.tick_size)


@dataclass(slots=True, eq=False)
class Order:
    """One order as the broker tracks it; `*_ticks` prices are integer ticks."""

    id: int
    account_id: int
    info: ContractInfo
    created_ns: int
    type: int
    side: int
    size: int
    status: int
    custom_tag: str | None = None
    limit_ticks: int | None = None
    stop_ticks: int | None = None
    updated_ns: int = 0
    fill_volume: int = 0
    filled_cost: int = 0  # sum of fill price ticks x quantity
    trail_distance: int | None = None  # wire trailDistance (signed ticks on bracket children)
    parent_id: int | None = None
    linked_id: int | None = None
    # engine state, not on the wire
    active_ns: int = 0  # tape trades before this time do not touch the order
    trail_ticks: int | None = None  # trailing distance in ticks (always >= 0)
    extreme: int | None = None  # favourable extreme a trailing stop follows
    triggered: bool = False  # stop-limit: stop hit, now behaves as a limit
    bracket_ticks: int | None = None  # child: signed offset from the entry fill
    sl_id: int | None = None  # entry: its stop-loss child
    tp_id: int | None = None  # entry: its take-profit child
    oco_id: int | None = None  # child: the sibling it cancels when it fills
    created_iso: str = ""  # wire creationTimestamp, formatted once

    @property
    def contract_id(self) -> str:
        return self.info.contract_id

    @property
    def remaining(self) -> int:
        return self.size - self.fill_volume

    def wire(self, hub: bool = False) -> dict[str, Any]:
        """OrderModel dict; `hub=True` drops null price/link keys like live hub payloads do."""
        info = self.info
        to_price = info.to_price
        trail = self.trail_distance
        created = self.created_iso
        if not created:
            created = self.created_iso = iso(self.created_ns)
        updated = self.updated_ns
        data: dict[str, Any] = {
            "id": self.id,
            "accountId": self.account_id,
            "contractId": info.contract_id,
            "symbolId": info.symbol_id,
            "creationTimestamp": created,
            "updateTimestamp": created if updated in (0, self.created_ns) else iso(updated),
            "status": int(self.status),
            "type": int(self.type),
            "side": self.side,
            "size": self.size,
            "limitPrice": None if self.limit_ticks is None else to_price(self.limit_ticks),
            "stopPrice": None if self.stop_ticks is None else to_price(self.stop_ticks),
            "fillVolume": self.fill_volume,
            "filledPrice": (
                info.avg_price(self.filled_cost, self.fill_volume) if self.fill_volume else None
            ),
            "customTag": self.custom_tag,
            "trailDistance": trail,
            "trailPrice": None if trail is None else info.offset_price(trail),
            "parentOrderId": self.parent_id,
            "linkedOrderId": self.linked_id,
        }
        if hub:
            for key in _HUB_OMIT_IF_NULL:
                if data[key] is None:
                    del data[key]
        return data


@dataclass(slots=True, eq=False)
class Position:
    """Open position of one account in one contract: FIFO lots of (price ticks, quantity)."""

    id: int
    account_id: int
    info: ContractInfo
    created_ns: int
    long: bool
    size: int = 0
    cost: int = 0  # sum of lot price ticks x quantity
    lots: deque[list[int]] = field(default_factory=deque)

    def add(self, qty: int, price: int) -> None:
        """Scale in: one more lot at `price`."""
        self.lots.append([price, qty])
        self.size += qty
        self.cost += price * qty

    def reduce(self, qty: int, price: int) -> int:
        """Close `qty` (<= size) at `price` against the oldest lots; returns P&L in ticks."""
        pnl = 0
        sign = 1 if self.long else -1
        lots = self.lots
        left = qty
        while left:
            lot = lots[0]
            take = lot[1] if lot[1] <= left else left
            pnl += (price - lot[0]) * take * sign
            self.cost -= lot[0] * take
            lot[1] -= take
            left -= take
            if lot[1] == 0:
                lots.popleft()
        self.size -= qty
        return pnl

    def wire(self, flat_average: float = 0.0) -> dict[str, Any]:
        """PositionModel dict; a flat position is `type 0, size 0` with `flat_average`, the
        average it had before it closed."""
        info = self.info
        kind, size, avg = 0, 0, flat_average
        if self.size:
            kind, size, avg = (
                (1 if self.long else 2),
                self.size,
                info.avg_price(self.cost, self.size),
            )
        return {
            "id": self.id,
            "accountId": self.account_id,
            "contractId": info.contract_id,
            "contractDisplayName": info.display_name,
            "creationTimestamp": iso(self.created_ns),
            "type": kind,
            "size": size,
            "averagePrice": avg,
        }


@dataclass(slots=True, eq=False)
class HalfTrade:
    """One fill (half-turn); `pnl` is None on opening fills, gross realized P&L on closing ones."""

    id: int
    account_id: int
    info: ContractInfo
    ts_ns: int
    price: int
    pnl: Decimal | None
    fees: Decimal
    commissions: Decimal
    side: int
    size: int
    order_id: int
    voided: bool = False

    def wire(self) -> dict[str, Any]:
        """HalfTradeModel dict."""
        return {
            "id": self.id,
            "accountId": self.account_id,
            "contractId": self.info.contract_id,
            "creationTimestamp": iso(self.ts_ns),
            "price": self.info.to_price(self.price),
            "profitAndLoss": None if self.pnl is None else float(self.pnl),
            "fees": float(self.fees),
            "commissions": float(self.commissions),
            "side": self.side,
            "size": self.size,
            "voided": self.voided,
            "orderId": self.order_id,
        }


class IdSource:
    """Monotonic id counters in the ranges live ids fall in (orders int64, positions int32)."""

    __slots__ = ("order", "position", "trade")

    def __init__(
        self, order: int = 3_500_000_001, trade: int = 1_800_000_001, position: int = 830_000_001
    ) -> None:
        self.order = order
        self.trade = trade
        self.position = position

    def orders(self, count: int) -> int:
        """Reserve `count` consecutive order ids; returns the first."""
        first = self.order
        self.order += count
        return first

    def next_trade(self) -> int:
        self.trade += 1
        return self.trade - 1

    def next_position(self) -> int:
        self.position += 1
        return self.position - 1
