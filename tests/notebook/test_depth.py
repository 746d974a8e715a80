"""DepthChart and DomLadder against the simulator: the depth curves equal the book's cumulative
depth, the ladder shows the user's order at its price after placement (near the market or far
from it) and drops it after cancel, it is one widget updated by one message per frame, and a
late view gets the current ladder."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal

import pytest

from projectx_lab.notebook import CandlestickChart, DepthChart, DomLadder, cell_scope, registry

from .widget_support import (  # noqa: F401  (fixtures)
    comms_fixture,
    frames_until,
    freeze,
    live_fixture,
    settle,
)


async def test_depth_chart_equals_the_books_cumulative_depth(live) -> None:
    sim, suite = live
    book = suite.orderbook
    chart = DepthChart(book, levels=8, fps=20)
    try:
        await frames_until(chart, lambda: book.best_bid is not None and chart.frames >= 2)
        freeze(sim)
        await settle(chart)
        bids = book.get_orderbook_bids(8)
        asks = book.get_orderbook_asks(8)
        bid_trace, ask_trace = chart.figure.data
        assert list(bid_trace.x) == bids["price"].to_list()[::-1]
        assert list(bid_trace.y) == bids["cumulative_size"].to_list()[::-1]
        assert list(ask_trace.x) == asks["price"].to_list()
        assert list(ask_trace.y) == asks["cumulative_size"].to_list()
        assert f"spread {book.spread:.12g}" in chart.figure.layout.title.text
    finally:
        chart.close()
    assert chart._changed not in book.on_update and chart._traded not in book.on_trade


def _row_html(html: str, price: str) -> str | None:
    match = re.search(rf'<tr data-price="{re.escape(price)}"[^>]*>.*?</tr>', html)
    return match.group(0) if match else None


async def test_ladder_shows_the_users_order_at_its_price_then_drops_it(live, comms) -> None:
    sim, suite = live
    book, cid = suite.orderbook, suite.instrument.id
    tick = suite.instrument.tick_size
    ladder = DomLadder(book, orders=suite.orders, levels=20, fps=20)
    try:
        channel = ladder.widget.comm
        await frames_until(ladder, lambda: book.best_bid is not None and ladder.frames >= 1)
        freeze(sim)  # no more trades: resting orders stay unfilled
        best_bid = Decimal(repr(book.best_bid))
        near = best_bid - 12 * tick
        far = best_bid - 80 * tick  # outside the ladder's range: added with a gap
        a = await suite.orders.place_limit_order(cid, "buy", 2, near)
        b = await suite.orders.place_limit_order(
            cid, "sell", 1, Decimal(repr(book.best_ask)) + 12 * tick
        )
        c = await suite.orders.place_limit_order(cid, "buy", 1, far)
        sell_price = (await suite.orders.get_order(b.order_id)).limit_price

        def row(price: Decimal):
            return next((r for r in ladder.rows() if r.price == float(price)), None)

        await frames_until(ladder, lambda: f'data-orders="{c.order_id}"' in ladder.widget.value)
        html = ladder.widget.value
        assert row(near).my_buy == 2 and f"#{a.order_id} BUY 2 LMT" in row(near).my_orders
        assert row(sell_price).my_sell == 1
        assert row(far).gap_before and row(far).my_buy == 1
        near_html = _row_html(html, f"{near:.2f}")
        assert near_html is not None and f'data-orders="{a.order_id}"' in near_html
        assert '<td class="mine bid">2</td>' in near_html
        assert html.count("<table") == 1  # one widget, one table

        await suite.orders.cancel_order(a.order_id)
        await frames_until(ladder, lambda: str(a.order_id) not in ladder.widget.value)
        gone = _row_html(ladder.widget.value, f"{near:.2f}")
        assert gone is None or '<td class="mine bid"></td>' in gone
        assert row(near) is None or row(near).my_buy == 0

        # one `value` message per frame at most, and a late view gets the current ladder
        values = channel.updates("value")
        assert 0 < len(values) <= ladder.frames + 1
        channel.frontend({"method": "request_state"})
        assert channel.updates("value")[-1]["value"] == ladder.widget.value
    finally:
        ladder.close()
    assert ladder._order_changed not in suite.orders.on_order_update._callbacks


async def test_ladder_marks_the_last_trade_and_recenters(live) -> None:
    sim, suite = live
    book = suite.orderbook
    ladder = DomLadder(book, levels=6, fps=20)
    try:
        await frames_until(ladder, lambda: book.last_trade is not None and ladder.frames >= 1)
        freeze(sim)
        await settle(ladder)
        rows = ladder.rows()
        assert len(rows) == 13  # 6 ticks either side of the centre
        prices = [r.price for r in rows]
        assert prices == sorted(prices, reverse=True)
        assert book.best_bid in prices and book.best_ask in prices
        last = book.last_trade
        if last.price in prices:
            marked = [r for r in rows if r.last is not None]
            assert [r.price for r in marked] == [last.price]
            assert 'class="last' in ladder.widget.value
        bid_row = next(r for r in rows if r.price == book.best_bid)
        assert bid_row.bid == book.bids[book.best_bid]
    finally:
        ladder.close()


async def test_depth_widgets_validate_and_are_replaced_on_rerun(live) -> None:
    _, suite = live
    book = suite.orderbook
    callbacks = len(book.on_update)
    with pytest.raises(ValueError, match="levels"):
        DepthChart(book, levels=0)
    with pytest.raises(ValueError, match="fps"):
        DomLadder(book, fps=-1)
    with pytest.raises(TypeError, match="OrderManager"):
        DomLadder(book, orders=object())
    assert len(book.on_update) == callbacks
    try:
        with cell_scope("ladder-cell"):
            first = DomLadder(book, orders=suite.orders)
        with cell_scope("ladder-cell"):
            second = DomLadder(book, orders=suite.orders)
        assert first.closed and not second.closed
        assert len(book.on_update) == callbacks + 1
    finally:
        registry.dispose("ladder-cell")
    assert len(book.on_update) == callbacks


async def test_a_wrong_book_is_refused_before_any_task_starts(live) -> None:
    _, suite = live
    running = asyncio.all_tasks()
    for widget in (DepthChart, DomLadder):
        with pytest.raises((TypeError, AttributeError)):  # not a book: whatever the error,
            widget(suite.data)  # no frame task may be left running
    assert [t for t in asyncio.all_tasks() - running if not t.cancelling()] == []
    with pytest.raises(TypeError, match="needs an OrderBook"):
        DepthChart(suite.data)


async def test_closed_widgets_display_as_closed(live) -> None:
    _, suite = live
    for view in (CandlestickChart(suite.data), DepthChart(suite.orderbook),
                 DomLadder(suite.orderbook)):  # fmt: skip
        view.close()
        shown = view._repr_mimebundle_()  # what showing `chart` as a cell's last line asks for
        assert shown["text/plain"].endswith(", closed)") and "closed" in shown["text/html"]
