"""Trade events/s through the `RealtimeDataManager` with 5 timeframes, fed as the real-time client
delivers them, vs a bare handler that only parses the same trade dicts.

The wire dicts come from the simulator's own pump: an `Exchange` stepped every 20 ms of
simulated time (its live pump at speed 1) publishes `GatewayTrade` batches exactly as the market
hub sends them. Both handlers are called through `ProjectXRealtimeClient`'s own market dispatch
(`_market_routes()["GatewayTrade"]`), the last stage of real-time delivery.
Target: ≥ 200,000 trades/s (batched as the pump batches them, and one trade per batch).
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from projectx_lab.managers.data import RealtimeDataManager
from projectx_lab.managers.ticks import parse_ts_ns
from projectx_lab.realtime import create_realtime_client
from projectx_lab.sim.config import SimConfig
from projectx_lab.sim.exchange import Exchange

NS = 1_000_000_000
START = datetime(2026, 10, 1, 13, 30, tzinfo=UTC)  # US cash open: the busiest hours
TIMEFRAMES = ("5sec", "1min", "5min", "15min", "1hr")
TRADE_RATE = 30.0  # mean trades per simulated second (≈ 100/s around the open): a busy contract
STEP_MS = 20  # the simulator's pump interval at speed 1
TRADES = 300_000
ROUNDS = 3
TARGET = 200_000


def sim_stream(
    trade_rate: float = TRADE_RATE, step_ms: int = STEP_MS, symbol: str = "MNQ"
) -> Iterator[tuple[str, str, Any]]:
    """(contract_id, target, data) market messages of a simulator pump stepped every `step_ms`
    of simulated time, forever: `GatewayTrade` lists, `GatewayDepth` lists, `GatewayQuote`."""
    exchange = Exchange(SimConfig(start=START, trade_rate=trade_rate, history_days=2))
    now = [int(START.timestamp()) * NS]
    exchange.clock.now_ns = lambda: now[0]  # a stepped clock instead of the wall clock
    spec = exchange.catalog.by_symbol(symbol)
    assert spec is not None
    out: list[tuple[str, str, Any]] = []

    class Sink:
        def market_event(self, contract_id: str, target: str, data: object) -> None:
            out.append((contract_id, target, data))

    exchange.add_market_sink(Sink())
    exchange.acquire(spec.contract_id)
    step = step_ms * 1_000_000
    while True:
        now[0] += step
        exchange.step()
        yield from out
        out.clear()


def trade_batches(count: int, **options: Any) -> tuple[str, list[list[dict[str, Any]]]]:
    """The first `count` (or a few more) trades of `sim_stream` as GatewayTrade batches."""
    batches: list[list[dict[str, Any]]] = []
    made = 0
    for contract_id, target, data in sim_stream(**options):
        if target == "GatewayTrade":
            batches.append(data)
            made += len(data)
            if made >= count:
                return contract_id, batches
    raise AssertionError("the simulator stream never ends")


def new_manager(contract_id: str, timeframes: tuple[str, ...] = TIMEFRAMES) -> tuple[Any, Any]:
    """An unconnected real-time client and a data manager listening to its trade event the way
    `start_realtime_feed` wires it. Returns (client, manager)."""
    rt = create_realtime_client(
        "bench-token",
        user_hub_url="http://127.0.0.1:9/hubs/user",
        market_hub_url="http://127.0.0.1:9/hubs/market",
    )
    manager = RealtimeDataManager(contract_id, None, rt, timeframes)
    manager.contract_id = contract_id
    rt.trade_event += manager._on_trades
    return rt, manager


def bare_handler(contract_id: str, data: list[dict[str, Any]]) -> None:
    """Baseline: parse each trade's time, price and size, nothing else."""
    for item in data:
        parse_ts_ns(item["timestamp"])
        float(item["price"])
        int(item["volume"])


def feed(rt: Any, contract_id: str, batches: list[list[dict[str, Any]]]) -> float:
    """Seconds to push every batch through the client's GatewayTrade dispatch."""
    route: Callable[[Any], None] = rt._market_routes()["GatewayTrade"]
    gc.collect()
    t0 = time.perf_counter()
    for batch in batches:
        route([contract_id, batch])
    return time.perf_counter() - t0


def measure(contract_id: str, batches: list[list[dict[str, Any]]]) -> tuple[float, float]:
    """Best-of-ROUNDS trades/s: (data manager, bare handler)."""
    n = sum(map(len, batches))
    ours, bare = [], []
    for _ in range(ROUNDS):
        rt, manager = new_manager(contract_id)
        ours.append(n / feed(rt, contract_id, batches))
        assert manager.trades_seen == n, (manager.trades_seen, n)
        rt_bare = create_realtime_client(
            "bench-token",
            user_hub_url="http://127.0.0.1:9/hubs/user",
            market_hub_url="http://127.0.0.1:9/hubs/market",
        )
        rt_bare.trade_event += bare_handler
        bare.append(n / feed(rt_bare, contract_id, batches))
    return max(ours), max(bare)


def main() -> int:
    t0 = time.perf_counter()
    contract_id, batches = trade_batches(TRADES)
    n = sum(map(len, batches))
    print(
        f"tape: {n:,} trades of {contract_id} in {len(batches):,} GatewayTrade batches "
        f"(mean {n / len(batches):.2f}/batch, simulator pump every {STEP_MS} ms, trade_rate "
        f"{TRADE_RATE:g}/s), generated in {time.perf_counter() - t0:.1f} s"
    )
    print(f"data manager timeframes: {', '.join(TIMEFRAMES)}; best of {ROUNDS}")
    singles = [[item] for batch in batches for item in batch]
    ok = True
    for layout, stream in (("pump batches", batches), ("1 trade/batch", singles)):
        ours, bare = measure(contract_id, stream)
        ok &= ours >= TARGET
        print(
            f"  {layout:>14}: data manager {ours:>10,.0f} trades/s | bare parse handler "
            f"{bare:>10,.0f} trades/s → ratio {ours / bare:.2f}× | target {TARGET:,}: "
            f"{ours / TARGET:.2f}×"
        )
    print(f"target ≥ {TARGET:,} trades/s: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
