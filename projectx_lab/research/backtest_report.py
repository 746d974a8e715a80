"""The result of a paper run: fills, round-trip trades, a mark-to-market equity curve, the usual
figures, and a Plotly figure (price with entries and exits over the equity curve).

Money follows the gateway (gotcha 22): a fill's `profitAndLoss` is gross, fees and commissions
are separate, and the account balance moves by gross − fees − commissions. So `pnl` equals the
simulator account's balance change whenever the run ends flat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import polars as pl

from projectx_lab.client.models import OrderSide, Trade

ZERO = Decimal(0)
_FILL_SCHEMA = {
    "time": pl.Datetime("us", "UTC"),
    "trade_id": pl.Int64,
    "order_id": pl.Int64,
    "contract_id": pl.String,
    "side": pl.String,
    "size": pl.Int64,
    "price": pl.Float64,
    "pnl": pl.Float64,
    "fees": pl.Float64,
    "commissions": pl.Float64,
}
_TRIP_SCHEMA = {
    "contract_id": pl.String,
    "direction": pl.String,
    "size": pl.Int64,
    "entry_time": pl.Datetime("us", "UTC"),
    "entry_price": pl.Float64,
    "exit_time": pl.Datetime("us", "UTC"),
    "exit_price": pl.Float64,
    "fills": pl.Int64,
    "gross_pnl": pl.Float64,
    "costs": pl.Float64,
    "net_pnl": pl.Float64,
}


def fills_frame(fills: Sequence[Trade]) -> pl.DataFrame:
    """The account's fills, oldest first (ties by fill id), as a polars table."""
    rows = sorted((f for f in fills if not f.voided), key=lambda f: (f.creation_timestamp, f.id))
    return pl.DataFrame(
        [
            {
                "time": f.creation_timestamp,
                "trade_id": f.id,
                "order_id": f.order_id,
                "contract_id": f.contract_id,
                "side": "buy" if f.side == OrderSide.BUY else "sell",
                "size": f.size,
                "price": float(f.price or 0),
                "pnl": None if f.profit_and_loss is None else float(f.profit_and_loss),
                "fees": float(f.fees or 0),
                "commissions": float(f.commissions or 0),
            }
            for f in rows
        ],
        schema=_FILL_SCHEMA,
    )


@dataclass(slots=True)
class _Trip:
    direction: int  # +1 long, -1 short
    entry_time: datetime
    open: int = 0  # contracts still open
    size: int = 0  # contracts opened so far (= closed, once flat)
    entry_value: Decimal = ZERO  # Σ price × quantity of the opening fills
    exit_value: Decimal = ZERO  # Σ price × quantity of the closing fills
    costs: Decimal = ZERO  # fees + commissions of both sides
    fills: int = 0


def round_trips(fills: Sequence[Trade], point_values: dict[str, Decimal]) -> pl.DataFrame:
    """One row per round trip of a contract's position, flat to flat (a fill through zero closes
    one and opens the next): volume-weighted entry and exit, the fills it took, gross P&L
    (points × point value), costs (both sides' fees and commissions) and net P&L."""
    rows: list[dict[str, Any]] = []
    trips: dict[str, _Trip] = {}
    for f in sorted((f for f in fills if not f.voided), key=lambda f: (f.creation_timestamp, f.id)):
        if not f.size or f.price is None:
            continue
        direction = 1 if f.side == OrderSide.BUY else -1
        cost_each = ((f.fees or ZERO) + (f.commissions or ZERO)) / f.size
        left = f.size
        trip = trips.get(f.contract_id)
        if trip is not None and trip.direction != direction:
            qty = min(left, trip.open)
            trip.open -= qty
            trip.exit_value += f.price * qty
            trip.costs += cost_each * qty
            trip.fills += 1
            left -= qty
            if not trip.open:
                rows.append(_trip_row(f.contract_id, trip, f.creation_timestamp, point_values))
                del trips[f.contract_id]
        if left:
            trip = trips.setdefault(f.contract_id, _Trip(direction, f.creation_timestamp))
            trip.open += left
            trip.size += left
            trip.entry_value += f.price * left
            trip.costs += cost_each * left
            trip.fills += 1
    return pl.DataFrame(rows, schema=_TRIP_SCHEMA)


def _trip_row(
    contract_id: str, trip: _Trip, exit_time: datetime, point_values: dict[str, Decimal]
) -> dict[str, Any]:
    """A closed trip as a row of the trades table (prices are volume-weighted averages)."""
    gross = (trip.exit_value - trip.entry_value) * point_values.get(contract_id, ZERO)
    gross *= trip.direction
    return {
        "contract_id": contract_id,
        "direction": "long" if trip.direction > 0 else "short",
        "size": trip.size,
        "entry_time": trip.entry_time,
        "entry_price": float(trip.entry_value / trip.size),
        "exit_time": exit_time,
        "exit_price": float(trip.exit_value / trip.size),
        "fills": trip.fills,
        "gross_pnl": float(gross),
        "costs": float(trip.costs),
        "net_pnl": float(gross - trip.costs),
    }


def equity_curve(
    fills: Sequence[Trade],
    bars: pl.DataFrame,
    start_balance: Decimal,
    point_value: Decimal,
    end: datetime,
    bar_ns: int = 60_000_000_000,
) -> pl.DataFrame:
    """Account equity at each bar's close: balance (start + realized − costs, from the fills
    before the bar's end) plus the open position marked at the bar's close; a last point at
    `end` takes every fill up to then (a closing flatten), marked at the last close."""
    ordered = sorted((f for f in fills if not f.voided), key=lambda f: (f.creation_timestamp, f.id))
    out: dict[str, list[Any]] = {"time": [], "equity": [], "balance": [], "position": []}
    balance = float(start_balance)
    position = 0
    cost = 0.0  # signed entry value of the open position (price × signed size)
    point = float(point_value)
    i = 0
    schema = {"time": pl.Datetime("us", "UTC"), "equity": pl.Float64, "balance": pl.Float64,
              "position": pl.Int64}  # fmt: skip
    if bars.is_empty():
        return pl.DataFrame(out, schema=schema)
    points = [
        (stamp, stamp.timestamp() + bar_ns / 1e9, close)
        for stamp, close in zip(bars["timestamp"].to_list(), bars["close"].to_list(), strict=True)
    ]
    points.append((end, end.timestamp() + 1e-6, points[-1][2]))
    for stamp, until, close in points:
        while i < len(ordered) and ordered[i].creation_timestamp.timestamp() < until:
            f = ordered[i]
            i += 1
            signed = f.size if f.side == OrderSide.BUY else -f.size
            price = float(f.price or 0)
            costs = (f.fees or ZERO) + (f.commissions or ZERO)
            balance += float((f.profit_and_loss or ZERO) - costs)
            if position == 0 or (position > 0) == (signed > 0):
                cost += price * signed
                position += signed
            else:
                closing = min(abs(signed), abs(position))
                average = cost / position
                position_after = position + signed
                if abs(signed) > closing:  # through zero: the rest opens at this price
                    cost = price * position_after
                else:
                    cost = average * position_after
                position = position_after
        unrealized = (close * position - cost) * point if position else 0.0
        out["time"].append(stamp.astimezone(UTC))
        out["equity"].append(balance + unrealized)
        out["balance"].append(balance)
        out["position"].append(position)
    return pl.DataFrame(out, schema=schema)


def max_drawdown(equity: pl.Series, start: float) -> float:
    """Largest fall of equity from its running peak (the start balance counts as a peak)."""
    peak = start
    worst = 0.0
    for value in equity.to_list():
        if value > peak:
            peak = value
        elif peak - value > worst:
            worst = peak - value
    return worst


@dataclass(frozen=True)
class PaperResult:
    """What a paper run produced. Tables are polars; money figures are exact `Decimal`s from the
    simulator's fills (`pnl` = gross − fees − commissions = the account's balance change).
    `trades` has one row per round trip; `fills` is the detail, one row per (partial) fill."""

    strategy: str
    contract_id: str
    start: datetime
    end: datetime
    mode: str
    fills: pl.DataFrame
    trades: pl.DataFrame
    equity: pl.DataFrame
    bars: pl.DataFrame
    start_balance: Decimal
    end_balance: Decimal
    gross_pnl: Decimal
    fees: Decimal
    commissions: Decimal
    open_position: int = 0
    recording: str | None = None

    @property
    def pnl(self) -> Decimal:
        """Net realized P&L: gross − fees − commissions."""
        return self.gross_pnl - self.fees - self.commissions

    @property
    def num_trades(self) -> int:
        """Round trips (rows of `trades`)."""
        return self.trades.height

    @property
    def win_rate(self) -> float | None:
        """Share of round trips with a positive net P&L (None without trades)."""
        if not self.trades.height:
            return None
        return float((self.trades["net_pnl"] > 0).sum()) / self.trades.height

    @property
    def max_drawdown(self) -> float:
        """Largest fall of mark-to-market equity from its running peak, in dollars."""
        if self.equity.is_empty():
            return 0.0
        return max_drawdown(self.equity["equity"], float(self.start_balance))

    def summary(self) -> dict[str, Any]:
        """The headline figures as a dict."""
        return {
            "strategy": self.strategy,
            "contract": self.contract_id,
            "start": self.start,
            "end": self.end,
            "mode": self.mode,
            "pnl": self.pnl,
            "gross_pnl": self.gross_pnl,
            "fees": self.fees,
            "commissions": self.commissions,
            "trades": self.num_trades,
            "win_rate": self.win_rate,
            "max_drawdown": round(self.max_drawdown, 2),
            "fills": self.fills.height,
            "open_position": self.open_position,
        }

    def __repr__(self) -> str:
        rate = "n/a" if self.win_rate is None else f"{self.win_rate:.0%}"
        return (
            f"PaperResult({self.strategy} on {self.contract_id}, {self.start:%Y-%m-%d %H:%M} → "
            f"{self.end:%H:%M} UTC, pnl={self.pnl:+z.2f}, trades={self.num_trades}, "
            f"win_rate={rate}, max_drawdown={self.max_drawdown:.2f}, "
            f"costs={self.fees + self.commissions:.2f})"
        )

    def _repr_html_(self) -> str:
        cells = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>"
            for k, v in self.summary().items()
        )
        return f"<table>{cells}</table>"

    def figure(self) -> Any:
        """Plotly figure: candles with buys/sells on top, mark-to-market equity below."""
        try:
            import plotly.graph_objects as go
            from plotly.subplots import make_subplots
        except ImportError as exc:  # the "notebook" extra
            raise ImportError(
                "result.figure() needs plotly: pip install 'projectx-lab[notebook]'"
            ) from exc
        fig = make_subplots(
            rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35], vertical_spacing=0.04
        )
        bars = self.bars
        if not bars.is_empty():
            fig.add_trace(
                go.Candlestick(
                    x=bars["timestamp"].to_list(),
                    open=bars["open"].to_list(),
                    high=bars["high"].to_list(),
                    low=bars["low"].to_list(),
                    close=bars["close"].to_list(),
                    name=self.contract_id,
                    showlegend=False,
                ),
                row=1,
                col=1,
            )
        for side, symbol, color in (("buy", "triangle-up", "#2e7d32"),
                                    ("sell", "triangle-down", "#c62828")):  # fmt: skip
            rows = self.fills.filter(pl.col("side") == side)
            fig.add_trace(
                go.Scatter(
                    x=rows["time"].to_list(),
                    y=rows["price"].to_list(),
                    mode="markers",
                    marker={"symbol": symbol, "size": 10, "color": color},
                    name=side,
                ),
                row=1,
                col=1,
            )
        fig.add_trace(
            go.Scatter(
                x=self.equity["time"].to_list() if not self.equity.is_empty() else [],
                y=self.equity["equity"].to_list() if not self.equity.is_empty() else [],
                mode="lines",
                name="equity",
                line={"color": "#1565c0"},
            ),
            row=2,
            col=1,
        )
        fig.update_layout(
            title=(
                f"{self.strategy} on {self.contract_id}: P&L {self.pnl:+z.2f}, "
                f"{self.num_trades} trades, max drawdown {self.max_drawdown:.2f}"
            ),
            xaxis_rangeslider_visible=False,
            height=600,
            margin={"l": 40, "r": 20, "t": 50, "b": 30},
        )
        return fig
