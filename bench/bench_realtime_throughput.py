"""Real-time delivery rate: events reaching a user callback on the asyncio loop through
`ProjectXRealtimeClient`, vs a stock signalrcore handler on signalrcore's own thread, on the
same stream (the simulator in a child process pushes identical bursts to each in turn).

Two layouts: one record per WebSocket frame, and records packed into 16 KB frames (what
ASP.NET SignalR does under load). Target: ratio ≥ 1.0 for the default (signalrcore) transport.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _hub_feed import Counter, HubFeed, market_records, pack, stock_signalrcore

from projectx_lab.realtime import create_realtime_client

RECORDS = 30_000  # ~6.5 MB per burst, under the simulator's 8 MB per-connection queue
ROUNDS = 5
TARGETS = ("GatewayQuote", "GatewayTrade", "GatewayDepth")


async def ours(feed: HubFeed, token: str, transport: str) -> float:
    counter = Counter(RECORDS)
    done = asyncio.Event()

    def callback(contract_id: str, data: object) -> None:
        if counter.hit():
            done.set()

    rt = create_realtime_client(
        token,
        user_hub_url=feed.info.user_hub_url,
        market_hub_url=feed.info.market_hub_url,
        transport=transport,
    )
    rt.quote_event += callback
    rt.trade_event += callback
    rt.depth_event += callback
    async with rt:
        await asyncio.to_thread(feed.wait_connections, 1)
        await asyncio.to_thread(feed.burst)
        async with asyncio.timeout(120):
            await done.wait()
    await asyncio.to_thread(feed.wait_connections, 0)
    return counter.rate


def main() -> int:
    records = market_records(RECORDS)
    ok = True
    with HubFeed() as feed:
        body = {"userName": feed.info.username, "apiKey": feed.info.api_key}
        token = httpx.post(f"{feed.info.api_url}/api/Auth/loginKey", json=body).json()["token"]
        print(f"real-time delivery rate, {RECORDS:,} market records per burst, best of {ROUNDS}")
        for layout, frame_bytes in (("1 record/frame", 1), ("16 KB frames", 16_384)):
            frames = pack(records, frame_bytes)
            feed.load(frames)
            rates: dict[str, list[float]] = {"stock": [], "signalrcore": [], "native": []}
            for _ in range(ROUNDS):
                rates["stock"].append(stock_signalrcore(feed, token, RECORDS, TARGETS))
                for transport in ("signalrcore", "native"):
                    rates[transport].append(asyncio.run(ours(feed, token, transport)))
            best = {name: max(values) for name, values in rates.items()}
            ratio = best["signalrcore"] / best["stock"]
            ok &= ratio >= 1.0
            print(
                f"  {layout:>15} ({len(frames):,} frames): stock signalrcore handler "
                f"{best['stock']:>9,.0f} ev/s | ours (signalrcore) {best['signalrcore']:>9,.0f}"
                f" ev/s → ratio {ratio:.2f}× | ours (native) {best['native']:>9,.0f} ev/s → "
                f"{best['native'] / best['stock']:.2f}×"
            )
    print(f"target ratio ≥ 1.0 (default transport): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
