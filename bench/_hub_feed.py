"""Bench helper: the simulator in a child process, pushing synthetic market traffic on demand.

The child owns its CPU core's worth of work (serving and packing frames), so the parent
measures only the client. Commands travel over a pipe; traffic goes out through the
simulator's own `faults.inject_raw` hook on every market-hub connection.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing as mp
import socket
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import orjson
from signalrcore.hub_connection_builder import HubConnectionBuilder

RS = "\x1e"
CONTRACT = "CON.F.US.MNQ.Z26"
TS = "2026-10-02T14:31:05.1234567+00:00"


def market_records(count: int) -> list[str]:
    """`count` realistic market records cycling quote / trade batch / depth batch."""
    out = []
    for i in range(count):
        price = 21450.25 + (i % 40) * 0.25
        kind = i % 3
        if kind == 0:
            target = "GatewayQuote"
            data: Any = {"symbol": "F.US.MNQ", "bestBid": price - 0.25, "bestAsk": price,
                         "lastPrice": price, "volume": 100_000 + i, "lastUpdated": TS,
                         "timestamp": TS, "seq": i}  # fmt: skip
        elif kind == 1:
            target = "GatewayTrade"
            data = [{"symbolId": "F.US.MNQ", "price": price, "timestamp": TS, "type": i % 2,
                     "volume": 1 + i % 5, "seq": i}]  # fmt: skip
        else:
            target = "GatewayDepth"
            data = [{"timestamp": TS, "type": 1 + i % 2, "price": price, "volume": 3 + i % 7,
                     "currentVolume": 1, "seq": i}]  # fmt: skip
        record = {"type": 1, "target": target, "arguments": [CONTRACT, data]}
        out.append(orjson.dumps(record).decode() + RS)
    return out


def pack(records: list[str], frame_bytes: int) -> list[str]:
    """Records packed into frames of at most `frame_bytes` (1 → one record per frame)."""
    frames: list[str] = []
    current: list[str] = []
    size = 0
    for record in records:
        if current and size + len(record) > frame_bytes:
            frames.append("".join(current))
            current, size = [], 0
        current.append(record)
        size += len(record)
    if current:
        frames.append("".join(current))
    return frames


@dataclass(frozen=True)
class FeedInfo:
    api_url: str
    market_hub_url: str
    user_hub_url: str
    username: str
    api_key: str


class HubFeed:
    """Parent-side handle: `with HubFeed() as feed: feed.burst(frames)`."""

    def __enter__(self) -> HubFeed:
        ctx = mp.get_context("spawn")
        self._pipe, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child,), daemon=True)
        self._process.start()
        self.info: FeedInfo = self._pipe.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self._pipe.send(("stop",))
        self._process.join(10)

    def _ask(self, *command: Any) -> Any:
        self._pipe.send(command)
        return self._pipe.recv()

    def connections(self) -> int:
        """Open market-hub connections."""
        return self._ask("count")

    def wait_connections(self, count: int, timeout: float = 10.0) -> None:
        """Block until the simulator holds exactly `count` market-hub connections."""
        deadline = time.monotonic() + timeout
        while self.connections() != count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"simulator never reached {count} market connection(s)")
            time.sleep(0.005)

    def load(self, frames: list[str]) -> None:
        """Hand the child the frames of the next `burst` / `pace` (sent once, reused)."""
        self._ask("load", frames)

    def burst(self) -> None:
        """Queue every loaded frame at once on every market connection."""
        self._ask("burst")

    def pace(self, rate: float, seconds: float) -> int:
        """Send loaded frames (cycled) at `rate` frames per second for `seconds`; returns count."""
        return self._ask("pace", rate, seconds)


def _serve(pipe: Connection) -> None:
    asyncio.run(_main(pipe))


async def _main(pipe: Connection) -> None:
    from projectx_lab.sim import Simulator

    async with Simulator(seed=7, speed=1.0, ping_interval=5.0) as sim:
        pipe.send(FeedInfo(sim.api_url, sim.market_hub_url, sim.user_hub_url, sim.username,
                           sim.api_key))  # fmt: skip
        frames: list[str] = []
        while True:
            command = await asyncio.to_thread(pipe.recv)
            name = command[0]
            if name == "stop":
                return
            if name == "count":
                pipe.send(len(sim.app.hubs.connections("market")))
            elif name == "load":
                frames = command[1]
                pipe.send(len(frames))
            elif name == "burst":
                for frame in frames:
                    sim.faults.inject_raw("market", frame)
                pipe.send(len(frames))
            elif name == "pace":
                pipe.send(await _pace(sim, frames, command[1], command[2]))


async def _pace(sim: Any, frames: list[str], rate: float, seconds: float) -> int:
    start = time.perf_counter()
    sent = 0
    while True:
        now = time.perf_counter()
        if now - start >= seconds:
            return sent
        due = int((now - start) * rate)
        while sent < due:
            sim.faults.inject_raw("market", frames[sent % len(frames)])
            sent += 1
        await asyncio.sleep(0.0005)


class Counter:
    """Counts deliveries; remembers the time of the first and of the last expected one."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.first = self.last = 0.0

    def hit(self) -> bool:
        if self.count == 0:
            self.first = time.perf_counter()
        self.count += 1
        if self.count == self.expected:
            self.last = time.perf_counter()
            return True
        return False

    @property
    def rate(self) -> float:
        return (self.expected - 1) / (self.last - self.first)


def stock_signalrcore(
    feed: HubFeed, token: str, expected: int, targets: tuple[str, ...], *, collect: bool = False
) -> float:
    """Baseline: signalrcore 1.0.2 as documented (stock JSON protocol, handler on its receive
    thread) counting `expected` events of `targets` from one burst; returns events/s."""
    counter = Counter(expected)
    done, opened = threading.Event(), threading.Event()

    def handler(arguments: list[Any]) -> None:
        if counter.hit():
            done.set()

    connection = (
        HubConnectionBuilder()
        .with_url(feed.info.market_hub_url, options={"access_token_factory": lambda: token})
        .with_automatic_reconnect({"type": "raw", "keep_alive_interval": 10})
        .build()
    )
    for target in targets:
        connection.on(target, handler)
    connection.on_open(opened.set)
    connection.start()
    opened.wait(10)
    feed.wait_connections(1)
    if collect:
        gc.collect()
    feed.burst()
    if not done.wait(120):
        raise RuntimeError(f"stock signalrcore got {counter.count}/{expected}")
    stopper = threading.Thread(target=connection.stop)  # blocks until a frame arrives…
    stopper.start()
    while not connection.transport.manually_closing:
        time.sleep(0.001)
    connection.transport._client.sock.shutdown(socket.SHUT_RDWR)  # …so wake it
    stopper.join(10)
    feed.wait_connections(0)
    return counter.rate
