"""100 concurrent reads (`asyncio.gather`) vs the same 100 one after another, through `ProjectX`
against the simulator with 20 ms of added latency on every REST request; prints the ratio.

The simulator runs in its own process, as the gateway would: in-process it would share the
client's core and the event loop, and the ratio would measure the simulator's request handling
as much as the client. (`--in-process` runs that variant too, for reference.)

Rate limits: the gateway's rest bucket (200 / 60 s) cannot hold warm-up plus three rounds of
both runs, so the simulator is started with a documented higher bucket, `rest_rate=(3000, 60 s)`,
and the client is given the same bucket: its limiter stays on, and the bench fails if it earns
a single 429. The read is `Account/search` (`list_accounts`): an authenticated POST returning
the JSON envelope.

Each mode runs ROUNDS times after a warm-up round. The verdict uses the best round of each
(as `timeit` does: slower rounds are other processes on a shared machine); medians are printed
alongside. httpcore imports `sniffio` on every lock it creates: without that package installed
each request pays ~15 failed imports, about a fifth of the client's CPU per request.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import statistics
import sys
import time
from types import SimpleNamespace

from projectx_lab import ProjectX
from projectx_lab.sim import Simulator

READS = 100
LATENCY = 0.020
ROUNDS = 5
REST_RATE = (3000, 60.0)
TARGET = 30.0


def _serve(conn) -> None:
    """Child process: run a simulator until the parent says stop."""

    async def main() -> None:
        async with Simulator(seed=7, rest_rate=REST_RATE) as sim:
            sim.faults.add_latency(LATENCY)
            conn.send((sim.api_url, sim.username, sim.api_key))
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    asyncio.run(main())


async def measure(target) -> tuple[list[float], list[float], int]:
    """(concurrent seconds per round, sequential seconds per round, 429s earned)."""
    async with ProjectX.for_simulator(target, rest_rate=REST_RATE) as client:
        await client.authenticate()

        async def concurrent() -> None:
            results = await asyncio.gather(*(client.list_accounts() for _ in range(READS)))
            assert len(results) == READS and all(results)

        async def sequential() -> None:
            for _ in range(READS):
                assert await client.list_accounts()

        async def timed(run) -> float:
            started = time.perf_counter()
            await run()
            return time.perf_counter() - started

        await concurrent()  # warm-up: opens the connections
        gathered = [await timed(concurrent) for _ in range(ROUNDS)]
        serial = [await timed(sequential) for _ in range(ROUNDS)]
        return gathered, serial, client.stats.rate_limited


def report(label: str, gathered: list[float], serial: list[float], limited: int) -> float:
    """Print both modes and the ratio; returns the best-round ratio."""
    best = min(serial) / min(gathered)
    typical = statistics.median(serial) / statistics.median(gathered)
    print(f"{label}: {READS} reads, {LATENCY * 1000:.0f} ms added latency, {ROUNDS} rounds")
    for name, runs in (("concurrent (asyncio.gather)", gathered), ("sequential", serial)):
        ms = min(runs) * 1000, statistics.median(runs) * 1000
        print(f"  {name:<28} best {ms[0]:8.1f} ms   median {ms[1]:8.1f} ms")
    print(f"  ratio sequential/concurrent  best {best:8.1f}x    median {typical:8.1f}x")
    print(f"  429s earned: {limited}")
    return best


async def in_process() -> None:
    async with Simulator(seed=7, rest_rate=REST_RATE) as sim:
        sim.faults.add_latency(LATENCY)
        report("simulator in-process (reference)", *await measure(sim))


def main() -> int:
    parent, child = mp.Pipe()
    server = mp.get_context("spawn").Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        api_url, username, api_key = parent.recv()
        target = SimpleNamespace(
            api_url=api_url,
            user_hub_url=f"{api_url}/hubs/user",
            market_hub_url=f"{api_url}/hubs/market",
            username=username,
            api_key=api_key,
        )
        gathered, serial, limited = asyncio.run(measure(target))
    finally:
        parent.send("stop")
        server.join(10)
    ratio = report("simulator in its own process", gathered, serial, limited)
    if "--in-process" in sys.argv:
        asyncio.run(in_process())
    if limited:
        print("FAIL: the client earned 429s")
        return 1
    if ratio < TARGET:
        print(f"FAIL: below the {TARGET:.0f}x target")
        return 1
    print(f"OK: >= {TARGET:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
