"""Market-hub scenarios: repeated drops during a stream, a frozen stream on a healthy socket,
and malformed frames from the server. Each returns what a user would see afterwards."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field

import orjson

from projectx_lab.managers.timeframes import Timeframe
from projectx_lab.realtime import ConnectionState

from .rig import Changes, Rig

RS = "\x1e"
_RECONNECTED = ConnectionState.RECONNECTED


@dataclass(slots=True)
class DropReport:
    """Scenario 1: drops, recoveries, lost subscriptions, bars and book after recovery."""

    drops: int = 0
    recovered: int = 0
    subscriptions_lost: int = 0
    bars_mismatched: int = 0
    duplicate_bars: int = 0
    book_equal: bool = False
    modes: dict[str, int] = field(default_factory=dict)


async def market_drops(rig: Rig, drops: int = 20, seed: int = 1) -> DropReport:
    """Drop the market hub `drops` times at random moments of the stream (clean closes and TCP
    aborts mixed); after each recovery count subscriptions the simulator lacks; at the end
    compare bars (every timeframe) and the order book with the simulator's."""
    report = DropReport()
    rng = random.Random(seed)
    states = rig.states
    assert states is not None
    wanted = rig.expected_market_subscriptions()
    await rig.trades(1)
    for _ in range(drops):
        await rig.trades(rng.randint(1, 6))  # a random moment of the stream
        mode = rng.choice(("clean", "abort"))
        before = states.count("market", _RECONNECTED)
        rig.sim.faults.drop_hub("market", mode)
        report.drops += 1
        report.modes[mode] = report.modes.get(mode, 0) + 1
        if not await states.wait_count("market", _RECONNECTED, before + 1, within=10.0):
            continue
        report.recovered += 1
        held = rig.hub_subscriptions("market")
        report.subscriptions_lost += len(wanted - (held[0] if len(held) == 1 else frozenset()))
    slowest = max(rig.the_suite.data.timeframes.values(), key=lambda tf: tf.approx_ns)
    await rig.bars_closed(slowest.label, 2)  # bars forming at the last reconnect have closed
    report.bars_mismatched, report.duplicate_bars = await rig.bars_report()
    report.book_equal = await rig.book_matches()
    return report


@dataclass(slots=True)
class FreezeReport:
    """Scenario 3: was the silent stream detected, and was everything restored?"""

    detected: bool = False
    reason: str | None = None
    restored: bool = False
    book_equal: bool = False
    bars_mismatched: int = 0
    user_hub_untouched: bool = False


async def frozen_market(rig: Rig) -> FreezeReport:
    """Freeze the contract's market data while pings continue; expect the stale-stream
    watchdog to rebuild the connection, and data, book and bars back once it flows again."""
    report = FreezeReport()
    states = rig.states
    assert states is not None
    realtime = rig.the_suite.realtime
    await rig.trades(2)
    lost, back = (states.count("market", s) for s in (ConnectionState.RECONNECTING, _RECONNECTED))
    rig.sim.faults.freeze_market(rig.contract_id)
    report.detected = await states.wait_count(
        "market", ConnectionState.RECONNECTING, lost + 1, within=15.0
    )
    report.reason = realtime.stats["market"]["last_loss_reason"]
    await states.wait_count("market", _RECONNECTED, back + 1, within=10.0)
    rig.sim.faults.unfreeze_market(rig.contract_id)
    report.restored = await rig.trades(3)
    slowest = max(rig.the_suite.data.timeframes.values(), key=lambda tf: tf.approx_ns)
    await rig.bars_closed(slowest.label, 2)
    report.bars_mismatched, _ = await rig.bars_report()
    report.book_equal = await rig.book_matches()
    report.user_hub_untouched = states.count("user", ConnectionState.RECONNECTING) == 0
    return report


def _record(target: str, *arguments: object) -> str:
    return orjson.dumps({"type": 1, "target": target, "arguments": list(arguments)}).decode() + RS


def malformed_frames(contract_id: str, account_id: int) -> dict[str, list[tuple[str, str]]]:
    """Per hub: (kind, raw frame text) of every malformed or unexpected frame the scenario
    sends: bad JSON, unknown targets, missing fields, wrong types, extra fields."""
    return {
        "market": [
            ("bad json", '{"type":1,"target":"GatewayTrade","arguments":[' + RS),
            ("not a record", "[1,2,3]" + RS),
            ("target not a string", '{"type":1,"target":["GatewayQuote"],"arguments":[]}' + RS),
            ("unknown target", _record("GatewayNews", contract_id, {"headline": "?"})),
            ("missing arguments", _record("GatewayTrade", contract_id)),
            ("trade without price", _record("GatewayTrade", contract_id, [{"volume": 1}])),
            (
                "depth with text size",
                _record("GatewayDepth", contract_id, [{"type": 1, "price": 1.0, "volume": "many"}]),
            ),
            ("quote with text price", _record("GatewayQuote", contract_id, {"lastPrice": "n/a"})),
            ("quote as a list", _record("GatewayQuote", contract_id, [1, 2])),
            ("three arguments", _record("GatewayDepth", contract_id, [], "surplus")),
        ],
        "user": [
            ("bad json", "{oops" + RS),
            ("unknown target", _record("GatewayUserNotice", {"text": "hello"})),
            (
                "order without id",
                _record(
                    "GatewayUserOrder",
                    {"action": 1, "data": {"accountId": account_id, "status": 1}},
                ),
            ),
            (
                "position with text size",
                _record(
                    "GatewayUserPosition",
                    {
                        "action": 1,
                        "data": {
                            "id": 1,
                            "accountId": account_id,
                            "contractId": contract_id,
                            "type": 1,
                            "size": "two",
                        },
                    },
                ),
            ),
            ("empty arguments", _record("GatewayUserTrade")),
        ],
    }


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


EXTRA_CONTRACT = "CON.F.US.MES.Z26"  # not the suite's contract: its managers ignore it


def extra_fields_frame() -> str:
    """A valid trade print with fields the docs do not list (gotcha 27): must be delivered."""
    item = {"symbolId": "F.US.MES", "price": 5800.25, "timestamp": "2026-10-01T14:30:00+00:00",
            "type": 0, "volume": 1, "venue": "XCME", "sequence": 7}  # fmt: skip
    record = {"type": 1, "target": "GatewayTrade", "arguments": [EXTRA_CONTRACT, [item]],
              "streamId": None, "extra": {"nested": True}}  # fmt: skip
    return orjson.dumps(record).decode() + RS


@dataclass(slots=True)
class MalformedReport:
    """Scenario 7: frames sent, how often each was logged, whether anything broke."""

    frames: int = 0
    rounds: int = 0
    warnings: int = 0
    errors: int = 0
    reconnects: int = 0
    market_continued: bool = False
    user_continued: bool = False
    extra_fields_delivered: int = 0
    unlogged: list[str] = field(default_factory=list)


async def malformed_stream(rig: Rig, rounds: int = 3) -> MalformedReport:
    """Send every malformed frame `rounds` times on both hubs, between real events; expect
    each kind logged once (warning, no traceback), no reconnect, and both streams going on."""
    report = MalformedReport(rounds=rounds)
    suite = rig.the_suite
    capture = _Capture()
    root = logging.getLogger("projectx_lab")
    level = root.level
    root.addHandler(capture)
    root.setLevel(logging.INFO)
    states = rig.states
    assert states is not None
    before = len(states.events)
    frames = malformed_frames(rig.contract_id, rig.account_id)

    def on_extra(contract_id: str, items: list) -> None:
        if contract_id == EXTRA_CONTRACT and items and items[0].get("venue") == "XCME":
            report.extra_fields_delivered += 1

    suite.realtime.trade_event += on_extra
    try:
        for _ in range(rounds):
            for hub, items in frames.items():
                for _, text in items:
                    rig.sim.faults.inject_raw(hub, text)
                    report.frames += 1
            rig.sim.faults.inject_raw("market", extra_fields_frame())
            await rig.trades(2)
        report.market_continued = await rig.trades(3)
        orders = Changes()
        suite.orders.on_order_update += orders
        try:
            placed = await suite.orders.place_market_order(rig.contract_id, "buy", 1)
            report.user_continued = await orders.until(
                lambda: suite.orders.tracker.get(placed.order_id) is not None
            )
        finally:
            suite.orders.on_order_update -= orders
        await suite.orders.flatten(rig.contract_id)
    finally:
        suite.realtime.trade_event -= on_extra
        root.removeHandler(capture)
        root.setLevel(level)
    report.reconnects = len(states.events) - before
    texts = [r.getMessage() for r in capture.records if r.levelno >= logging.WARNING]
    report.warnings = sum(1 for r in capture.records if r.levelno == logging.WARNING)
    report.errors = sum(1 for r in capture.records if r.levelno >= logging.ERROR)
    markers = {
        "bad json": "invalid JSON",
        "not a record": "record without a message type",
        "unknown target": "ignored event",
        "target not a string": "invocation without a string target",
        "missing arguments": "malformed GatewayTrade",
        "trade without price": "malformed GatewayTrade",
        "depth with text size": "malformed GatewayDepth",
        "quote with text price": "malformed GatewayQuote",
        "quote as a list": "malformed GatewayQuote",
        "three arguments": "malformed GatewayDepth",
        "order without id": "malformed GatewayUserOrder",
        "position with text size": "malformed GatewayUserPosition",
        "empty arguments": "malformed GatewayUserTrade",
    }
    for kind, marker in markers.items():
        if not any(marker in text for text in texts):
            report.unlogged.append(kind)
    return report


async def gap_across_bar_boundary(rig: Rig, timeframe: str = "15sec") -> int:
    """Keep the market hub down (dropped, reconnects refused) until simulated time has crossed
    a `timeframe` bar boundary, then let it back; returns how many bars (every timeframe)
    differ from the simulator's once the bars around the gap have closed and been re-read."""
    states = rig.states
    assert states is not None
    tf = Timeframe.parse(timeframe)
    await rig.trades(2)
    back = states.count("market", _RECONNECTED)
    rig.sim.faults.block_hub("market")
    rig.sim.faults.drop_hub("market", "abort")
    boundary = tf.next_bucket(tf.bucket(rig.sim.clock.now_ns())) + tf.approx_ns // 3
    while rig.sim.clock.now_ns() < boundary:  # noqa: ASYNC110 - simulated time has no event
        await asyncio.sleep(0.02)
    rig.sim.faults.unblock_hub("market")
    await states.wait_count("market", _RECONNECTED, back + 1)
    slowest = max(rig.the_suite.data.timeframes.values(), key=lambda t: t.approx_ns)
    await rig.bars_closed(slowest.label, 2)
    mismatched, _ = await rig.bars_report()
    return mismatched
