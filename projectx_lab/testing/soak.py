"""Scenario 10: a long stream into a full `TradingSuite` with periodic market-hub drops, and
the process's memory at the end against its memory after the first events.

Memory is what the SDK retains: at both points the simulated market is stopped, frames in
flight are drained, and the resident set is read after a collection and `malloc_trim`.

The simulator runs in a child process (its own core and its own memory), so the resident set
measured here is the SDK's: client, real-time transport, data manager, order book, managers.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from projectx_lab.client import ProjectX
from projectx_lab.realtime import ConnectionState
from projectx_lab.suite import TradingSuite

from .rig import SIM_START, Changes, RigOptions

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """Resident set size of this process (Linux `/proc/self/statm`)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


def settled_rss() -> int:
    """RSS after a full collection and after the C allocator handed its free pages back
    (`malloc_trim`, glibc): live memory plus fragmentation, not allocator high-water marks of
    the transport threads' bursts. Measured the same way at the baseline and the end."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_bytes()


def _serve(conn: Connection, options: dict[str, Any]) -> None:
    """Child process: a simulator in a thread; drop commands from the pipe until "stop"."""
    from projectx_lab.sim import Simulator

    sim = Simulator(**options).start_in_thread()
    conn.send({"api_url": sim.api_url, "user_hub_url": sim.user_hub_url,
               "market_hub_url": sim.market_hub_url, "username": sim.username,
               "api_key": sim.api_key})  # fmt: skip
    try:
        while True:
            command, argument = conn.recv()
            if command == "stop":
                break
            if command == "drop":
                conn.send(sim.faults.drop_hub("market", argument))
            elif command == "speed":
                conn.send(sim.exchange.call(setattr, sim.clock, "speed", argument))
    finally:
        sim.close()


class SimProcess:
    """A simulator in a child process, started on `__enter__`, stopped on `__exit__`."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._parent, child = mp.get_context("spawn").Pipe()
        self._process = mp.get_context("spawn").Process(
            target=_serve, args=(child, options), daemon=True
        )
        self._lock = threading.Lock()
        self.urls: dict[str, str] = {}

    def __enter__(self) -> SimProcess:
        self._process.start()
        if not self._parent.poll(30.0):
            raise TimeoutError("the simulator process did not start within 30 s")
        self.urls = self._parent.recv()
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._parent.send(("stop", None))
        except OSError:
            pass
        self._process.join(10.0)
        if self._process.is_alive():
            self._process.kill()

    def drop(self, mode: str) -> int:
        """Drop the market hub (blocking round trip to the child)."""
        with self._lock:
            self._parent.send(("drop", mode))
            return int(self._parent.recv())

    def set_speed(self, speed: float) -> None:
        """Change the simulated clock's speed (1e-9 stops the market)."""
        with self._lock:
            self._parent.send(("speed", speed))
            self._parent.recv()


@dataclass(slots=True)
class SoakReport:
    """Events received, drops and recoveries, memory at the baseline and the end."""

    events: int = 0
    trades: int = 0
    depth: int = 0
    drops: int = 0
    recovered: int = 0
    baseline_events: int = 0
    baseline_rss: int = 0
    end_rss: int = 0
    seconds: float = 0.0

    @property
    def ratio(self) -> float:
        return self.end_rss / self.baseline_rss if self.baseline_rss else float("nan")

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def soak(
    events: int = 1_000_000,
    *,
    drops: int = 10,
    baseline_at: int = 10_000,
    speed: float = 300.0,
    trade_rate: float = 20.0,
    transport: str = "signalrcore",
    progress: Callable[[SoakReport], None] | None = None,
) -> SoakReport:
    """Stream until `events` trade prints + depth items reached the suite, dropping the market
    hub `drops` times at even intervals (clean and abort alternating)."""
    report = SoakReport()
    rig = RigOptions(speed=speed, trade_rate=trade_rate, timeframes=("1min", "5min"))
    options = {
        "seed": 7,
        "speed": speed,
        "start": SIM_START,
        "trade_rate": trade_rate,
        "ping_interval": 1.0,
        "history_rate": (5_000, 30.0),
        "rest_rate": (5_000, 60.0),
    }
    started = time.monotonic()
    with SimProcess(**options) as sim:
        urls = sim.urls
        async with ProjectX(**urls, history_rate=(5_000, 30.0), rest_rate=(5_000, 60.0)) as client:
            await client.authenticate()
            suite = await TradingSuite.create(
                "MNQ", project_x=client, timeframes=rig.timeframes, initial_bars=50,
                realtime_options=rig.realtime(), transport=transport,
            )  # fmt: skip
            try:
                await _stream(suite, sim, report, events, drops, baseline_at, speed, progress)
            finally:
                await suite.close()
    report.seconds = round(time.monotonic() - started, 2)
    return report


async def _stream(
    suite: TradingSuite,
    sim: SimProcess,
    report: SoakReport,
    events: int,
    drops: int,
    baseline_at: int,
    speed: float,
    progress: Callable[[SoakReport], None] | None,
) -> None:
    changes = Changes()
    reconnected = [0]

    def on_trades(_: str, items: list[Any]) -> None:
        report.trades += len(items)
        report.events += len(items)
        changes()

    def on_depth(_: str, items: list[Any]) -> None:
        report.depth += len(items)
        report.events += len(items)
        changes()

    def on_state(hub: str, state: ConnectionState) -> None:
        if hub == "market" and state == ConnectionState.RECONNECTED:
            reconnected[0] += 1
            changes()

    rt = suite.realtime
    rt.trade_event += on_trades
    rt.depth_event += on_depth
    rt.state_event += on_state
    try:
        await changes.until(lambda: report.events >= baseline_at, 60.0)
        report.baseline_events, report.baseline_rss = report.events, await _retained(sim, changes)
        sim.set_speed(speed)
        step = max(1, (events - report.events) // (drops + 1))
        for n in range(drops):
            target = report.events + step
            if not await changes.until(lambda t=target: report.events >= t, 120.0):
                break
            sim.drop("abort" if n % 2 else "clean")
            report.drops += 1
            await changes.until(lambda k=n: reconnected[0] > k, 15.0)
            if progress is not None:
                progress(report)
        await changes.until(lambda: report.events >= events, 300.0)
        report.recovered = reconnected[0]
        await suite.data.wait_until_backfilled(30.0)
        report.end_rss = await _retained(sim, changes)
    finally:
        rt.trade_event -= on_trades
        rt.depth_event -= on_depth
        rt.state_event -= on_state


async def _retained(sim: SimProcess, changes: Changes) -> int:
    """Memory the SDK keeps: the market stopped, frames in flight drained, then measured."""
    sim.set_speed(1e-9)
    await changes.quiet(0.5, within=30.0)
    return settled_rss()
