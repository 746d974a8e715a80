"""signalrcore 1.0.2 against the simulator hubs over real sockets, with and without negotiate."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from signalrcore.hub_connection_builder import HubConnectionBuilder
from signalrcore.messages.ping_message import PingMessage
from signalrcore.protocol.json_hub_protocol import JsonHubProtocol
from starlette.applications import Starlette

from projectx_lab.sim.config import SimConfig
from projectx_lab.sim.hubs import UVICORN_WS_OPTIONS, Hubs

MNQ = "CON.F.US.MNQ.Z26"
TS = "2026-10-02T14:31:05.1234567+00:00"
TIMEOUT = 5.0


class StandIns:
    """In-test token table, account ownership and market interest for the hubs."""

    def __init__(self) -> None:
        self.interest: dict[str, int] = {}

    def authenticate(self, token: str) -> object | None:
        return {"tok-alice": "alice"}.get(token)

    def accounts_of(self, user: object) -> tuple[int, ...]:
        return (101, 102) if user == "alice" else ()

    def acquire(self, contract_id: str) -> None:
        self.interest[contract_id] = self.interest.get(contract_id, 0) + 1

    def release(self, contract_id: str) -> None:
        self.interest[contract_id] -= 1

    def known_contract(self, contract_id: str) -> bool:
        return contract_id == MNQ

    def quote_snapshot(self, contract_id: str) -> dict[str, Any]:
        return {"symbol": "F.US.MNQ", "lastPrice": 21450.25, "bestBid": 21450.0,
                "bestAsk": 21450.25, "timestamp": TS}  # fmt: skip

    def depth_snapshot(self, contract_id: str) -> list[dict[str, Any]]:
        return [
            {"timestamp": TS, "type": 6, "price": 0, "volume": 0, "currentVolume": 0},
            {"timestamp": TS, "type": 1, "price": 21450.25, "volume": 7, "currentVolume": 7},
            {"timestamp": TS, "type": 2, "price": 21450.0, "volume": 3, "currentVolume": 3},
        ]


@dataclass
class Sim:
    hubs: Hubs
    backend: StandIns
    port: int

    def url(self, hub: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/hubs/{hub}"


@contextlib.asynccontextmanager
async def serve_hubs(ping_interval: float = 15.0) -> AsyncIterator[Sim]:
    """The hubs in a minimal Starlette app, served by uvicorn on a free loopback port."""
    backend = StandIns()
    hubs = Hubs(SimConfig(ping_interval=ping_interval), backend, backend, backend)
    sock = socket.create_server(("127.0.0.1", 0))
    config = uvicorn.Config(
        Starlette(routes=hubs.routes()), lifespan="off", log_level="warning", **UVICORN_WS_OPTIONS
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield Sim(hubs, backend, sock.getsockname()[1])
    finally:
        await hubs.shutdown(grace=2.0)
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


class PingCountingProtocol(JsonHubProtocol):
    """signalrcore's JSON protocol, reporting every server ping it parses."""

    def __init__(self, on_ping: Callable[[], None]) -> None:
        super().__init__()
        self._on_ping = on_ping

    def parse_messages(self, raw: str) -> list[Any]:
        messages = super().parse_messages(raw)
        for message in messages:
            if isinstance(message, PingMessage):
                self._on_ping()
        return messages


class Client:
    """A signalrcore connection whose callbacks land in the test's event loop."""

    def __init__(
        self,
        url: str,
        token: str = "tok-alice",
        *,
        skip_negotiation: bool = False,
        protocol: JsonHubProtocol | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        options = {"access_token_factory": lambda: token, "skip_negotiation": skip_negotiation}
        builder = HubConnectionBuilder().with_url(url, options=options)
        if protocol is not None:
            builder.with_hub_protocol(protocol)
        self.hub = builder.build()
        self.opened = asyncio.Event()
        self.closed = asyncio.Event()
        self.events: asyncio.Queue[tuple[str, list[Any]]] = asyncio.Queue()
        self.errors: asyncio.Queue[str] = asyncio.Queue()
        self.hub.on_open(lambda: self.soon(self.opened.set))
        self.hub.on_close(lambda: self.soon(self.closed.set))
        self.hub.on_error(lambda message: self.soon(self.errors.put_nowait, message.error))

    def soon(self, callback: Callable[..., object], *args: object) -> None:
        """Run `callback` on the test loop (called from signalrcore's threads)."""
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(callback, *args)

    def listen(self, *targets: str) -> None:
        for target in targets:
            self.hub.on(target, partial_event(self, target))

    async def start(self) -> None:
        await asyncio.to_thread(self.hub.start)
        await asyncio.wait_for(self.opened.wait(), TIMEOUT)

    async def invoke(self, method: str, *args: object) -> None:
        """Invoke and wait for the successful completion."""
        done: asyncio.Future[object] = self.loop.create_future()

        def completed(message: object) -> None:
            self.soon(lambda: done.done() or done.set_result(message))

        self.hub.send(method, list(args), on_invocation=completed)
        await asyncio.wait_for(done, TIMEOUT)

    async def event(self) -> tuple[str, list[Any]]:
        return await asyncio.wait_for(self.events.get(), TIMEOUT)

    def close_socket(self) -> None:
        """signalrcore 1.0.2 leaves its socket open after an abort or a refused upgrade."""
        transport = getattr(self.hub, "transport", None)
        sock = getattr(getattr(transport, "_client", None), "sock", None)
        if sock is not None:
            sock.close()


def partial_event(client: Client, target: str) -> Callable[[list[Any]], None]:
    return lambda arguments: client.soon(client.events.put_nowait, (target, arguments))


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    async with serve_hubs() as running:
        yield running


async def test_negotiated_market_connection_receives_documented_shapes(sim: Sim) -> None:
    client = Client(sim.url("market"))
    client.listen("GatewayQuote", "GatewayTrade", "GatewayDepth")
    await client.start()
    await client.invoke("SubscribeContractQuotes", MNQ)
    await client.invoke("SubscribeContractTrades", MNQ)
    await client.invoke("SubscribeContractMarketDepth", MNQ)
    target, (contract_id, first_quote) = await client.event()
    assert (target, contract_id) == ("GatewayQuote", MNQ)  # a new subscriber gets a full quote
    assert first_quote["lastPrice"] == 21450.25
    target, (contract_id, snapshot) = await client.event()
    assert (target, contract_id) == ("GatewayDepth", MNQ)
    assert [item["type"] for item in snapshot] == [6, 1, 2]
    assert sim.backend.interest == {MNQ: 1}

    quote = {"symbol": "F.US.MNQ", "bestBid": 21450.0, "bestAsk": 21450.25, "lastUpdated": TS}
    trades = [{"symbolId": "F.US.MNQ", "price": 21450.25, "timestamp": TS, "type": 0, "volume": 2}]
    depth = [{"timestamp": TS, "type": 3, "price": 21450.25, "volume": 7, "currentVolume": 1}]
    sim.hubs.market.market_event(MNQ, "GatewayQuote", quote)
    sim.hubs.market.market_event(MNQ, "GatewayTrade", trades)
    sim.hubs.market.market_event(MNQ, "GatewayDepth", depth)
    assert await client.event() == ("GatewayQuote", [MNQ, quote])
    assert await client.event() == ("GatewayTrade", [MNQ, trades])
    assert await client.event() == ("GatewayDepth", [MNQ, depth])

    [conn] = sim.hubs.market.connections
    sim.hubs.drop("market", "clean")
    await asyncio.wait_for(client.closed.wait(), TIMEOUT)
    await asyncio.wait_for(conn.closed.wait(), TIMEOUT)
    assert sim.backend.interest == {MNQ: 0}


async def test_skip_negotiation_user_connection_receives_wrapped_events(sim: Sim) -> None:
    client = Client(sim.url("user", "ws"), skip_negotiation=True)
    client.listen("GatewayUserOrder", "GatewayUserAccount")
    await client.start()
    await client.invoke("SubscribeOrders", 101)
    await client.invoke("SubscribeAccounts")
    order = {"id": 3500000001, "accountId": 101, "status": 2, "type": 2, "side": 0, "size": 1}
    account = {"id": 102, "name": "PRAC-V2-SIM-1", "balance": 50_000.0, "canTrade": True}
    sim.hubs.user.user_event(101, "GatewayUserOrder", 1, order)
    sim.hubs.user.user_event(102, "GatewayUserAccount", 1, account)
    assert await client.event() == ("GatewayUserOrder", [{"action": 1, "data": order}])
    assert await client.event() == ("GatewayUserAccount", [{"action": 1, "data": account}])
    [info] = sim.hubs.connections("user")
    assert ("GatewayUserOrder", 101) in info.subscriptions


async def test_errors_reach_on_error_and_the_connection_stays_up(sim: Sim) -> None:
    client = Client(sim.url("market"))
    client.listen("GatewayTrade")
    await client.start()
    client.hub.send("Nope", [])
    assert await asyncio.wait_for(client.errors.get(), TIMEOUT) == "Unknown hub method 'Nope'"
    client.hub.send("SubscribeContractTrades", [42])
    error = await asyncio.wait_for(client.errors.get(), TIMEOUT)
    assert "'contractId' must be a string" in error
    await client.invoke("SubscribeContractTrades", MNQ)
    sim.hubs.market.market_event(MNQ, "GatewayTrade", [{"price": 1.0}])
    assert await client.event() == ("GatewayTrade", [MNQ, [{"price": 1.0}]])


async def test_connection_outlives_many_server_keepalive_intervals() -> None:
    async with serve_hubs(ping_interval=0.1) as sim:
        pinged = asyncio.Event()
        pings = 0

        def count() -> None:
            nonlocal pings
            pings += 1
            if pings >= 8:
                pinged.set()

        client = Client(
            sim.url("market"), protocol=PingCountingProtocol(lambda: client.soon(count))
        )
        client.listen("GatewayTrade")
        await client.start()
        await client.invoke("SubscribeContractTrades", MNQ)
        [before] = sim.hubs.connections("market")
        await asyncio.wait_for(pinged.wait(), TIMEOUT)
        assert not client.closed.is_set()
        sim.hubs.market.market_event(MNQ, "GatewayTrade", [{"price": 2.0}])
        assert await client.event() == ("GatewayTrade", [MNQ, [{"price": 2.0}]])
        [after] = sim.hubs.connections("market")
        assert after.connection_id == before.connection_id


@pytest.mark.parametrize("mode", ["clean", "abort"])
async def test_drops_are_noticed(sim: Sim, mode: str) -> None:
    client = Client(sim.url("user"))
    await client.start()
    assert sim.hubs.drop("user", mode) == 1  # type: ignore[arg-type]
    await asyncio.wait_for(client.closed.wait(), TIMEOUT)
    client.close_socket()


@pytest.mark.parametrize("skip_negotiation", [False, True])
async def test_bad_token_cannot_connect(sim: Sim, skip_negotiation: bool) -> None:
    scheme = "ws" if skip_negotiation else "http"
    client = Client(sim.url("market", scheme), "nope", skip_negotiation=skip_negotiation)
    with pytest.raises(Exception, match=r"401|Unauthorized"):
        await client.start()
    client.close_socket()
    assert sim.hubs.connection_count() == 0
