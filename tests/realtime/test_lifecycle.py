"""Lifecycle and safety: nothing left behind after `async with`, fast close, clear errors for
bad input / bad tokens / refused subscriptions / unresponsive servers, no token in any output."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from projectx_lab.realtime import (
    HubUnauthorizedError,
    ProjectXRealtimeClient,
    RealtimeConnectionError,
    SubscriptionError,
    create_realtime_client,
)
from projectx_lab.sim import Simulator

from .conftest import FAST, Recorder, account_ids, hub_subscriptions, login

MNQ = "CON.F.US.MNQ.Z26"
SIM_START = datetime(2026, 10, 1, 14, 30, tzinfo=UTC)


@pytest.fixture
def threaded_sim() -> Any:
    """A simulator on its own thread and loop, so the test loop holds only client tasks."""
    sim = Simulator(seed=7, speed=1.0, start=SIM_START, ping_interval=0.25, trade_rate=20.0)
    sim.start_in_thread()
    yield sim
    sim.close()


def client_sockets(port: int) -> int:
    """Sockets this process owns that are connected to `port` (client side, any state)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        lines = Path(table).read_text().splitlines()[1:] if Path(table).exists() else []
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            inode = int(fields[9])
            if remote_port == port and inode != 0:
                count += 1
    return count


async def test_nothing_left_behind_and_close_is_fast(
    threaded_sim: Simulator, transport: str
) -> None:
    async with httpx.AsyncClient(base_url=threaded_sim.api_url) as http:
        token = await login(http, threaded_sim)
        accounts = await account_ids(http, {"Authorization": f"Bearer {token}"})
    threads_before = set(threading.enumerate())
    tasks_before = asyncio.all_tasks()
    sockets_before = client_sockets(threaded_sim.port)

    blocker = asyncio.Event()
    quotes, states = Recorder(), Recorder()

    async def slow_callback(contract_id: str, quote: dict[str, Any]) -> None:
        await blocker.wait()  # still running at close: must be cancelled, not leaked

    rt = create_realtime_client(
        token,
        accounts[0],
        user_hub_url=threaded_sim.user_hub_url,
        market_hub_url=threaded_sim.market_hub_url,
        transport=transport,
        **FAST,
    )
    rt.quote_event += quotes
    rt.quote_event += slow_callback
    rt.state_event += states
    stream = rt.stream("GatewayQuote")
    async with rt:
        await rt.subscribe_market(MNQ)
        await quotes.wait_until(lambda: bool(quotes.items))
        threaded_sim.faults.drop_hub("all", "abort")  # exercise a rebuild before closing
        await states.wait_until(lambda: states.count(lambda h, s: s == "reconnected") == 2)
        await quotes.wait_until(lambda: len(quotes.items) > 3)
        started = time.perf_counter()
    closing = time.perf_counter() - started

    assert closing < 0.5, f"close took {closing:.3f}s"
    assert set(threading.enumerate()) - threads_before == set()
    assert asyncio.all_tasks() - tasks_before == set()
    assert client_sockets(threaded_sim.port) == sockets_before
    buffered = [item async for item in stream]  # the stream ends with the client
    assert len(buffered) >= 1


async def test_quiet_signalrcore_connection_closes_fast(make_rt: Any) -> None:
    rt = await make_rt(transport="signalrcore")  # nothing subscribed: no frames but pings
    started = time.perf_counter()
    await rt.close()
    assert time.perf_counter() - started < 0.2


async def test_secrets_never_appear(
    make_rt: Any,
    sim: Simulator,
    token: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, third-party ones included
    texts: list[str] = []
    url_with_token = f"{sim.user_hub_url}?access_token={token}"
    rt = await make_rt(token=None, user_hub_url=url_with_token)  # token taken from the URL
    states = Recorder()
    rt.state_event += states
    await rt.subscribe_market(MNQ)
    sim.faults.drop_hub("all", "clean")
    await states.wait_until(lambda: states.count(lambda h, s: s == "reconnected") == 2)
    sim.faults.inject_raw("market", f"not json {token}\x1e")
    try:
        await rt.subscribe_market("CON.F.US.NOPE.Z26")
    except SubscriptionError as exc:
        texts.append(str(exc))
    bad = await make_rt(connect=False, token=token + "x")
    with pytest.raises(HubUnauthorizedError) as info:
        await bad.connect()
    texts += [str(info.value), repr(info.value)]
    texts += [repr(rt), str(rt), repr(rt.quote_event), repr(rt.stream("quote")), str(rt.stats)]
    texts += [repr(s) for s in (rt._user, rt._market)]
    await rt.close()
    texts += [repr(rt)]
    for record in caplog.records:
        if record.name.startswith(("projectx_lab.sim", "uvicorn")):
            continue  # the server's own logs are the simulator's concern
        texts.append(record.getMessage())
        if record.exc_text:
            texts.append(record.exc_text)
    assert len(texts) > 20
    leaks = [text for text in texts if token in text or token[:40] in text]
    assert leaks == []


async def test_refused_subscription_raises_and_changes_nothing(
    make_rt: Any, sim: Simulator
) -> None:
    rt = await make_rt()
    await rt.subscribe_market(MNQ, depth=False)
    with pytest.raises(SubscriptionError, match="NOPE"):
        await rt.subscribe_market("CON.F.US.NOPE.Z26")
    assert rt.market_subscriptions == {MNQ: frozenset({"quotes", "trades"})}
    assert hub_subscriptions(sim, "market") == [
        frozenset({("GatewayQuote", MNQ), ("GatewayTrade", MNQ)})
    ]
    with pytest.raises(SubscriptionError):
        await rt.subscribe_user(999_999_999)
    assert rt.user_subscriptions == {}
    assert rt.is_connected


async def test_bad_token_fails_connect_cleanly(make_rt: Any, transport: str) -> None:
    threads_before = set(threading.enumerate())
    for skip in (False, True):  # refused at negotiate, and at the WebSocket upgrade
        rt = await make_rt(connect=False, token="not-a-valid-token", skip_negotiation=skip)
        with pytest.raises(HubUnauthorizedError):
            await rt.connect()
        assert not rt.is_connected
    assert set(threading.enumerate()) - threads_before == set()


class BlackHole:
    """A TCP port that accepts connections and never answers (a hung gateway)."""

    def __init__(self) -> None:
        self.port = 0
        self.held: list[asyncio.StreamWriter] = []
        self.both_accepted = asyncio.Event()

    async def accept(self, _: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.held.append(writer)
        if len(self.held) >= 2:
            self.both_accepted.set()


@pytest.fixture
async def black_hole() -> AsyncIterator[BlackHole]:
    hole = BlackHole()
    server = await asyncio.start_server(hole.accept, "127.0.0.1", 0)
    hole.port = server.sockets[0].getsockname()[1]
    yield hole
    for writer in hole.held:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("skip_negotiation", [False, True])
async def test_unresponsive_hub_times_out_without_leaks(
    make_rt: Any, black_hole: BlackHole, skip_negotiation: bool
) -> None:
    threads_before = set(threading.enumerate())
    url = f"http://127.0.0.1:{black_hole.port}/hubs"
    rt = await make_rt(
        connect=False,
        user_hub_url=f"{url}/user",
        market_hub_url=f"{url}/market",
        connect_timeout=0.3,
        skip_negotiation=skip_negotiation,
    )
    started = time.perf_counter()
    with pytest.raises(RealtimeConnectionError, match=r"timed out|negotiate failed"):
        await rt.connect()
    assert time.perf_counter() - started < 1.5
    assert set(threading.enumerate()) - threads_before == set()


async def test_cancelled_connect_releases_everything(
    make_rt: Any, black_hole: BlackHole, transport: str
) -> None:
    threads_before = set(threading.enumerate())
    tasks_before = asyncio.all_tasks()
    url = f"ws://127.0.0.1:{black_hole.port}/hubs"
    rt = await make_rt(
        connect=False,
        user_hub_url=f"{url}/user",
        market_hub_url=f"{url}/market",
        skip_negotiation=True,
    )
    connecting = asyncio.create_task(rt.connect())
    await black_hole.both_accepted.wait()  # both hubs are mid-upgrade now
    connecting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await connecting
    assert set(threading.enumerate()) - threads_before == set()
    assert asyncio.all_tasks() - tasks_before == set()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"transport": "carrier-pigeon"}, ValueError),
        ({"user_hub_url": "ftp://example.com/hubs/user"}, ValueError),
        ({"market_hub_url": ""}, ValueError),
        ({"account_id": 0}, ValueError),
        ({"account_id": True}, ValueError),
        ({"keepalive_interval": 0}, ValueError),
        ({"stale_after": -1}, ValueError),
        ({"connect_timeout": 0}, ValueError),
    ],
)
def test_bad_construction_is_refused(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        create_realtime_client("token", **kwargs)


def test_token_must_be_given() -> None:
    with pytest.raises(TypeError):
        ProjectXRealtimeClient(None)
    with pytest.raises(ValueError):
        ProjectXRealtimeClient("   ")


async def test_bad_subscription_input_is_refused(make_rt: Any) -> None:
    rt = await make_rt()
    for contract_id in ("", " MNQ", 42, None):
        with pytest.raises(ValueError):
            await rt.subscribe_market(contract_id)
    with pytest.raises(ValueError, match="nothing selected"):
        await rt.subscribe_market(MNQ, quotes=False, trades=False, depth=False)
    for account_id in (0, -5, "1", 1.5, False):
        with pytest.raises(ValueError):
            await rt.subscribe_user(account_id)
    with pytest.raises(ValueError, match="unknown event"):
        rt.on("GatewayNope", print)
    with pytest.raises(TypeError):
        rt.on("quote", "not callable")
    with pytest.raises(ValueError):
        rt.stream("quote", maxsize=0)
    assert rt.market_subscriptions == {} and rt.user_subscriptions == {}


async def test_closed_client_cannot_reconnect(make_rt: Any) -> None:
    rt = await make_rt()
    await rt.close()
    await rt.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await rt.connect()


async def test_failing_token_factory_is_a_clear_connection_error(make_rt: Any) -> None:
    def broken() -> str:
        raise OSError("vault unreachable")

    rt = await make_rt(connect=False, token=broken)
    with pytest.raises(RealtimeConnectionError, match="token factory failed: OSError"):
        await rt.connect()
