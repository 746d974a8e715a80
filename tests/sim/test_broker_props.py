"""Property tests: random order flows and random tapes keep the broker's books consistent."""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projectx_lab.sim.clock import VirtualClock
from projectx_lab.sim.config import AccountConfig, SimConfig
from projectx_lab.sim.matching import Broker

CID = "CON.F.US.MNQ.Z26"
ACCT = 26_000_001
START = 50_000.0
TICK = Decimal("0.25")
TICK_VALUE = 0.5
TERMINAL = {2, 3, 4, 5}


@dataclass
class Spec:
    """Minimal stand-in for the catalogue's ContractSpec."""

    contract_id: str = CID
    symbol_id: str = "F.US.MNQ"
    tick_size: Decimal = TICK
    tick_value: Decimal = Decimal("0.5")
    fee_per_side: Decimal = Decimal("0.37")
    commission_per_side: Decimal = Decimal("0.25")
    active: bool = True

    def to_price(self, ticks: int) -> float:
        return float(ticks * TICK)

    def to_ticks(self, price: Any) -> int | None:
        q = Decimal(str(price)) / TICK
        return int(q) if q == q.to_integral_value() else None

    def wire(self) -> dict[str, Any]:
        return {"id": CID, "name": "MNQZ6"}


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
class PathMarket:
    """Fake market whose book and last trade follow a recorded price path in time."""

    times: list[int] = field(default_factory=lambda: [0])
    prices: list[int] = field(default_factory=lambda: [80_000])
    spec_: Spec = field(default_factory=Spec)

    def spec(self, contract_id: str) -> Spec | None:
        return self.spec_ if contract_id == CID else None

    def _at(self, ts: int) -> int:
        return self.prices[max(0, bisect_right(self.times, ts) - 1)]

    def book(self, contract_id: str, ts_ns: int) -> Book:
        p = self._at(ts_ns)
        return Book([(p - i, 2) for i in range(3)], [(p + 1 + i, 2) for i in range(3)])

    def last_trade(self, contract_id: str, ts_ns: int) -> tuple[int, int]:
        return ts_ns, self._at(ts_ns)

    @property
    def last(self) -> int:
        return self.prices[-1]


# Bracket legs as (magnitude, wrong sign?, type); the sign follows the entry side when built.
bracket_sl = st.one_of(
    st.none(),
    st.tuples(
        st.integers(2, 14), st.sampled_from([False] * 6 + [True]), st.sampled_from([4, 4, 5, 1])
    ),
)
bracket_tp = st.one_of(
    st.none(),
    st.tuples(
        st.integers(1, 14), st.sampled_from([False] * 6 + [True]), st.sampled_from([1] * 6 + [4])
    ),
)
place_op = st.tuples(
    st.just("place"),
    st.sampled_from([1, 1, 2, 2, 3, 4, 4, 5, 6, 7]),
    st.sampled_from([0, 1]),
    st.integers(1, 5),
    st.integers(-8, 8),  # limit offset from last; stops use its magnitude on the natural side
    st.integers(-3, 3),  # stop-limit: limit offset from the stop
    bracket_sl,
    bracket_tp,
    st.sampled_from([None, None, "a", "b"]),
)
bracket_op = st.tuples(
    st.just("place"),
    st.sampled_from([2, 2, 1, 4]),
    st.sampled_from([0, 1]),
    st.integers(1, 3),
    st.integers(-3, 3),
    st.just(0),
    st.tuples(st.integers(4, 10), st.just(False), st.sampled_from([4, 5])),
    st.tuples(st.integers(1, 10), st.just(False), st.just(1)),
    st.sampled_from([None, "a", "b"]),
)
modify_op = st.tuples(
    st.just("modify"), st.integers(0, 30), st.one_of(st.none(), st.integers(0, 6)),
    st.one_of(st.none(), st.integers(-8, 8)),
)  # fmt: skip
cancel_op = st.tuples(st.just("cancel"), st.integers(0, 30))
close_op = st.tuples(st.just("close"))
partial_op = st.tuples(st.just("partial"), st.integers(-1, 6))
tape_op = st.tuples(st.just("tape"), st.lists(st.integers(-6, 6), min_size=1, max_size=20))
junk = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True), st.text(max_size=3)
)
junk_op = st.tuples(
    st.just("junk"),
    st.fixed_dictionaries(
        {},
        optional={
            "accountId": st.one_of(junk, st.just(ACCT)),
            "contractId": st.one_of(junk, st.just(CID)),
            "type": st.one_of(junk, st.integers(0, 8)),
            "side": junk,
            "size": junk,
            "limitPrice": junk,
            "stopPrice": junk,
            "trailPrice": junk,
            "customTag": junk,
            "stopLossBracket": st.one_of(
                junk, st.dictionaries(st.sampled_from(["ticks", "type"]), junk)
            ),
            "takeProfitBracket": junk,
            "orderId": junk,
        },
    ),
)
ops = st.lists(
    st.one_of(
        place_op, place_op, modify_op, cancel_op, close_op, partial_op, tape_op, tape_op, junk_op
    ),
    min_size=3,
    max_size=30,
)
bracket_ops = st.lists(
    st.one_of(bracket_op, tape_op, tape_op, tape_op, modify_op, cancel_op, close_op, partial_op),
    min_size=3,
    max_size=25,
)


class Run:
    """Drives one broker through an op sequence, checking that failed calls change nothing."""

    def __init__(self) -> None:
        self.market = PathMarket()
        self.clock = VirtualClock(datetime(2026, 10, 2, 14, 30, tzinfo=UTC))
        self.market.times[0] = self.clock.now_ns() - 1
        self.events: list[tuple[int, str, int, dict[str, Any]]] = []
        config = SimConfig(accounts=[AccountConfig("PRAC-V2-SIM-1", START)])
        self.broker = Broker(config, self.market, self.clock, self._emit)

    def _emit(self, account_id: int, target: str, action: int, data: dict[str, Any]) -> None:
        self.events.append((account_id, target, action, data))

    def snapshot(self) -> tuple[Any, ...]:
        b = self.broker
        return (
            b.accounts(),
            b.search_orders(ACCT, 0, None),
            b.open_positions(ACCT),
            b.search_trades(ACCT),
            b.working_contracts().keys(),
            # hidden state a failed call must not touch either: taken tags, id counters
            {k: set(v) for k, v in b._tags.items()},
            (b._ids.order, b._ids.trade, b._ids.position),
        )

    def pick(self, index: int) -> int:
        """An order id of this run (children included), or an unknown id when there is none."""
        rows = self.broker.search_orders(ACCT, 0, None)[2] or []
        return rows[index % len(rows)]["id"] if rows else 3_500_000_000 + index

    @staticmethod
    def leg(raw: tuple[int, bool, int] | None, sign: int) -> dict[str, int] | None:
        if raw is None:
            return None
        magnitude, wrong, kind = raw
        return {"ticks": magnitude * (-sign if wrong else sign), "type": kind}

    def price(self, offset: int) -> float:
        return float((self.market.last + offset) * TICK)

    def apply(self, op: tuple[Any, ...]) -> None:
        before, n_events = self.snapshot(), len(self.events)
        code = self._call(op)
        if code != 0:
            assert self.snapshot() == before, op
            assert len(self.events) == n_events, op

    def _call(self, op: tuple[Any, ...]) -> int:
        b = self.broker
        kind = op[0]
        if kind == "place":
            _, otype, side, size, off, off2, sl, tp, tag = op
            sign = 1 if side == 0 else -1  # buy stops above the market, sell stops below
            body: dict[str, Any] = {"accountId": ACCT, "contractId": CID, "type": otype,
                                    "side": side, "size": size, "customTag": tag,
                                    "stopLossBracket": self.leg(sl, -sign),
                                    "takeProfitBracket": self.leg(tp, sign)}  # fmt: skip
            stop_off = sign * (abs(off) or 1)
            if otype == 1:
                body["limitPrice"] = self.price(off)
            elif otype == 4:
                body["stopPrice"] = self.price(stop_off)
            elif otype == 3:
                body["stopPrice"] = self.price(stop_off)
                body["limitPrice"] = self.price(stop_off + off2)
            elif otype == 5:
                body["trailPrice"] = self.price(off)
            return b.place(body)[0]
        if kind == "modify":
            _, index, size, off = op
            body = {"accountId": ACCT, "orderId": self.pick(index), "size": size}
            row = b.order_by_id(ACCT, body["orderId"])[2]
            if off is not None and row is not None:
                key = {1: "limitPrice", 6: "limitPrice", 7: "limitPrice", 3: "limitPrice",
                       4: "stopPrice", 5: "trailPrice"}.get(row["type"], "limitPrice")  # fmt: skip
                body[key] = self.price(off)
            return b.modify(body)[0]
        if kind == "cancel":
            return b.cancel(ACCT, self.pick(op[1]))[0]
        if kind == "close":
            return b.close_position(ACCT, CID)[0]
        if kind == "partial":
            return b.partial_close(ACCT, CID, op[1])[0]
        if kind == "tape":
            now = self.clock.now_ns()
            prices = []
            p = self.market.last
            for step in op[1]:
                p += step
                prices.append(p)
            stamps = [now + i for i in range(len(prices))]
            self.market.times.extend(stamps)
            self.market.prices.extend(prices)
            b.on_tape(CID, Tape(np.array(stamps, dtype=np.int64), np.array(prices, dtype=np.int64)))
            return 0
        body = op[1]
        results = [b.place(body)[0]]
        if "orderId" in body:
            results.append(b.modify(body)[0])
            results.append(b.cancel(body.get("accountId"), body["orderId"])[0])  # type: ignore[arg-type]
        return 0 if 0 in results else 1


def check_invariants(run: Run) -> None:
    b = run.broker
    orders = b.search_orders(ACCT, 0, None)[2] or []
    trades = sorted(b.search_trades(ACCT)[2] or [], key=lambda t: t["id"])
    positions = b.open_positions(ACCT)[2] or []
    [account] = b.accounts()

    # position size equals signed filled volume (orders and trades agree)
    signed_pos = sum(p["size"] * (1 if p["type"] == 1 else -1) for p in positions)
    by_orders = sum(o["fillVolume"] * (1 if o["side"] == 0 else -1) for o in orders)
    by_trades = sum(t["size"] * (1 if t["side"] == 0 else -1) for t in trades)
    assert signed_pos == by_orders == by_trades

    # realized P&L: each closing fill = price difference x tick value against FIFO lots
    lots: deque[list[int]] = deque()  # [signed qty, price ticks]
    for t in trades:
        price = int(Decimal(str(t["price"])) / TICK)
        qty = t["size"] * (1 if t["side"] == 0 else -1)
        if t["profitAndLoss"] is None:
            assert not lots or (lots[0][0] > 0) == (qty > 0)
            lots.append([qty, price])
            continue
        assert lots and (lots[0][0] > 0) != (qty > 0)
        left, pnl_ticks = abs(qty), 0
        while left:
            lot = lots[0]
            take = min(abs(lot[0]), left)
            pnl_ticks += (price - lot[1]) * take * (1 if lot[0] > 0 else -1)
            lot[0] -= take if lot[0] > 0 else -take
            left -= take
            if lot[0] == 0:
                lots.popleft()
        assert t["profitAndLoss"] == pytest.approx(pnl_ticks * TICK_VALUE)
    if positions:
        [pos] = positions
        size = sum(abs(q) for q, _ in lots)
        assert pos["size"] == size
        avg = sum(abs(q) * p for q, p in lots) * float(TICK) / size
        assert pos["averagePrice"] == pytest.approx(avg)
    else:
        assert not lots

    # balance = start + realized - fees - commissions
    realized = sum(t["profitAndLoss"] or 0.0 for t in trades)
    costs = sum(t["fees"] + t["commissions"] for t in trades)
    assert account["balance"] == pytest.approx(START + realized - costs, abs=1e-6)

    # an order never changes status after a terminal one; filled and cancelled are exclusive
    history: dict[int, list[int]] = {}
    for _, target, _, data in run.events:
        if target == "GatewayUserOrder":
            history.setdefault(data["id"], []).append(data["status"])
    rows = {o["id"]: o for o in orders}
    for oid, statuses in history.items():
        first_terminal = next((i for i, s in enumerate(statuses) if s in TERMINAL), None)
        if first_terminal is not None:
            assert statuses[first_terminal:] == [statuses[first_terminal]], (oid, statuses)
        assert not (2 in statuses and 3 in statuses)
        assert rows[oid]["status"] == statuses[-1]
    for o in orders:
        assert (o["status"] == 2) == (o["fillVolume"] == o["size"])

    # at most one leg of an OCO pair fills
    legs: dict[int, list[dict[str, Any]]] = {}
    for o in orders:
        if o["parentOrderId"] is not None:
            legs.setdefault(o["parentOrderId"], []).append(o)
    for children in legs.values():
        assert sum(1 for c in children if c["fillVolume"] > 0) <= 1

    # suspended children never show in searchOpen; working set matches open orders
    open_rows = b.search_open_orders(ACCT)[2] or []
    assert all(o["status"] == 1 for o in open_rows)
    assert (b.working_contracts().keys() == {CID}) == bool(open_rows)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_random_flows_keep_books_consistent(sequence: list[tuple[Any, ...]]) -> None:
    run = Run()
    for op in sequence:
        run.apply(op)
    check_invariants(run)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(place_op, tape_op), min_size=1, max_size=10))
def test_invariants_hold_after_every_step(pairs: list[tuple[Any, Any]]) -> None:
    run = Run()
    for place, tape in pairs:
        run.apply(place)
        check_invariants(run)
        run.apply(tape)
        check_invariants(run)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bracket_ops)
def test_bracket_flows_keep_books_consistent(sequence: list[tuple[Any, ...]]) -> None:
    run = Run()
    for op in sequence:
        run.apply(op)
    check_invariants(run)
