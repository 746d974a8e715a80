"""Plain and HTML representations of the SDK's objects for notebooks and the REPL.

The model classes, `BracketOrderResult`, `OrderBook.get_orderbook_snapshot()`'s result and
`TradingSuite` call into here from tiny `__repr__` / `_repr_html_` methods (imported lazily, so
nothing here loads unless something is shown). Only public trading fields are rendered (never a
client, its settings or a session), and every value is HTML-escaped. Pure string building:
no widget or plotting imports.

`table(items)` renders a list of orders, positions, trades, accounts or instruments as one
HTML table (what `%orders` / `%positions` show).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from enum import IntEnum
from typing import Any

from projectx_lab.client.models import (
    Account,
    Instrument,
    Order,
    OrderSide,
    OrderType,
    Position,
    PositionType,
    Trade,
)

_TYPE_CODE = {OrderType.LIMIT: "LMT", OrderType.MARKET: "MKT", OrderType.STOP_LIMIT: "STL",
              OrderType.STOP: "STP", OrderType.TRAILING_STOP: "TRL", OrderType.JOIN_BID: "JBID",
              OrderType.JOIN_ASK: "JASK"}  # fmt: skip


def type_code(order_type: Any) -> str:
    """Short order-type code: LMT, MKT, STP, STL, TRL, JBID, JASK (`T<n>` when unknown)."""
    return _TYPE_CODE.get(order_type, f"T{order_type}")


_STYLE = (
    "<style>.pxl-repr{border-collapse:collapse;font:12px/1.35 ui-monospace,monospace}"
    ".pxl-repr th,.pxl-repr td{padding:2px 8px;text-align:left;border-bottom:1px solid #e5e5e5}"
    ".pxl-repr caption{text-align:left;font-weight:600;padding:2px 0}"
    ".pxl-repr .buy{color:#00796b}.pxl-repr .sell{color:#c62828}"
    ".pxl-repr .num{text-align:right}.pxl-repr .dim{color:#888}</style>"
)


# -- value formatting --------------------------------------------------------------------------


def _enum(value: Any) -> str:
    return value.name.lower() if isinstance(value, IntEnum) else f"#{value}"


def _side(value: Any) -> str:
    if value == OrderSide.BUY:
        return "BUY"
    return "SELL" if value == OrderSide.SELL else f"side {value}"


def _direction(position: Position) -> str:
    if position.type == PositionType.LONG:
        return "LONG"
    return "SHORT" if position.type == PositionType.SHORT else "FLAT"


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if value.utcoffset() == 0 else "")
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else str(value)
    if isinstance(value, float):
        return repr(value)  # shortest round-trip form: prices keep every digit
    if isinstance(value, IntEnum):
        return value.name.lower()
    return str(value)


def _money(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


def _signed(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:+,.2f}"


def _order_price(order: Order) -> str:
    parts = []
    if order.limit_price is not None:
        parts.append(f"@ {_fmt(order.limit_price)}")
    if order.stop_price is not None:
        parts.append(f"stop {_fmt(order.stop_price)}")
    if parts:
        return " ".join(parts)
    return "@ market" if order.type == OrderType.MARKET else "—"


# -- plain text ----------------------------------------------------------------------------------


def _account_text(a: Account) -> str:
    flags = " ".join(f for f, on in (("sim", a.simulated), ("can-trade", a.can_trade)) if on)
    return f"Account(#{a.id} {a.name!r} balance={_money(a.balance)}{' ' + flags if flags else ''})"


def _instrument_text(i: Instrument) -> str:
    return f"Instrument({i.id} {i.name} tick={_fmt(i.tick_size)} ${_money(i.tick_value)}/tick)"


def _order_text(o: Order) -> str:
    filled = f"filled {o.fill_volume}/{o.size}"
    if o.filled_price is not None:
        filled += f" @ {_fmt(o.filled_price)}"
    return (
        f"Order(#{o.id} {_side(o.side)} {o.size} {o.contract_id} {type_code(o.type)} "
        f"{_order_price(o)}, {_enum(o.status)}, {filled})"
    )


def _position_text(p: Position) -> str:
    return f"Position({p.contract_id} {_direction(p)} {p.size} @ {_fmt(p.average_price)}, #{p.id})"


def _trade_text(t: Trade) -> str:
    pnl = "" if t.profit_and_loss is None else f" pnl={_signed(t.profit_and_loss)}"
    void = " voided" if t.voided else ""
    return (
        f"Trade(#{t.id} {_side(t.side)} {t.size} {t.contract_id} @ {_fmt(t.price)}{pnl} "
        f"fees={_money(t.fees)} order=#{t.order_id}{void})"
    )


_TEXT: dict[type, Callable[[Any], str]] = {
    Account: _account_text,
    Instrument: _instrument_text,
    Order: _order_text,
    Position: _position_text,
    Trade: _trade_text,
}


def model_text(obj: Any) -> str:
    """Compact one-line repr of a model (the dataclass form for models without one)."""
    render = _TEXT.get(type(obj))
    if render is not None:
        return render(obj)
    fields = ", ".join(f"{k}={v!r}" for k, v in obj.to_dict().items())
    return f"{type(obj).__name__}({fields})"


# -- HTML ----------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(_fmt(value) if not isinstance(value, str) else value)


def _card(title: str, rows: Iterable[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'{_STYLE}<table class="pxl-repr"><caption>{_e(title)}</caption>{body}</table>'


Column = tuple[str, Callable[[Any], Any]]
_COLUMNS: dict[type, list[Column]] = {
    Account: [("id", lambda a: a.id), ("name", lambda a: a.name),
              ("balance", lambda a: _money(a.balance)), ("can trade", lambda a: a.can_trade),
              ("simulated", lambda a: a.simulated)],
    Instrument: [("id", lambda i: i.id), ("name", lambda i: i.name),
                 ("description", lambda i: i.description), ("tick", lambda i: i.tick_size),
                 ("tick value", lambda i: i.tick_value), ("active", lambda i: i.active_contract)],
    Order: [("id", lambda o: o.id), ("contract", lambda o: o.contract_id),
            ("side", lambda o: _side(o.side)), ("type", lambda o: type_code(o.type)),
            ("size", lambda o: o.size), ("limit", lambda o: o.limit_price),
            ("stop", lambda o: o.stop_price), ("status", lambda o: _enum(o.status)),
            ("filled", lambda o: f"{o.fill_volume}/{o.size}"),
            ("fill price", lambda o: o.filled_price), ("parent", lambda o: o.parent_order_id),
            ("tag", lambda o: o.custom_tag), ("updated", lambda o: o.update_timestamp)],
    Position: [("id", lambda p: p.id), ("contract", lambda p: p.contract_id),
               ("direction", _direction), ("size", lambda p: p.size),
               ("average price", lambda p: p.average_price),
               ("opened", lambda p: p.creation_timestamp)],
    Trade: [("id", lambda t: t.id), ("contract", lambda t: t.contract_id),
            ("side", lambda t: _side(t.side)), ("size", lambda t: t.size),
            ("price", lambda t: t.price), ("P&L", lambda t: _signed(t.profit_and_loss)),
            ("fees", lambda t: _money(t.fees)), ("commissions", lambda t: _money(t.commissions)),
            ("order", lambda t: t.order_id), ("time", lambda t: t.creation_timestamp),
            ("voided", lambda t: t.voided)],
}  # fmt: skip


def model_html(obj: Any) -> str:
    """An HTML card: the model's fields as rows (its one-line repr as the caption)."""
    columns = _COLUMNS.get(type(obj))
    if columns is None:
        to_dict = getattr(obj, "to_dict", None)
        rows = to_dict().items() if to_dict is not None else [("value", repr(obj))]
        return _card(type(obj).__name__, rows)
    return _card(model_text(obj), ((name, get(obj)) for name, get in columns))


def _row_class(obj: Any) -> str:
    side = getattr(obj, "side", None)
    if isinstance(obj, Position):
        side = OrderSide.BUY if obj.type == PositionType.LONG else OrderSide.SELL
    return {OrderSide.BUY: "buy", OrderSide.SELL: "sell"}.get(side, "")  # type: ignore[arg-type]


def table_html(items: Sequence[Any], title: str | None = None) -> str:
    """One HTML table for a list of models of one kind (mixed kinds: one card each)."""
    items = list(items)
    if not items:
        return (
            f'{_STYLE}<table class="pxl-repr"><caption>{_e(title or "nothing")}</caption></table>'
        )
    kinds = {type(i) for i in items}
    columns = _COLUMNS.get(next(iter(kinds))) if len(kinds) == 1 else None
    if columns is None:
        return "".join(model_html(i) for i in items)
    head = "".join(f"<th>{_e(name)}</th>" for name, _ in columns)
    body = "".join(
        f'<tr class="{_row_class(i)}">'
        + "".join(f"<td>{_e(get(i))}</td>" for _, get in columns)
        + "</tr>"
        for i in items
    )
    caption = title or f"{len(items)} {type(items[0]).__name__.lower()}(s)"
    return (
        f'{_STYLE}<table class="pxl-repr"><caption>{_e(caption)}</caption>'
        f"<tr>{head}</tr>{body}</table>"
    )


class Table:
    """A list of models shown as one HTML table in Jupyter (and one line each as text)."""

    def __init__(self, items: Iterable[Any], title: str | None = None) -> None:
        self.items = list(items)
        self.title = title

    def _repr_html_(self) -> str:
        return table_html(self.items, self.title)

    def __repr__(self) -> str:
        lines = [self.title] if self.title else []
        lines += [repr(i) for i in self.items] or ["(none)"]
        return "\n".join(lines)

    def __len__(self) -> int:
        return len(self.items)


def table(items: Iterable[Any], title: str | None = None) -> Table:
    """Wrap orders/positions/trades/accounts/instruments for display as one table."""
    return Table(items, title)


# -- brackets, book snapshot, suite status --------------------------------------------------------


def bracket_html(result: Any) -> str:
    """A bracket's three orders: ids, signed tick offsets and each leg's latest state."""
    rows = [
        ("entry", result.entry_order_id, None, result.entry),
        ("stop", result.stop_order_id, result.stop_loss_ticks, result.stop),
        ("target", result.target_order_id, result.take_profit_ticks, result.target),
    ]
    body = "".join(
        f"<tr><th>{leg}</th><td>{_e(oid)}</td><td>{_e(ticks)}</td>"
        f"<td>{_e(_enum(order.status) if order is not None else None)}</td>"
        f"<td>{_e(_order_price(order) if order is not None else None)}</td></tr>"
        for leg, oid, ticks, order in rows
        if oid is not None or leg == "entry"
    )
    title = f"Bracket {_side(result.side)} {result.size} {result.contract_id}"
    return (
        f'{_STYLE}<table class="pxl-repr {"buy" if result.side == OrderSide.BUY else "sell"}">'
        f"<caption>{_e(title)}</caption><tr><th>leg</th><th>order</th><th>ticks</th>"
        f"<th>status</th><th>price</th></tr>{body}</table>"
    )


def book_snapshot_text(snapshot: Mapping[str, Any]) -> str:
    """One line: contract, best bid/ask, spread, level counts."""
    return (
        f"BookSnapshot({snapshot.get('contract_id')} bid={_fmt(snapshot.get('best_bid'))} "
        f"ask={_fmt(snapshot.get('best_ask'))} spread={_fmt(snapshot.get('spread'))}, "
        f"{snapshot.get('bid_levels')}/{snapshot.get('ask_levels')} levels)"
    )


def book_snapshot_html(snapshot: Mapping[str, Any]) -> str:
    """The snapshot's levels as a ladder (asks above bids) with the top-of-book figures."""
    bids, asks = snapshot.get("bids"), snapshot.get("asks")
    bid_rows = list(zip(bids["price"], bids["size"], strict=True)) if bids is not None else []
    ask_rows = list(zip(asks["price"], asks["size"], strict=True)) if asks is not None else []
    rows = [f'<tr class="sell"><td></td><td>{_e(p)}</td><td>{_e(s)}</td></tr>'
            for p, s in reversed(ask_rows)]  # fmt: skip
    rows += [f'<tr class="buy"><td>{_e(s)}</td><td>{_e(p)}</td><td></td></tr>' for p, s in bid_rows]
    imbalance = snapshot.get("imbalance")
    facts = [
        ("spread", snapshot.get("spread")),
        ("mid", snapshot.get("mid")),
        ("imbalance", None if imbalance is None else f"{imbalance:+.3f}"),
        ("levels", f"{snapshot.get('bid_levels')} bid / {snapshot.get('ask_levels')} ask"),
        ("as of", snapshot.get("timestamp")),
    ]
    summary = " · ".join(f"{k} {_fmt(v)}" for k, v in facts)
    return (
        f'{_STYLE}<table class="pxl-repr"><caption>{_e(snapshot.get("contract_id"))}</caption>'
        f"<tr><th>bid size</th><th>price</th><th>ask size</th></tr>{''.join(rows)}"
        f'<tr><td colspan="3" class="dim">{_e(summary)}</td></tr></table>'
    )


def status_text(status: Mapping[str, Any]) -> str:
    """One line of a suite's `status()`."""
    state = (
        "closed"
        if status.get("closed")
        else ("connected" if status.get("connected") else "disconnected")
    )
    return (
        f"SuiteStatus({status.get('instrument')} account={status.get('account')!r} {state}, "
        f"last={_fmt(status.get('last_price'))} bid={_fmt(status.get('best_bid'))} "
        f"ask={_fmt(status.get('best_ask'))}, trades={status.get('trades_seen')})"
    )


_STATUS_LABELS = {"instrument": "instrument", "account": "account", "connected": "connected",
                  "last_price": "last price", "best_bid": "best bid", "best_ask": "best ask",
                  "trades_seen": "trades seen", "closed": "closed"}  # fmt: skip


def status_html(status: Mapping[str, Any], title: str = "TradingSuite") -> str:
    """A suite's `status()` as a card; only the known status fields are shown."""
    return _card(title, ((label, status.get(k)) for k, label in _STATUS_LABELS.items()))


def suite_html(suite: Any) -> str:
    """A TradingSuite: its status card, timeframes included."""
    status = dict(suite.status())
    status_rows = ((label, status.get(k)) for k, label in _STATUS_LABELS.items())
    frames = ", ".join(suite.data.timeframes)
    return _card(f"TradingSuite {suite.instrument.id}", [*status_rows, ("timeframes", frames)])
