"""A one-year 1-minute history pull read back from the `HistoryStore` cache, against reading the
same Parquet files directly with polars; prints both times and the ratio.

The cache is filled first by a real pull from the simulator (a year of 1-minute MNQ bars, about
527k bars: the simulator trades around the clock), paged through `History/retrieveBars` and
paced by the client's History limiter; that pull is timed and its requests counted too. Then
`store.get()` for the same year runs ROUNDS times (it must make no history request) and the
baseline `pl.scan_parquet(<dataset>/*.parquet).collect()` as often. Both verdicts use the best
round (slower rounds are other processes on a shared machine); medians are printed alongside.
The target is the issue's: well under a second (TARGET_SECONDS).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from projectx_lab import ProjectX
from projectx_lab.research import HistoryStore
from projectx_lab.sim import Simulator

START = datetime(2026, 10, 1, 14, 30, tzinfo=UTC)
FIRST, LAST = START - timedelta(days=366), START - timedelta(days=1)
BARS = "/api/History/retrieveBars"
ROUNDS = 7
TARGET_SECONDS = 0.25


def best_of(times: list[float]) -> str:
    return f"best {min(times) * 1000:7.1f} ms, median {statistics.median(times) * 1000:7.1f} ms"


async def cached_reads(cache_dir: str) -> tuple[pl.DataFrame, list[float], str] | None:
    """Fill the cache from a simulator, then time `store.get()` of the same year."""
    async with Simulator(seed=7, speed=1.0, start=START) as sim:
        async with ProjectX.for_simulator(sim) as client:
            store = HistoryStore(client, cache_dir=cache_dir, progress=False)
            t0 = time.perf_counter()
            filled = await store.get("MNQ", FIRST, LAST)
            fill_s = time.perf_counter() - t0
            requests = sim.request_count(BARS)
            fill = f"{filled.height:,} bars, {requests} requests in {fill_s:.2f} s"
            print(f"fill from simulator:  {fill}")
            times: list[float] = []
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                frame = await store.get("MNQ", FIRST, LAST)
                times.append(time.perf_counter() - t0)
            if sim.request_count(BARS) != requests or not frame.equals(filled):
                print("FAIL: the cached read made requests or returned other bars")
                return None
            return frame, times, (await client.get_instrument("MNQ")).id


def main() -> int:
    with tempfile.TemporaryDirectory() as cache_dir:
        result = asyncio.run(cached_reads(cache_dir))
        if result is None:
            return 1
        frame, cached, contract = result
        dataset = next(Path(cache_dir).rglob(f"{contract}/minute-1"))
        files = sorted(dataset.glob("*.parquet"))
        direct: list[float] = []
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            raw = pl.scan_parquet(dataset / "*.parquet").collect()
            direct.append(time.perf_counter() - t0)
    assert raw.height == frame.height
    ratio = min(cached) / min(direct)
    print(f"store.get (cache):    {frame.height:,} bars from {len(files)} files, {best_of(cached)}")
    print(f"pl.scan_parquet:      {raw.height:,} bars, {best_of(direct)}")
    print(f"ratio store/direct:   {ratio:.2f}x   (target: store.get < {TARGET_SECONDS:.2f} s)")
    return 0 if min(cached) < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
