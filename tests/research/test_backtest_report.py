"""The paper-run report on the simulator: a trade is one round trip of the position, however many
partial fills its market orders took."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from projectx_lab.client.models import OrderSide
from projectx_lab.research.paper import run_paper, synthetic
from projectx_lab.research.strategy import Strategy

from ..conftest import SIM_START


class LongThenShort(Strategy):
    """Buys 60, sells 100 (through zero to short 40), buys 40 back: market orders that sweep
    several book levels."""

    timeframes = ("1min",)
    orders = ((OrderSide.BUY, 60), (OrderSide.SELL, 100), (OrderSide.BUY, 40))

    def __init__(self) -> None:
        self.bars = 0

    async def on_bar(self, suite: Any, timeframe: str, bar: Any) -> None:
        self.bars += 1
        if self.bars > len(self.orders):
            self.stop()
            return
        side, size = self.orders[self.bars - 1]
        await suite.orders.place_market_order(suite.instrument, side, size)


def part(fills: pl.DataFrame, skip: int, take: int) -> tuple[float, int, Any, Any]:
    """Contracts skip .. skip + take of `fills`, in fill order: average price, how many fills
    they span, the first and the last of those fills' times."""
    value, seen, spans, first, last = 0.0, 0, 0, None, None
    for time, size, price in fills.select("time", "size", "price").iter_rows():
        qty = max(0, min(seen + size, skip + take) - max(seen, skip))
        if qty:
            value += qty * price
            spans += 1
            first = first or time
            last = time
        seen += size
    return value / take, spans, first, last


async def test_a_round_trip_is_one_trade_whatever_its_partial_fills() -> None:
    source = synthetic(seed=11, start=SIM_START, duration="10min", trade_rate=3.0)
    result = await run_paper(LongThenShort(), "MNQ", source=source)
    fills = result.fills
    orders = [
        fills.filter(pl.col("order_id") == o) for o in fills["order_id"].unique(maintain_order=True)
    ]
    assert [o["size"].sum() for o in orders] == [60, 100, 40]
    assert fills.height > 4  # the orders filled across several levels
    assert result.open_position == 0

    trades = result.trades
    assert trades["direction"].to_list() == ["long", "short"]
    assert trades["size"].to_list() == [60, 40]
    entries = [part(orders[0], 0, 60), part(orders[1], 60, 40)]
    exits = [part(orders[1], 0, 60), part(orders[2], 0, 40)]
    assert trades["entry_price"].to_list() == pytest.approx([e[0] for e in entries])
    assert trades["exit_price"].to_list() == pytest.approx([x[0] for x in exits])
    assert trades["fills"].to_list() == [e[1] + x[1] for e, x in zip(entries, exits, strict=True)]
    assert trades["entry_time"].to_list() == [e[2] for e in entries]
    assert trades["exit_time"].to_list() == [x[3] for x in exits]
    # gross per trip = the gateway's P&L on its closing fills; costs and net add up to the run's
    assert trades["gross_pnl"].to_list() == pytest.approx(
        [orders[1]["pnl"].sum(), orders[2]["pnl"].sum()]
    )
    assert trades["costs"].sum() == pytest.approx(float(result.fees + result.commissions))
    assert trades["net_pnl"].sum() == pytest.approx(float(result.pnl))
    assert result.num_trades == result.summary()["trades"] == 2
    wins = sum(p > 0 for p in trades["net_pnl"])
    assert result.win_rate == wins / 2
