"""Supervision against the simulator's faults: dropped hubs (clean close and TCP abort), a
frozen market stream, a server that never pings, and token expiry across a rebuild."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from projectx_lab.realtime import ConnectionState
from projectx_lab.realtime.client import SubscriptionError
from projectx_lab.sim import Simulator

from ..conftest import wait_until as eventually
from .conftest import Recorder, account_ids, hub_subscriptions, login

MNQ = "CON.F.US.MNQ.Z26"


def state_is(hub: str, state: str) -> Callable[[Any, Any], bool]:
    return lambda h, s: h == hub and s == state


@pytest.mark.parametrize("mode", ["clean", "abort"])
async def test_dropped_hubs_reconnect_with_every_subscription(
    make_rt: Any, sim: Simulator, http: httpx.AsyncClient, auth: dict[str, str], mode: str
) -> None:
    account = (await account_ids(http, auth))[0]
    rt = await make_rt(account_id=account)
    states, quotes, orders = Recorder(), Recorder(), Recorder()
    rt.state_event += states
    rt.quote_event += quotes
    rt.order_event += orders
    await rt.subscribe_market(MNQ)
    user_held = hub_subscriptions(sim, "user")[0]
    market_held = hub_subscriptions(sim, "market")[0]
    await quotes.wait_until(lambda: bool(quotes.items))

    assert sim.faults.drop_hub("all", mode) == 2
    for hub in ("user", "market"):
        lost = await states.wait_for_item(state_is(hub, "reconnecting"))
        back = await states.wait_for_item(state_is(hub, "reconnected"))
        assert lost < back
    assert rt.is_connected
    assert user_held in hub_subscriptions(sim, "user")  # re-issued on the new connection
    assert market_held in hub_subscriptions(sim, "market")
    assert rt.stats["user"]["reconnects"] == rt.stats["market"]["reconnects"] == 1

    seen = len(quotes.items)
    await quotes.wait_until(lambda: len(quotes.items) > seen)  # market events resume
    body = {"accountId": account, "contractId": MNQ, "type": 2, "side": 1, "size": 1}
    order_id = (await http.post("/api/Order/place", json=body, headers=auth)).json()["orderId"]
    await orders.wait_for_item(lambda d, a: d.get("id") == order_id)  # user events resume


async def test_frozen_market_stream_is_rebuilt(make_rt: Any, sim: Simulator) -> None:
    rt = await make_rt(stale_after=0.6)
    states, quotes = Recorder(), Recorder()
    rt.state_event += states
    rt.quote_event += quotes
    await rt.subscribe_market(MNQ, trades=False, depth=False)
    await quotes.wait_until(lambda: bool(quotes.items))

    sim.faults.freeze_market(MNQ)  # pings keep flowing: only the data stops
    await states.wait_for_item(state_is("market", "reconnecting"))
    assert "stale" in rt.stats["market"]["last_loss_reason"]
    sim.faults.unfreeze_market(MNQ)
    await states.wait_for_item(state_is("market", "reconnected"))
    seen = len(quotes.items)
    await quotes.wait_until(lambda: len(quotes.items) > seen)
    assert hub_subscriptions(sim, "market")[-1] == frozenset({("GatewayQuote", MNQ)})
    assert states.count(lambda h, s: h == "user" and s != "connected") == 0


async def test_server_that_goes_silent_is_rebuilt(
    make_sim: Callable[..., Awaitable[Simulator]], make_rt: Any, transport: str
) -> None:
    silent = await make_sim(ping_interval=0)  # no server keep-alives at all
    async with httpx.AsyncClient(base_url=silent.api_url) as client:
        token = await login(client, silent)
    rt = await make_rt(
        token=token,
        user_hub_url=silent.user_hub_url,
        market_hub_url=silent.market_hub_url,
        server_timeout=0.4,
    )
    states = Recorder()
    rt.state_event += states
    await states.wait_for_item(state_is("user", "reconnected"))
    assert "no frame" in rt.stats["user"]["last_loss_reason"]


async def test_rebuild_takes_a_fresh_token_from_the_factory(
    make_rt: Any, sim: Simulator, http: httpx.AsyncClient
) -> None:
    issued: list[str] = []

    async def current_token() -> str:
        issued.append(await login(http, sim))
        return issued[-1]

    rt = await make_rt(token=current_token)
    states = Recorder()
    rt.state_event += states
    assert len(issued) == 2  # one per hub

    sim.faults.expire_all_tokens()  # the tokens the hubs connected with are now dead
    sim.faults.drop_hub("all", "abort")
    await states.wait_for_item(state_is("user", "reconnected"))
    await states.wait_for_item(state_is("market", "reconnected"))
    assert len(issued) == 4
    assert rt.state("user") is ConnectionState.CONNECTED


async def test_client_sends_keepalive_pings(make_rt: Any, sim: Simulator) -> None:
    """signalrcore alone would send none (its reconnect option is off), and the simulator drops
    a client silent for 1.5 s: the same two connections must outlive that, pinging."""
    rt = await make_rt(keepalive_interval=0.1)
    states = Recorder()
    rt.state_event += states
    connections = sim.app.hubs.connections
    first = {c.connection_id for c in connections("all")}
    await eventually(lambda: all(c.pings_received >= 20 for c in connections("all")), 10.0)
    assert {c.connection_id for c in connections("all")} == first and len(first) == 2
    assert not states.items  # no drop, no reconnect


async def test_a_subscription_made_during_a_reconnect_learns_the_hubs_answer(
    make_rt: Any, sim: Simulator
) -> None:
    rt = await make_rt()
    await rt.subscribe_market(MNQ, depth=False)
    states = Recorder()
    rt.state_event += states
    sim.faults.block_hub("market")  # the reconnect waits until we let it through
    sim.faults.drop_hub("market", "abort")
    await states.wait_for_item(state_is("market", "reconnecting"))
    refused = asyncio.ensure_future(rt.subscribe_market("CON.F.US.NOPE.Z26"))
    sim.faults.unblock_hub("market")
    with pytest.raises(SubscriptionError, match="NOPE"):
        await asyncio.wait_for(refused, 10)
    assert rt.market_subscriptions == {MNQ: frozenset({"quotes", "trades"})}
    assert hub_subscriptions(sim, "market") == [
        frozenset({("GatewayQuote", MNQ), ("GatewayTrade", MNQ)})
    ]
