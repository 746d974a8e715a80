"""Session recording and replay through the simulator: a recorded session replays the same bars
and the same fills for a deterministic strategy; the replayed market reaches REST bars, hub
streams, the book and the matching engine; a gateway-shaped recording (other contract month,
`Z` timestamps, integer prices, partial quotes, best-price depth items) replays as recorded;
the recorder writes bounded chunks and a manifest that survives a crash."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from projectx_lab import ProjectX, create_trading_suite
from projectx_lab.client.models import OrderSide
from projectx_lab.managers.ticks import parse_ts_ns
from projectx_lab.research.lockstep import Lockstep
from projectx_lab.research.paper import recording, run_paper, synthetic
from projectx_lab.research.recorder import RecordingWriter, SessionRecorder
from projectx_lab.research.replay import Recording
from projectx_lab.research.strategy import SmaCross
from projectx_lab.sim import SimConfig, Simulator
from projectx_lab.sim.exchange import Exchange
from projectx_lab.sim.replay_source import RecordingError, ReplaySource

from ..conftest import SIM_START, sim_options

NS = 1_000_000_000
TIMEOUT = 20.0


def seeded_exchange(**options: Any) -> Exchange:
    return Exchange(SimConfig(**sim_options(**options)))


def record_model(path: Path, minutes: int, trade_rate: float = 4.0) -> tuple[Exchange, str, int]:
    """Record what the seeded market publishes to a hub subscriber for `minutes` (no network),
    the way the market hub would deliver it; returns the exchange (held at the end)."""
    exchange = seeded_exchange(trade_rate=trade_rate)
    cid = exchange.catalog.by_symbol("MNQ").contract_id
    writer = RecordingWriter(path, chunk_rows=200)
    writer.contracts[cid] = exchange.contract(cid)

    class Sink:
        def market_event(self, contract_id: str, target: str, data: Any) -> None:
            writer.add(target, contract_id, None, data)

    start = exchange.clock.hold()
    exchange.add_market_sink(Sink())
    exchange.acquire(cid)
    writer.add("GatewayDepth", cid, None, exchange.depth_snapshot(cid), snapshot=True)
    end = start + minutes * 60 * NS
    for t in range(start + NS // 4, end + 1, NS // 4):
        exchange.clock.advance_to(t)
        exchange.step()
    writer.close(start_ns=start, end_ns=end)
    return exchange, cid, end


class Until:
    """A callback for any event; `wait(predicate)` re-checks on every call (no polling)."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def __call__(self, *_: object) -> None:
        self._changed.set()

    async def wait(self, predicate: Callable[[], bool], within: float = TIMEOUT) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


def levels(side: dict[float, float]) -> dict[float, float]:
    return {float(p): float(s) for p, s in side.items()}


async def test_recording_replays_the_same_bars_and_fills(tmp_path: Path) -> None:
    path = tmp_path / "session"
    source = synthetic(seed=7, start=SIM_START, duration="30min", trade_rate=4.0)
    live = await run_paper(SmaCross(2, 4), "MNQ", source=source, record=path)
    replayed = await run_paper(SmaCross(2, 4), "MNQ", source=recording(path))

    assert live.num_trades >= 2 and live.fills.height >= 4
    assert replayed.fills.equals(live.fills)  # same ids, times, prices, P&L, costs
    assert replayed.bars.equals(live.bars)
    assert replayed.trades.equals(live.trades)
    assert replayed.pnl == live.pnl

    # what the recorder stored is the seeded market's tape, at the wire's 100 ns resolution
    rec = Recording(path)
    assert rec.complete and rec.start == SIM_START
    assert rec.end == SIM_START + timedelta(minutes=30)
    exchange = seeded_exchange(trade_rate=4.0)
    cid = live.contract_id
    start_ns = int(SIM_START.timestamp()) * NS
    tape = exchange.tape(cid, start_ns, start_ns + 30 * 60 * NS)
    recorded = rec.trades(cid)
    assert recorded["timestamp"].dt.epoch("ns").to_list() == (tape.ts_ns // 100 * 100).tolist()
    spec = exchange.spec(cid)
    assert recorded["price"].to_list() == [spec.to_price(p) for p in tape.price.tolist()]
    assert recorded["side"].to_list() == tape.side.tolist()
    # the account's own fills were recorded as they arrived
    assert sorted(rec.fills()["id"].to_list()) == sorted(live.fills["trade_id"].to_list())


async def test_replay_serves_the_recorded_market_through_rest_hubs_and_book(
    tmp_path: Path,
) -> None:
    path = tmp_path / "model"
    model, cid, end = record_model(path, minutes=6)
    start = model.clock.start_ns
    sim = Simulator(replay=path)
    sim.clock.hold(at=start)  # lockstep from the recording's first instant
    async with sim, ProjectX.for_simulator(sim) as client:
        await client.authenticate()
        suite = await create_trading_suite(
            "MNQ", project_x=client, timeframes=["1min"], initial_bars=10, transport="native"
        )
        async with suite:
            assert suite.instrument.id == cid
            prints: list[tuple[int, float]] = []
            suite.realtime.trade_event += lambda _, items: prints.extend(
                (parse_ts_ns(i["timestamp"]), i["price"]) for i in items
            )
            lock = Lockstep(sim, suite)
            await lock.start()
            for t in range(start + 30 * NS, end + 1, 30 * NS):
                await lock.advance_to(t)
            lock.close(release=False)

            # hub stream: every print of the seeded tape, same instants (100 ns) and prices
            tape = model.tape(cid, start, end)
            spec = model.spec(cid)
            expected = list(
                zip(
                    (tape.ts_ns // 100 * 100).tolist(),
                    map(spec.to_price, tape.price.tolist()),
                    strict=True,
                )
            )
            assert prints == expected

            # REST bars from the recorded tape equal the seeded market's bars
            args = (cid, 2, 1, start, end, 1000, False)
            assert sim.exchange.bars(*args) == model.bars(*args)
            frame = await client.get_bars(
                "MNQ", start_time=SIM_START, end_time=SIM_START + timedelta(minutes=6),
                use_cache=False,
            )  # fmt: skip
            assert frame.height == 6
            closes = [b["c"] for b in model.bars(*args)][::-1]
            assert frame["close"].to_list() == closes
            live_bars = await suite.data.get_bars("1min", 10)  # 5 closed + the complete last
            assert live_bars["close"].to_list() == closes

            # the book: replayed = seeded model's at the last grid point = what the suite holds
            book = model.market(cid).book(end)
            assert sim.exchange.book(cid, end) == book
            assert levels(suite.orderbook.bids) == {spec.to_price(p): s for p, s in book.bids}
            assert levels(suite.orderbook.asks) == {spec.to_price(p): s for p, s in book.asks}

            # the matching engine fills against the replayed book
            await suite.orders.place_market_order(cid, OrderSide.BUY, 1)
            await lock.settle()
            fills = await client.search_trades(SIM_START, SIM_START + timedelta(hours=1))
            assert [float(f.price) for f in fills] == [spec.to_price(book.asks[0][0])]


def gateway_like_recording(path: Path) -> dict[str, Any]:
    """A hand-made recording shaped like the real gateway's: another contract month than the
    simulator's front, timestamps with `Z` and 6 digits, integer prices, extra keys, partial
    quotes, depth with Reset, levels and best-price items."""
    cid = "CON.F.US.MNQ.U26"  # expired for the simulator on 2026-10-01 (its front is Z26)
    writer = RecordingWriter(path, chunk_rows=3)
    writer.contracts[cid] = {
        "id": cid, "name": "MNQU6", "description": "Micro E-mini Nasdaq-100: September 2026",
        "tickSize": 0.25, "tickValue": 0.5, "activeContract": True, "symbolId": "F.US.MNQ",
    }  # fmt: skip
    base = "2026-10-01T14:30:0"
    depth = [
        {"timestamp": f"{base}0.000000Z", "type": 6, "price": 0, "volume": 0, "currentVolume": 0},
        {"timestamp": f"{base}0.000000Z", "type": 1, "price": 21000.25, "volume": 4,
         "currentVolume": 4},
        {"timestamp": f"{base}0.000000Z", "type": 1, "price": 21000.5, "volume": 7,
         "currentVolume": 7},
        {"timestamp": f"{base}0.000000Z", "type": 2, "price": 21000, "volume": 5,
         "currentVolume": 5},
        {"timestamp": f"{base}0.000000Z", "type": 2, "price": 20999.75, "volume": 9,
         "currentVolume": 9},
    ]  # fmt: skip
    writer.add("GatewayDepth", cid, None, depth)
    writer.add("GatewayQuote", cid, None, {
        "symbol": "F.US.MNQ", "symbolName": "/MNQ", "lastPrice": 21000, "bestBid": 21000,
        "bestAsk": 21000.25, "volume": 1200, "lastUpdated": f"{base}0.000000Z",
        "timestamp": f"{base}0.000000Z",
    })  # fmt: skip
    trades = [
        {"symbolId": "F.US.MNQ", "contractId": cid, "price": 21000.25,
         "timestamp": f"{base}1.250000Z", "type": 0, "volume": 2},
        {"symbolId": "F.US.MNQ", "contractId": cid, "price": 21000,
         "timestamp": "2026-10-01T14:30:02.5+00:00", "type": 1, "volume": 1},
    ]  # fmt: skip
    writer.add("GatewayTrade", cid, None, trades)
    writer.add("GatewayDepth", cid, None, [  # ask lifted: new best ask, the old one removed
        {"timestamp": f"{base}3.000000Z", "type": 10, "price": 21000.5, "volume": 6,
         "currentVolume": -1},
        {"timestamp": f"{base}3.000000Z", "type": 9, "price": 21000.25, "volume": 3,
         "currentVolume": 3},
    ])  # fmt: skip
    writer.add("GatewayQuote", cid, None, {
        "symbol": "F.US.MNQ", "bestBid": 21000.25, "bestAsk": 21000.5,
        "lastUpdated": f"{base}3.000000Z", "timestamp": f"{base}3.000000Z",
    })  # fmt: skip
    writer.add("GatewayTrade", cid, None, [
        {"symbolId": "F.US.MNQ", "price": 21001, "timestamp": "2026-10-01T14:31:10.1234567+00:00",
         "type": 0, "volume": 3},
    ])  # fmt: skip
    writer.add("GatewayUserAccount", None, 1, {"id": 1, "name": "PRAC", "balance": 50000.0})
    manifest = writer.close()
    return {"cid": cid, "trades": [*trades, {"price": 21001, "volume": 3}], "manifest": manifest}


async def test_gateway_shaped_recording_replays_as_recorded(tmp_path: Path) -> None:
    path = tmp_path / "gateway"
    made = gateway_like_recording(path)
    cid = made["cid"]
    manifest = made["manifest"]
    assert len(manifest["parts"]) == 3 and manifest["rows"] == 7  # chunks of 3 rows
    assert manifest["start_ns"] == int(SIM_START.timestamp()) * NS
    sim = Simulator(replay=path)
    start, end = sim.replay.start_ns, sim.replay.end_ns
    sim.clock.hold(at=start)
    async with sim, ProjectX.for_simulator(sim) as client:
        await client.authenticate()
        instrument = await client.get_instrument("MNQ")
        assert instrument.id == cid and instrument.active_contract  # the recorded month
        assert (await client.search_instruments("MNQ"))[0].id == cid
        suite = await create_trading_suite(
            "MNQ", project_x=client, timeframes=["1min"], initial_bars=10, transport="native"
        )
        async with suite:
            got: list[dict[str, Any]] = []
            suite.realtime.trade_event += lambda _, items: got.extend(items)
            lock = Lockstep(sim, suite)
            await lock.start()
            await lock.advance_to(start + 5 * NS)
            # the book as the recorded items built it: best ask lifted to 21000.5, bid 21000.25
            assert levels(suite.orderbook.asks) == {21000.5: 6.0}
            assert levels(suite.orderbook.bids) == {21000.25: 3.0, 21000.0: 5.0, 20999.75: 9.0}
            quote = suite.orderbook.quote
            assert quote["bestBid"] == 21000.25 and quote["bestAsk"] == 21000.5
            assert quote["lastPrice"] == 21000 and quote["volume"] == 1200
            # a market buy fills at the recorded best ask
            await suite.orders.place_market_order(cid, OrderSide.BUY, 1)
            await lock.advance_to(end)
            lock.close(release=False)
            fills = await client.search_trades(SIM_START, SIM_START + timedelta(hours=1))
            assert [float(f.price) for f in fills] == [21000.5]
        # prints: same instants and prices (the simulator's own timestamp format)
        recorded_ns = [parse_ts_ns(t["timestamp"]) for t in made["trades"][:2]] + [
            parse_ts_ns("2026-10-01T14:31:10.1234567+00:00")
        ]
        assert [parse_ts_ns(t["timestamp"]) for t in got] == recorded_ns
        assert [t["price"] for t in got] == [21000.25, 21000, 21001]
        assert [t["volume"] for t in got] == [2, 1, 3]
        bars = await client.get_bars(  # the clock stands in the second bar: it is partial
            cid, start_time=SIM_START, end_time=SIM_START + timedelta(minutes=5), partial=True
        )
        assert bars.select("open", "high", "low", "close", "volume").rows() == [
            (21000.25, 21000.25, 21000.0, 21000.0, 3),
            (21001.0, 21001.0, 21001.0, 21001.0, 3),
        ]


async def test_free_running_replay_with_history_from_the_recording(tmp_path: Path) -> None:
    path = tmp_path / "model"
    model, cid, end = record_model(path, minutes=4, trade_rate=3.0)
    start = SIM_START + timedelta(minutes=2)  # the first two minutes become history
    async with (
        Simulator(replay=path, start=start, speed=60.0) as sim,
        ProjectX.for_simulator(sim) as client,
    ):
        await client.authenticate()
        suite = await create_trading_suite(
            "MNQ", project_x=client, timeframes=["1min"], initial_bars=10, transport="native"
        )
        async with suite:
            await suite.data.wait_until_backfilled()
            history = await suite.data.get_bars("1min", 10)
            assert history.height >= 2  # bars of the recorded tape before the start
            last_ns = int(model.tape(cid, model.clock.start_ns, end).ts_ns[-1]) // 100 * 100
            until = Until()
            suite.realtime.trade_event += until
            sim.clock.speed = 120.0  # any speed, changed on the way
            await until.wait(lambda: (suite.data.last_trade_ns or 0) >= last_ns)
            await suite.data.wait_until_backfilled()
            args = (cid, 2, 1, model.clock.start_ns, end, 100, False)
            expected = [b["c"] for b in model.bars(*args)][::-1]
            frame = await suite.data.get_bars("1min", 10)
            assert frame["close"].to_list()[-len(expected) :] == expected


async def test_recorder_writes_bounded_chunks_and_a_final_manifest(
    tmp_path: Path, make_sim: Callable[..., Any]
) -> None:
    sim = await make_sim(speed=30.0, trade_rate=4.0)
    path = tmp_path / "live"
    async with ProjectX.for_simulator(sim) as client:
        await client.authenticate()
        suite = await create_trading_suite(
            "MNQ", project_x=client, timeframes=["1min"], initial_bars=10, transport="native"
        )
        async with suite:
            await suite.orders.place_market_order("MNQ", OrderSide.BUY, 1)
            recorder = SessionRecorder(suite, path, chunk_rows=25)
            until = Until()
            suite.realtime.trade_event += until
            suite.realtime.depth_event += until
            await until.wait(lambda: recorder.rows >= 120)
            with pytest.raises(FileExistsError, match="not an empty directory"):
                SessionRecorder(suite, path)
            await suite.orders.flatten("MNQ")
            manifest = await recorder.close()
    assert manifest["complete"] is True
    rows = [info["rows"] for info in manifest["part_info"]]
    assert all(r == 25 for r in rows[:-1]) and 0 < rows[-1] <= 25
    assert sum(rows) == manifest["rows"] >= 120
    rec = Recording(path)
    events = rec.events()
    assert events["seq"].to_list() == list(range(events.height))
    assert events.filter(pl.col("snapshot"))["target"].to_list()[:1] == ["GatewayDepth"]
    assert set(events["target"]) >= {"GatewayTrade", "GatewayDepth", "GatewayUserTrade"}
    assert rec.fills().height >= 1  # the flatten's fill
    assert "CON.F.US.MNQ" in next(iter(rec.contracts))


def test_unclosed_recording_replays_up_to_its_last_part(tmp_path: Path) -> None:
    path = tmp_path / "crashed"
    made = gateway_like_recording(tmp_path / "source")
    source = Recording(tmp_path / "source").events()
    writer = RecordingWriter(path, chunk_rows=4)
    writer.contracts[made["cid"]] = made["manifest"]["contracts"][made["cid"]]
    for row in source.iter_rows(named=True):
        payload = orjson.loads(row["payload"])
        writer.add(row["target"], row["contract_id"], row["action"], payload)
    writer._pending.result()  # one chunk of 4 rows is on disk, 3 rows are not: a "crash" now
    rec = Recording(path)
    assert rec.complete is False and rec.rows == 4
    replay = ReplaySource(path)
    assert replay.start_ns == made["manifest"]["start_ns"]
    market = replay.market(replay.catalog(SIM_START).by_id(made["cid"]))
    assert len(market.trades(0, 2**62)) == 2  # the third trade was in an unwritten row
    assert writer.close()["complete"] is True


def test_bad_recordings_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="not a session recording"):
        Simulator(replay=tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text('{"format": "something-else"}')
    with pytest.raises(RecordingError, match="manifest"):
        Recording(tmp_path / "bad")
    with pytest.raises(ValueError, match="chunk_rows"):
        RecordingWriter(tmp_path / "w", chunk_rows=0)
