"""Raw frames injected by the simulator: a 10,000-event burst arrives complete and in order
(records packed into frames and split across frames), malformed records are skipped and
logged once while the stream continues."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest

from projectx_lab.sim import Simulator

from .conftest import Recorder

RS = "\x1e"
BURST = 10_000
TS = "2026-10-01T14:30:00.0000000+00:00"


def trade_item(seq: int) -> dict[str, Any]:
    """A well-formed trade print carrying a sequence number (extra fields pass through)."""
    return {"seq": seq, "price": 1.0, "volume": 1, "type": 0, "timestamp": TS}


def order_item(order_id: int) -> dict[str, Any]:
    return {"id": order_id, "accountId": 1, "contractId": "X", "status": 1}


def trade_record(contract_id: str, seq: int) -> str:
    record = {"type": 1, "target": "GatewayTrade", "arguments": [contract_id, [trade_item(seq)]]}
    return orjson.dumps(record).decode() + RS


async def test_burst_reaches_every_consumer_in_order(make_rt: Any, sim: Simulator) -> None:
    rt = await make_rt()
    sync_seen: list[int] = []
    async_seen: list[int] = []
    all_async = asyncio.Event()

    def on_sync(contract_id: str, trades: list[dict[str, Any]]) -> None:
        if contract_id == "BURST":
            sync_seen.append(trades[0]["seq"])

    async def on_async(contract_id: str, trades: list[dict[str, Any]]) -> None:
        if contract_id == "BURST":
            async_seen.append(trades[0]["seq"])
            if len(async_seen) == BURST:
                all_async.set()

    rt.trade_event += on_sync
    rt.trade_event += on_async
    stream = rt.stream("GatewayTrade", maxsize=BURST + 100)

    text = "".join(trade_record("BURST", seq) for seq in range(BURST))
    # ~7 kB slices: most frames pack many records, and every cut splits a record in two
    for start in range(0, len(text), 7001):
        sim.faults.inject_raw("market", text[start : start + 7001])

    async with asyncio.timeout(15):
        await all_async.wait()
    assert sync_seen == list(range(BURST))
    assert async_seen == list(range(BURST))
    streamed = []
    async with asyncio.timeout(5):
        while len(streamed) < BURST:
            _, trades = await anext(stream)
            streamed.append(trades[0]["seq"])
    assert streamed == list(range(BURST))
    assert stream.dropped == 0
    assert rt.stats["market"]["malformed_records"] == 0


async def test_malformed_records_are_skipped_and_logged_once(
    make_rt: Any, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="projectx_lab.realtime")
    rt = await make_rt()
    states, trades, orders = Recorder(), Recorder(), Recorder()
    rt.state_event += states
    rt.trade_event += trades
    rt.order_event += orders
    bad_market = [
        "not json at all",
        '{"type":1,"target":"GatewayTrade","arguments":["ONLY-ONE"]}',
        '{"type":1,"target":"GatewayTrade","arguments":[42,[{"seq":0}]]}',
        '{"type":1,"target":"GatewayTrade","arguments":["X","not-a-list"]}',
        '{"type":1,"target":"GatewayQuote","arguments":["X",[1,2]]}',
        "[1,2,3]",
        '{"no_type":true}',
        '{"type":1,"target":"GatewaySomethingNew","arguments":[]}',
    ]
    bad_user = ['{"type":1,"target":"GatewayUserOrder","arguments":["text"]}', "{oops"]
    for round_ in range(2):
        frame = RS.join(bad_market) + RS + trade_record("OK", round_)
        sim.faults.inject_raw("market", frame)
        envelope = {"type": 1, "target": "GatewayUserOrder",
                    "arguments": [{"action": 1, "data": order_item(round_)}]}  # fmt: skip
        bare = {"type": 1, "target": "GatewayUserOrder", "arguments": [order_item(100 + round_)]}
        user = [*bad_user, orjson.dumps(envelope).decode(), orjson.dumps(bare).decode()]
        sim.faults.inject_raw("user", RS.join(user) + RS)

    await trades.wait_until(lambda: len(trades.items) == 2)
    await orders.wait_until(lambda: len(orders.items) == 4)
    assert trades.items == [("OK", [trade_item(0)]), ("OK", [trade_item(1)])]
    expected = [(order_item(0), 1), (order_item(100), None), (order_item(1), 1),
                (order_item(101), None)]  # fmt: skip
    assert orders.items == expected
    # 4 bad payloads per round reach routing (ONLY-ONE, 42, not-a-list, quote list) + 1 user
    assert rt.stats["malformed_events"] == 10
    assert rt.stats["market"]["malformed_records"] == 6  # invalid JSON, [1,2,3], no type
    assert rt.stats["user"]["malformed_records"] == 2
    warnings = [r.getMessage() for r in caplog.records if r.name == "projectx_lab.realtime"]
    assert sum("malformed GatewayTrade" in m for m in warnings) == 1
    assert sum("invalid JSON record" in m for m in warnings) == 2  # once per hub
    assert sum("GatewaySomethingNew" in m for m in warnings) == 1
    assert states.items == []  # no reconnect: the stream simply continued
    assert rt.is_connected
