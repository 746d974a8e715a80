"""Simulator lifecycle (in-loop, background thread, CLI) and end-to-end market/user flow:
history and live are one series, depth diffs rebuild the book, user events reach the hub."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from projectx_lab.sim import SimConfig, Simulator
from projectx_lab.sim.wire import iso, parse_iso

MakeSim = Callable[..., Awaitable[Simulator]]
Login = Callable[[httpx.AsyncClient, Simulator], Awaitable[str]]
MNQ = "CON.F.US.MNQ.Z26"
ACCOUNT = 26_000_001
NS = 1_000_000_000


def port_is_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


# --------------------------------------------------------------------------- lifecycle


async def test_start_stop_in_loop_is_fast_and_leaves_nothing(login: Login, open_hub: Any) -> None:
    tasks_before = asyncio.all_tasks()
    threads_before = set(threading.enumerate())
    started = time.monotonic()
    sim = Simulator(seed=7)
    await sim.start()
    assert time.monotonic() - started < 1.0
    assert sim.running and sim.port > 0
    assert sim.api_url == f"http://127.0.0.1:{sim.port}"
    assert sim.user_hub_url.endswith("/hubs/user") and sim.market_hub_url.endswith("/hubs/market")
    async with httpx.AsyncClient(base_url=sim.api_url) as http:
        assert (await http.get("/api/Status/ping")).json() == "pong"
        token = await login(http, sim)
        hub = await open_hub(sim.market_hub_url, token)
        await hub.invoke("SubscribeContractTrades", MNQ)
        stopping = time.monotonic()
        await sim.stop()
        assert time.monotonic() - stopping < 1.0
    assert (await hub.record())["type"] == 7  # hub clients get a close message
    assert not sim.running and port_is_closed(sim.port)
    await sim.stop()  # idempotent
    leftover = {t for t in asyncio.all_tasks() - tasks_before if not t.done()}
    leftover.discard(asyncio.current_task())
    assert leftover == set()
    assert set(threading.enumerate()) <= threads_before


async def test_async_context_manager_and_two_simulators(login: Login) -> None:
    async with Simulator(seed=1) as one, Simulator(seed=2, port=0) as two:
        assert one.port != two.port
        async with httpx.AsyncClient() as http:
            for sim in (one, two):
                assert (await http.get(f"{sim.api_url}/api/Status/ping")).json() == "pong"
            token = await login(httpx.AsyncClient(base_url=one.api_url), one)
            other = await http.post(
                f"{two.api_url}/api/Account/search",
                json={"onlyActiveAccounts": True},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert other.status_code == 401  # tokens belong to one simulator


def test_options_and_repr_hide_the_api_key() -> None:
    sim = Simulator(seed=3, speed=2.0, api_key="top-secret-key", token_ttl=5.0)
    assert sim.config.seed == 3 and sim.config.speed == 2.0 and sim.config.token_ttl == 5.0
    assert sim.api_key == "top-secret-key"
    for text in (
        repr(sim),
        repr(sim.app),
        repr(sim.faults),
        repr(sim.tokens),
        repr(sim.exchange),
        repr(sim.app.rest.credentials),
    ):
        assert "top-secret-key" not in text
    base = SimConfig(seed=9, username="alice")
    assert Simulator(config=base, speed=4.0).config.username == "alice"
    assert Simulator(config=base).config.seed == 9
    with pytest.raises(TypeError, match="unknown simulator option"):
        Simulator(sped=2.0)
    with pytest.raises(ValueError, match="port"):
        Simulator(port=70_000)


def test_background_thread_from_sync_code() -> None:
    threads_before = set(threading.enumerate())
    with Simulator(seed=7).start_in_thread() as sim:
        assert sim.running
        with httpx.Client(base_url=sim.api_url) as http:
            assert http.get("/api/Status/ping").json() == "pong"
            creds = {"userName": sim.username, "apiKey": sim.api_key}
            token = http.post("/api/Auth/loginKey", json=creds).json()["token"]
            sim.faults.fail_next("/api/Account/search", 1, 503)  # marshalled into the sim loop
            auth = {"Authorization": f"Bearer {token}"}
            body = {"onlyActiveAccounts": True}
            assert http.post("/api/Account/search", json=body, headers=auth).status_code == 503
            assert http.post("/api/Account/search", json=body, headers=auth).status_code == 200
        assert sim.request_count("/api/Account/search") == 2
        book = sim.exchange.call(sim.exchange.book, MNQ)
        assert book.bids and book.asks and book.bids[0][0] < book.asks[0][0]
        port = sim.port
    assert not sim.running and port_is_closed(port)
    sim.close()  # idempotent
    assert set(threading.enumerate()) <= threads_before


async def test_background_thread_from_a_running_loop() -> None:
    """The notebook case: a loop is already running in this thread."""
    sim = Simulator(seed=7).start_in_thread()
    try:
        async with httpx.AsyncClient(base_url=sim.api_url) as http:
            assert (await http.get("/api/Status/ping")).json() == "pong"
        await asyncio.to_thread(sim.faults.add_latency, 0.0)
    finally:
        await asyncio.to_thread(sim.close)
    assert not sim.running


def test_background_thread_reports_bind_errors() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            Simulator(port=port).start_in_thread()


def test_cli_runs_until_sigterm_and_exits_zero() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "projectx_lab.cli",
            "sim",
            "--seed",
            "3",
            "--speed",
            "2",
            "--username",
            "carol",
            "--api-key",
            "cli-key",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any(line.strip().startswith("Press Ctrl-C") for line in lines):
            line = proc.stdout.readline()
            assert line, f"CLI exited early: {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line)
        info = {m[1]: m[2] for m in map(re.compile(r"^\s+(.+?)\s{2,}(\S+)$").match, lines) if m}
        url = info["REST API"]
        assert url.startswith("http://127.0.0.1:")
        assert info["Username"] == "carol" and info["API key"] == "cli-key"
        assert httpx.get(f"{url}/api/Status/ping").json() == "pong"
        login = httpx.post(
            f"{url}/api/Auth/loginKey", json={"userName": "carol", "apiKey": "cli-key"}
        )
        assert login.json()["success"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert "Simulator stopped." in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- end to end


def apply_depth(book: dict[int, dict[float, int]], items: list[dict[str, Any]]) -> None:
    """Client-side book building: 6 resets, 1/2 set the level size (0 removes)."""
    for item in items:
        kind = item["type"]
        if kind == 6:
            book[1].clear()
            book[2].clear()
        elif kind in (1, 2):
            side = book[kind]
            if item["volume"]:
                side[item["price"]] = item["volume"]
            else:
                side.pop(item["price"], None)


async def test_history_and_live_are_one_series(
    make_sim: MakeSim, login: Login, open_hub: Any, wait_for: Callable[..., Awaitable[None]]
) -> None:
    sim = await make_sim(speed=30.0)
    spec = sim.exchange.spec(MNQ)
    assert spec is not None
    async with httpx.AsyncClient(base_url=sim.api_url) as http:
        token = await login(http, sim)
        auth = {"Authorization": f"Bearer {token}"}
        hub = await open_hub(sim.market_hub_url, token)
        for method in (
            "SubscribeContractQuotes",
            "SubscribeContractTrades",
            "SubscribeContractMarketDepth",
        ):
            assert (await hub.invoke(method, MNQ)).get("error") is None
        await wait_for(lambda: sim.clock.now_ns() - sim.clock.start_ns > 20 * NS, within=5.0)
        records = await hub.barrier()
        events = [r for r in records if r.get("type") == 1]

        trades = [t for e in events if e["target"] == "GatewayTrade" for t in e["arguments"][1]]
        assert len(trades) > 20
        assert all(e["arguments"][0] == MNQ for e in events)
        first_ns, last_ns = parse_iso(trades[0]["timestamp"]), parse_iso(trades[-1]["timestamp"])
        tape = sim.exchange.tape(MNQ, first_ns - 1, last_ns + 99)  # wire stamps: 100 ns
        assert [(t["timestamp"], t["price"], t["volume"], t["type"]) for t in trades] == [
            (iso(ts), spec.to_price(p), v, s)
            for ts, p, v, s in zip(
                tape.ts_ns.tolist(),
                tape.price.tolist(),
                tape.size.tolist(),
                tape.side.tolist(),
                strict=True,
            )
        ]  # nothing lost, nothing invented
        assert all(t["symbolId"] == "F.US.MNQ" for t in trades)

        # REST 1-second bars over the live window match the live prints second by second.
        bars_body = {
            "contractId": MNQ,
            "live": False,
            "startTime": iso(first_ns - 60 * NS),
            "endTime": iso(last_ns + NS),
            "unit": 1,
            "unitNumber": 1,
            "limit": 1000,
            "includePartialBar": True,
        }
        bars = (await http.post("/api/History/retrieveBars", json=bars_body, headers=auth)).json()
        by_second: dict[int, list[dict[str, Any]]] = {}
        for t in trades:
            by_second.setdefault(parse_iso(t["timestamp"]) // NS, []).append(t)
        full_seconds = [s for s in by_second if first_ns // NS < s < last_ns // NS]
        assert full_seconds
        bar_at = {parse_iso(b["t"]) // NS: b for b in bars["bars"]}
        for second in full_seconds:
            prints, bar = by_second[second], bar_at[second]
            prices = [p["price"] for p in prints]
            assert bar["v"] == sum(p["volume"] for p in prints)
            assert (bar["o"], bar["h"], bar["l"], bar["c"]) == (
                prices[0],
                max(prices),
                min(prices),
                prices[-1],
            )

    # Depth: snapshot + diffs rebuild exactly the model's book at the last grid time seen.
    depth = [e["arguments"][1] for e in events if e["target"] == "GatewayDepth"]
    assert depth[0][0]["type"] == 6  # the subscription snapshot starts with Reset
    book: dict[int, dict[float, int]] = {1: {}, 2: {}}
    last_grid = None
    for items in depth:
        apply_depth(book, items)
        grid = [parse_iso(i["timestamp"]) for i in items if i["type"] in (1, 2)]
        if grid and items[0]["type"] != 6:
            last_grid = grid[-1]
        tops = {i["type"]: i for i in items if i["type"] in (3, 4)}
        if 3 in tops:
            assert tops[3]["price"] == min(book[1]) and tops[3]["volume"] == book[1][min(book[1])]
        if 4 in tops:
            assert tops[4]["price"] == max(book[2]) and tops[4]["volume"] == book[2][max(book[2])]
    assert last_grid is not None
    model = sim.exchange.market(MNQ).book(last_grid)
    assert book[1] == {spec.to_price(p): s for p, s in model.asks}
    assert book[2] == {spec.to_price(p): s for p, s in model.bids}
    prints = [i for items in depth[1:] for i in items if i["type"] == 5]
    live = [t for t in trades if t["timestamp"] >= prints[0]["timestamp"]]
    assert [(p["price"], p["volume"]) for p in prints] == [(t["price"], t["volume"]) for t in live]

    # Quotes: one full quote, then partial updates that merge into a consistent view.
    quotes = [e["arguments"][1] for e in events if e["target"] == "GatewayQuote"]
    assert {
        "symbol",
        "symbolName",
        "lastPrice",
        "bestBid",
        "bestAsk",
        "open",
        "high",
        "low",
        "volume",
        "lastUpdated",
        "timestamp",
    } <= set(quotes[0])
    merged: dict[str, Any] = {}
    for quote in quotes:
        assert quote["symbol"] == "F.US.MNQ"
        merged.update(quote)
    assert any(len(q) < len(quotes[0]) for q in quotes[1:])
    assert merged["bestBid"] < merged["bestAsk"] and merged["low"] <= merged["high"]
    assert set(sim.exchange.quote_snapshot(MNQ)) == set(quotes[0])  # for late quote subscribers


async def test_tape_reaches_the_broker_and_user_events_reach_the_hub(
    make_sim: MakeSim, login: Login, open_hub: Any
) -> None:
    sim = await make_sim(speed=30.0, fill_on_touch=True)
    async with httpx.AsyncClient(base_url=sim.api_url) as http:
        token = await login(http, sim)
        auth = {"Authorization": f"Bearer {token}"}
        hub = await open_hub(sim.user_hub_url, token)
        for method in ("SubscribeOrders", "SubscribeTrades", "SubscribePositions"):
            assert (await hub.invoke(method, ACCOUNT)).get("error") is None
        last = sim.exchange.last_trade(MNQ, sim.clock.now_ns())
        assert last is not None
        spec = sim.exchange.spec(MNQ)
        assert spec is not None
        body = {
            "accountId": ACCOUNT,
            "contractId": MNQ,
            "type": 1,
            "side": 0,
            "size": 1,
            "limitPrice": spec.to_price(last[1]),
        }
        placed = (await http.post("/api/Order/place", json=body, headers=auth)).json()
        assert placed["success"]
        while True:  # the resting order fills from the live tape (pump → broker → user hub)
            event = await hub.event("GatewayUserOrder", within=10.0)
            data = event["arguments"][0]["data"]
            assert data["id"] == placed["orderId"]
            if data["status"] == 2:
                break
        fill = await hub.event("GatewayUserTrade", within=5.0)
        assert fill["arguments"][0]["data"]["orderId"] == placed["orderId"]
        positions = (
            await http.post("/api/Position/searchOpen", json={"accountId": ACCOUNT}, headers=auth)
        ).json()
        assert [p["size"] for p in positions["positions"]] == [1]
