"""End to end over signalrcore: trade events folded into the data manager's bars (5 timeframes)
per second, vs the events per second a stock signalrcore handler receives, on the same stream.

The simulator runs in a child process (`_hub_feed.HubFeed`) and pushes identical bursts of
`GatewayTrade` records, cut from its own pump's tape (`bench_data_manager.sim_stream`), to each
consumer in turn: a documented signalrcore 1.0.2 connection counting on its receive thread, and
`ProjectXRealtimeClient` (signalrcore transport) delivering to a `RealtimeDataManager` on the
asyncio loop. Two layouts: one record per WebSocket frame, and 16 KB frames.
Target: ours ≥ 0.9× the stock handler's rate.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _hub_feed import RS, Counter, HubFeed, pack, stock_signalrcore
from bench_data_manager import TIMEFRAMES, sim_stream

from projectx_lab.managers.data import RealtimeDataManager
from projectx_lab.realtime import create_realtime_client

BURST_BYTES = 6_500_000  # per burst, under the simulator's 8 MB per-connection queue
WARMUP = 12_000  # trades the data manager has seen before the burst (its tick buffer is full)
ROUNDS = 7
TARGET = 0.9


def trade_records(budget: int) -> tuple[str, list[list[dict[str, Any]]], list[str], int]:
    """The simulator's tape as (contract id, WARMUP trades as GatewayTrade batches, the next
    GatewayTrade records up to `budget` bytes, trades in those records)."""
    warmup: list[list[dict[str, Any]]] = []
    records: list[str] = []
    warm = trades = size = 0
    for contract_id, target, data in sim_stream():
        if target != "GatewayTrade":
            continue
        if warm < WARMUP:
            warmup.append(data)
            warm += len(data)
            continue
        record = orjson.dumps({"type": 1, "target": target, "arguments": [contract_id, data]})
        size += len(record) + 1
        if size > budget:
            return contract_id, warmup, records, trades
        records.append(record.decode() + RS)
        trades += len(data)
    raise AssertionError("the simulator stream never ends")


async def ours(
    feed: HubFeed,
    token: str,
    contract_id: str,
    warmup: list[list[dict[str, Any]]],
    expected: int,
    trades: int,
) -> float:
    """Events/s folded into the bars: `ProjectXRealtimeClient` → `RealtimeDataManager` that has
    already seen the `warmup` trades (a session in progress, not a cold start)."""
    counter = Counter(expected)
    done = asyncio.Event()
    rt = create_realtime_client(
        token, user_hub_url=feed.info.user_hub_url, market_hub_url=feed.info.market_hub_url
    )
    manager = RealtimeDataManager(contract_id, None, rt, TIMEFRAMES)
    manager.contract_id = contract_id  # no history: the bars come from the tape alone
    for batch in warmup:
        manager._on_trades(contract_id, batch)
    seen = manager.trades_seen

    def folded(cid: str, data: object) -> None:  # runs after the manager's handler
        if counter.hit():
            done.set()

    rt.trade_event += manager._on_trades
    rt.trade_event += folded
    async with rt:
        await asyncio.to_thread(feed.wait_connections, 1)
        gc.collect()
        await asyncio.to_thread(feed.burst)
        async with asyncio.timeout(120):
            await done.wait()
    await asyncio.to_thread(feed.wait_connections, 0)
    if manager.trades_seen - seen != trades:
        raise RuntimeError(f"data manager folded {manager.trades_seen - seen:,}/{trades:,} trades")
    return counter.rate


def main() -> int:
    contract_id, warmup, records, trades = trade_records(BURST_BYTES)
    count = len(records)
    ok = True
    with HubFeed() as feed:
        body = {"userName": feed.info.username, "apiKey": feed.info.api_key}
        token = httpx.post(f"{feed.info.api_url}/api/Auth/loginKey", json=body).json()["token"]
        print(
            f"end to end over signalrcore: {count:,} GatewayTrade records ({trades:,} trades) "
            f"per burst, data manager with {len(TIMEFRAMES)} timeframes, best of {ROUNDS}"
        )
        for layout, frame_bytes in (("1 record/frame", 1), ("16 KB frames", 16_384)):
            frames = pack(records, frame_bytes)
            feed.load(frames)
            stock, mine = [], []
            for _ in range(ROUNDS):
                stock.append(stock_signalrcore(feed, token, count, ("GatewayTrade",), collect=True))
                mine.append(asyncio.run(ours(feed, token, contract_id, warmup, count, trades)))
            ratio = max(mine) / max(stock)
            ok &= ratio >= TARGET
            per = trades / count
            print(
                f"  {layout:>15} ({len(frames):,} frames): stock signalrcore handler "
                f"{max(stock):>8,.0f} ev/s | data manager bars {max(mine):>8,.0f} ev/s "
                f"({max(mine) * per:>8,.0f} trades/s) → ratio {ratio:.2f}×"
            )
    print(f"target ratio ≥ {TARGET}: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
