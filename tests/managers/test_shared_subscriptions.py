"""Managers sharing one real-time connection over real sockets: each holds its own claim on
the hub's subscriptions, so stopping one never silences another, and the hub drops a
subscription once its last holder lets go."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from projectx_lab import ProjectX
from projectx_lab.managers.book_feed import BookFeed
from projectx_lab.managers.data import RealtimeDataManager
from projectx_lab.managers.orderbook import OrderBook
from projectx_lab.managers.orders import OrderManager
from projectx_lab.managers.positions import PositionManager
from projectx_lab.managers.prices import LivePrices
from projectx_lab.realtime import ProjectXRealtimeClient, create_realtime_client
from projectx_lab.realtime.claims import Claims
from projectx_lab.realtime.dispatch import CallbackTasks
from projectx_lab.sim import Simulator

RT_FAST = {"keepalive_interval": 0.5, "reconnect_initial": 0.05, "reconnect_max": 0.4}


def test_claims_keep_the_union_until_the_last_holder_lets_go() -> None:
    claims: Claims[str] = Claims()
    claims.add("C", "data", frozenset({"trades"}))
    undo = claims.add("C", "book", frozenset({"quotes", "trades", "depth"}))
    claims.remove("C", "data", frozenset({"trades"}))
    assert claims.union() == {"C": frozenset({"quotes", "trades", "depth"})}
    claims.remove("C", "data", frozenset({"depth"}))  # not held by "data": ignored
    assert claims.kinds("C") == {"quotes", "trades", "depth"}
    undo()  # a refused subscribe restores the holder's previous claim
    assert claims.union() == {} and not claims


@dataclass
class Shared:
    sim: Simulator
    px: ProjectX
    rt: ProjectXRealtimeClient
    mnq: str

    def hub(self, hub: str) -> frozenset[tuple[str, Any]]:
        """What the simulator carries on the one connection of `hub`."""
        (subs,) = [c.subscriptions for c in self.sim.app.hubs.connections(hub)]
        return subs

    async def next_event(self, event: Any, contract_id: str) -> None:
        """Wait for the next `event` of `contract_id` (delivered after the managers' own
        handlers, which were added first)."""
        seen = asyncio.Event()

        def hit(cid: str, data: Any) -> None:
            if cid == contract_id:
                seen.set()

        event += hit
        try:
            await asyncio.wait_for(seen.wait(), 10)
        finally:
            event -= hit


@pytest.fixture
async def shared(make_sim: Callable[..., Awaitable[Simulator]]) -> AsyncIterator[Shared]:
    sim = await make_sim(speed=30.0, trade_rate=6.0)
    px = ProjectX.for_simulator(sim)
    await px.authenticate()
    rt = create_realtime_client(
        px.token_factory, user_hub_url=sim.user_hub_url, market_hub_url=sim.market_hub_url,
        **RT_FAST,
    )  # fmt: skip
    await rt.connect()
    try:
        yield Shared(sim, px, rt, (await px.get_instrument("MNQ")).id)
    finally:
        await rt.close()
        await px.aclose()


async def test_stopping_the_data_feed_leaves_the_books_trades_flowing(shared: Shared) -> None:
    rt, mnq = shared.rt, shared.mnq
    dm = RealtimeDataManager("MNQ", shared.px, rt, timeframes=["1min"], initial_bars=5)
    await dm.start_realtime_feed()
    book = OrderBook(mnq, 0.25)
    feed = BookFeed(book, rt)
    await feed.start()
    await dm.stop_realtime_feed()
    assert ("GatewayTrade", mnq) in shared.hub("market")
    before = book.trade_count
    await shared.next_event(rt.trade_event, mnq)
    assert book.trade_count > before, "the book stopped getting trades with the data feed"
    await feed.stop()
    assert rt.market_subscriptions == {} and shared.hub("market") == frozenset()


async def test_prices_outlive_the_data_feed_they_rode_on(shared: Shared) -> None:
    rt, mnq = shared.rt, shared.mnq
    dm = RealtimeDataManager("MNQ", shared.px, rt, timeframes=["1min"], initial_bars=5)
    await dm.start_realtime_feed()
    prices = LivePrices(rt, CallbackTasks(), dm)
    prices.start()
    await prices.watch(mnq)
    assert shared.hub("market") == {("GatewayTrade", mnq)}  # rides the trades: no quote feed
    await dm.stop_realtime_feed()
    moved = asyncio.Event()
    prices.on_price += lambda contract_id, price: moved.set()
    await asyncio.wait_for(moved.wait(), 10)
    await prices.close()
    assert shared.hub("market") == frozenset()


async def test_closing_prices_keeps_the_quotes_a_book_needs(shared: Shared) -> None:
    rt, mnq = shared.rt, shared.mnq
    prices = LivePrices(rt, CallbackTasks())
    prices.start()
    await prices.watch(mnq)  # nothing flows yet: it subscribes quotes
    book = OrderBook(mnq, 0.25)
    feed = BookFeed(book, rt)
    await feed.start()
    await prices.close()
    assert ("GatewayQuote", mnq) in shared.hub("market")
    await shared.next_event(rt.quote_event, mnq)
    assert book.best_bid is not None
    await feed.stop()


async def test_order_and_position_managers_share_the_account_stream(shared: Shared) -> None:
    rt = shared.rt
    om = OrderManager(shared.px, rt)
    pm = PositionManager(shared.px, rt, order_manager=om, price_source=om.prices)
    await om.initialize()
    await pm.initialize()
    account = om.account_id
    assert ("GatewayUserPosition", account) in shared.hub("user")
    await om.close()
    assert ("GatewayUserPosition", account) in shared.hub("user")
    opened = asyncio.Event()
    pm.on_position_update += lambda position, previous: opened.set() if position.size else None
    await shared.px.place_order("MNQ", side="buy", size=1)
    try:
        await asyncio.wait_for(opened.wait(), 10)  # fed by the user hub, om already closed
    finally:
        await shared.px.close_position("MNQ")
        await pm.close()
    assert rt.user_subscriptions == {} and shared.hub("user") == frozenset()
