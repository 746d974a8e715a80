"""Bounded memory: the data manager (5 timeframes) and the OrderBook after streaming 1,000,000
trades (with the depth updates and quotes of the same stream) vs after 10,000.

A child process runs the simulator's pump (`bench_data_manager.sim_stream`) and sends its market
messages as JSON; this process decodes them with orjson (as the real-time client does) and
delivers them through `ProjectXRealtimeClient`'s own market dispatch. Memory is what tracemalloc
sees allocated and still alive in this process (everything the component retains, the wire
strings it keeps included) after a garbage collection; RSS is printed for information.
Target: ratio ≤ 1.2 for each component.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import sys
import time
import tracemalloc
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from bench_data_manager import new_manager, sim_stream

from projectx_lab.managers.orderbook import OrderBook
from projectx_lab.realtime import create_realtime_client

EARLY = 10_000
TOTAL = 1_000_000
TRADE_RATE = 100.0  # denser tape than the throughput bench: the same messages, fewer pump steps
CHUNK = 500  # messages per pipe send
TARGET = 1.2
MB = 1e6


def _produce(pipe: Connection, total: int) -> None:
    """Child: send the simulator's market messages, CHUNK per send, until `total` trades."""
    trades = 0
    chunk: list[Any] = []
    for message in sim_stream(trade_rate=TRADE_RATE):
        chunk.append(message)
        if message[1] == "GatewayTrade":
            trades += len(message[2])
        if len(chunk) >= CHUNK or trades >= total:
            pipe.send_bytes(orjson.dumps(chunk))
            chunk = []
            if trades >= total:
                break
    pipe.send_bytes(b"")
    pipe.close()


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def _book_client(contract_id: str) -> tuple[Any, OrderBook]:
    """An unconnected real-time client feeding an OrderBook the way `BookFeed` wires it."""
    rt = create_realtime_client(
        "bench-token",
        user_hub_url="http://127.0.0.1:9/hubs/user",
        market_hub_url="http://127.0.0.1:9/hubs/market",
    )
    book = OrderBook(contract_id, 0.25)
    rt.depth_event += lambda cid, items: book.apply_depth(items)
    rt.trade_event += lambda cid, items: book.apply_trades(items)
    rt.quote_event += lambda cid, quote: book.apply_quote(quote)
    return rt, book


def run(name: str, build: Callable[[str], tuple[Any, Any]], contract_id: str) -> float:
    """Stream TOTAL trades into the component `build` makes; print and return the ratio."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_produce, args=(child, TOTAL), daemon=True)
    process.start()
    child.close()
    tracemalloc.start()
    rt, component = build(contract_id)
    routes = rt._market_routes()
    trades = depth = 0
    marks: dict[int, tuple[int, int]] = {}
    t0 = time.perf_counter()
    while True:
        raw = parent.recv_bytes()
        if not raw:
            break
        for cid, target, data in orjson.loads(raw):
            routes[target]([cid, data])
            if target == "GatewayTrade":
                trades += len(data)
            elif target == "GatewayDepth":
                depth += len(data)
        del raw
        if not marks and trades >= EARLY:
            gc.collect()
            marks[trades] = (tracemalloc.get_traced_memory()[0], _rss())
    gc.collect()
    marks[trades] = (tracemalloc.get_traced_memory()[0], _rss())
    tracemalloc.stop()
    process.join(10)
    (early_n, (early_mem, early_rss)), (late_n, (late_mem, late_rss)) = marks.items()
    ratio = late_mem / early_mem
    print(
        f"  {name:>22}: {early_mem / MB:7.2f} MB after {early_n:>9,} trades → "
        f"{late_mem / MB:7.2f} MB after {late_n:,} trades (+{depth:,} depth items, "
        f"{time.perf_counter() - t0:.0f} s) → ratio {ratio:.2f}× | RSS {early_rss / MB:.0f} → "
        f"{late_rss / MB:.0f} MB"
    )
    print(f"  {'':>22}  {component!r}")
    return ratio


def main() -> int:
    contract_id = next(sim_stream())[0]
    print(
        f"memory retained (tracemalloc) after {EARLY:,} vs {TOTAL:,} trades of {contract_id}, "
        f"simulator tape at trade_rate {TRADE_RATE:g}/s with its depth and quotes"
    )
    ratios = {
        "data manager (5 tf)": run("data manager (5 tf)", new_manager, contract_id),
        "order book": run("order book", _book_client, contract_id),
    }
    worst = max(ratios.values())
    ok = worst <= TARGET
    print(f"target ratio ≤ {TARGET}: {'met' if ok else 'NOT met'} (worst {worst:.2f}×)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
