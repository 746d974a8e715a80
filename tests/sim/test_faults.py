"""Fault controls of a running simulator: latency, failed and swallowed responses, hub faults."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from projectx_lab.sim import Simulator

MakeSim = Callable[..., Awaitable[Simulator]]
MNQ = "CON.F.US.MNQ.Z26"
ACCOUNT = 26_000_001
SEARCH = "/api/Account/search"
PLACE = "/api/Order/place"
LIMIT = {
    "accountId": ACCOUNT,
    "contractId": MNQ,
    "type": 1,
    "side": 0,
    "size": 1,
    "limitPrice": 15000,
}


async def open_orders(http: httpx.AsyncClient, auth: dict[str, str]) -> list[dict[str, Any]]:
    response = await http.post("/api/Order/searchOpen", json={"accountId": ACCOUNT}, headers=auth)
    return response.json()["orders"]


async def timed(coro: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = await coro
    return response, time.monotonic() - start


async def test_latency_per_path_and_global(
    sim: Simulator, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    body = {"onlyActiveAccounts": True}
    sim.faults.add_latency(0.3, "/api/account/SEARCH")
    slow, slow_s = await timed(http.post(SEARCH, json=body, headers=auth))
    fast, fast_s = await timed(http.get("/api/Status/ping"))
    assert slow.status_code == 200 and slow_s >= 0.3
    assert fast.status_code == 200 and fast_s < 0.25
    sim.faults.add_latency(0.2)
    _, both_s = await timed(http.post(SEARCH, json=body, headers=auth))
    _, ping_s = await timed(http.get("/api/Status/ping"))
    assert both_s >= 0.5 and ping_s >= 0.2
    sim.faults.add_latency(0, "/api/Account/search")
    sim.faults.add_latency(0)
    _, again_s = await timed(http.post(SEARCH, json=body, headers=auth))
    assert again_s < 0.25


async def test_fail_next_answers_without_doing_the_work(
    sim: Simulator, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    sim.faults.fail_next(PLACE, count=2, status=503)
    sim.faults.fail_next(PLACE, count=1, status=429)
    for status in (503, 503, 429):
        response = await http.post(PLACE, json=LIMIT, headers=auth)
        assert response.status_code == status
        assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["retry-after"] == "1"
    assert await open_orders(http, auth) == []  # the failed requests placed nothing
    placed = await http.post(PLACE, json=LIMIT, headers=auth)
    assert placed.status_code == 200 and placed.json()["success"]
    assert len(await open_orders(http, auth)) == 1
    assert sim.request_count(PLACE) == 4


async def test_fail_next_comes_before_auth_and_validation(
    sim: Simulator, http: httpx.AsyncClient
) -> None:
    sim.faults.fail_next("/api/Order/search", 1, 500)
    response = await http.post("/api/Order/search", content=b"{")
    assert response.status_code == 500
    assert (await http.post("/api/Order/search", content=b"{")).status_code == 401


async def test_swallowed_request_does_the_work_but_never_answers(
    sim: Simulator, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    sim.faults.swallow_next(PLACE)
    async with httpx.AsyncClient(base_url=sim.api_url, timeout=0.5) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            await impatient.post(PLACE, json={**LIMIT, "customTag": "swallowed"}, headers=auth)
    [order] = await open_orders(http, auth)
    assert order["customTag"] == "swallowed"
    answered = await http.post(PLACE, json={**LIMIT, "customTag": "next"}, headers=auth)
    assert answered.status_code == 200 and answered.json()["success"]


async def test_swallowed_request_is_released_at_shutdown(
    make_sim: MakeSim,
    login: Callable[[httpx.AsyncClient, Simulator], Awaitable[str]],
    wait_for: Callable[..., Awaitable[None]],
) -> None:
    sim = await make_sim()
    async with httpx.AsyncClient(base_url=sim.api_url, timeout=30.0) as http:
        auth = {"Authorization": f"Bearer {await login(http, sim)}"}
        sim.faults.swallow_next(SEARCH)
        pending = asyncio.ensure_future(
            http.post(SEARCH, json={"onlyActiveAccounts": True}, headers=auth)
        )
        await wait_for(lambda: sim.request_count(SEARCH) == 1)
        started = time.monotonic()
        await sim.stop()
        response = await pending
        assert response.status_code == 503
        assert time.monotonic() - started < 1.0


async def test_faults_reject_bad_arguments(sim: Simulator) -> None:
    faults = sim.faults
    with pytest.raises(ValueError, match="not a gateway REST path"):
        faults.fail_next("/api/Order/placeAll", 1, 500)
    with pytest.raises(ValueError, match="HTTP error status"):
        faults.fail_next(PLACE, 1, 200)
    with pytest.raises(ValueError, match="count"):
        faults.swallow_next(PLACE, 0)
    with pytest.raises(ValueError, match="latency"):
        faults.add_latency(-1)
    with pytest.raises(ValueError, match="hub"):
        faults.drop_hub("orders")
    with pytest.raises(ValueError, match="mode"):
        faults.drop_hub("user", "gently")
    with pytest.raises(ValueError, match="hub"):
        faults.inject_raw("both", "x")


async def test_clear_removes_every_rule(
    sim: Simulator, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    sim.faults.add_latency(5.0)
    sim.faults.fail_next(SEARCH, 3, 502)
    sim.faults.swallow_next(SEARCH, 2)
    sim.faults.clear()
    response, seconds = await timed(
        http.post(SEARCH, json={"onlyActiveAccounts": True}, headers=auth)
    )
    assert response.status_code == 200 and seconds < 1.0


async def test_fault_controls_work_from_another_thread(
    sim: Simulator, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await asyncio.to_thread(sim.faults.fail_next, SEARCH, 1, 504)
    assert (
        await http.post(SEARCH, json={"onlyActiveAccounts": True}, headers=auth)
    ).status_code == 504
    assert await asyncio.to_thread(sim.request_count, SEARCH) == 1
    await asyncio.to_thread(sim.faults.clear)


# --------------------------------------------------------------------------- hub faults


async def test_drop_hub_clean_and_abort(sim: Simulator, token: str, open_hub: Any) -> None:
    user = await open_hub(sim.user_hub_url, token)
    market = await open_hub(sim.market_hub_url, token)
    assert sim.faults.drop_hub("market", "clean") == 1
    close = await market.record()
    assert close["type"] == 7 and close.get("allowReconnect") is True
    with pytest.raises(ConnectionClosed):
        await market.record()
    assert sim.faults.drop_hub("user", "abort") == 1
    with pytest.raises(ConnectionClosed) as info:
        await user.record()
    assert info.value.rcvd is None  # no close frame: the TCP connection was killed


async def test_freeze_and_unfreeze_market(
    make_sim: MakeSim,
    login: Callable[[httpx.AsyncClient, Simulator], Awaitable[str]],
    open_hub: Any,
    wait_for: Callable[..., Awaitable[None]],
) -> None:
    sim = await make_sim(speed=30.0)
    async with httpx.AsyncClient(base_url=sim.api_url) as http:
        token = await login(http, sim)
    hub = await open_hub(sim.market_hub_url, token)
    assert (await hub.invoke("SubscribeContractTrades", MNQ)).get("error") is None
    await hub.event("GatewayTrade")

    sim.faults.freeze_market(MNQ)
    await hub.barrier()  # everything queued before the freeze has arrived now
    frozen_from = sim.clock.now_ns()
    steps = sim.exchange.steps
    await wait_for(lambda: sim.exchange.steps >= steps + 10)
    await wait_for(lambda: len(sim.exchange.tape(MNQ, frozen_from, sim.clock.now_ns())) >= 3)
    during = await hub.barrier()
    assert [r for r in during if r.get("type") == 1] == []  # trades happened, none was sent

    sim.faults.unfreeze_market(MNQ)
    trade = await hub.event("GatewayTrade")
    assert trade["arguments"][0] == MNQ

    sim.faults.freeze_market()  # everything
    await hub.barrier()
    sim.faults.clear()  # unfreezes too
    assert (await hub.event("GatewayTrade"))["arguments"][0] == MNQ


async def test_inject_raw_reaches_every_connection_of_the_hub(
    sim: Simulator, token: str, open_hub: Any
) -> None:
    user = await open_hub(sim.user_hub_url, token)
    market = await open_hub(sim.market_hub_url, token)
    assert sim.faults.inject_raw("user", "not json at all") == 1
    assert await user.ws.recv() == "not json at all"
    assert sim.faults.inject_raw("all", '{"type":6}\x1e') == 2
    assert (await market.record()) == {"type": 6}
