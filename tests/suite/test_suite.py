"""TradingSuite end to end on the simulator: one connection, mapping API, live book equal to the
simulator's before and after a reconnect, a bracket through the suite, clean teardown."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest

from projectx_lab import ProjectX, TradingSuite, create_trading_suite
from projectx_lab.realtime import ConnectionState
from projectx_lab.sim import Simulator

from ..conftest import sim_options

TIMEOUT = 15.0
FAST_RT = {"keepalive_interval": 0.2, "reconnect_initial": 0.05, "reconnect_max": 0.3}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(**sim_options(speed=20.0, trade_rate=4.0)) as running:
        yield running


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[ProjectX]:
    async with ProjectX.for_simulator(sim) as c:
        await c.authenticate()
        yield c


class Changes:
    """A callback for any event; `until(predicate)` re-checks on every call (no polling)."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def __call__(self, *_: object) -> None:
        self._changed.set()

    async def until(self, predicate, within: float = TIMEOUT) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


def book_levels(book) -> tuple[dict, dict]:
    return dict(book.bids), dict(book.asks)


def sim_levels(sim: Simulator, contract_id: str) -> tuple[dict, dict]:
    spec = sim.exchange.spec(contract_id)
    published = sim.exchange.book(contract_id)
    bids = {spec.to_price(p): float(s) for p, s in published.bids}
    asks = {spec.to_price(p): float(s) for p, s in published.asks}
    return bids, asks


async def test_suite_mapping_book_bracket_and_teardown(sim: Simulator, client: ProjectX) -> None:
    threads_before = set(threading.enumerate())
    suite = await create_trading_suite(
        "MNQ",
        project_x=client,
        jwt_token=client.session_token,
        account_id=client.account_info.id,
        timeframes=["1min", "5min"],
        realtime_options=FAST_RT,
        initial_bars=50,
    )
    async with suite:
        changes = Changes()
        suite.orderbook.on_update.append(changes)
        suite.realtime.state_event += changes
        sizes: dict[str, int] = {}
        suite.positions.on_position_update += lambda pos, _: sizes.update(
            {pos.contract_id: pos.size}
        )
        suite.positions.on_position_update += changes
        until = changes.until
        for key, attr in [("data_manager", "data"), ("order_manager", "orders"),
                          ("position_manager", "positions"), ("orderbook", "orderbook"),
                          ("realtime_client", "realtime")]:  # fmt: skip
            assert suite[key] is getattr(suite, attr)
        with pytest.raises(KeyError, match="keys"):
            suite["nope"]
        cid = suite.instrument.id
        assert (await suite.data.get_bars("1m", 10)).height == 10

        # the live book equals the simulator's published book (time stopped to compare)
        await until(lambda: suite.orderbook.best_bid is not None)
        sim.clock.speed = 1e-9
        await until(lambda: book_levels(suite.orderbook) == sim_levels(sim, cid))
        sim.clock.speed = 20.0

        # after an abrupt drop the book is cleared, rebuilt, and equal again
        states: list[ConnectionState] = []
        suite.realtime.state_event += lambda hub, st: states.append(st) if hub == "market" else None
        resets = suite.book_feed.resets
        sim.faults.drop_hub("market", "abort")
        await until(lambda: ConnectionState.RECONNECTED in states)
        assert suite.book_feed.resets > resets
        await until(lambda: suite.orderbook.best_bid is not None)
        sim.clock.speed = 1e-9
        await until(lambda: book_levels(suite.orderbook) == sim_levels(sim, cid))
        sim.clock.speed = 20.0

        # a bracket through the suite: entry fills, both children work, flatten cleans up
        result = await suite.orders.place_bracket_order(
            cid, "buy", 1, stop_loss_ticks=20, take_profit_ticks=40
        )
        await suite.orders.wait_for_fill(result.entry_order_id, timeout=TIMEOUT)
        await until(lambda: sizes.get(cid) == 1)
        assert (await suite.positions.get_position(cid)).size == 1
        await suite.orders.flatten(cid)
        assert await client.search_open_orders() == []
        assert await client.get_positions() == []
    assert suite.closed
    await asyncio.sleep(0)  # let cancelled callbacks unwind
    leaked = [t for t in set(threading.enumerate()) - threads_before if t.is_alive()]
    assert leaked == []


async def test_suite_create_rejects_unknown_feature(client: ProjectX) -> None:
    with pytest.raises(ValueError, match="unknown features"):
        await TradingSuite.create("MNQ", project_x=client, features=["crystal_ball"])
