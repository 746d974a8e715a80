"""Both transports against the simulator: connect both hubs, market and user events reach sync
callbacks, async callbacks and async iterators, unwrapped as documented."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from projectx_lab import ProjectX, create_realtime_client
from projectx_lab.realtime import ConnectionState
from projectx_lab.sim import Simulator

from .conftest import Recorder, account_ids, hub_subscriptions

MNQ = "CON.F.US.MNQ.Z26"


async def test_connects_both_hubs(make_rt: Any, transport: str) -> None:
    rt = await make_rt()
    assert rt.is_connected
    assert rt.state("user") is ConnectionState.CONNECTED
    assert rt.state("market") is ConnectionState.CONNECTED
    assert f"transport='{transport}'" in repr(rt)


async def test_market_events_reach_sync_async_callbacks_and_streams(
    make_rt: Any, sim: Simulator
) -> None:
    rt = await make_rt()
    quotes, depth, async_trades = Recorder(), Recorder(), Recorder()

    async def on_trade(contract_id: str, trades: list[dict[str, Any]]) -> None:
        await asyncio.sleep(0)
        async_trades(contract_id, trades)

    rt.quote_event += quotes
    rt.on("GatewayTrade", on_trade)
    rt.on("depth", depth)
    stream = rt.stream("GatewayTrade")

    await rt.subscribe_market(MNQ)
    expected = {("GatewayQuote", MNQ), ("GatewayTrade", MNQ), ("GatewayDepth", MNQ)}
    assert hub_subscriptions(sim, "market") == [frozenset(expected)]
    assert rt.market_subscriptions == {MNQ: frozenset({"quotes", "trades", "depth"})}

    await quotes.wait_until(lambda: len(quotes.items) >= 2)
    contract_id, quote = quotes.items[0]
    assert contract_id == MNQ and isinstance(quote, dict) and "timestamp" in quote

    # the first depth push is the snapshot: Reset, then levels; always a list
    await depth.wait_until(lambda: bool(depth.items))
    contract_id, levels = depth.items[0]
    assert contract_id == MNQ and isinstance(levels, list) and levels[0]["type"] == 6

    await async_trades.wait_until(lambda: bool(async_trades.items))
    contract_id, trades = async_trades.items[0]
    assert contract_id == MNQ and isinstance(trades, list) and {"price", "volume"} <= set(trades[0])

    async with asyncio.timeout(5):
        contract_id, trades = await anext(stream)
    assert contract_id == MNQ and trades and "price" in trades[0]


async def test_user_events_are_unwrapped_to_data_and_action(
    make_rt: Any, sim: Simulator, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    account = (await account_ids(http, auth))[0]
    rt = await make_rt(account_id=account)  # subscribed at connect
    held = hub_subscriptions(sim, "user")[0]
    for target in ("GatewayUserOrder", "GatewayUserPosition", "GatewayUserTrade"):
        assert (target, account) in held
    assert ("GatewayUserAccount", account) in held

    orders, positions, fills, accounts = Recorder(), Recorder(), Recorder(), Recorder()
    rt.order_event += orders
    rt.on("position", positions)
    rt.on("GatewayUserTrade", fills)
    stream = rt.stream("account")
    rt.account_event += accounts

    body = {"accountId": account, "contractId": MNQ, "type": 2, "side": 0, "size": 1}
    reply = (await http.post("/api/Order/place", json=body, headers=auth)).json()
    assert reply["success"], reply
    order_id = reply["orderId"]

    index = await orders.wait_for_item(lambda d, a: d.get("id") == order_id and d["status"] == 2)
    data, action = orders.items[index]
    assert isinstance(action, int) and "action" not in data and data["contractId"] == MNQ
    await positions.wait_for_item(lambda d, a: d["contractId"] == MNQ and d["size"] == 1)
    await fills.wait_for_item(lambda d, a: d["orderId"] == order_id)
    await accounts.wait_for_item(lambda d, a: d["id"] == account)
    async with asyncio.timeout(5):
        data, action = await anext(stream)
    assert data["id"] == account and isinstance(action, int)


async def test_unsubscribe_updates_registry_and_hub(make_rt: Any, sim: Simulator) -> None:
    rt = await make_rt()
    await rt.subscribe_market(MNQ)
    await rt.unsubscribe_market(MNQ, quotes=False)
    assert rt.market_subscriptions == {MNQ: frozenset({"quotes"})}
    assert hub_subscriptions(sim, "market") == [frozenset({("GatewayQuote", MNQ)})]
    await rt.unsubscribe_market(MNQ)
    assert rt.market_subscriptions == {}
    assert hub_subscriptions(sim, "market") == [frozenset()]


async def test_projectx_client_supplies_token_urls_and_account(sim: Simulator) -> None:
    async with ProjectX.for_simulator(sim) as client:
        account = await client.authenticate()
        async with create_realtime_client(client) as rt:
            assert rt.is_connected
            assert rt.user_subscriptions == {
                account.id: frozenset({"orders", "positions", "trades", "accounts"})
            }
            assert ("GatewayUserOrder", account.id) in hub_subscriptions(sim, "user")[0]
