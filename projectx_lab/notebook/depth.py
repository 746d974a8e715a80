"""Live depth widgets over an `OrderBook`: `DepthChart` (cumulative bid/ask depth on a plotly
`FigureWidget`) and `DomLadder` (a price ladder with bid/ask sizes, the last trade and the
user's working orders, rendered as ONE `ipywidgets.HTML` whose value is replaced once per frame:
one message per frame, and a late view simply gets the current value).

Book updates only mark the widget dirty; a `FrameThrottle` redraws at most `fps` times a
second on the loop, so a busy book never floods the frontend.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import ipywidgets
import plotly.graph_objects as go

from .livefigure import LiveFigure
from .loop import track
from .overlays import order_price
from .reprs import type_code
from .throttle import DEFAULT_FPS, FrameThrottle, ThrottledView, check_source

_BID, _ASK = "#26a69a", "#ef5350"
_BOOK_ENDED = "the book's feed stopped (its suite closed, or it was stopped)"


def _positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


class _BookWidget(ThrottledView):
    """Shared plumbing: book callbacks → throttle → `_draw`, display, close."""

    widget: Any
    throttle: FrameThrottle

    def __init__(self, book: Any, fps: float, kind: str) -> None:
        if not all(hasattr(book, name) for name in ("on_update", "on_trade", "contract_id")):
            # checked before the throttle's task starts, which a later failure would leak
            raise TypeError(
                f"{kind} needs an OrderBook (suite.orderbook), got {type(book).__name__}"
            )
        name = f"{kind}[{book.contract_id}]"
        # the feed's `ended_event` streams end when it stops or its connection closes
        feed = getattr(book, "feed", None)
        self._source_event = None if feed is None else feed.ended_event
        if self._source_event is not None:
            check_source(self._source_event, name, _BOOK_ENDED)
        self.book = book
        self.throttle = FrameThrottle(self._draw, fps=fps, name=name)
        self._closed = False

    def _start(self) -> None:
        self.book.on_update.append(self._changed)
        self.book.on_trade.append(self._traded)
        try:
            self._draw(False)
        except BaseException:
            self.close()
            raise
        if self._source_event is not None:
            self._follow(self._source_event, _BOOK_ENDED)
        track(self)

    def _changed(self, book: Any) -> None:
        self.throttle.mark()

    def _traded(self, book: Any, trades: Any) -> None:
        self.throttle.mark()

    def _draw(self, full: bool) -> None:
        raise NotImplementedError

    def _detach(self) -> None:
        for callbacks, cb in ((self.book.on_update, self._changed),
                              (self.book.on_trade, self._traded)):  # fmt: skip
            if cb in callbacks:
                callbacks.remove(cb)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.book.contract_id}, {self._state()})"


class DepthChart(_BookWidget):
    """Cumulative depth of the top `levels` bid and ask levels, as two filled step lines."""

    def __init__(
        self,
        orderbook: Any,
        *,
        levels: int = 20,
        fps: float = DEFAULT_FPS,
        height: int = 320,
        title: str | None = None,
    ) -> None:
        self.levels = _positive_int("levels", levels)
        _positive_int("height", height, 100)
        super().__init__(orderbook, fps, "DepthChart")
        self.title = title or f"{orderbook.contract_id} depth"
        self.figure = self.widget = LiveFigure(
            data=[
                go.Scatter(
                    x=[],
                    y=[],
                    name="bids",
                    mode="lines",
                    line_shape="vh",
                    fill="tozeroy",
                    line={"color": _BID},
                ),
                go.Scatter(
                    x=[],
                    y=[],
                    name="asks",
                    mode="lines",
                    line_shape="hv",
                    fill="tozeroy",
                    line={"color": _ASK},
                ),
            ],
            layout={
                "height": height,
                "margin": {"l": 10, "r": 10, "t": 36, "b": 28},
                "title": {"text": self.title, "x": 0.01, "font": {"size": 14}},
                "xaxis": {"title": {"text": "price"}},
                "yaxis": {"title": {"text": "cumulative size"}, "side": "right"},
                "uirevision": "projectx-lab",
                "legend": {"orientation": "h", "x": 0.6, "y": 1.08},
            },
            on_view=self.throttle.resync,
        )
        self._start()

    def _draw(self, full: bool) -> None:
        bids = self.book.get_orderbook_bids(self.levels)
        asks = self.book.get_orderbook_asks(self.levels)
        fig = self.figure
        spread = self.book.spread
        with fig.batch_update():
            fig.data[0].x = bids["price"].to_numpy()[::-1]
            fig.data[0].y = bids["cumulative_size"].to_numpy()[::-1]
            fig.data[1].x = asks["price"].to_numpy()
            fig.data[1].y = asks["cumulative_size"].to_numpy()
            fig.layout.title.text = (
                self.title if spread is None else f"{self.title} · spread {spread:.12g}"
            )
        if full:
            fig.send_full(("title",))

    def _show_stopped(self) -> None:
        self.figure.note_stopped()


@dataclass(frozen=True, slots=True)
class LadderRow:
    """One price of the ladder: book sizes, the user's working orders, the last trade."""

    price: float
    bid: float | None
    ask: float | None
    my_buy: int = 0
    my_sell: int = 0
    my_orders: tuple[str, ...] = ()  # "#id SIDE size TYPE" of each working order here
    last: float | None = None  # size of the last trade when it printed at this price
    gap_before: bool = False  # rows were skipped above this one


class DomLadder(_BookWidget):
    """Price ladder around the market: `levels` ticks either side of the centre, bid and ask
    sizes, the last trade, and the user's working orders at their prices (rows far from the
    market are added for them). The centre moves only when the market leaves the middle half.
    """

    def __init__(
        self,
        orderbook: Any,
        orders: Any = None,
        *,
        levels: int = 10,
        fps: float = DEFAULT_FPS,
    ) -> None:
        self.levels = _positive_int("levels", levels)
        if orders is not None and not hasattr(orders, "working_orders"):
            raise TypeError(f"orders must be an OrderManager, got {type(orders).__name__}")
        super().__init__(orderbook, fps, "DomLadder")
        self.orders = orders
        self.tick = float(orderbook.tick_size)
        self._center: int | None = None
        self.widget = ipywidgets.HTML(value=_EMPTY)
        if orders is not None:
            orders.on_order_update += self._order_changed
        self._start()

    def _order_changed(self, order: Any, previous: Any) -> None:
        if order.contract_id == self.book.contract_id:
            self.throttle.mark()

    def _detach(self) -> None:
        if self.orders is not None:
            self.orders.on_order_update -= self._order_changed
        super()._detach()

    def _show_stopped(self) -> None:
        note = f'<div class="pxl-ladder">stopped: {html.escape(self.stopped or "")}</div>'
        self.widget.value = note + self.html

    def _index(self, price: float) -> int:
        return round(price / self.tick)

    def _price(self, index: int) -> float:
        return round(index * self.tick, 10)

    def rows(self) -> list[LadderRow]:
        """The ladder as it would be drawn now, highest price first."""
        book = self.book
        bid, ask = book.best_bid, book.best_ask
        last = book.last_trade
        ref = book.mid if bid is not None and ask is not None else (bid or ask)
        if ref is None and last is not None:
            ref = last.price
        mine: dict[int, list[Any]] = {}
        if self.orders is not None:
            for order in self.orders.working_orders(book.contract_id):
                price = order_price(order)
                if price is not None:
                    mine.setdefault(self._index(price), []).append(order)
        if ref is None and not mine:
            return []
        self._recenter(ref, bid, ask)
        center = self._center if self._center is not None else min(mine)
        shown = set(range(center - self.levels, center + self.levels + 1)) | set(mine)
        bids = {self._index(p): s for p, s in book.bids.items()}
        asks = {self._index(p): s for p, s in book.asks.items()}
        last_index = None if last is None else self._index(last.price)
        out: list[LadderRow] = []
        previous = None
        for i in sorted(shown, reverse=True):
            orders = mine.get(i, ())
            out.append(
                LadderRow(
                    self._price(i),
                    bids.get(i),
                    asks.get(i),
                    sum(o.size - o.fill_volume for o in orders if o.side == 0),
                    sum(o.size - o.fill_volume for o in orders if o.side == 1),
                    tuple(_order_text(o) for o in orders),
                    last.size if last is not None and i == last_index else None,
                    previous is not None and previous - i > 1,
                )
            )
            previous = i
        return out

    def _recenter(self, ref: float | None, bid: float | None, ask: float | None) -> None:
        if ref is None:
            return
        keep = max(1, self.levels // 2)
        center = self._center
        inside = center is not None and all(
            p is None or abs(self._index(p) - center) <= keep for p in (bid, ask)
        )
        if not inside:
            self._center = self._index(ref)

    def _draw(self, full: bool) -> None:
        self.html = render_ladder(self.rows(), self.book, self.tick)
        self.widget.value = self.html


def _order_text(order: Any) -> str:
    side = "BUY" if order.side == 0 else "SELL"
    return f"#{order.id} {side} {order.size - order.fill_volume} {type_code(order.type)}"


_EMPTY = '<div class="pxl-ladder">waiting for the book…</div>'
_STYLE = (
    "<style>.pxl-ladder{font:12px/1.3 ui-monospace,monospace;border-collapse:collapse}"
    ".pxl-ladder td,.pxl-ladder th{padding:1px 8px;text-align:right;border-bottom:1px solid #eee}"
    ".pxl-ladder .px{font-weight:600;text-align:center}"
    ".pxl-ladder .bid{color:#00796b}.pxl-ladder .ask{color:#c62828}"
    ".pxl-ladder .last .px{outline:2px solid #ffb300}"
    ".pxl-ladder .mine{font-weight:700}.pxl-ladder .gap td{border-top:2px dashed #bbb}"
    ".pxl-ladder caption{text-align:left;padding:2px 4px;color:#555}</style>"
)


def _size(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.12g}" if math.isfinite(value) else "?"


def _bar(value: float | None, top: float, color: str, towards: str) -> str:
    """A size bar growing from the price column (`towards` "left" for bids, "right" asks)."""
    if not value or top <= 0:
        return ""
    pct = min(100, round(100 * value / top))
    return f' style="background:linear-gradient(to {towards},{color}33 {pct}%,transparent {pct}%)"'


def render_ladder(rows: Iterable[LadderRow], book: Any, tick: float) -> str:
    """The ladder as one self-contained HTML table (escaped; `data-price` on each row)."""
    rows = list(rows)
    if not rows:
        return _EMPTY
    decimals = max(0, -Decimal(repr(tick)).normalize().as_tuple().exponent)
    top = max([r.bid or 0 for r in rows] + [r.ask or 0 for r in rows] + [1])
    last = book.last_trade
    spread = book.spread
    caption = f"{html.escape(book.contract_id)}"
    if last is not None:
        caption += f" · last {last.price:.{decimals}f} × {_size(last.size)}"
    if spread is not None:
        caption += f" · spread {spread:.{decimals}f}"
    out = [
        _STYLE,
        '<table class="pxl-ladder">',
        f"<caption>{caption}</caption>",
        "<tr><th>my buys</th><th>bid</th><th>price</th><th>ask</th><th>my sells</th></tr>",
    ]
    for r in rows:
        classes = [c for c, on in (("last", r.last is not None), ("gap", r.gap_before)) if on]
        price = f"{r.price:.{decimals}f}"
        ids = html.escape(",".join(o.split(" ", 1)[0][1:] for o in r.my_orders))
        title = html.escape("; ".join(r.my_orders))
        out.append(
            f'<tr data-price="{price}" data-orders="{ids}" class="{" ".join(classes)}"'
            f' title="{title}">'
            f'<td class="mine bid">{r.my_buy or ""}</td>'
            f'<td class="bid"{_bar(r.bid, top, _BID, "left")}>{_size(r.bid)}</td>'
            f'<td class="px">{price}</td>'
            f'<td class="ask"{_bar(r.ask, top, _ASK, "right")}>{_size(r.ask)}</td>'
            f'<td class="mine ask">{r.my_sell or ""}</td></tr>'
        )
    out.append("</table>")
    return "".join(out)
