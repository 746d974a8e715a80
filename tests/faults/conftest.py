"""Fixtures for the fault suite: `make_rig(**RigOptions)` → a simulator, client and
`TradingSuite` with test-speed timings, torn down after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from projectx_lab.testing import Rig, RigOptions


@pytest.fixture
async def make_rig() -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    rigs: list[Rig] = []

    async def make(**options: Any) -> Rig:
        rig = Rig(RigOptions(**options))
        rigs.append(rig)
        return await rig.__aenter__()

    yield make
    for rig in reversed(rigs):
        await rig.__aexit__(None, None, None)
