"""Replay throughput: a recorded session replayed at maximum speed into a TradingSuite.

1. A recording is made without a network: a seeded `Exchange` steps through `--minutes` of a
   busy session and a sink writes every message it publishes (what a suite's recorder would
   store) through `RecordingWriter`.
2. `Simulator(replay=...)` serves it; a `TradingSuite` (data manager, order book, orders,
   positions) subscribes; `Lockstep` advances the held clock as fast as the suite absorbs it
   (each step waits until the suite has every message).
3. Market events = trade prints + depth items + quote messages delivered to the suite.
   `--record` also runs a `SessionRecorder` on the suite (recording the replay again).

    python bench/bench_replay.py [--minutes 20] [--trade-rate 40] [--step 2]
                                 [--transport native|signalrcore] [--record]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from projectx_lab import ProjectX, create_trading_suite
from projectx_lab.research.lockstep import Lockstep
from projectx_lab.research.recorder import RecordingWriter, SessionRecorder
from projectx_lab.sim import SimConfig, Simulator
from projectx_lab.sim.exchange import Exchange

TARGET = 100_000
NS = 1_000_000_000
START = datetime(2026, 10, 1, 14, 30, tzinfo=UTC)


class _Capture:
    """Exchange sink writing what the market hub would send to a subscriber."""

    def __init__(self, writer: RecordingWriter) -> None:
        self.writer = writer
        self.events = 0

    def market_event(self, contract_id: str, target: str, data: Any) -> None:
        self.events += len(data) if target != "GatewayQuote" else 1
        self.writer.add(target, contract_id, None, data)


def make_recording(path: Path, minutes: int, trade_rate: float) -> tuple[str, int, int, int]:
    """Record `minutes` of the seeded MNQ market; returns (contract, start, end, events)."""
    exchange = Exchange(SimConfig(seed=7, start=START, trade_rate=trade_rate))
    cid = exchange.catalog.by_symbol("MNQ").contract_id
    writer = RecordingWriter(path, chunk_rows=2_000)
    writer.contracts[cid] = exchange.contract(cid)
    capture = _Capture(writer)
    start = exchange.clock.hold()
    exchange.add_market_sink(capture)
    exchange.acquire(cid)
    writer.add("GatewayDepth", cid, None, exchange.depth_snapshot(cid), snapshot=True)
    end = start + minutes * 60 * NS
    for t in range(start + NS // 4, end + 1, NS // 4):  # the pump's pace at 4 steps / sim s
        exchange.clock.advance_to(t)
        exchange.step()
    writer.close(start_ns=start, end_ns=end)
    return cid, start, end, capture.events


async def replay(
    path: Path, step_s: float, transport: str, record: Path | None
) -> dict[str, float]:
    async with Simulator(replay=path) as sim:
        assert sim.replay is not None
        start, end = sim.replay.start_ns, sim.replay.end_ns
        sim.clock.hold(at=start)
        async with ProjectX.for_simulator(sim) as client:
            await client.authenticate()
            suite = await create_trading_suite(
                "MNQ", project_x=client, timeframes=["1min", "5min"], transport=transport
            )
            async with suite:
                counts = {"events": 0}

                def on_list(_: str, data: list[Any]) -> None:
                    counts["events"] += len(data)

                def on_quote(_: str, __: Any) -> None:
                    counts["events"] += 1

                rt = suite.realtime
                rt.trade_event += on_list
                rt.depth_event += on_list
                rt.quote_event += on_quote
                recorder = SessionRecorder(suite, record) if record else None
                lock = Lockstep(sim, suite, timeout=60.0)
                await lock.start()
                counts["events"] = 0
                step = int(step_s * NS)
                began = time.perf_counter()
                t = start
                while t < end:
                    t = min(t + step, end)
                    await lock.advance_to(t)
                if recorder is not None:
                    await recorder.close()
                elapsed = time.perf_counter() - began
                lock.close()
                return {
                    "events": counts["events"],
                    "seconds": elapsed,
                    "steps": lock.steps,
                    "trades_seen": suite.data.trades_seen,
                    "sim_seconds": (end - start) / NS,
                }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=20)
    parser.add_argument("--trade-rate", type=float, default=40.0)
    parser.add_argument("--step", type=float, default=2.0, help="simulated seconds per step")
    parser.add_argument("--transport", default="native", choices=["native", "signalrcore"])
    parser.add_argument("--record", action="store_true", help="record the replayed session too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "session"
        began = time.perf_counter()
        cid, _, _, recorded = make_recording(path, args.minutes, args.trade_rate)
        print(
            f"recording: {args.minutes} min of {cid} at {args.trade_rate:g} trades/s, "
            f"{recorded:,} market events, made in {time.perf_counter() - began:.1f}s"
        )
        again = Path(tmp) / "again" if args.record else None
        out = asyncio.run(replay(path, args.step, args.transport, again))
    rate = out["events"] / out["seconds"]
    print(
        f"replay ({args.transport}, {args.step:g} sim-s steps"
        f"{', recording' if args.record else ''}): {out['events']:,} events "
        f"({out['trades_seen']:,} trades) in {out['seconds']:.2f}s, {out['steps']} steps, "
        f"{out['sim_seconds'] / out['seconds']:.0f}x real time"
    )
    print(f"events/s: {rate:,.0f}  (target {TARGET:,}: ratio {rate / TARGET:.2f})")


if __name__ == "__main__":
    main()
