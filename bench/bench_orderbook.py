"""Throughput of the OrderBook hot paths: depth items/s through `apply_depth` and trades/s
through `apply_trades`, fed in batches shaped like the real-time client delivers them."""

from __future__ import annotations

import random
import sys
import time
import tracemalloc
from datetime import UTC, datetime

from projectx_lab.managers.orderbook import OrderBook

TICK = 0.25
DEPTH_ITEMS = 300_000
TRADES = 500_000
TARGET_DEPTH_PER_S = 100_000


def _iso(ms: int) -> str:
    base = datetime.fromtimestamp(ms // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{ms % 1000:03d}0000+00:00"


def depth_stream(seed: int, n_items: int, levels: int = 10) -> list[list[dict]]:
    """A seeded random-walk book published like the simulator: Reset + snapshot, then per step
    the changed levels as 1/2 items (volume 0 removes), 9/10 when a best price moves and 3/4
    with the top level whenever it changed."""
    rng = random.Random(seed)
    prices: dict[int, float] = {}

    def px(t: int) -> float:
        p = prices.get(t)
        if p is None:
            p = prices[t] = round(t * TICK, 2)
        return p

    mid = 84_000
    bids = {mid - i: rng.randint(1, 40) for i in range(levels)}
    asks = {mid + 1 + i: rng.randint(1, 40) for i in range(levels)}
    ms = 1_790_000_000_000
    ts = _iso(ms)
    snap = [{"timestamp": ts, "type": 6, "price": 0, "volume": 0, "currentVolume": 0}]
    snap += [
        {"timestamp": ts, "type": 2, "price": px(p), "volume": v, "currentVolume": v}
        for p, v in bids.items()
    ]
    snap += [
        {"timestamp": ts, "type": 1, "price": px(p), "volume": v, "currentVolume": v}
        for p, v in asks.items()
    ]
    batches = [snap]
    total = len(snap)
    while total < n_items:
        ms += 250
        ts = _iso(ms)
        if rng.random() < 0.3:
            mid += rng.choice((-1, 1))
        nb = {p: bids.get(p) or rng.randint(1, 40) for p in range(mid - levels + 1, mid + 1)}
        na = {p: asks.get(p) or rng.randint(1, 40) for p in range(mid + 1, mid + 1 + levels)}
        for side in (nb, na):
            for p in rng.sample(sorted(side), 2):
                side[p] = rng.randint(1, 60)
        batch = []
        for typ, old, new in ((2, bids, nb), (1, asks, na)):
            for p in old.keys() - new.keys():
                batch.append(
                    {
                        "timestamp": ts,
                        "type": typ,
                        "price": px(p),
                        "volume": 0,
                        "currentVolume": -old[p],
                    }
                )
            for p, v in new.items():
                if old.get(p) != v:
                    batch.append(
                        {
                            "timestamp": ts,
                            "type": typ,
                            "price": px(p),
                            "volume": v,
                            "currentVolume": v - old.get(p, 0),
                        }
                    )
        bb_old, bb = max(bids), max(nb)
        ba_old, ba = min(asks), min(na)
        if bb != bb_old:
            batch.append(
                {"timestamp": ts, "type": 9, "price": px(bb), "volume": nb[bb], "currentVolume": 0}
            )
        if bb != bb_old or nb[bb] != bids[bb_old]:
            batch.append(
                {"timestamp": ts, "type": 4, "price": px(bb), "volume": nb[bb], "currentVolume": 0}
            )
        if ba != ba_old:
            batch.append(
                {"timestamp": ts, "type": 10, "price": px(ba), "volume": na[ba], "currentVolume": 0}
            )
        if ba != ba_old or na[ba] != asks[ba_old]:
            batch.append(
                {"timestamp": ts, "type": 3, "price": px(ba), "volume": na[ba], "currentVolume": 0}
            )
        bids, asks = nb, na
        batches.append(batch)
        total += len(batch)
    return batches


def trade_stream(seed: int, n: int, book: OrderBook) -> list[list[dict]]:
    """Trades at the book's best prices in batches of 1-5, buy and sell aggressors mixed."""
    rng = random.Random(seed)
    bid, ask = book.best_bid, book.best_ask
    ms = 1_790_000_000_000
    out: list[list[dict]] = []
    made = 0
    while made < n:
        ms += 7
        ts = _iso(ms)
        k = rng.randint(1, 5)
        out.append(
            [
                {
                    "symbolId": "F.US.MNQ",
                    "price": ask if s == 0 else bid,
                    "timestamp": ts,
                    "type": s,
                    "volume": rng.randint(1, 5),
                }
                for s in (rng.randint(0, 1) for _ in range(k))
            ]
        )
        made += k
    return out


def bench_depth(levels: int, max_levels: int) -> tuple[OrderBook, list[list[dict]], float]:
    """Depth items/s for a `levels`-deep random-walk book; returns the book and the stream."""
    depth = depth_stream(7, DEPTH_ITEMS, levels)
    n_items = sum(map(len, depth))
    book = OrderBook("CON.F.US.MNQ.Z26", TICK, max_levels=max_levels, max_trades=50_000)
    book.on_update.append(lambda b: None)
    book.on_trade.append(lambda b, t: None)
    t0 = time.perf_counter()
    for batch in depth:
        book.apply_depth(batch)
    dt = time.perf_counter() - t0
    rate = n_items / dt
    print(
        f"depth ({levels} levels/side): {n_items:,} items in {len(depth):,} batches, "
        f"{dt:.3f} s → {rate:,.0f} items/s, {len(depth) / dt:,.0f} batches/s"
    )
    return book, depth, rate


def main() -> int:
    _, _, deep_rate = bench_depth(100, 200)
    book, depth, depth_rate = bench_depth(10, 50)
    n_items = sum(map(len, depth))

    trades = trade_stream(11, TRADES, book)
    n_trades = sum(map(len, trades))
    t0 = time.perf_counter()
    for batch in trades:
        book.apply_trades(batch)
    dt = time.perf_counter() - t0
    print(f"trades: {n_trades:,} in {len(trades):,} batches, {dt:.3f} s → {n_trades / dt:,.0f}/s")

    t0 = time.perf_counter()
    snaps = 200
    for _ in range(snaps):
        book.get_orderbook_snapshot(levels=10)
    print(f"snapshot(levels=10): {(time.perf_counter() - t0) / snaps * 1e6:,.0f} µs each")

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for batch in trades:
        book.apply_trades(batch)
    for batch in depth:
        book.apply_depth(batch)
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    print(
        f"memory growth over a further {n_trades:,} trades + {n_items:,} depth items: "
        f"{grown / 1e6:.2f} MB (levels {len(book.bids)}/{len(book.asks)}, "
        f"tape {book.trade_count:,})"
    )
    worst = min(depth_rate, deep_rate)
    ok = worst >= TARGET_DEPTH_PER_S
    verdict = "PASS" if ok else "FAIL"
    print(f"depth target {TARGET_DEPTH_PER_S:,}/s: {verdict} ({worst / TARGET_DEPTH_PER_S:.1f}×)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
