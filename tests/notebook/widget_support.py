"""Shared pieces for the widget tests: a simulator-backed suite, a comm that records what a
widget sends to the frontend (the kernel's transport, which does not exist under pytest), and
event-driven waits on widget frames."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import comm
import orjson
import pytest
from comm.base_comm import BaseComm
from ipywidgets.widgets.widget import _put_buffers
from jupyter_client.session import orjson_packer

from projectx_lab import ProjectX, TradingSuite, create_trading_suite
from projectx_lab.sim import Simulator

from ..conftest import sim_options

FAST_RT = {"keepalive_interval": 0.2, "reconnect_initial": 0.05, "reconnect_max": 0.3}
TIMEOUT = 15.0


class RecordingComm(BaseComm):
    """Stands in for ipykernel's comm: keeps every message instead of publishing it."""

    def __init__(self, **kwargs: Any) -> None:
        self.messages: list[tuple[str, dict[str, Any] | None, list[Any] | None]] = []
        super().__init__(**kwargs)

    def publish_msg(self, msg_type: str, data=None, metadata=None, buffers=None, **keys) -> None:
        self.messages.append((msg_type, data, buffers))

    def updates(self, key: str | None = None) -> list[dict[str, Any]]:
        """States of the `update` messages sent so far (buffers put back), optionally only
        those carrying a non-null `key`."""
        out = []
        for msg_type, data, buffers in self.messages:
            if msg_type != "comm_msg" or not data or data.get("method") != "update":
                continue
            state = dict(data["state"])
            _put_buffers(state, data.get("buffer_paths", []), buffers or [])
            if key is None or state.get(key) is not None:
                out.append(state)
        return out

    def wire(self) -> list[Any]:
        """Every message's data as the kernel would put it on the wire (orjson, as ipykernel)."""
        return [orjson.loads(orjson_packer(data)) for _, data, _ in self.messages if data]

    def frontend(self, data: dict[str, Any]) -> None:
        """Deliver a message from the frontend to the widget (`request_state`, an update...)."""
        self.handle_msg({"content": {"data": data, "comm_id": self.comm_id}, "buffers": []})


@pytest.fixture(name="comms")
def comms_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[RecordingComm]]:
    """Every comm a widget opens during the test, recording its messages."""
    opened: list[RecordingComm] = []

    def create(*args: Any, **kwargs: Any) -> RecordingComm:
        created = RecordingComm(*args, **kwargs)
        opened.append(created)
        return created

    monkeypatch.setattr(comm, "create_comm", create)
    yield opened


async def open_suite(sim: Simulator, client: ProjectX, **options: Any) -> TradingSuite:
    settings = {"timeframes": ["1min"], "initial_bars": 60, "realtime_options": FAST_RT}
    settings.update(options)
    return await create_trading_suite(
        "MNQ",
        project_x=client,
        jwt_token=client.session_token,
        account_id=client.account_info.id,
        **settings,
    )


@contextlib.asynccontextmanager
async def sim_and_client() -> AsyncIterator[tuple[Simulator, ProjectX]]:
    """A simulator at 60x and a client logged in to it."""
    async with (
        Simulator(**sim_options(speed=60.0, trade_rate=4.0)) as sim,
        ProjectX.for_simulator(sim) as client,
    ):
        await client.authenticate()
        yield sim, client


@pytest.fixture(name="live")
async def live_fixture() -> AsyncIterator[tuple[Simulator, TradingSuite]]:
    """(simulator at 60x, a TradingSuite on MNQ with 1min bars and the order book)."""
    async with sim_and_client() as (sim, client):
        suite = await open_suite(sim, client)
        async with suite:
            yield sim, suite
            await suite.orders.cancel_all_orders()


async def frames_until(widget: Any, predicate: Callable[[], bool], within: float = TIMEOUT) -> None:
    """Wait frame by frame (no polling) until `predicate()` holds after a frame."""
    async with asyncio.timeout(within):
        while not predicate():
            await widget.next_frame(within)


async def settle(widget: Any, within: float = TIMEOUT) -> None:
    """Wait until the widget has drawn every change marked so far."""
    async with asyncio.timeout(within):
        while widget.throttle.pending:
            await widget.next_frame(within)


def freeze(sim: Simulator) -> None:
    """Stop simulated time (no more trades or book changes are generated)."""
    sim.clock.speed = 1e-9
