"""Fixtures for the REST client tests: `ProjectX` clients bound to a running simulator, with
short backoffs so failure paths run in milliseconds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from projectx_lab import ProjectX
from projectx_lab.sim import Simulator

FAST = {
    "retry_initial_wait": 0.01,
    "retry_max_wait": 0.05,
    "order_lookup_timeout": 1.0,
}


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., Awaitable[ProjectX]]]:
    """Factory: `client = await make_client(sim, timeout=0.5)`; closed at teardown."""
    clients: list[ProjectX] = []

    async def make(sim: Simulator, **options: Any) -> ProjectX:
        client = ProjectX.for_simulator(sim, **{**FAST, **options})
        clients.append(client)
        return await client.__aenter__()

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def client(sim: Simulator, make_client: Callable[..., Awaitable[ProjectX]]) -> ProjectX:
    """An authenticated client on the default simulator (account PRAC-V2-SIM-1 selected)."""
    client = await make_client(sim)
    await client.authenticate()
    return client
