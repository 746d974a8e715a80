"""Shared fixtures: a running gateway simulator on a free loopback port, an httpx client for it,
a logged-in token, and a minimal raw SignalR JSON client for hub-level assertions."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from projectx_lab.sim import Simulator

RS = "\x1e"
SIM_START = datetime(2026, 10, 1, 14, 30, tzinfo=UTC)  # a Thursday, US session


def sim_options(**overrides: Any) -> dict[str, Any]:
    """Defaults for test simulators: fixed start, seed 7, real-time speed."""
    options: dict[str, Any] = {"seed": 7, "speed": 1.0, "start": SIM_START}
    options.update(overrides)
    return options


@pytest.fixture
async def make_sim() -> AsyncIterator[Callable[..., Awaitable[Simulator]]]:
    """Factory: `sim = await make_sim(token_ttl=1.0, rest_rate=(5, 60.0))`; stopped at teardown."""
    started: list[Simulator] = []

    async def make(**overrides: Any) -> Simulator:
        sim = await Simulator(**sim_options(**overrides)).start()
        started.append(sim)
        return sim

    yield make
    for sim in reversed(started):
        await sim.stop()


@pytest.fixture
async def sim(make_sim: Callable[..., Awaitable[Simulator]]) -> Simulator:
    """A running simulator with default settings (24 h tokens, gateway rate limits)."""
    return await make_sim()


@pytest.fixture
async def http(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    """httpx client on the simulator's REST base URL."""
    async with httpx.AsyncClient(base_url=sim.api_url, timeout=10.0) as client:
        yield client


async def _login(client: httpx.AsyncClient, sim: Simulator) -> str:
    response = await client.post(
        "/api/Auth/loginKey", json={"userName": sim.username, "apiKey": sim.api_key}
    )
    response.raise_for_status()
    body = response.json()
    assert body["success"], body
    return body["token"]


@pytest.fixture
def login() -> Callable[[httpx.AsyncClient, Simulator], Awaitable[str]]:
    """`token = await login(client, sim)`: API-key login, asserting success."""
    return _login


@pytest.fixture
async def token(http: httpx.AsyncClient, sim: Simulator) -> str:
    return await _login(http, sim)


@pytest.fixture
def auth(token: str) -> dict[str, str]:
    """Authorization header for the `token` fixture."""
    return {"Authorization": f"Bearer {token}"}


async def wait_until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Re-check `condition` on the loop until it holds; fail after `within` seconds. Only for
    state no event announces (server-side counters, a token swapped by a background task)."""
    try:
        async with asyncio.timeout(within):
            while not condition():  # noqa: ASYNC110 - no event to await for this state
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"condition not met within {within} s") from None


@pytest.fixture
def wait_for() -> Callable[..., Awaitable[None]]:
    """`await wait_for(lambda: cond, within=5.0)`: poll a condition, fail after `within` s."""
    return wait_until


class RawHub:
    """Minimal SignalR JSON-protocol client over `websockets` (skip-negotiation connect)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: deque[dict[str, Any]] = deque()
        self._buffer = ""

    @classmethod
    async def open(cls, url: str, token: str) -> RawHub:
        ws_url = url.replace("http://", "ws://", 1) + f"?access_token={token}"
        ws = await connect(ws_url, compression=None, ping_interval=None, max_size=None)
        hub = cls(ws)
        await ws.send('{"protocol":"json","version":1}' + RS)
        handshake = await hub.record()
        assert handshake == {}, handshake
        return hub

    async def record(self, within: float = 5.0) -> dict[str, Any]:
        """The next record from the server (pings included); TimeoutError after `within` s."""
        while not self._pending:
            frame = await asyncio.wait_for(self.ws.recv(), within)
            self._buffer += frame if isinstance(frame, str) else frame.decode()
            *records, self._buffer = self._buffer.split(RS)
            self._pending.extend(orjson.loads(r) for r in records)
        return self._pending.popleft()

    async def event(self, target: str | None = None, within: float = 5.0) -> dict[str, Any]:
        """The next invocation (type 1) record, optionally of one target; skips everything else."""
        deadline = time.monotonic() + within
        while True:
            record = await self.record(max(deadline - time.monotonic(), 0.001))
            if record.get("type") == 1 and (target is None or record["target"] == target):
                return record

    async def invoke(self, target: str, *arguments: Any, within: float = 5.0) -> dict[str, Any]:
        """Invoke a hub method and return its completion; events arriving meanwhile are kept."""
        invocation_id = str(next(self._ids))
        message = {
            "type": 1,
            "invocationId": invocation_id,
            "target": target,
            "arguments": list(arguments),
        }
        await self.ws.send(orjson.dumps(message).decode() + RS)
        skipped: list[dict[str, Any]] = []
        try:
            while True:
                record = await self.record(within)
                if record.get("type") == 3 and record.get("invocationId") == invocation_id:
                    return record
                skipped.append(record)
        finally:
            self._pending.extendleft(reversed(skipped))

    def drain(self) -> list[dict[str, Any]]:
        """Take every record already received but not yet consumed."""
        records = list(self._pending)
        self._pending.clear()
        return records

    async def barrier(self) -> list[dict[str, Any]]:
        """Round-trip an (unknown) invocation; returns the records the server sent before its
        completion — everything queued for this connection up to now."""
        await self.invoke("Barrier")
        return self.drain()

    async def close(self) -> None:
        await self.ws.close()


@pytest.fixture
async def open_hub() -> AsyncIterator[Callable[[str, str], Awaitable[RawHub]]]:
    """Factory: `hub = await open_hub(sim.market_hub_url, token)`; closed at teardown."""
    hubs: list[RawHub] = []

    async def open_(url: str, token: str) -> RawHub:
        hub = await RawHub.open(url, token)
        hubs.append(hub)
        return hub

    yield open_
    for hub in hubs:
        await hub.close()
