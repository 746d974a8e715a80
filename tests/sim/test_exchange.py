"""The exchange's pump over the real market model: the broker sees every print that concerns
a working order, whenever the pump happens to step."""

from __future__ import annotations

from datetime import UTC, datetime

from projectx_lab.sim.config import SimConfig
from projectx_lab.sim.exchange import Exchange
from projectx_lab.sim.wire import parse_iso

NS = 1_000_000_000
ACCOUNT = 26_000_001


def test_a_new_orders_tape_starts_when_it_started_working() -> None:
    # No step between the placement and a step a minute later: the prints in between still
    # reach the order, which fills at the first one through its limit, not a minute late.
    exchange = Exchange(SimConfig(start=datetime(2026, 10, 2, tzinfo=UTC)))
    spec = exchange.catalog.by_symbol("MNQ")
    assert spec is not None
    t0 = int(datetime(2026, 10, 2, 15, 30, tzinfo=UTC).timestamp()) * NS
    exchange.clock.hold(at=t0)
    last = exchange.last_trade(spec.contract_id, t0)
    assert last is not None
    limit = last[1] - 2
    body = {"accountId": ACCOUNT, "contractId": spec.contract_id, "type": 1, "side": 0}
    code, _, order_id = exchange.broker.place(
        {**body, "size": 1, "limitPrice": spec.to_price(limit)}
    )
    assert code == 0 and order_id is not None
    tape = exchange.tape(spec.contract_id, t0, t0 + 60 * NS)
    hit = int((tape.price < limit).argmax())
    assert tape.price[hit] < limit, "the tape never went through the limit"
    exchange.clock.advance_to(t0 + 60 * NS)
    exchange.step()
    [fill] = exchange.broker.search_trades(ACCOUNT, None, None)[2] or []
    assert fill["orderId"] == order_id
    assert parse_iso(fill["creationTimestamp"]) == int(tape.ts_ns[hit]) // 100 * 100


def test_every_contract_has_the_same_history_window_after_a_speed_change() -> None:
    start = datetime(2026, 10, 2, 23, 59, 59, tzinfo=UTC)
    exchange = Exchange(SimConfig(start=start, history_days=3))
    mnq, mes = (exchange.catalog.by_symbol(s) for s in ("MNQ", "MES"))
    assert mnq is not None and mes is not None
    first = exchange.market(mnq.contract_id).history_start_ns
    exchange.clock.hold(at=int(datetime(2026, 10, 3, 0, 0, 1, tzinfo=UTC).timestamp()) * NS)
    exchange.clock.release()
    exchange.clock.speed = 2.0  # rebases the clock past midnight
    assert exchange.market(mes.contract_id).history_start_ns == first
