"""Broker (matching engine + paper accounts) against a tiny in-test fake market."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from projectx_lab.sim.clock import VirtualClock
from projectx_lab.sim.config import AccountConfig, SimConfig
from projectx_lab.sim.matching import POSITION_BRACKETS_MESSAGE, Broker
from projectx_lab.sim.wire import iso

MNQ = "CON.F.US.MNQ.Z26"
MCL = "CON.F.US.MCLE.X26"
OLD = "CON.F.US.MNQ.U26"
A1, A2, LOCKED, POSMODE, LIVE, INACTIVE = range(26_000_001, 26_000_007)


@dataclass
class FakeSpec:
    """Stand-in for the catalogue's ContractSpec (same attribute names)."""

    contract_id: str
    symbol_id: str
    name: str
    tick_size: Decimal
    tick_value: Decimal
    fee_per_side: Decimal
    commission_per_side: Decimal
    active: bool = True

    @property
    def decimals(self) -> int:
        return -self.tick_size.as_tuple().exponent  # type: ignore[operator]

    def to_price(self, ticks: int) -> float:
        return float(ticks * self.tick_size)

    def to_ticks(self, price: Any) -> int | None:
        q = Decimal(str(price)) / self.tick_size
        return int(q) if q == q.to_integral_value() else None

    def wire(self) -> dict[str, Any]:
        return {"id": self.contract_id, "name": self.name, "symbolId": self.symbol_id}


@dataclass
class Book:
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]


@dataclass
class Tape:
    ts_ns: np.ndarray
    price: np.ndarray
    side: np.ndarray | None = None  # aggressor sides; None: unknown


@dataclass
class FakeMarket:
    """Fake of the *market* side: a settable book and last trade per contract."""

    specs: dict[str, FakeSpec]
    books: dict[str, Book] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)
    book_calls: int = 0
    book_from: tuple[int, Book] | None = None  # a book in force from that ns on (any contract)

    def spec(self, contract_id: str) -> FakeSpec | None:
        return self.specs.get(contract_id)

    def book(self, contract_id: str, ts_ns: int) -> Book:
        self.book_calls += 1
        if self.book_from is not None and ts_ns >= self.book_from[0]:
            return self.book_from[1]
        return self.books.get(contract_id, Book([], []))

    def last_trade(self, contract_id: str, ts_ns: int) -> tuple[int, int] | None:
        price = self.last.get(contract_id)
        return None if price is None else (ts_ns, price)

    def quote(self, cid: str, bid: int, ask: int, sizes: tuple[int, ...] = (2, 2, 2)) -> None:
        """Book of len(sizes) levels each side, one tick apart; last trade at the bid."""
        self.books[cid] = Book(
            [(bid - i, s) for i, s in enumerate(sizes)], [(ask + i, s) for i, s in enumerate(sizes)]
        )
        self.last[cid] = bid


def specs() -> dict[str, FakeSpec]:
    d = Decimal
    return {
        MNQ: FakeSpec(MNQ, "F.US.MNQ", "MNQZ6", d("0.25"), d("0.5"), d("0.37"), d("0.25")),
        MCL: FakeSpec(MCL, "F.US.MCLE", "MCLX6", d("0.01"), d("1"), d("0.51"), d("0.25")),
        OLD: FakeSpec(OLD, "F.US.MNQ", "MNQU6", d("0.25"), d("0.5"), d("0.37"), d("0.25"), False),
    }


def px(ticks: int) -> float:
    """MNQ wire price of a tick index."""
    return ticks * 0.25


class Env:
    """A broker wired to the fake market, a real virtual clock and an event recorder."""

    def __init__(self, **config: Any) -> None:
        accounts = [
            AccountConfig("PRAC-V2-SIM-1", 50_000.0),
            AccountConfig("50KTC-V2-SIM-2", 25_000.0),
            AccountConfig("PRAC-V2-SIM-LOCKED", 25_000.0, can_trade=False),
            AccountConfig("PRAC-V2-POSMODE", 50_000.0, bracket_mode="position"),
            AccountConfig("LIVE-1", 50_000.0, simulated=False),
            AccountConfig("PRAC-V2-OLD", 10_000.0, active=False),
        ]
        self.config = SimConfig(accounts=accounts, **config)
        self.market = FakeMarket(specs())
        self.market.quote(MNQ, 80_000, 80_001)
        self.clock = VirtualClock(datetime(2026, 10, 2, 14, 30, tzinfo=UTC))
        self.events: list[tuple[int, str, int, dict[str, Any]]] = []
        self.broker = Broker(self.config, self.market, self.clock, self._record)

    def _record(self, account_id: int, target: str, action: int, data: dict[str, Any]) -> None:
        self.events.append((account_id, target, action, data))

    def place(self, **fields: Any) -> tuple[int, str | None, int | None]:
        body = {"accountId": A1, "contractId": MNQ, "type": 2, "side": 0, "size": 1} | fields
        return self.broker.place(body)

    def ok(self, **fields: Any) -> int:
        code, message, oid = self.place(**fields)
        assert (code, message) == (0, None)
        assert oid is not None
        return oid

    def bracket(self, sl: int, tp: int, **fields: Any) -> tuple[int, int, int]:
        """Place an entry with a stop-loss leg `sl` and a take-profit leg `tp` (signed ticks);
        returns the family's ids (stop loss, entry, take profit)."""
        entry = self.ok(
            stopLossBracket={"ticks": sl, "type": 4},
            takeProfitBracket={"ticks": tp, "type": 1},
            **fields,
        )
        return entry - 1, entry, entry + 1

    def tape(self, *prices: int, cid: str = MNQ) -> None:
        now = self.clock.now_ns()
        n = len(prices)
        self.broker.on_tape(
            cid, Tape(np.arange(now, now + n, dtype=np.int64), np.array(prices, dtype=np.int64))
        )
        if prices:
            self.market.last[cid] = prices[-1]

    def order(self, oid: int, account: int = A1) -> dict[str, Any]:
        code, _, row = self.broker.order_by_id(account, oid)
        assert code == 0 and row is not None
        return row

    def orders(self, account: int = A1) -> list[dict[str, Any]]:
        return self.broker.search_orders(account, 0, None)[2] or []

    def open_ids(self, account: int = A1) -> list[int]:
        return [o["id"] for o in self.broker.search_open_orders(account)[2] or []]

    def positions(self, account: int = A1) -> list[dict[str, Any]]:
        return self.broker.open_positions(account)[2] or []

    def trades(self, account: int = A1) -> list[dict[str, Any]]:
        return self.broker.search_trades(account, None, None)[2] or []

    def balance(self, account: int = A1) -> float:
        return next(a["balance"] for a in self.broker.accounts() if a["id"] == account)

    def targets(self, target: str) -> list[tuple[int, dict[str, Any]]]:
        return [(action, data) for _, t, action, data in self.events if t == target]

    def order_events(self) -> list[tuple[int, int]]:
        return [(d["id"], d["status"]) for _, d in self.targets("GatewayUserOrder")]

    def snapshot(self) -> tuple[Any, ...]:
        b = self.broker
        return (
            b.accounts(),
            [self.orders(a) for a in (A1, A2)],
            [self.positions(a) for a in (A1, A2)],
            [self.trades(a) for a in (A1, A2)],
            b.working_contracts().keys(),
            # hidden state a failed call must not touch either: taken tags, id counters
            {k: set(v) for k, v in b._tags.items()},
            (b._ids.order, b._ids.trade, b._ids.position),
        )


@pytest.fixture
def env() -> Env:
    return Env()


# ---------------------------------------------------------------------------- accounts


def test_accounts_come_from_config(env: Env) -> None:
    rows = env.broker.accounts(False)
    assert [r["id"] for r in rows] == list(range(A1, INACTIVE + 1))
    assert rows[0] == {
        "id": A1,
        "name": "PRAC-V2-SIM-1",
        "balance": 50_000.0,
        "canTrade": True,
        "isVisible": True,
        "simulated": True,
    }
    assert rows[2]["canTrade"] is False
    assert rows[4]["simulated"] is False
    assert INACTIVE not in [r["id"] for r in env.broker.accounts(True)]


# ---------------------------------------------------------------------------- place validation

BAD_PLACES: list[tuple[dict[str, Any], int, str | None]] = [
    ({"accountId": 1}, 1, None),
    ({"accountId": "26000001"}, 1, None),
    ({"accountId": LOCKED}, 10, None),
    ({"contractId": "CON.F.US.NOPE.Z26"}, 8, None),
    ({"contractId": None}, 8, None),
    ({"contractId": OLD}, 9, None),
    ({"size": 0}, 2, "Invalid order size (0). Size must be greater than zero."),
    ({"size": -3}, 2, "Invalid order size (-3). Size must be greater than zero."),
    ({"size": True}, 2, "Invalid order size (True). Size must be greater than zero."),
    ({"type": 0}, 2, "Invalid order type (0)."),
    ({"type": 9}, 2, "Invalid order type (9)."),
    ({"side": 2}, 2, "Invalid order side (2). Side must be 0 (buy) or 1 (sell)."),
    ({"type": 1}, 2, "Invalid limit price"),
    (
        {"type": 1, "limitPrice": 20000.1},
        2,
        "Invalid limit price. Price is not aligned to tick size.",
    ),
    ({"type": 1, "limitPrice": "20000"}, 2, "Invalid limit price"),
    ({"type": 4}, 2, "Invalid stop price"),
    (
        {"type": 4, "stopPrice": 20010.3},
        2,
        "Invalid stop price. Price is not aligned to tick size.",
    ),
    ({"type": 4, "side": 0, "stopPrice": 19990.0}, 2, "Invalid stop price"),
    ({"type": 4, "side": 1, "stopPrice": 20010.0}, 2, "Invalid stop price"),
    ({"type": 3, "stopPrice": 20010.0}, 2, "Invalid limit price"),
    ({"type": 5, "side": 1}, 2, "Trail Distance not set."),
    (
        {"type": 5, "side": 1, "trailPrice": 19990.1},
        2,
        "Invalid trail price. Price is not aligned to tick size.",
    ),
    ({"type": 5, "side": 1, "trailPrice": 19740.0}, 2, "Trail Distance exceeds maximum (1000)"),
    ({"customTag": 5}, 2, "Invalid custom tag: it must be a string."),
    (
        {"stopLossBracket": {"ticks": 10, "type": 4}},
        2,
        "Invalid stop loss ticks (10). Ticks should be less than zero when longing.",
    ),
    (
        {"side": 1, "takeProfitBracket": {"ticks": 30, "type": 1}},
        2,
        "Invalid take profit ticks (30). Ticks should be less than zero when going short.",
    ),
    (
        {"takeProfitBracket": {"ticks": -30, "type": 1}},
        2,
        "Invalid take profit ticks (-30). Ticks should be greater than zero when longing.",
    ),
    (
        {"side": 1, "stopLossBracket": {"ticks": -50, "type": 4}},
        2,
        "Invalid stop loss ticks (-50). Stop loss tick value should be at least 4 ticks.",
    ),
    (
        {"stopLossBracket": {"ticks": -3, "type": 4}},
        2,
        "Invalid stop loss ticks (-3). Stop loss tick value should be at least 4 ticks.",
    ),
    (
        {"side": 1, "stopLossBracket": {"ticks": 2, "type": 4}},
        2,
        "Invalid stop loss ticks (2). Stop loss tick value should be at least 4 ticks.",
    ),
    ({"stopLossBracket": {"ticks": -10, "type": 1}}, 2, "Invalid stop loss type (Limit)"),
    ({"takeProfitBracket": {"ticks": 10, "type": 4}}, 2, "Invalid take profit type (Stop)"),
    (
        {"stopLossBracket": {"ticks": -10}},
        2,
        "Invalid stop loss bracket: it needs integer `ticks` and `type`.",
    ),
    (
        {"takeProfitBracket": [10, 1]},
        2,
        "Invalid take profit bracket: it needs integer `ticks` and `type`.",
    ),
]


@pytest.mark.parametrize(("fields", "code", "message"), BAD_PLACES)
def test_place_rejections_have_gateway_codes_and_change_nothing(
    env: Env, fields: dict[str, Any], code: int, message: str | None
) -> None:
    env.ok(type=1, limitPrice=19990.0)  # some prior state
    before, n_events = env.snapshot(), len(env.events)
    assert env.place(**fields) == (code, message, None)
    assert env.snapshot() == before
    assert len(env.events) == n_events


def test_trailing_stop_needs_a_last_price(env: Env) -> None:
    del env.market.last[MNQ]
    assert env.place(type=5, side=1, trailPrice=19990.0) == (
        2,
        "Cannot trail without a last price",
        None,
    )


def test_place_rejects_a_non_object_body(env: Env) -> None:
    code, message, oid = env.broker.place([1, 2])  # type: ignore[arg-type]
    assert (code, oid) == (2, None)
    assert message


def test_custom_tag_unique_within_account_only(env: Env) -> None:
    env.ok(type=1, limitPrice=19990.0, customTag="x1")
    assert env.place(type=1, limitPrice=19990.0, customTag="x1") == (
        2,
        "Invalid custom tag (x1). It must be unique within the account.",
        None,
    )
    env.ok(accountId=A2, type=1, limitPrice=19990.0, customTag="x1")
    # bracket children take `X-SL` / `X-TP`, which then collide too
    env.ok(customTag="b", stopLossBracket={"ticks": -10, "type": 4})
    assert env.place(customTag="b-SL")[0] == 2
    assert env.place(customTag="a", stopLossBracket={"ticks": -10, "type": 4})[0] == 0
    env.ok(type=1, limitPrice=19990.0, customTag="c-TP")
    assert env.place(customTag="c", takeProfitBracket={"ticks": 10, "type": 1}) == (
        2,
        "Invalid custom tag (c-TP). It must be unique within the account.",
        None,
    )


def test_position_brackets_mode_rejects_with_an_order_id(env: Env) -> None:
    code, message, oid = env.place(accountId=POSMODE, stopLossBracket={"ticks": -10, "type": 4})
    assert (code, message) == (2, POSITION_BRACKETS_MESSAGE)
    assert oid is not None
    row = env.order(oid, POSMODE)
    assert row["status"] == 5 and row["fillVolume"] == 0
    assert env.positions(POSMODE) == []
    assert env.targets("GatewayUserTrade") == []
    # the same order without brackets is accepted in that mode
    assert env.place(accountId=POSMODE)[0] == 0


def test_rejected_order_event_is_status_5_terminal(env: Env) -> None:
    _, _, oid = env.place(accountId=POSMODE, takeProfitBracket={"ticks": 10, "type": 1})
    [(account, target, action, data)] = env.events
    assert (account, target, action) == (POSMODE, "GatewayUserOrder", 2)
    assert data["id"] == oid and data["status"] == 5 and data["fillVolume"] == 0


# ---------------------------------------------------------------------------- market orders


def test_market_order_pending_then_filled_with_fill_events(env: Env) -> None:
    oid = env.ok(side=0, size=1, customTag="lab-1")
    targets = [(t, a) for _, t, a, _ in env.events]
    assert targets == [
        ("GatewayUserOrder", 1),
        ("GatewayUserOrder", 2),
        ("GatewayUserTrade", 0),
        ("GatewayUserPosition", 1),
        ("GatewayUserAccount", 1),
    ]
    pending, filled = (d for _, d in env.targets("GatewayUserOrder"))
    assert pending["status"] == 6 and "filledPrice" not in pending and "limitPrice" not in pending
    assert (
        filled["status"] == 2 and filled["fillVolume"] == 1 and filled["filledPrice"] == px(80_001)
    )
    assert filled["customTag"] == "lab-1"
    row = env.order(oid)
    assert row["limitPrice"] is None and row["stopPrice"] is None  # REST rows keep null keys
    assert row["symbolId"] == "F.US.MNQ" and row["type"] == 2 and row["side"] == 0
    assert row["creationTimestamp"].endswith("+00:00")
    [trade] = env.trades()
    assert trade == {
        "id": trade["id"],
        "accountId": A1,
        "contractId": MNQ,
        "creationTimestamp": trade["creationTimestamp"],
        "price": px(80_001),
        "profitAndLoss": None,
        "fees": 0.37,
        "commissions": 0.25,
        "side": 0,
        "size": 1,
        "voided": False,
        "orderId": oid,
    }
    assert env.balance() == pytest.approx(50_000 - 0.62)


def test_market_order_walks_the_book_and_averages(env: Env) -> None:
    oid = env.ok(side=0, size=5)
    row = env.order(oid)
    assert row["fillVolume"] == 5
    assert row["filledPrice"] == pytest.approx((2 * 80_001 + 2 * 80_002 + 80_003) * 0.25 / 5)
    assert [(t["price"], t["size"]) for t in reversed(env.trades())] == [
        (px(80_001), 2),
        (px(80_002), 2),
        (px(80_003), 1),
    ]
    [pos] = env.positions()
    assert pos["size"] == 5 and pos["type"] == 1
    assert pos["averagePrice"] == pytest.approx(row["filledPrice"])


def test_market_order_thin_book_fills_rest_at_last_level(env: Env) -> None:
    oid = env.ok(side=1, size=10)
    assert [(t["price"], t["size"]) for t in reversed(env.trades())] == [
        (px(80_000), 2),
        (px(79_999), 2),
        (px(79_998), 6),
    ]
    assert env.order(oid)["status"] == 2


def test_market_order_with_empty_book_uses_last_trade_or_rejects(env: Env) -> None:
    env.market.books[MNQ] = Book([], [])
    env.ok(side=0, size=1)
    assert env.trades()[0]["price"] == px(80_000)
    del env.market.last[MNQ]
    assert env.place(side=0, size=1) == (2, "Invalid symbol", None)


# ---------------------------------------------------------------------------- limits


def test_resting_limit_fills_on_trade_through_not_touch(env: Env) -> None:
    oid = env.ok(type=1, side=0, limitPrice=px(79_990))
    assert env.order(oid)["status"] == 1
    assert env.order_events() == [(oid, 1)]
    assert env.open_ids() == [oid]
    assert env.broker.working_contracts().keys() == {MNQ}
    env.tape(79_995, 79_990, 79_991)
    assert env.order(oid)["status"] == 1
    env.tape(79_989)
    row = env.order(oid)
    assert row["status"] == 2 and row["filledPrice"] == px(79_990)
    assert env.broker.working_contracts().keys() == set()
    assert env.open_ids() == []


def test_a_halted_market_refuses_orders_and_closes_and_fills_nothing(env: Env) -> None:
    oid = env.ok(type=1, side=0, limitPrice=px(79_990))
    env.ok(type=2, side=0, size=2)  # long 2 before the halt
    env.broker.halt(MNQ, True)
    env.tape(79_980)  # trades through the resting buy while out of session
    assert env.order(oid)["status"] == 1
    assert env.place(type=2) == (5, None, None)  # OutsideTradingHours
    assert env.broker.close_position(A1, MNQ) == (5, None, None)  # OrderRejected, no text
    assert env.broker.partial_close(A1, MNQ, 1) == (6, None, None)
    assert env.positions()[0]["size"] == 2
    modified = env.broker.modify({"accountId": A1, "orderId": oid, "limitPrice": px(80_001)})
    assert modified == (0, None, None)  # a marketable price is kept, but nothing fills
    assert env.order(oid)["status"] == 1 and env.positions()[0]["size"] == 2
    env.broker.halt(None, False)
    env.tape(79_980)
    assert env.order(oid)["status"] == 2


def test_a_print_that_brings_the_offer_down_to_a_resting_bid_fills_it(env: Env) -> None:
    # A sell hitting bids at our price leaves us in the queue; a buy at our price means the
    # offer came down to our bid, which would lock the book: we are filled at our price.
    oid = env.ok(type=1, side=0, limitPrice=px(79_995))
    now = env.clock.now_ns()

    def prints(side: int) -> None:
        env.broker.on_tape(
            MNQ, Tape(np.array([now + 1]), np.array([79_995]), np.array([side], np.int8))
        )

    prints(1)
    assert env.order(oid)["status"] == 1
    prints(0)
    row = env.order(oid)
    assert row["status"] == 2 and row["filledPrice"] == px(79_995)


def test_liquidity_taken_stays_taken_until_the_book_changes(env: Env) -> None:
    # Three 2-lot market buys at one instant walk the asks like one 6-lot order would.
    for _ in range(3):
        env.ok(type=2, side=0, size=2)
    fills = sorted((t["price"], t["size"]) for t in env.trades())
    assert fills == [(px(80_001), 2), (px(80_002), 2), (px(80_003), 2)]
    env.ok(type=2, side=0, size=1)  # the asks are gone: the rest prices at the deepest level
    assert env.trades()[0]["price"] == px(80_003)
    env.market.quote(MNQ, 80_000, 80_001, (3, 3, 3))  # a new book (next sample or a trade)
    env.ok(type=2, side=0, size=1)
    assert env.trades()[0]["price"] == px(80_001)


def test_fill_on_touch_fills_at_the_limit() -> None:
    env = Env(fill_on_touch=True)
    oid = env.ok(type=1, side=1, limitPrice=px(80_010))
    env.tape(80_005, 80_010)
    assert env.order(oid)["status"] == 2
    assert env.trades()[0]["price"] == px(80_010)


def test_marketable_limit_takes_book_up_to_price_then_rests(env: Env) -> None:
    oid = env.ok(type=1, side=0, size=5, limitPrice=px(80_002))
    row = env.order(oid)
    assert row["status"] == 1 and row["fillVolume"] == 4
    assert [s for _, s in env.order_events()] == [6, 1]
    assert env.open_ids() == [oid]
    env.tape(80_001)
    row = env.order(oid)
    assert row["status"] == 2 and row["fillVolume"] == 5
    assert row["filledPrice"] == pytest.approx((2 * 80_001 + 3 * 80_002) * 0.25 / 5)


def test_trades_older_than_an_order_do_not_fill_it(env: Env) -> None:
    old = env.clock.now_ns() - 1_000
    oid = env.ok(type=1, side=0, limitPrice=px(79_990))
    env.broker.on_tape(MNQ, Tape(np.array([old], dtype=np.int64), np.array([79_000])))
    assert env.order(oid)["status"] == 1


def test_join_bid_and_join_ask_rest_at_the_touch(env: Env) -> None:
    bid = env.ok(type=6, side=0)
    ask = env.ok(type=7, side=1)
    assert env.order(bid)["limitPrice"] == px(80_000) and env.order(bid)["status"] == 1
    assert env.order(ask)["limitPrice"] == px(80_001) and env.order(ask)["status"] == 1
    env.market.books[MNQ] = Book([], [(80_001, 1)])
    assert env.place(type=6, side=0) == (2, "Cannot join the bid: the book has no bids.", None)


# ---------------------------------------------------------------------------- stops


def test_stop_triggers_at_the_stop_and_fills_at_the_book(env: Env) -> None:
    oid = env.ok(type=4, side=1, size=3, stopPrice=px(79_990))
    assert env.order(oid)["status"] == 1 and env.order(oid)["stopPrice"] == px(79_990)
    env.tape(79_995, 79_991)
    assert env.order(oid)["status"] == 1
    env.market.quote(MNQ, 79_989, 79_990)
    env.tape(79_990)
    row = env.order(oid)
    assert row["status"] == 2
    assert [(t["price"], t["size"]) for t in reversed(env.trades())] == [
        (px(79_989), 2),
        (px(79_988), 1),
    ]


def test_stop_fires_into_the_book_its_triggering_trade_left(env: Env) -> None:
    # One print gaps through a sell stop, stamped between two wire ticks (100 ns): the stop
    # sells into the book after that print, never the better book before it.
    oid = env.ok(type=4, side=1, stopPrice=px(79_990))
    now = env.clock.now_ns()
    stamp = now - now % 100 + 150
    env.market.book_from = (stamp, Book([(79_950, 5)], [(79_951, 5)]))
    env.broker.on_tape(MNQ, Tape(np.array([stamp]), np.array([79_950])))
    assert env.order(oid)["status"] == 2
    assert [t["price"] for t in env.trades()] == [px(79_950)]


def test_stop_limit_becomes_a_limit_when_triggered(env: Env) -> None:
    oid = env.ok(type=3, side=0, stopPrice=px(80_010), limitPrice=px(80_011))
    env.market.quote(MNQ, 80_012, 80_013)  # gapped above the limit: nothing to take
    env.tape(80_012)
    row = env.order(oid)
    assert row["status"] == 1 and row["fillVolume"] == 0
    env.tape(80_011)  # touch only
    assert env.order(oid)["status"] == 1
    env.tape(80_010)
    row = env.order(oid)
    assert row["status"] == 2 and row["filledPrice"] == px(80_011)


def test_stop_limit_triggered_into_a_marketable_book_fills_immediately(env: Env) -> None:
    oid = env.ok(type=3, side=1, stopPrice=px(79_990), limitPrice=px(79_989))
    env.market.quote(MNQ, 79_990, 79_991)
    env.tape(79_990)
    assert env.order(oid)["status"] == 2
    assert env.trades()[0]["price"] == px(79_990)


def test_trailing_stop_distance_readback_follow_and_trigger(env: Env) -> None:
    # last 80000; a sell trail level 10.25 points below -> 41 ticks, fixed
    oid = env.ok(type=5, side=1, trailPrice=px(80_000 - 41))
    row = env.order(oid)
    assert row["trailDistance"] == 41
    assert row["trailPrice"] == pytest.approx(41 * 0.25)
    assert row["stopPrice"] == px(80_000 - 41)
    env.tape(80_010, 80_030, 80_020)
    assert env.order(oid)["stopPrice"] == px(80_030 - 41)
    moved = [d for _, d in env.targets("GatewayUserOrder") if d["id"] == oid]
    assert moved[-1]["stopPrice"] == px(80_030 - 41)
    env.tape(80_000, 79_990)
    assert env.order(oid)["status"] == 1
    env.tape(80_030 - 41)
    assert env.order(oid)["status"] == 2


def test_buy_trailing_stop_follows_lows(env: Env) -> None:
    oid = env.ok(type=5, side=0, trailPrice=px(80_010))  # 10 ticks
    env.tape(79_990, 79_995)
    assert env.order(oid)["stopPrice"] == px(80_000)
    env.tape(80_000)
    assert env.order(oid)["status"] == 2


# ---------------------------------------------------------------------------- brackets (§7)


def _bracket_short(env: Env) -> tuple[int, int, int]:
    oid = env.ok(
        side=1,
        customTag="lab-7",
        stopLossBracket={"ticks": 101, "type": 4},
        takeProfitBracket={"ticks": -99, "type": 1},
    )
    return oid - 1, oid, oid + 1


def test_bracket_family_ids_events_tags_and_links(env: Env) -> None:
    sl, entry, tp = _bracket_short(env)
    assert 3_500_000_000 < sl < 2**63
    assert env.order_events() == [(sl, 8), (entry, 6), (tp, 8), (entry, 2), (tp, 1), (sl, 1)]
    first_three = [d for _, d in env.targets("GatewayUserOrder")[:3]]
    for d in (first_three[0], first_three[2]):
        assert "limitPrice" not in d and "stopPrice" not in d and "filledPrice" not in d
    rows = {o["id"]: o for o in env.orders()}
    assert [o["id"] for o in env.orders()] == [sl, entry, tp]
    assert len({rows[i]["creationTimestamp"] for i in (sl, entry, tp)}) == 1
    s, e, t = rows[sl], rows[entry], rows[tp]
    assert (s["customTag"], t["customTag"]) == ("lab-7-SL", "lab-7-TP")
    assert (s["type"], s["side"], s["size"]) == (4, 0, 1)
    assert (t["type"], t["side"], t["size"]) == (1, 0, 1)
    assert s["parentOrderId"] == entry and t["parentOrderId"] == entry
    assert t["linkedOrderId"] == sl and s["linkedOrderId"] is None
    assert (s["trailDistance"], s["trailPrice"]) == (101, 25.25)
    assert (t["trailDistance"], t["trailPrice"]) == (-99, -24.75)
    assert e["filledPrice"] == 20_000.0
    assert s["status"] == t["status"] == 1
    assert s["stopPrice"] == 20_025.25 and t["limitPrice"] == 19_975.25
    assert e["parentOrderId"] is None and e["customTag"] == "lab-7"


def test_suspended_children_are_priceless_and_hidden_from_search_open(env: Env) -> None:
    sl, entry, tp = env.bracket(-8, 16, type=1, side=0, limitPrice=px(79_990))
    assert env.open_ids() == [entry]
    rows = {o["id"]: o for o in env.orders()}
    assert rows[sl]["status"] == rows[tp]["status"] == 8
    assert rows[sl]["stopPrice"] is None and rows[tp]["limitPrice"] is None
    assert rows[tp]["customTag"] is None  # entry without tag -> children without tag
    v2 = env.broker.query_orders_v2({"filter": {"accountId": A1}})[2]["orders"]
    assert [o["id"] for o in v2] == [entry]
    both = env.broker.query_orders_v2({"filter": {"accountId": A1, "statuses": [1, 8]}})[2]
    assert sorted(o["id"] for o in both["orders"]) == [sl, entry, tp]
    # entry fills on the tape -> children open from the fill price
    env.tape(79_989)
    assert env.order(sl)["stopPrice"] == px(79_982)
    assert env.order(tp)["limitPrice"] == px(80_006)
    assert sorted(env.open_ids()) == [sl, tp]


@pytest.mark.parametrize("leg", ["tp", "sl"])
def test_oco_one_leg_fills_the_other_is_cancelled(env: Env, leg: str) -> None:
    sl, _, tp = env.bracket(-8, 8, side=0)
    fill = 80_001  # long at the ask
    if leg == "tp":
        env.tape(fill + 9)
        assert env.order(tp)["status"] == 2 and env.order(sl)["status"] == 3
        assert env.order(tp)["filledPrice"] == px(fill + 8)
    else:
        env.market.quote(MNQ, fill - 9, fill - 8)
        env.tape(fill - 8)
        assert env.order(sl)["status"] == 2 and env.order(tp)["status"] == 3
    assert env.positions() == []
    assert env.broker.working_contracts().keys() == set()
    cancel_events = [a for a, d in env.targets("GatewayUserOrder") if d["status"] == 3]
    assert cancel_events == [2]


def test_a_leg_filling_partly_shrinks_the_other_instead_of_cancelling_it(env: Env) -> None:
    env.market.quote(MNQ, 80_000, 80_001, sizes=(10, 10, 10))
    sl, _, tp = env.bracket(-20, 20, side=0, size=10)
    env.market.quote(MNQ, 80_000, 80_001, sizes=(4, 4, 4))  # 4 lots bid at the new target
    assert env.broker.modify({"accountId": A1, "orderId": tp, "limitPrice": px(80_000)})[0] == 0
    assert env.order(tp)["fillVolume"] == 4 and env.positions()[0]["size"] == 6
    stop = env.order(sl)
    assert stop["status"] == 1 and stop["size"] == 6, "the rest of the position lost its stop"
    env.market.quote(MNQ, 79_980, 79_981, sizes=(10, 10, 10))
    env.tape(79_981)  # the stop fires for what is left
    assert env.order(sl)["status"] == 2 and env.order(tp)["status"] == 3
    assert env.positions() == []


def test_modify_or_cancel_one_child_leaves_the_other(env: Env) -> None:
    sl, _, tp = env.bracket(-8, 8, side=0)
    assert env.broker.modify({"accountId": A1, "orderId": tp, "limitPrice": px(80_020)}) == (
        0,
        None,
        None,
    )
    assert env.order(tp)["limitPrice"] == px(80_020)
    assert env.order(sl)["stopPrice"] == px(80_001 - 8) and env.order(sl)["status"] == 1
    assert env.broker.cancel(A1, sl) == (0, None, None)
    assert env.order(sl)["status"] == 3 and env.order(tp)["status"] == 1
    env.tape(80_021)
    assert env.order(tp)["status"] == 2


def test_close_position_leaves_children_and_partial_exit_keeps_their_size(env: Env) -> None:
    sl, _, tp = env.bracket(-8, 8, side=0, size=3)
    assert env.broker.partial_close(A1, MNQ, 1) == (0, None, None)
    assert env.order(sl)["size"] == 3 and env.order(tp)["size"] == 3
    assert env.broker.close_position(A1, MNQ) == (0, None, None)
    assert env.positions() == []
    assert env.order(sl)["status"] == 1 and env.order(tp)["status"] == 1
    # the orphan target later opens a naked short, as on the real gateway
    env.tape(80_010)
    [pos] = env.positions()
    assert (pos["type"], pos["size"]) == (2, 3)
    assert env.order(sl)["status"] == 3


def test_cancelling_an_unfilled_entry_cancels_its_suspended_children(env: Env) -> None:
    _, entry, _ = env.bracket(-8, 8, type=1, limitPrice=px(79_990))
    env.events.clear()
    assert env.broker.cancel(A1, entry) == (0, None, None)
    assert env.order_events() == [(entry, 3), (entry - 1, 3), (entry + 1, 3)]
    assert all(a == 2 for a, _ in env.targets("GatewayUserOrder"))
    assert env.broker.working_contracts().keys() == set()


def test_cancelled_child_does_not_activate_on_entry_fill(env: Env) -> None:
    _, entry, _ = env.bracket(-8, 8, type=1, limitPrice=px(79_990))
    assert env.broker.cancel(A1, entry + 1) == (0, None, None)
    assert env.order(entry - 1)["status"] == 8
    env.tape(79_980)
    assert env.order(entry - 1)["status"] == 1
    assert env.order(entry + 1)["status"] == 3


def test_single_leg_bracket_and_trailing_stop_loss_leg(env: Env) -> None:
    entry = env.ok(side=0, stopLossBracket={"ticks": -10, "type": 5})
    sl = entry - 1
    row = env.order(sl)
    assert row["type"] == 5 and row["stopPrice"] == px(80_001 - 10)
    assert row["linkedOrderId"] is None and row["parentOrderId"] == entry
    env.tape(80_020)
    assert env.order(sl)["stopPrice"] == px(80_010)
    env.market.quote(MNQ, 80_010, 80_011)
    env.tape(80_010)
    assert env.order(sl)["status"] == 2
    assert env.positions() == []


def test_resizing_an_unfilled_entry_resizes_suspended_children(env: Env) -> None:
    entry = env.ok(type=1, limitPrice=px(79_990), takeProfitBracket={"ticks": 8, "type": 1})
    assert env.broker.modify({"accountId": A1, "orderId": entry, "size": 4})[0] == 0
    assert env.order(entry + 1)["size"] == 4


def test_suspended_child_cannot_be_modified(env: Env) -> None:
    entry = env.ok(type=1, limitPrice=px(79_990), takeProfitBracket={"ticks": 8, "type": 1})
    code, message, _ = env.broker.modify({"accountId": A1, "orderId": entry + 1, "size": 2})
    assert code == 3 and message is not None and "suspended" in message


# ---------------------------------------------------------------------------- modify / cancel


def test_modify_codes_and_messages(env: Env) -> None:
    lim = env.ok(type=1, limitPrice=px(79_990))
    stop = env.ok(type=4, side=1, stopPrice=px(79_980))
    trail = env.ok(type=5, side=1, trailPrice=px(79_990))
    done = env.ok()
    mod = env.broker.modify
    grid = "Price is not aligned to tick size."
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({"accountId": 1, "orderId": lim}, 1, None),
        ({"accountId": A1, "orderId": 42}, 2, None),
        ({"accountId": A2, "orderId": lim}, 2, None),
        ({"orderId": done, "size": 2}, 3, f"Cannot modify order {done}: it is already Filled."),
        ({"orderId": lim, "limitPrice": 19_990.1}, 3, f"Invalid limit price. {grid}"),
        ({"orderId": stop, "stopPrice": 19_990.1}, 3, f"Invalid stop price. {grid}"),
        ({"orderId": stop, "stopPrice": px(80_005)}, 3, "Invalid stop price"),
        ({"orderId": trail, "trailPrice": 19_990.1}, 3, f"Invalid trail price. {grid}"),
        ({"orderId": lim, "stopPrice": 1.0}, 3, "stopPrice does not apply to a Limit order."),
        ({"orderId": stop, "limitPrice": 1.0}, 3, "limitPrice does not apply to a Stop order."),
        ({"orderId": lim, "trailPrice": 1.0}, 3, "trailPrice does not apply to a Limit order."),
        ({"orderId": lim, "size": 0}, 3, "Invalid order size (0). Size must be greater than zero."),
        (
            {"orderId": lim, "size": "2"},
            3,
            "Invalid order size ('2'). Size must be greater than zero.",
        ),
    ]
    before, n_events = env.snapshot(), len(env.events)
    for body, code, message in cases:
        assert mod({"accountId": A1} | body) == (code, message, None), body
    assert env.snapshot() == before and len(env.events) == n_events
    del env.market.last[MNQ]
    assert mod({"accountId": A1, "orderId": trail, "trailPrice": px(79_990)}) == (
        3,
        "Cannot trail without a last price",
        None,
    )


def test_modify_on_locked_account_is_account_rejected() -> None:
    env = Env()
    oid = env.ok(type=1, limitPrice=px(79_990))
    env.broker._accounts[A1].can_trade = False  # the firm locks the account mid-session
    assert env.broker.modify({"accountId": A1, "orderId": oid, "size": 2}) == (6, None, None)


def test_modify_applies_and_a_marketable_limit_fills(env: Env) -> None:
    oid = env.ok(type=1, side=0, size=2, limitPrice=px(79_990))
    env.events.clear()
    assert env.broker.modify({"accountId": A1, "orderId": oid, "size": 3})[0] == 0
    assert env.order(oid)["size"] == 3
    assert env.broker.modify({"accountId": A1, "orderId": oid, "limitPrice": px(80_001)})[0] == 0
    row = env.order(oid)
    assert row["limitPrice"] == px(80_001) and row["fillVolume"] == 2 and row["status"] == 1
    assert [s for _, s in env.order_events()] == [1, 1, 1]


def test_modify_trailing_stop_recomputes_distance_without_maximum(env: Env) -> None:
    oid = env.ok(type=5, side=1, trailPrice=px(79_990))
    assert env.broker.modify({"accountId": A1, "orderId": oid, "trailPrice": px(78_000)})[0] == 0
    row = env.order(oid)
    assert row["trailDistance"] == 2_000 and row["stopPrice"] == px(78_000)


def test_modify_stop_moves_it(env: Env) -> None:
    oid = env.ok(type=4, side=0, stopPrice=px(80_010))
    assert env.broker.modify({"accountId": A1, "orderId": oid, "stopPrice": px(80_020)})[0] == 0
    env.tape(80_015)
    assert env.order(oid)["status"] == 1
    env.tape(80_020)
    assert env.order(oid)["status"] == 2


def test_cancel_codes(env: Env) -> None:
    oid = env.ok(type=1, limitPrice=px(79_990))
    done = env.ok()
    assert env.broker.cancel(1, oid) == (1, None, None)
    assert env.broker.cancel(A2, oid) == (2, None, None)
    assert env.broker.cancel(A1, 3) == (2, None, None)
    assert env.broker.cancel(A1, done) == (
        3,
        f"Cannot cancel order {done}: it is already Filled.",
        None,
    )
    assert env.broker.cancel(LIVE, oid) == (6, "Live accounts not supported", None)
    env.events.clear()
    assert env.broker.cancel(A1, oid) == (0, None, None)
    assert env.events[0][1:3] == ("GatewayUserOrder", 2)
    assert env.order(oid)["status"] == 3
    assert env.broker.cancel(A1, oid) == (
        3,
        f"Cannot cancel order {oid}: it is already Cancelled.",
        None,
    )
    assert env.broker.working_contracts().keys() == set()


def test_locked_account_can_still_cancel(env: Env) -> None:
    oid = env.ok(type=1, limitPrice=px(79_990))
    env.broker._accounts[A1].can_trade = False
    assert env.broker.cancel(A1, oid) == (0, None, None)


# ---------------------------------------------------------------------------- positions and P&L


def test_scale_in_out_fifo_pnl_fees_and_balance(env: Env) -> None:
    env.ok(side=0, size=1)  # buy 1 @ 80001
    env.market.quote(MNQ, 80_010, 80_011)
    env.ok(side=0, size=1)  # buy 1 @ 80011
    [pos] = env.positions()
    assert pos["size"] == 2 and pos["averagePrice"] == px(80_006)
    pos_id = pos["id"]
    env.market.quote(MNQ, 80_020, 80_021)
    env.ok(side=1, size=1)  # sell 1 @ 80020 vs oldest lot 80001: +19 ticks = 9.5
    [pos] = env.positions()
    assert pos["id"] == pos_id and pos["size"] == 1 and pos["averagePrice"] == px(80_011)
    close = env.trades()[0]
    assert close["profitAndLoss"] == 9.5 and close["side"] == 1
    env.ok(side=1, size=1)  # +9 ticks = 4.5
    assert env.positions() == []
    assert env.trades()[0]["profitAndLoss"] == 4.5
    assert env.balance() == pytest.approx(50_000 + 14 - 4 * 0.62)
    flat = env.targets("GatewayUserPosition")[-1]
    assert flat[0] == 2
    assert flat[1] | {"creationTimestamp": None} == {
        "id": pos_id,
        "accountId": A1,
        "contractId": MNQ,
        "contractDisplayName": "MNQZ26",
        "creationTimestamp": None,
        "type": 0,
        "size": 0,
        "averagePrice": px(80_011),
    }
    accounts = [d["balance"] for _, d in env.targets("GatewayUserAccount")]
    assert accounts[-1] == env.balance() and len(accounts) == 4


def test_flip_through_zero_closes_then_opens(env: Env) -> None:
    env.ok(side=0, size=2)  # long 2 @ 80001
    [old] = env.positions()
    env.market.quote(MNQ, 79_990, 79_991, sizes=(10, 10, 10))
    env.ok(side=1, size=5)  # sell 5 @ 79990: close 2 (-11 ticks each) and open short 3
    [pos] = env.positions()
    assert (pos["type"], pos["size"], pos["averagePrice"]) == (2, 3, px(79_990))
    assert pos["id"] != old["id"]
    close, opening = env.trades()[1], env.trades()[0]
    assert (close["size"], close["profitAndLoss"]) == (2, -11.0)
    assert (opening["size"], opening["profitAndLoss"]) == (3, None)
    assert [(a, d["type"], d["size"]) for a, d in env.targets("GatewayUserPosition")][-2:] == [
        (2, 0, 0),
        (1, 2, 3),
    ]


def test_pnl_uses_tick_value_per_contract(env: Env) -> None:
    env.market.quote(MCL, 7_000, 7_001)
    env.ok(contractId=MCL, side=1, size=2)  # short 2 @ 70.00
    env.market.quote(MCL, 6_990, 6_991)
    env.ok(contractId=MCL, side=0, size=2)  # cover @ 69.91: +9 ticks x $1 x 2
    assert env.trades()[0]["profitAndLoss"] == 18.0
    assert env.trades()[0]["fees"] == pytest.approx(1.02)


def test_position_ids_and_shape(env: Env) -> None:
    env.ok()
    [pos] = env.positions()
    assert 830_000_000 < pos["id"] < 2**31
    assert set(pos) == {
        "id",
        "accountId",
        "contractId",
        "contractDisplayName",
        "creationTimestamp",
        "type",
        "size",
        "averagePrice",
    }


def test_close_position_codes(env: Env) -> None:
    close = env.broker.close_position
    assert close(1, MNQ) == (1, None, None)
    assert close(A1, MNQ) == (2, None, None)
    assert close(A1, "CON.F.US.NOPE.Z26") == (3, None, None)
    assert close(A1, OLD) == (4, None, None)
    assert close(LOCKED, MNQ) == (8, None, None)
    env.ok(side=1, size=2)
    env.events.clear()
    assert close(A1, MNQ) == (0, None, None)
    orders = env.orders()
    closer = orders[-1]
    assert (closer["type"], closer["side"], closer["size"], closer["status"]) == (2, 0, 2, 2)
    assert closer["customTag"] is None
    assert env.positions() == []
    assert [s for _, s in env.order_events()] == [6, 2]


def test_close_position_without_any_price_is_order_rejected(env: Env) -> None:
    env.ok(side=0, size=1)
    env.market.books[MNQ] = Book([], [])
    del env.market.last[MNQ]
    before = env.snapshot()
    assert env.broker.close_position(A1, MNQ) == (5, None, None)
    assert env.broker.partial_close(A1, MNQ, 1) == (6, None, None)
    assert env.snapshot() == before


def test_partial_close_codes_and_effect(env: Env) -> None:
    part = env.broker.partial_close
    assert part(1, MNQ, 1) == (1, None, None)
    assert part(A1, MNQ, 1) == (2, None, None)
    assert part(A1, "CON.F.US.NOPE.Z26", 1) == (3, None, None)
    assert part(A1, OLD, 1) == (4, None, None)
    assert part(LOCKED, MNQ, 1) == (9, None, None)
    assert part(LIVE, MNQ, 1) == (9, "Live accounts not supported", None)
    env.ok(side=0, size=3)
    before = env.snapshot()
    for bad in (0, -1, 4):
        assert part(A1, MNQ, bad) == (5, None, None)
    assert env.snapshot() == before
    assert part(A1, MNQ, 2) == (0, None, None)
    [pos] = env.positions()
    assert pos["size"] == 1


# ---------------------------------------------------------------------------- searches


def test_search_orders_window_and_order(env: Env) -> None:
    a = env.ok(type=1, limitPrice=px(79_990))
    mid = env.clock.now_ns()
    while env.clock.now_ns() == mid:
        pass
    b = env.ok(type=1, limitPrice=px(79_980))
    assert [o["id"] for o in env.broker.search_orders(A1, 0, None)[2] or []] == [a, b]
    assert [o["id"] for o in env.broker.search_orders(A1, mid + 1, None)[2] or []] == [b]
    assert [o["id"] for o in env.broker.search_orders(A1, 0, mid)[2] or []] == [a]
    assert env.broker.search_orders(999, 0, None) == (1, None, None)
    assert env.broker.search_open_orders(999) == (1, None, None)
    assert env.broker.order_by_id(A2, a) == (1, None, None)
    assert env.broker.order_by_id(A1, 1) == (1, None, None)
    assert env.broker.open_positions(999) == (1, None, None)
    assert env.broker.search_trades(999) == (1, None, None)


def test_search_trades_newest_first_and_window(env: Env) -> None:
    env.ok()
    t0 = env.clock.now_ns()
    while env.clock.now_ns() == t0:
        pass
    env.ok(side=1)
    rows = env.trades()
    assert rows[0]["side"] == 1 and rows[1]["side"] == 0
    assert rows[0]["id"] > rows[1]["id"]
    only_late = env.broker.search_trades(A1, t0 + 1, None)[2] or []
    assert [r["side"] for r in only_late] == [1]


def test_query_orders_v2_filters_sort_paging(env: Env) -> None:
    ids = [env.ok(type=1, limitPrice=px(79_990 - i)) for i in range(5)]
    env.broker.cancel(A1, ids[0])
    env.market.quote(MCL, 7_000, 7_001)
    mcl = env.ok(contractId=MCL, type=1, limitPrice=69.0)
    q = env.broker.query_orders_v2
    code, _, page = q({"filter": {"accountId": A1}})
    assert code == 0 and [o["id"] for o in page["orders"]] == [mcl, *reversed(ids)]
    assert page["totalCount"] is None
    _, _, page = q({"filter": {"accountId": A1, "statuses": [1], "contractId": MNQ},
                    "pageSize": 2, "pageOffset": 1, "sortBy": 1, "sortDirection": 0,
                    "includeTotalCount": True})  # fmt: skip
    assert [o["id"] for o in page["orders"]] == ids[2:4] and page["totalCount"] == 4
    created = env.order(ids[2])["creationTimestamp"]
    _, _, page = q({"filter": {"accountId": A1, "createdBefore": created}, "sortDirection": 0})
    assert [o["id"] for o in page["orders"]][:3] == ids[:3]
    assert q({"filter": {"accountId": 5}}) == (1, None, {"orders": None, "totalCount": None})
    bad_bodies: list[dict[str, Any]] = [
        {},
        {"filter": {"accountId": A1, "statuses": "1"}},
        {"filter": {"accountId": A1}, "pageSize": 0},
        {"filter": {"accountId": A1, "createdAfter": "yesterday"}},
    ]
    for bad in bad_bodies:
        with pytest.raises(ValueError):
            q(bad)


# ---------------------------------------------------------------------------- tape plumbing


def test_on_tape_without_working_orders_is_a_dict_lookup(env: Env) -> None:
    env.ok(side=0)  # position but no working order
    tape = Tape(np.arange(10, dtype=np.int64), np.full(10, 70_000, dtype=np.int64))
    calls = env.market.book_calls
    start = time.perf_counter()
    for _ in range(100_000):
        env.broker.on_tape(MNQ, tape)
    per_call = (time.perf_counter() - start) / 100_000
    assert env.market.book_calls == calls
    assert per_call < 5e-6


def test_on_tape_empty_batch_and_other_contract(env: Env) -> None:
    oid = env.ok(type=1, limitPrice=px(79_990))
    env.tape()
    env.tape(1, cid=MCL)
    assert env.order(oid)["status"] == 1


def test_several_orders_hit_by_one_trade_fill_in_id_order(env: Env) -> None:
    a = env.ok(type=1, side=0, limitPrice=px(79_990))
    b = env.ok(type=1, side=0, limitPrice=px(79_992))
    c = env.ok(type=4, side=1, stopPrice=px(79_985))
    env.market.quote(MNQ, 79_980, 79_981)
    env.tape(79_980)
    assert [env.order(i)["status"] for i in (a, b, c)] == [2, 2, 2]
    assert sum(t["size"] * (1 if t["side"] == 0 else -1) for t in env.trades()) == 1


def test_emit_failure_leaves_consistent_state(env: Env) -> None:
    def boom(*_: Any) -> None:
        raise RuntimeError("sink down")

    broker = Broker(env.config, env.market, env.clock, boom)
    with pytest.raises(RuntimeError):
        broker.place({"accountId": A1, "contractId": MNQ, "type": 2, "side": 0, "size": 2})
    [pos] = broker.open_positions(A1)[2] or []
    assert pos["size"] == 2
    assert len(broker.search_trades(A1)[2] or []) == 1
    [order] = broker.search_orders(A1)[2] or []
    assert order["status"] == 2


def test_update_timestamp_moves_with_changes(env: Env) -> None:
    oid = env.ok(type=1, limitPrice=px(79_990))
    row = env.order(oid)
    assert row["updateTimestamp"] == row["creationTimestamp"]
    t = env.clock.now_ns()
    while env.clock.now_ns() == t:
        pass
    env.broker.cancel(A1, oid)
    row = env.order(oid)
    assert row["updateTimestamp"] > row["creationTimestamp"]
    assert row["creationTimestamp"] <= iso(env.clock.now_ns())
