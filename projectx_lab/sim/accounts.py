"""Paper accounts: balance, FIFO positions, half-trades, realized P&L, fees and commissions."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .config import AccountConfig
from .orders import BUY, ContractInfo, HalfTrade, IdSource, Position

FIRST_ACCOUNT_ID = 26_000_001

# One queued user event: (account id, hub target, action, wire dict).
Event = tuple[int, str, int, dict[str, Any]]


class PaperAccount:
    """One simulated trading account and everything booked on it.

    Realized P&L is FIFO per contract and gross (ticks x tick value); the balance moves by
    realized P&L minus fees minus commissions on every fill.
    """

    __slots__ = (
        "active",
        "balance",
        "bracket_mode",
        "can_trade",
        "commissions",
        "fees",
        "id",
        "is_visible",
        "name",
        "positions",
        "realized",
        "simulated",
        "start_balance",
        "trades",
    )

    def __init__(self, account_id: int, config: AccountConfig) -> None:
        self.id = account_id
        self.name = config.name
        self.start_balance = Decimal(str(config.balance))
        self.balance = self.start_balance
        self.can_trade = config.can_trade
        self.is_visible = True
        self.simulated = config.simulated
        self.active = config.active
        self.bracket_mode = config.bracket_mode
        self.realized = Decimal(0)
        self.fees = Decimal(0)
        self.commissions = Decimal(0)
        self.positions: dict[str, Position] = {}
        self.trades: list[HalfTrade] = []

    def __repr__(self) -> str:
        return f"PaperAccount(id={self.id}, name={self.name!r}, balance={self.balance})"

    def wire(self) -> dict[str, Any]:
        """TradingAccountModel dict."""
        return {
            "id": self.id,
            "name": self.name,
            "balance": float(self.balance),
            "canTrade": self.can_trade,
            "isVisible": self.is_visible,
            "simulated": self.simulated,
        }

    def apply_fill(
        self,
        info: ContractInfo,
        side: int,
        qty: int,
        price: int,
        ts_ns: int,
        order_id: int,
        ids: IdSource,
        out: list[Event],
    ) -> None:
        """Book one fill of `qty` at `price` ticks; queue trade and position events on `out`.

        A fill through zero is booked as a closing half-trade (the old position goes flat,
        `type 0 size 0`) followed by an opening half-trade that starts a new position id.
        """
        cid = info.contract_id
        pos = self.positions.get(cid)
        buying = side == BUY
        left = qty
        if pos is not None and pos.long != buying:
            close = min(qty, pos.size)
            before = info.avg_price(pos.cost, pos.size)
            pnl = pos.reduce(close, price) * info.tick_value
            self._book(info, side, close, price, ts_ns, order_id, ids, pnl, out)
            if pos.size == 0:
                del self.positions[cid]
                out.append((self.id, "GatewayUserPosition", 2, pos.wire(before)))
            else:
                out.append((self.id, "GatewayUserPosition", 1, pos.wire()))
            left -= close
        if left:
            if pos is None or pos.size == 0:
                pos = Position(ids.next_position(), self.id, info, ts_ns, buying)
                self.positions[cid] = pos
            pos.add(left, price)
            self._book(info, side, left, price, ts_ns, order_id, ids, None, out)
            out.append((self.id, "GatewayUserPosition", 1, pos.wire()))

    def _book(
        self,
        info: ContractInfo,
        side: int,
        qty: int,
        price: int,
        ts_ns: int,
        order_id: int,
        ids: IdSource,
        pnl: Decimal | None,
        out: list[Event],
    ) -> None:
        fees = info.fee * qty
        commissions = info.commission * qty
        trade = HalfTrade(
            ids.next_trade(), self.id, info, ts_ns, price, pnl, fees, commissions, side, qty,
            order_id,
        )  # fmt: skip
        self.trades.append(trade)
        self.fees += fees
        self.commissions += commissions
        if pnl is not None:
            self.realized += pnl
            self.balance += pnl
        self.balance -= fees + commissions
        out.append((self.id, "GatewayUserTrade", 0, trade.wire()))
