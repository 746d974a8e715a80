"""Market model speed: trades generated per second, a year of 1-minute bars, book, quote."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from projectx_lab.sim.catalog import Catalog
from projectx_lab.sim.config import SimConfig
from projectx_lab.sim.market import MarketModel

NS = 1_000_000_000
DAY = 86_400 * NS
START = datetime(2026, 10, 2, 14, 30, tzinfo=UTC)
START_NS = int(START.timestamp()) * NS
CONFIG = SimConfig(start=START, trade_rate=3.0, history_days=400)
SPEC = Catalog(START).by_symbol("MNQ")
T = TypeVar("T")


def fresh() -> MarketModel:
    return MarketModel(SPEC, 7, CONFIG)


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def per_call_us(fn: Callable[[int], object], times: list[int]) -> float:
    t0 = time.perf_counter()
    for t in times:
        fn(t)
    return (time.perf_counter() - t0) / len(times) * 1e6


def main() -> None:
    model = fresh()
    secs, trades = timed(lambda: model.trades(START_NS - 2 * DAY, START_NS))
    print(
        f"tape cold, 2 days:         {len(trades):>9,} trades in {secs:6.3f} s "
        f"= {len(trades) / secs / 1e6:5.2f} M trades/s (trade_rate {CONFIG.trade_rate}/s)"
    )

    step = 20_000_000  # a 20 ms pump step at speed 1
    windows = list(range(START_NS - 3_600 * NS, START_NS, step))
    us = per_call_us(lambda t: model.trades(t, t + step), windows)
    print(f"live pump trades(20 ms):   {us:9.1f} us/call (warm hour)")

    year = (START_NS - 366 * DAY, START_NS)
    model = fresh()
    secs, bars = timed(lambda: model.bars(2, 1, *year, 10**7, True, START_NS))
    print(f"1-minute bars, 1 year:     {len(bars):>9,} bars in {secs:6.3f} s cold")
    secs, bars = timed(lambda: model.bars(2, 1, *year, 10**7, True, START_NS))
    print(f"1-minute bars, 1 year:     {len(bars):>9,} bars in {secs:6.3f} s warm")
    secs, bars = timed(lambda: model.bars(2, 1, *year, 20_000, True, START_NS))
    print(f"1-minute bars, limit 20k:  {len(bars):>9,} bars in {secs:6.3f} s warm")
    secs, bars = timed(lambda: fresh().bars(2, 1, *year, 20_000, True, START_NS))
    print(f"1-minute bars, limit 20k:  {len(bars):>9,} bars in {secs:6.3f} s cold")
    secs, bars = timed(lambda: fresh().bars(4, 1, *year, 20_000, True, START_NS))
    print(f"day bars, full history:    {len(bars):>9,} bars in {secs:6.3f} s cold")
    secs, bars = timed(lambda: model.bars(1, 1, START_NS - DAY, START_NS, 20_000, True, START_NS))
    print(f"1-second bars, limit 20k:  {len(bars):>9,} bars in {secs:6.3f} s")

    grid = model.book_times(START_NS - 600 * NS, START_NS)
    print(f"book():                    {per_call_us(model.book, grid):9.1f} us/call")
    print(f"quote():                   {per_call_us(model.quote, grid):9.1f} us/call")


if __name__ == "__main__":
    main()
