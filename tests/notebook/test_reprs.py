"""Plain and HTML reprs of accounts, instruments, orders, bracket results, positions, trades,
the order-book snapshot and the suite's status, built from real simulator objects: they show
the trading facts, escape what they show, and never contain the session token or API key."""

from __future__ import annotations

from decimal import Decimal

from projectx_lab import Account, Order
from projectx_lab.notebook import table

from .widget_support import TIMEOUT, live_fixture  # noqa: F401  (fixture)


def both(obj: object) -> tuple[str, str]:
    return repr(obj), obj._repr_html_()  # type: ignore[attr-defined]


async def test_reprs_show_trading_facts_and_never_secrets(live) -> None:
    sim, suite = live
    client = suite.client
    cid = suite.instrument.id
    texts: list[str] = []

    account = client.account_info
    text, page = both(account)
    assert text.startswith(f"Account(#{account.id} {account.name!r}")
    assert account.name in page and "balance" in page
    texts += [text, page]

    instrument = await client.get_instrument("MNQ")
    text, page = both(instrument)
    assert cid in text and "tick=0.25" in text and "tick value" in page
    texts += [text, page]

    price = Decimal(repr(await suite.data.get_current_price())) - 300 * instrument.tick_size
    placed = await suite.orders.place_limit_order(cid, "buy", 2, price, custom_tag="my<tag>")
    order = await suite.orders.get_order(placed.order_id)
    text, page = both(order)
    assert text == (f"Order(#{order.id} BUY 2 {cid} LMT @ {price.normalize():f}, open, filled 0/2)")
    assert "my&lt;tag&gt;" in page and "my<tag>" not in page
    texts += [text, page]
    await suite.orders.cancel_order(order)

    bracket = await suite.orders.place_bracket_order(
        cid, "sell", 1, stop_loss_ticks=200, take_profit_ticks=400
    )
    text, page = both(bracket)
    assert str(bracket.stop_order_id) in page and str(bracket.target_order_id) in page
    assert "Bracket SELL 1" in page
    texts += [text, page]

    await suite.orders.wait_for_fill(bracket.entry_order_id, timeout=TIMEOUT)
    position = await suite.positions.get_position(cid)
    text, page = both(position)
    assert text.startswith(f"Position({cid} SHORT 1 @ ")
    assert "short" in page.lower()
    texts += [text, page]

    await suite.orders.flatten(cid)
    trades = await client.search_trades()
    assert trades
    text, page = both(trades[0])
    assert text.startswith(f"Trade(#{trades[0].id} ")
    texts += [text, page]

    rows = table(await client.search_orders())
    page = rows._repr_html_()
    assert page.count("<table") == 1 and str(bracket.entry_order_id) in page
    texts += [repr(rows), page]

    snapshot = suite.orderbook.get_orderbook_snapshot(5)
    text, page = both(snapshot)
    assert isinstance(snapshot, dict) and snapshot["contract_id"] == cid
    assert text.startswith(f"BookSnapshot({cid} bid={snapshot['best_bid']!r} ")
    assert "bid size" in page and "spread" in page
    texts += [text, page]

    status = suite.status()
    text, page = both(status)
    assert status["instrument"] == cid and "connected" in text and account.name in page
    texts += [text, page, repr(suite), suite._repr_html_()]
    assert "1min" in texts[-1]

    secrets = [client.session_token, sim.api_key]
    assert all(secrets)
    for secret in secrets:
        leaks = [t for t in texts if secret in t]
        assert not leaks, f"secret in repr: {leaks[0][:200]}"


def test_reprs_escape_and_handle_missing_fields() -> None:
    order = Order.from_wire(
        {
            "id": 7,
            "accountId": 1,
            "contractId": "<b>X</b>",
            "status": 42,
            "type": 2,
            "side": 1,
            "size": 3,
            "customTag": "<script>alert(1)</script>",
        }
    )
    text, page = both(order)
    assert text == "Order(#7 SELL 3 <b>X</b> MKT @ market, #42, filled 0/3)"
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;b&gt;X" in page
    assert "<table" in table([])._repr_html_() and repr(table([])) == "(none)"
    account = Account.from_wire({"id": 3, "name": "A&B", "balance": 10.5, "simulated": True})
    mixed = table([order, account, "other"])._repr_html_()
    assert mixed.count("<table") == 3 and "A&amp;B" in mixed and "&#x27;other&#x27;" in mixed
