"""Cost of a live `CandlestickChart` update with 200 vs 20,000 bars of history behind it.

A `RealtimeDataManager` (1min) is preloaded with `history` bars, then fed seeded trade batches
through its real-time trade handler (`_on_trades`, what the market hub dispatch calls); after
each batch the chart draws one frame (`refresh()`, the work its throttle does per frame: read
the newest bars with `BarSeries.tail`, update the forming bar, append and trim on new bars, one
`batch_update`). The chart
shows 200 bars with volume in both runs. Measured: median and p90 time per frame (ticks +
draw), with and without indicators (SMA 20, EMA 50, VWAP), best of 3 interleaved runs. For
contrast: the O(history) cost of the series' public copy (`arrays()`) the chart avoids per frame.

Target: 20,000-bar / 200-bar median frame cost ≤ 1.2.
"""

from __future__ import annotations

import asyncio
import gc
import random
import statistics
import sys
import time
from datetime import UTC, datetime

import numpy as np

from projectx_lab.managers.data import RealtimeDataManager
from projectx_lab.notebook import CandlestickChart

NS = 1_000_000_000
MIN = 60 * NS
CID = "CON.F.US.MNQ.Z26"
START_NS = int(datetime(2026, 10, 1, 14, 30, tzinfo=UTC).timestamp()) * NS
TICK = 0.25
FRAMES = 600
TRADES_PER_FRAME = 12  # ~0.125 s of a busy contract at 8 fps
SIM_NS_PER_FRAME = 2 * NS  # a new 1min bar every 30 frames: appends and trims are exercised
SHOWN = 200
TARGET = 1.2


def wire_time(ts_ns: int) -> str:
    """The gateway's timestamp format (7 fractional digits, +00:00)."""
    secs, frac = divmod(ts_ns, NS)
    head = datetime.fromtimestamp(secs, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{head}.{frac // 100:07d}+00:00"


def trade_batches(seed: int) -> list[list[dict]]:
    rng = random.Random(seed)
    price = 20_000.0
    batches = []
    for frame in range(FRAMES):
        base = START_NS + frame * SIM_NS_PER_FRAME
        batch = []
        for k in range(TRADES_PER_FRAME):
            price = round(price + rng.choice((-TICK, 0.0, 0.0, TICK)), 2)
            ts = base + k * (SIM_NS_PER_FRAME // TRADES_PER_FRAME)
            batch.append(
                {
                    "symbolId": "F.US.MNQ",
                    "price": price,
                    "timestamp": wire_time(ts),
                    "type": rng.randint(0, 1),
                    "volume": rng.randint(1, 5),
                }
            )
        batches.append(batch)
    return batches


def manager_with_history(history: int) -> RealtimeDataManager:
    manager = RealtimeDataManager("MNQ", None, None, ["1min"], max_bars=history + FRAMES)
    manager.contract_id = CID
    rng = np.random.default_rng(7)
    t = START_NS - MIN * np.arange(history, 0, -1, dtype=np.int64)
    close = 20_000.0 + np.cumsum(rng.choice([-TICK, 0.0, TICK], history))
    open_ = np.roll(close, 1)
    open_[0] = close[0]
    high = np.maximum(open_, close) + TICK
    low = np.minimum(open_, close) - TICK
    volume = rng.integers(50, 500, history)
    manager.series("1min").upsert(t, open_, high, low, close, volume)
    return manager


async def frame_costs(
    history: int, indicators: list[str], batches: list[list[dict]]
) -> list[float]:
    manager = manager_with_history(history)
    chart = CandlestickChart(manager, bars=SHOWN, indicators=indicators, fps=120)
    costs = []
    gc.collect()
    try:
        for batch in batches:
            t0 = time.perf_counter()
            manager._on_trades(CID, batch)
            chart.refresh()
            costs.append(time.perf_counter() - t0)
        assert len(chart.figure.data[0].x) == SHOWN
        assert chart.window.reloads == 1, "the chart re-read all history after the first frame"
    finally:
        chart.close()
    return costs[20:]  # warm-up frames out


def arrays_cost(history: int) -> float:
    series = manager_with_history(history).series("1min")
    t0 = time.perf_counter()
    for _ in range(50):
        series.arrays()
    return (time.perf_counter() - t0) / 50


async def run() -> int:
    batches = trade_batches(11)
    ok = True
    for indicators in ([], ["sma20", "ema50", "vwap"]):
        medians: dict[int, float] = {}
        p90: dict[int, float] = {}
        for history in (200, 20_000) * 3:  # interleaved, best of 3: shared CPUs drift
            costs = await frame_costs(history, indicators, batches)
            median = statistics.median(costs)
            if history not in medians or median < medians[history]:
                medians[history] = median
                p90[history] = statistics.quantiles(costs, n=10)[-1]
        ratio = medians[20_000] / medians[200]
        label = ", ".join(indicators) or "no indicators"
        for history in (200, 20_000):
            print(
                f"[{label}] history {history:>6,} bars: {medians[history] * 1e6:,.0f} µs/frame "
                f"median, {p90[history] * 1e6:,.0f} µs p90 ({TRADES_PER_FRAME} ticks + 1 draw)"
            )
        verdict = "OK" if ratio <= TARGET else "FAIL"
        print(f"[{label}] 20,000 / 200 ratio: {ratio:.3f} (target ≤ {TARGET}) {verdict}")
        ok = ok and ratio <= TARGET
    for history in (200, 20_000):
        cost = arrays_cost(history)
        print(f"avoided per frame: series.arrays() at {history:,} bars = {cost * 1e6:,.0f} µs")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(run()))
