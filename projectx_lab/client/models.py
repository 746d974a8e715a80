"""Typed models of every gateway payload, built by hand-written `from_wire` constructors.

Choices (gateway-api.md §2, gotchas 3, 7, 27):
* Prices and money are `Decimal` (exact: tick grids like 0.1 or 0.00005 and fees add up
  without float error); bars are returned as polars DataFrames with Float64 columns instead.
* Timestamps are tz-aware UTC `datetime`s; offset, `Z` and naive (= UTC) forms and 6–7
  fractional digits are all accepted.
* Unknown extra keys are ignored; absent nullable keys become None; enum values the tables do
  not know stay plain ints instead of failing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from enum import IntEnum
from typing import Any, Self, TypeVar

from .errors import ValidationError


class OrderType(IntEnum):
    """`type` of an order."""

    UNKNOWN = 0
    LIMIT = 1
    MARKET = 2
    STOP_LIMIT = 3
    STOP = 4
    TRAILING_STOP = 5
    JOIN_BID = 6
    JOIN_ASK = 7


class OrderSide(IntEnum):
    """0 = bid (buy), 1 = ask (sell)."""

    BUY = 0
    SELL = 1


class OrderStatus(IntEnum):
    """Order status; 2–5 are terminal."""

    NONE = 0
    OPEN = 1
    FILLED = 2
    CANCELLED = 3
    EXPIRED = 4
    REJECTED = 5
    PENDING = 6
    PENDING_CANCELLATION = 7
    SUSPENDED = 8


class PositionType(IntEnum):
    """Direction of a position (its `size` is always positive)."""

    UNDEFINED = 0
    LONG = 1
    SHORT = 2


class TradeLogType(IntEnum):
    """Aggressor side of a market trade."""

    BUY = 0
    SELL = 1


class DomType(IntEnum):
    """Kind of a market-depth update."""

    UNKNOWN = 0
    ASK = 1
    BID = 2
    BEST_ASK = 3
    BEST_BID = 4
    TRADE = 5
    RESET = 6
    LOW = 7
    HIGH = 8
    NEW_BEST_BID = 9
    NEW_BEST_ASK = 10
    FILL = 11


class BarUnit(IntEnum):
    """`unit` of `History/retrieveBars`."""

    SECOND = 1
    MINUTE = 2
    HOUR = 3
    DAY = 4
    WEEK = 5
    MONTH = 6


TERMINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REJECTED}
)

E = TypeVar("E", bound=IntEnum)
_ENUM_TABLES: dict[type, dict[int, Any]] = {}


def _enum(cls: type[E], value: Any) -> E | int:
    table = _ENUM_TABLES.get(cls)
    if table is None:
        table = _ENUM_TABLES[cls] = {m.value: m for m in cls}
    return table.get(value, value)


def to_decimal(value: Any) -> Decimal | None:
    """Decimal from a wire number (float via its shortest repr, so 0.1 stays 0.1); None passes."""
    if value is None:
        return None
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, int | str):
        return Decimal(value)
    if isinstance(value, Decimal):
        return value
    raise TypeError(f"not a number: {value!r}")


def parse_timestamp(value: Any) -> datetime | None:
    """UTC datetime from the gateway's ISO-8601 variants (offset, `Z`, naive = UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    if dt.utcoffset():
        return dt.astimezone(UTC)
    return dt if dt.tzinfo is UTC else dt.replace(tzinfo=UTC)


def as_utc(value: Any, name: str) -> datetime:
    """A caller-supplied time (datetime or ISO string; naive = UTC) as aware UTC, else a
    `ValidationError` naming the argument."""
    try:
        parsed = parse_timestamp(value)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None:
        raise ValidationError(f"{name} must be a datetime or an ISO-8601 string, got {value!r}")
    return parsed


def format_timestamp(value: datetime) -> str:
    """Wire form of a timestamp we send: UTC with `Z` (naive input is taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Model:
    """Shared helpers: `to_dict` for display and tests; compact and HTML reprs (rendered by
    `projectx_lab.notebook.reprs`, imported only when something is shown)."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def __repr__(self) -> str:  # used by the models declared with repr=False
        from projectx_lab.notebook.reprs import model_text

        return model_text(self)

    def _repr_html_(self) -> str:
        from projectx_lab.notebook.reprs import model_html

        return model_html(self)


@dataclass(frozen=True, slots=True, repr=False)
class Account(_Model):
    """A trading account (`TradingAccountModel`)."""

    id: int
    name: str
    balance: Decimal | None
    can_trade: bool
    is_visible: bool
    simulated: bool

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Self:
        return cls(
            d["id"],
            d.get("name") or "",
            to_decimal(d.get("balance")),
            bool(d.get("canTrade")),
            bool(d.get("isVisible", True)),
            bool(d.get("simulated")),
        )


_MONTH_SUFFIX = re.compile(r"^(?P<symbol>.+?)[FGHJKMNQUVXZ]\d{1,2}$")


@dataclass(frozen=True, slots=True, repr=False)
class Instrument(_Model):
    """A futures contract (`ContractModel`). `symbol` is the exchange symbol (`MNQ`, `ES`)."""

    id: str
    name: str
    description: str
    tick_size: Decimal
    tick_value: Decimal
    active_contract: bool
    symbol_id: str | None

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Self:
        return cls(
            d["id"],
            d.get("name") or "",
            d.get("description") or "",
            to_decimal(d.get("tickSize")) or Decimal(0),
            to_decimal(d.get("tickValue")) or Decimal(0),
            bool(d.get("activeContract")),
            d.get("symbolId"),
        )

    @property
    def symbol(self) -> str:
        """Exchange symbol: the name without month code and year (`MNQU6` → `MNQ`)."""
        match = _MONTH_SUFFIX.match(self.name)
        return match["symbol"] if match else self.name

    @property
    def root(self) -> str:
        """Gateway product root from `symbolId` (`F.US.EP` → `EP`); may differ from `symbol`."""
        if self.symbol_id:
            return self.symbol_id.rsplit(".", 1)[-1]
        parts = self.id.split(".")
        return parts[-2] if len(parts) >= 2 else self.id

    @property
    def point_value(self) -> Decimal:
        """Dollars per full point per contract."""
        return self.tick_value / self.tick_size if self.tick_size else Decimal(0)


Contract = Instrument


@dataclass(frozen=True, slots=True)
class Bar(_Model):
    """One aggregate bar (`t` is the bar's open time)."""

    timestamp: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Self:
        return cls(
            parse_timestamp(d["t"]),  # type: ignore[arg-type]
            to_decimal(d["o"]),  # type: ignore[arg-type]
            to_decimal(d["h"]),  # type: ignore[arg-type]
            to_decimal(d["l"]),  # type: ignore[arg-type]
            to_decimal(d["c"]),  # type: ignore[arg-type]
            int(d.get("v") or 0),
        )


@dataclass(frozen=True, slots=True, repr=False)
class Order(_Model):
    """An order (`OrderModel`, REST and `GatewayUserOrder`)."""

    id: int
    account_id: int
    contract_id: str
    symbol_id: str | None
    creation_timestamp: datetime | None
    update_timestamp: datetime | None
    status: OrderStatus | int
    type: OrderType | int
    side: OrderSide | int
    size: int
    limit_price: Decimal | None
    stop_price: Decimal | None
    fill_volume: int
    filled_price: Decimal | None
    custom_tag: str | None
    trail_distance: int | None
    trail_price: Decimal | None  # read back as a distance in price units, not a level
    parent_order_id: int | None
    linked_order_id: int | None

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Self:
        g = d.get
        return cls(
            d["id"],
            g("accountId"),
            g("contractId") or "",
            g("symbolId"),
            parse_timestamp(g("creationTimestamp")),
            parse_timestamp(g("updateTimestamp")),
            _enum(OrderStatus, g("status", 0)),
            _enum(OrderType, g("type", 0)),
            _enum(OrderSide, g("side", 0)),
            g("size") or 0,
            to_decimal(g("limitPrice")),
            to_decimal(g("stopPrice")),
            g("fillVolume") or 0,
            to_decimal(g("filledPrice")),
            g("customTag"),
            g("trailDistance"),
            to_decimal(g("trailPrice")),
            g("parentOrderId"),
            g("linkedOrderId"),
        )

    @property
    def is_terminal(self) -> bool:
        """Filled, cancelled, expired or rejected: nothing more will happen to it."""
        return self.status in TERMINAL_STATUSES

    @property
    def is_working(self) -> bool:
        """Open, pending or suspended (a bracket child waiting for its entry)."""
        return self.status in (OrderStatus.OPEN, OrderStatus.PENDING, OrderStatus.SUSPENDED)


@dataclass(frozen=True, slots=True, repr=False)
class Position(_Model):
    """An open position (`PositionModel`); `size` is a magnitude, `type` the direction."""

    id: int
    account_id: int
    contract_id: str
    contract_display_name: str | None
    creation_timestamp: datetime | None
    type: PositionType | int
    size: int
    average_price: Decimal | None

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Self:
        g = d.get
        return cls(
            d["id"],
            g("accountId"),
            g("contractId") or "",
            g("contractDisplayName"),
            parse_timestamp(g("creationTimestamp")),
            _enum(PositionType, g("type", 0)),
            g("size") or 0,
            to_decimal(g("averagePrice")),
        )

    @property
    def signed_size(self) -> int:
        """Size with a sign: positive long, negative short, 0 flat."""
        if self.type == PositionType.SHORT:
            return -self.size
        return self.size if self.type == PositionType.LONG else 0


@dataclass(frozen=True, slots=True, repr=False)
class Trade(_Model):
    """One fill of the account (`HalfTradeModel`); `profit_and_loss` is None on opening fills."""

    id: int
    account_id: int
    contract_id: str
    creation_timestamp: datetime | None
    price: Decimal | None
    profit_and_loss: Decimal | None
    fees: Decimal | None
    commissions: Decimal | None
    side: OrderSide | int
    size: int
    voided: bool
    order_id: int | None

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Self:
        g = d.get
        return cls(
            d["id"],
            g("accountId"),
            g("contractId") or "",
            parse_timestamp(g("creationTimestamp")),
            to_decimal(g("price")),
            to_decimal(g("profitAndLoss")),
            to_decimal(g("fees")),
            to_decimal(g("commissions")),
            _enum(OrderSide, g("side", 0)),
            g("size") or 0,
            bool(g("voided")),
            g("orderId"),
        )


_QUOTE_KEYS = (
    ("symbol", "symbol", None),
    ("symbol_name", "symbolName", None),
    ("last_price", "lastPrice", to_decimal),
    ("best_bid", "bestBid", to_decimal),
    ("best_ask", "bestAsk", to_decimal),
    ("change", "change", to_decimal),
    ("change_percent", "changePercent", to_decimal),
    ("open", "open", to_decimal),
    ("high", "high", to_decimal),
    ("low", "low", to_decimal),
    ("volume", "volume", None),
    ("last_updated", "lastUpdated", parse_timestamp),
    ("timestamp", "timestamp", parse_timestamp),
)


@dataclass(frozen=True, slots=True)
class Quote(_Model):
    """A (possibly partial) `GatewayQuote`: None means "not in this update", not zero."""

    symbol: str | None = None
    symbol_name: str | None = None
    last_price: Decimal | None = None
    best_bid: Decimal | None = None
    best_ask: Decimal | None = None
    change: Decimal | None = None
    change_percent: Decimal | None = None
    open: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    volume: int | None = None  # session total, not trade size
    last_updated: datetime | None = None
    timestamp: datetime | None = None

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Self:
        kw = {}
        for attr, key, conv in _QUOTE_KEYS:
            value = d.get(key)
            if value is not None:
                kw[attr] = conv(value) if conv else value
        return cls(**kw)

    def merged(self, update: Quote) -> Quote:
        """This quote with every field present in `update` overwritten."""
        kw = {a: getattr(update, a) for a, _, _ in _QUOTE_KEYS if getattr(update, a) is not None}
        return Quote(**{**self.to_dict(), **kw}) if kw else self


@dataclass(frozen=True, slots=True)
class MarketTrade(_Model):
    """One print of the market tape (`GatewayTrade` item)."""

    symbol_id: str | None
    price: Decimal | None
    timestamp: datetime | None
    type: TradeLogType | int
    volume: int

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Self:
        return cls(
            d.get("symbolId"),
            to_decimal(d.get("price")),
            parse_timestamp(d.get("timestamp")),
            _enum(TradeLogType, d.get("type", 0)),
            d.get("volume") or 0,
        )


@dataclass(frozen=True, slots=True)
class DepthUpdate(_Model):
    """One market-depth record (`GatewayDepth` item)."""

    timestamp: datetime | None
    type: DomType | int
    price: Decimal | None
    volume: int
    current_volume: int

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Self:
        return cls(
            parse_timestamp(d.get("timestamp")),
            _enum(DomType, d.get("type", 0)),
            to_decimal(d.get("price")),
            d.get("volume") or 0,
            d.get("currentVolume") or 0,
        )


@dataclass(frozen=True, slots=True)
class BracketSpec(_Model):
    """A bracket leg of a placement: signed tick offset from the fill and the leg's order type."""

    ticks: int
    type: OrderType = OrderType.STOP

    def to_wire(self) -> dict[str, int]:
        return {"ticks": int(self.ticks), "type": int(self.type)}


@dataclass(frozen=True, slots=True)
class PlaceOrderResult(_Model):
    """Outcome of a placement. `recovered` is True when the response was lost and the order was
    found by its `custom_tag` instead (then `order` holds what the lookup returned)."""

    order_id: int
    custom_tag: str
    recovered: bool = False
    order: Order | None = None


@dataclass(frozen=True, slots=True)
class OrderPage(_Model):
    """One page of `Order/v2/query`."""

    orders: list[Order]
    total_count: int | None


@dataclass(frozen=True, slots=True)
class HealthStatus(_Model):
    """Result of `ProjectX.get_health_status()`; `healthy` means reachable and authenticated."""

    healthy: bool
    api_url: str
    api_reachable: bool
    ping_ms: float | None
    authenticated: bool
    auth_ms: float | None
    account_name: str | None
    token_valid_for: float | None  # seconds until the session token expires
    error: str | None
