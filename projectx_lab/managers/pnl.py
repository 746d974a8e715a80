"""P&L and risk arithmetic for positions: pure functions and small value types.

Money follows the gateway: realized P&L is the sum of the fills' `profitAndLoss` (gross of fees,
gotcha 22), fees and commissions are separate, and net = gross − fees − commissions. Unrealized
P&L marks a position at a live price: `(price − average) / tick_size × tick_value × signed size`.
Exact figures are `Decimal`; the per-quote drawdown trackers run on floats (hot path).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

ZERO = Decimal(0)


def to_money(value: float | Decimal) -> Decimal:
    """A live float price or P&L as `Decimal` (through its shortest repr)."""
    return value if isinstance(value, Decimal) else Decimal(repr(value))


def unrealized_pnl(
    signed_size: int, average_price: Decimal, price: Decimal, tick_size: Decimal,
    tick_value: Decimal,
) -> Decimal:  # fmt: skip
    """Open P&L in dollars of `signed_size` contracts bought/sold at `average_price`."""
    return (price - average_price) / tick_size * tick_value * signed_size


@dataclass(frozen=True, slots=True)
class PositionPnL:
    """One open position marked to market (`price` None when no live price is known yet)."""

    contract_id: str
    signed_size: int
    average_price: Decimal
    price: Decimal | None
    unrealized: Decimal | None
    exposure: Decimal | None  # |size| × price × point value, dollars
    peak_unrealized: float | None
    drawdown: float | None  # peak_unrealized − current unrealized, >= 0

    def __repr__(self) -> str:
        upnl = "n/a" if self.unrealized is None else f"{self.unrealized:+z.2f}"
        return (
            f"PositionPnL({self.contract_id} {self.signed_size:+d} @ {self.average_price}, "
            f"last={self.price}, unrealized={upnl})"
        )


@dataclass(frozen=True, slots=True)
class PortfolioPnL:
    """Account P&L: realized from the fills since `since`, unrealized from live prices."""

    realized: Decimal  # gross, as the gateway reports it
    fees: Decimal
    commissions: Decimal
    unrealized: Decimal
    positions: tuple[PositionPnL, ...]
    trades: int

    @property
    def net_realized(self) -> Decimal:
        """Realized P&L after fees and commissions (what moves the balance)."""
        return self.realized - self.fees - self.commissions

    @property
    def total(self) -> Decimal:
        """Net realized plus unrealized."""
        return self.net_realized + self.unrealized

    def __repr__(self) -> str:
        return (
            f"PortfolioPnL(total={self.total:+z.2f}, realized={self.realized:+z.2f}, "
            f"fees+commissions={self.fees + self.commissions:.2f}, "
            f"unrealized={self.unrealized:+z.2f}, positions={len(self.positions)}, "
            f"trades={self.trades})"
        )


@dataclass(frozen=True, slots=True)
class RiskMetrics:
    """Exposure and drawdowns of the account right now."""

    gross_exposure: Decimal  # sum of |notional| in dollars
    net_exposure: Decimal  # long notional − short notional
    equity: float | None  # balance + unrealized
    peak_equity: float | None
    account_drawdown: float  # peak_equity − equity, >= 0
    max_account_drawdown: float
    positions: tuple[PositionPnL, ...]

    def __repr__(self) -> str:
        return (
            f"RiskMetrics(gross_exposure={self.gross_exposure:.2f}, "
            f"net_exposure={self.net_exposure:+z.2f}, drawdown={self.account_drawdown:.2f}, "
            f"max_drawdown={self.max_account_drawdown:.2f}, positions={len(self.positions)})"
        )


class Peak:
    """Running peak of a value and the largest fall from it (floats: updated per quote)."""

    __slots__ = ("max_drawdown", "peak", "value")

    def __init__(self) -> None:
        self.peak: float | None = None
        self.value: float | None = None
        self.max_drawdown = 0.0

    def update(self, value: float) -> None:
        self.value = value
        if self.peak is None or value > self.peak:
            self.peak = value
        fall = self.peak - value
        if fall > self.max_drawdown:
            self.max_drawdown = fall

    @property
    def drawdown(self) -> float:
        """Current fall from the peak (0 at a new high)."""
        if self.peak is None or self.value is None:
            return 0.0
        return self.peak - self.value

    def __repr__(self) -> str:
        return f"Peak(peak={self.peak}, value={self.value}, max_drawdown={self.max_drawdown})"
