"""Fixtures for real-time client tests: fast supervision timings, a client factory bound to the
running simulator, and an event recorder that waits on conditions (no sleeps)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from projectx_lab.realtime import ProjectXRealtimeClient, create_realtime_client
from projectx_lab.sim import Simulator

FAST = {
    "keepalive_interval": 0.2,
    "server_timeout": 3.0,
    "stale_after": None,
    "connect_timeout": 5.0,
    "invoke_timeout": 3.0,
    "reconnect_initial": 0.05,
    "reconnect_max": 0.4,
}
TRANSPORTS = ("signalrcore", "native")


class Recorder:
    """Collects `(a, b)` callback arguments; `wait_until(predicate)` wakes on every append."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, Any]] = []
        self._changed = asyncio.Event()

    def __call__(self, a: Any, b: Any) -> None:
        self.items.append((a, b))
        self._changed.set()

    async def wait_until(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_for_item(self, match: Callable[[Any, Any], bool], within: float = 5.0) -> int:
        """Index of the first recorded item matching; waits for one to arrive."""
        found: list[int] = []

        def seen() -> bool:
            for index, (a, b) in enumerate(self.items):
                if match(a, b):
                    found.append(index)
                    return True
            return False

        await self.wait_until(seen, within)
        return found[0]

    def count(self, match: Callable[[Any, Any], bool]) -> int:
        return sum(1 for a, b in self.items if match(a, b))


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def sim(make_sim: Callable[..., Awaitable[Simulator]]) -> Simulator:
    """Overrides the shared `sim`: fast server pings (0.25 s), a busy tape, and a strict
    client timeout (1.5 s), so a client whose keep-alive pings stop is dropped mid-test."""
    return await make_sim(ping_interval=0.25, trade_rate=20.0, client_timeout=1.5)


@pytest.fixture
async def make_rt(
    sim: Simulator, token: str, transport: str
) -> AsyncIterator[Callable[..., Awaitable[ProjectXRealtimeClient]]]:
    """Factory: `rt = await make_rt(**overrides)` → connected client (closed at teardown)."""
    clients: list[ProjectXRealtimeClient] = []

    async def make(connect: bool = True, **overrides: Any) -> ProjectXRealtimeClient:
        options = {**FAST, **overrides}
        source = options.pop("token", token)
        rt = create_realtime_client(
            source,
            user_hub_url=options.pop("user_hub_url", sim.user_hub_url),
            market_hub_url=options.pop("market_hub_url", sim.market_hub_url),
            transport=options.pop("transport", transport),
            **options,
        )
        clients.append(rt)
        if connect:
            await rt.connect()
        return rt

    yield make
    for rt in clients:
        await rt.close()


async def account_ids(http: Any, auth: dict[str, str]) -> list[int]:
    body = {"onlyActiveAccounts": True}
    response = await http.post("/api/Account/search", json=body, headers=auth)
    return [a["id"] for a in response.json()["accounts"]]


def hub_subscriptions(sim: Simulator, hub: str) -> list[frozenset[tuple[str, Any]]]:
    """The subscriptions the simulator holds, one set per live connection of `hub`."""
    return [c.subscriptions for c in sim.app.hubs.connections(hub)]


async def login(http: Any, sim: Simulator) -> str:
    """A fresh session token from the simulator (`Auth/loginKey`)."""
    body = {"userName": sim.username, "apiKey": sim.api_key}
    reply = (await http.post("/api/Auth/loginKey", json=body)).json()
    assert reply["success"], reply
    return reply["token"]
