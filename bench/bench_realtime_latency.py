"""Real-time latency: from a frame's arrival in the transport to entry into the user callback
on the asyncio loop, at a steady 2,000 messages/s (one record per frame, simulator in a child
process). Reports p50 / p99 / max per transport. Target: p99 < 1 ms.

The arrival stamp is `ProjectXRealtimeClient.frame_time_ns` (taken by the transport when the
frame reaches it); for signalrcore the span includes the thread → loop hand-off.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _hub_feed import HubFeed, market_records, pack

from projectx_lab.realtime import create_realtime_client

RATE = 2_000  # messages per second
SECONDS = 5.0
WARMUP = 500  # first samples dropped (connection warm-up, allocator growth)
TARGET_P99_US = 1_000


async def measure(feed: HubFeed, token: str, transport: str) -> np.ndarray:
    samples: list[int] = []
    clock = time.perf_counter_ns
    expected = [float("inf")]
    all_in = asyncio.Event()

    rt = create_realtime_client(
        token,
        user_hub_url=feed.info.user_hub_url,
        market_hub_url=feed.info.market_hub_url,
        transport=transport,
    )

    def callback(contract_id: str, data: object) -> None:
        samples.append(clock() - rt.frame_time_ns)
        if len(samples) >= expected[0]:
            all_in.set()

    rt.quote_event += callback
    rt.trade_event += callback
    rt.depth_event += callback
    async with rt:
        await asyncio.to_thread(feed.wait_connections, 1)
        expected[0] = await asyncio.to_thread(feed.pace, RATE, SECONDS)
        if len(samples) >= expected[0]:
            all_in.set()
        async with asyncio.timeout(10):
            await all_in.wait()
    await asyncio.to_thread(feed.wait_connections, 0)
    return np.asarray(samples[WARMUP:], dtype=np.int64) / 1_000.0  # µs


def main() -> int:
    ok = True
    with HubFeed() as feed:
        body = {"userName": feed.info.username, "apiKey": feed.info.api_key}
        token = httpx.post(f"{feed.info.api_url}/api/Auth/loginKey", json=body).json()["token"]
        feed.load(pack(market_records(3_000), 1))
        print(f"real-time latency, frame arrival → user callback, {RATE:,} msg/s for {SECONDS:g}s")
        for transport in ("signalrcore", "native"):
            lat = asyncio.run(measure(feed, token, transport))
            p50, p99 = np.percentile(lat, [50, 99])
            ok &= p99 < TARGET_P99_US
            print(
                f"  {transport:>11}: n={lat.size:,}  p50 {p50:7.1f} µs  p99 {p99:7.1f} µs  "
                f"max {lat.max():8.1f} µs"
            )
    print(f"target p99 < {TARGET_P99_US} µs: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
