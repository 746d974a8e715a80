"""SignalR JSON protocol helpers and the simulator hubs over real sockets with a bare client."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import uvicorn
import websockets
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from projectx_lab.sim import protocol as sp
from projectx_lab.sim.config import SimConfig
from projectx_lab.sim.hubs import UVICORN_WS_OPTIONS, Hubs

MNQ = "CON.F.US.MNQ.Z26"
MES = "CON.F.US.MES.Z26"
BROKEN = "CON.F.US.BRK.Z26"  # the stand-in exchange fails to acquire it
TS = "2026-10-02T14:31:05.1234567+00:00"
RS = sp.RECORD_SEPARATOR

# --- protocol unit tests ------------------------------------------------------------------------


def test_reader_joins_records_split_across_chunks() -> None:
    reader = sp.RecordReader()
    assert reader.feed('{"type":') == []
    assert reader.feed("6}") == []
    assert reader.pending == len('{"type":6}')
    assert reader.feed(RS + '{"type":1' + RS + RS + "{}" + RS + '{"ty') == [
        '{"type":6}',
        '{"type":1',
        "{}",
    ]
    assert reader.feed('pe":7}' + RS) == ['{"type":7}']
    assert reader.pending == 0


def test_reader_rejects_unterminated_oversized_record() -> None:
    reader = sp.RecordReader(max_record_chars=10)
    reader.feed("12345")
    with pytest.raises(sp.ProtocolError, match="exceeds 10 characters"):
        reader.feed("678901")
    assert reader.feed("ok" + RS) == ["ok"]


@given(
    st.lists(st.text(alphabet=st.characters(blacklist_characters=RS), min_size=1), max_size=8),
    st.lists(st.integers(min_value=0, max_value=400), max_size=10),
)
def test_reader_is_independent_of_chunking(records: list[str], cuts: list[int]) -> None:
    stream = "".join(record + RS for record in records)
    points = sorted({min(cut, len(stream)) for cut in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    reader = sp.RecordReader()
    assert [record for chunk in chunks for record in reader.feed(chunk)] == records
    assert reader.pending == 0


@pytest.mark.parametrize("version", [0, 1, 2])
def test_handshake_accepts_json_versions(version: int) -> None:
    assert sp.parse_handshake(f'{{"protocol":"json","version":{version}}}') == sp.Handshake(
        "json", version
    )
    assert sp.handshake_response() == b"{}" + sp.RS


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ('{"protocol":"messagepack","version":1}', "The protocol 'messagepack' is not supported."),
        ('{"protocol":"json","version":3}', "does not support version 3"),
        ('{"protocol":"json"}', "integer property 'version'"),
        ('{"version":1}', "string property 'protocol'"),
        ("[1]", "must be a JSON object"),
        ("{nope", "not valid JSON"),
    ],
)
def test_handshake_errors_are_clear(record: str, message: str) -> None:
    with pytest.raises(sp.ProtocolError, match=message.replace("(", r"\(").replace(".", r"\.")):
        sp.parse_handshake(record)
    reply = orjson.loads(sp.handshake_response("bad").rstrip(sp.RS))
    assert reply == {"error": "bad"}


def test_message_decoding_and_invocation_checks() -> None:
    assert sp.decode_message('{"type":6}') == {"type": 6}
    for bad in ('{"type":"1"}', '{"type":true}', "{}", "[]"):
        with pytest.raises(sp.ProtocolError):
            sp.decode_message(bad)
    call = sp.parse_invocation({"type": 1, "target": "SubscribeOrders", "arguments": [7]})
    assert call == sp.Invocation("SubscribeOrders", [7], None)
    assert sp.parse_invocation({"type": 1, "target": "X"}).arguments == []
    with pytest.raises(sp.ProtocolError, match="target"):
        sp.parse_invocation({"type": 1, "arguments": []})
    with pytest.raises(sp.ProtocolError, match="invocationId"):
        sp.parse_invocation({"type": 1, "target": "X", "invocationId": 5})


def test_encoders_produce_standard_records() -> None:
    def parse(record: bytes) -> Any:
        assert record.endswith(sp.RS) and record.count(sp.RS) == 1
        return orjson.loads(record[:-1])

    assert parse(sp.PING) == {"type": 6}
    assert parse(sp.encode_completion("1")) == {"type": 3, "invocationId": "1", "result": None}
    assert parse(sp.encode_completion("2", "boom")) == {
        "type": 3,
        "invocationId": "2",
        "error": "boom",
    }
    assert parse(sp.encode_close()) == {"type": 7}
    assert parse(sp.encode_close("x", allow_reconnect=True)) == {
        "type": 7,
        "error": "x",
        "allowReconnect": True,
    }
    data = {"price": Decimal("21450.25"), "volume": np.int64(3), "levels": np.arange(2)}
    fast = sp.invocation_prefix("GatewayTrade", MNQ) + sp.dumps([data]) + sp.INVOCATION_END
    plain = sp.encode_invocation("GatewayTrade", [MNQ, [data]])
    assert parse(fast) == parse(plain)
    assert parse(fast) == {
        "type": 1,
        "target": "GatewayTrade",
        "arguments": [MNQ, [{"price": 21450.25, "volume": 3, "levels": [0, 1]}]],
    }
    assert parse(sp.invocation_prefix("E") + b"1" + sp.INVOCATION_END)["arguments"] == [1]
    with pytest.raises(TypeError):
        sp.dumps({"x": object()})


# --- hubs over real sockets ---------------------------------------------------------------------


class StandIns:
    """In-test token table, account ownership and market interest for the hubs."""

    def __init__(self) -> None:
        self.users = {"tok-alice": "alice", "tok-bob": "bob"}
        self.expired = {"tok-expired"}
        self.owned = {"alice": (101, 102), "bob": (201,)}
        self.contracts = {MNQ, MES}
        self.interest: Counter[str] = Counter()

    def authenticate(self, token: str) -> object | None:
        return None if token in self.expired else self.users.get(token)

    def accounts_of(self, user: object) -> tuple[int, ...]:
        return self.owned.get(str(user), ())

    def acquire(self, contract_id: str) -> None:
        if contract_id == BROKEN:
            raise RuntimeError("exchange failure")
        self.interest[contract_id] += 1

    def release(self, contract_id: str) -> None:
        self.interest[contract_id] -= 1

    def known_contract(self, contract_id: str) -> bool:
        return contract_id in self.contracts or contract_id == BROKEN

    def quote_snapshot(self, contract_id: str) -> dict[str, Any]:
        return {"symbol": "F.US.MNQ", "lastPrice": 21450.25, "bestBid": 21450.0,
                "bestAsk": 21450.25, "timestamp": TS}  # fmt: skip

    def depth_snapshot(self, contract_id: str) -> list[dict[str, Any]]:
        reset = {"timestamp": TS, "type": 6, "price": 0, "volume": 0, "currentVolume": 0}
        asks = [
            {"timestamp": TS, "type": 1, "price": 21450.25 + i / 4, "volume": 5 + i}
            for i in range(3)
        ]
        bids = [
            {"timestamp": TS, "type": 2, "price": 21450.0 - i / 4, "volume": 4 + i}
            for i in range(3)
        ]
        return [reset, *asks, *bids]


@dataclass
class Sim:
    hubs: Hubs
    backend: StandIns
    port: int

    def url(self, hub: str, query: str = "access_token=tok-alice") -> str:
        return f"ws://127.0.0.1:{self.port}/hubs/{hub}" + (f"?{query}" if query else "")

    def http(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextlib.asynccontextmanager
async def serve_hubs(**options: Any) -> AsyncIterator[Sim]:
    """The hubs in a minimal Starlette app, served by uvicorn on a free loopback port."""
    config = SimConfig(
        ping_interval=options.pop("ping_interval", 15.0),
        max_frame_bytes=options.pop("max_frame_bytes", 16_384),
        client_timeout=options.pop("client_timeout", 30.0),
    )
    backend = StandIns()
    hubs = Hubs(config, backend, backend, backend, **options)
    app = Starlette(routes=hubs.routes())
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", log_level="warning", **UVICORN_WS_OPTIONS)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield Sim(hubs, backend, sock.getsockname()[1])
    finally:
        await hubs.shutdown(grace=1.0)
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    async with serve_hubs() as running:
        yield running


async def server_side_closed(hubs: Hubs, hub: str = "all") -> None:
    """Wait until every connection `hub` still holds has been detached and stopped."""
    conns = [*hubs.user.connections] if hub != "market" else []
    conns += [*hubs.market.connections] if hub != "user" else []
    await asyncio.wait_for(asyncio.gather(*(conn.closed.wait() for conn in conns)), 5.0)
    assert hubs.connection_count(hub) == 0  # type: ignore[arg-type]


class RawClient:
    """Bare `websockets` SignalR client that keeps frames and parsed records."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.reader = sp.RecordReader()
        self.records: deque[dict[str, Any]] = deque()
        self.frames: list[str] = []
        self._ids = 0

    @classmethod
    async def open(
        cls, url: str, *, version: int = 1, headers: dict[str, str] | None = None
    ) -> RawClient:
        ws = await websockets.connect(
            url, compression=None, ping_interval=None, additional_headers=headers
        )
        client = cls(ws)
        await client.send_raw(f'{{"protocol":"json","version":{version}}}{RS}')
        assert await client.next() == {}
        return client

    async def send_raw(self, text: str) -> None:
        await self.ws.send(text)

    async def send(self, *messages: dict[str, Any]) -> None:
        """All messages as records in one frame."""
        await self.ws.send("".join(orjson.dumps(m).decode() + RS for m in messages))

    async def invoke(self, target: str, *args: object) -> dict[str, Any]:
        """Invoke with an id and return the completion (skipping pings)."""
        self._ids += 1
        await self.send(
            {"type": 1, "invocationId": str(self._ids), "target": target, "arguments": list(args)}
        )
        return await self.next(lambda m: m.get("type") == 3)

    async def next(
        self, accept: Callable[[dict[str, Any]], bool] | None = None, within: float = 5.0
    ) -> dict[str, Any]:
        """Next record; with `accept`, the next one it accepts (pings are skipped then)."""
        async with asyncio.timeout(within):
            while True:
                while self.records:
                    record = self.records.popleft()
                    if accept is None or accept(record):
                        return record
                frame = await self.ws.recv()
                assert isinstance(frame, str), "hub frames must be text"
                self.frames.append(frame)
                self.records.extend(orjson.loads(r) for r in self.reader.feed(frame))

    async def event(self) -> dict[str, Any]:
        return await self.next(lambda m: m.get("type") == 1)

    async def close(self) -> None:
        await self.ws.close()


def trade(price: float) -> list[dict[str, Any]]:
    return [{"symbolId": "F.US.MNQ", "price": price, "timestamp": TS, "type": 0, "volume": 1}]


async def test_negotiate_v0_then_connect_with_connection_id(sim: Sim) -> None:
    async with httpx.AsyncClient() as http:
        reply = await http.post(
            sim.http("/hubs/market/negotiate"), headers={"Authorization": "Bearer tok-alice"}
        )
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == {"negotiateVersion", "connectionId", "availableTransports"}
    assert body["negotiateVersion"] == 0
    assert body["availableTransports"][0] == {
        "transport": "WebSockets",
        "transferFormats": ["Text"],
    }
    url = sim.url("market", f"id={body['connectionId']}&access_token=tok-alice")
    client = await RawClient.open(url, version=0)
    assert [c.connection_id for c in sim.hubs.connections("market")] == [body["connectionId"]]
    await client.close()
    with pytest.raises(InvalidStatus) as refused:  # a negotiated id is good for one connect
        await RawClient.open(url)
    assert refused.value.response.status_code == 404


async def test_negotiate_v1_token_and_header_auth(sim: Sim) -> None:
    async with httpx.AsyncClient() as http:
        reply = await http.post(
            sim.http("/hubs/user/negotiate?negotiateVersion=1&access_token=tok-alice")
        )
    body = reply.json()
    assert body["negotiateVersion"] == 1
    assert body["connectionToken"] != body["connectionId"]
    url = sim.url("user", f"id={body['connectionToken']}")
    client = await RawClient.open(url, headers={"Authorization": "Bearer tok-alice"})
    assert await client.invoke("SubscribeOrders", 101) == {
        "type": 3,
        "invocationId": "1",
        "result": None,
    }
    assert sim.hubs.connections("user")[0].connection_id == body["connectionId"]
    await client.close()


async def test_negotiate_requires_a_valid_token(sim: Sim) -> None:
    async with httpx.AsyncClient() as http:
        path = sim.http("/hubs/market/negotiate")
        assert (await http.post(path)).status_code == 401
        assert (await http.post(path + "?access_token=nope")).status_code == 401
        expired = {"Authorization": "Bearer tok-expired"}
        assert (await http.post(path, headers=expired)).status_code == 401
        bad_version = await http.post(path + "?negotiateVersion=x&access_token=tok-bob")
        assert bad_version.status_code == 400
        assert "negotiateVersion" in bad_version.json()["error"]


@pytest.mark.parametrize(
    ("query", "status"),
    [("", 401), ("access_token=nope", 401), ("access_token=tok-expired", 401)],
)
async def test_websocket_refuses_bad_tokens(sim: Sim, query: str, status: int) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await RawClient.open(sim.url("market", query))
    assert refused.value.response.status_code == status
    assert sim.hubs.connection_count() == 0


async def test_websocket_refuses_unknown_connection_id(sim: Sim) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await RawClient.open(sim.url("market", "id=stale&access_token=tok-alice"))
    assert refused.value.response.status_code == 404


@pytest.mark.parametrize("version", [0, 1, 2])
async def test_skip_negotiation_handshake_versions(sim: Sim, version: int) -> None:
    client = await RawClient.open(sim.url("market"), version=version)
    assert sim.hubs.connection_count("market") == 1
    await client.close()


async def test_handshake_error_for_non_json_protocol(sim: Sim) -> None:
    ws = await websockets.connect(sim.url("market"), compression=None, ping_interval=None)
    await ws.send('{"protocol":"messagepack","version":1}' + RS)
    reply = await ws.recv()
    assert orjson.loads(reply.rstrip(RS)) == {
        "error": "The protocol 'messagepack' is not supported."
    }
    with pytest.raises(ConnectionClosed):
        await ws.recv()
    assert sim.hubs.connection_count() == 0


async def test_invocations_completions_and_unknown_methods(sim: Sim) -> None:
    client = await RawClient.open(sim.url("market"))
    # Without an invocation id there is no completion: the next record answers the next call.
    await client.send({"type": 1, "target": "SubscribeContractQuotes", "arguments": [MNQ]})
    assert await client.invoke("Nope", 1) == {
        "type": 3,
        "invocationId": "1",
        "error": "Unknown hub method 'Nope'",
    }
    completion = await client.invoke("SubscribeContractTrades", 5)
    assert "'contractId' must be a string, got an integer" in completion["error"]
    completion = await client.invoke("SubscribeContractTrades", MNQ, MES)
    assert "provides 2 argument(s) but target expects 1" in completion["error"]
    completion = await client.invoke("SubscribeContractTrades", "CON.F.US.XXX.Z26")
    assert completion["error"] == "Contract 'CON.F.US.XXX.Z26' not found."
    completion = await client.invoke("SubscribeContractTrades", BROKEN)
    assert completion["error"] == (
        "Failed to invoke 'SubscribeContractTrades' due to an error on the server."
    )
    assert (await client.invoke("subscribecontracttrades", MES))["result"] is None
    subscriptions = sim.hubs.connections("market")[0].subscriptions
    assert subscriptions == {("GatewayQuote", MNQ), ("GatewayTrade", MES)}
    assert sim.backend.interest == Counter({MNQ: 1, MES: 1})
    await client.close()


async def test_records_split_across_frames_and_batched_in_one(sim: Sim) -> None:
    ws = await websockets.connect(sim.url("market"), compression=None, ping_interval=None)
    client = RawClient(ws)
    await client.send_raw('{"protocol":"js')
    await client.send_raw('on","version":1}' + RS + '{"type":6}' + RS + '{"type":1,"invo')
    assert await client.next() == {}
    await client.send_raw('cationId":"a","target":"SubscribeContractQuotes",')
    await client.send_raw('"arguments":["' + MNQ + '"]}' + RS)
    batch = [
        {"type": 1, "invocationId": "b", "target": "SubscribeContractTrades", "arguments": [MNQ]},
        {"type": 8, "sequenceId": 1},
        {"type": 9, "sequenceId": 1},
        {"type": 6},
        {"type": 1, "invocationId": "c", "target": "SubscribeContractTrades", "arguments": [MES]},
    ]
    await client.send(*batch)
    ids = [(await client.next(lambda m: m["type"] == 3))["invocationId"] for _ in range(3)]
    assert ids == ["a", "b", "c"]
    info = sim.hubs.connections("market")[0]
    assert info.pings_received == 2
    assert len(info.subscriptions) == 3
    await client.close()


async def test_market_event_shapes_and_depth_snapshot(sim: Sim) -> None:
    client = await RawClient.open(sim.url("market"))
    for method in ("SubscribeContractQuotes", "SubscribeContractTrades"):
        assert (await client.invoke(method, MNQ))["result"] is None
    await client.send(
        {
            "type": 1,
            "invocationId": "d",
            "target": "SubscribeContractMarketDepth",
            "arguments": [MNQ],
        }
    )
    snapshot = await client.event()
    assert snapshot["target"] == "GatewayDepth"
    contract_id, items = snapshot["arguments"]
    assert contract_id == MNQ
    assert [item["type"] for item in items] == [6, 1, 1, 1, 2, 2, 2]
    assert (await client.next(lambda m: m["type"] == 3))["invocationId"] == "d"
    # Subscribing again is a no-op: no second snapshot, no second market interest.
    assert (await client.invoke("SubscribeContractMarketDepth", MNQ))["result"] is None
    assert sim.backend.interest[MNQ] == 1

    market = sim.hubs.market
    quote = {"symbol": "F.US.MNQ", "bestBid": 21450.0, "bestAsk": 21450.25, "timestamp": TS}
    market.market_event(MNQ, "GatewayQuote", quote)
    market.market_event(MNQ, "GatewayTrade", trade(21450.25))
    market.market_event(MNQ, "GatewayDepth", [{"timestamp": TS, "type": 1, "price": 1.0}])
    market.market_event(MES, "GatewayTrade", trade(1.0))  # nobody subscribed
    assert await client.event() == {
        "type": 1,
        "target": "GatewayQuote",
        "arguments": [MNQ, quote],
    }
    assert (await client.event())["arguments"] == [MNQ, trade(21450.25)]
    depth = await client.event()
    assert depth["target"] == "GatewayDepth"
    assert isinstance(depth["arguments"][1], list)
    await client.close()
    await server_side_closed(sim.hubs)
    assert sim.backend.interest[MNQ] == 0


async def test_unsubscribe_stops_events(sim: Sim) -> None:
    client = await RawClient.open(sim.url("market"))
    await client.invoke("SubscribeContractTrades", MNQ)
    await client.invoke("SubscribeContractTrades", MES)
    assert (await client.invoke("UnsubscribeContractTrades", MNQ))["result"] is None
    assert (await client.invoke("UnsubscribeContractQuotes", MNQ))["result"] is None  # not held
    assert sim.backend.interest == Counter({MNQ: 0, MES: 1})
    sim.hubs.market.market_event(MNQ, "GatewayTrade", trade(1.0))
    sim.hubs.market.market_event(MES, "GatewayTrade", trade(2.0))
    assert (await client.event())["arguments"] == [MES, trade(2.0)]
    await client.close()


async def test_user_hub_events_and_account_ownership(sim: Sim) -> None:
    alice = await RawClient.open(sim.url("user"))
    bob = await RawClient.open(sim.url("user", "access_token=tok-bob"))
    assert (await alice.invoke("SubscribeOrders", 101))["result"] is None
    assert (await alice.invoke("SubscribeOrders", 201))["error"] == (
        "Account 201 not found for this user."
    )
    assert (
        "'accountId' must be an integer, got a string"
        in (await alice.invoke("SubscribePositions", "101"))["error"]
    )
    assert (await alice.invoke("SubscribeAccounts"))["result"] is None
    assert (await bob.invoke("SubscribeAccounts"))["result"] is None
    subscriptions = {i.connection_id: i.subscriptions for i in sim.hubs.connections("user")}
    assert sorted(len(s) for s in subscriptions.values()) == [1, 3]

    order = {"id": 3500000001, "accountId": 101, "status": 1, "type": 1, "side": 0, "size": 1}
    user = sim.hubs.user
    user.user_event(201, "GatewayUserOrder", 1, {"id": 1, "accountId": 201})  # bob's, unsubscribed
    user.user_event(101, "GatewayUserOrder", 1, order)
    user.user_event(102, "GatewayUserAccount", 1, {"id": 102, "balance": 50_000.0})
    user.user_event(201, "GatewayUserAccount", 1, {"id": 201, "balance": 25_000.0})
    assert await alice.event() == {
        "type": 1,
        "target": "GatewayUserOrder",
        "arguments": [{"action": 1, "data": order}],
    }
    assert (await alice.event())["arguments"] == [
        {"action": 1, "data": {"id": 102, "balance": 50_000.0}}
    ]
    assert (await bob.event())["arguments"][0]["data"]["id"] == 201
    assert (await alice.invoke("UnsubscribeAccounts"))["result"] is None
    user.user_event(102, "GatewayUserAccount", 1, {"id": 102})
    user.user_event(101, "GatewayUserOrder", 2, order)
    assert (await alice.event())["arguments"][0]["action"] == 2
    with pytest.raises(ValueError, match="unknown user-hub event target"):
        user.user_event(101, "GatewayQuote", 1, {})
    await alice.close()
    await bob.close()


async def test_server_pings_client_pings_and_long_life() -> None:
    async with serve_hubs(ping_interval=0.05) as sim:
        client = await RawClient.open(sim.url("market"))
        await client.invoke("SubscribeContractTrades", MNQ)
        for _ in range(6):  # several keep-alive intervals, answering with client pings
            assert await client.next(within=2.0) == {"type": 6}
            await client.send({"type": 6})
        assert (await client.invoke("SubscribeContractQuotes", MNQ))["result"] is None
        assert sim.hubs.connections()[0].pings_received == 6
        sim.hubs.market.market_event(MNQ, "GatewayTrade", trade(3.0))
        assert (await client.event())["arguments"] == [MNQ, trade(3.0)]
        assert sim.hubs.connection_count() == 1
        await client.close()


async def test_a_silent_client_is_dropped_at_the_client_timeout_a_pinging_one_is_not() -> None:
    """SignalR servers drop clients that send nothing (stock signalrcore without its reconnect
    option sends no pings): the simulator does too, so a keep-alive that stopped shows up."""
    async with serve_hubs(ping_interval=0.05, client_timeout=0.4) as sim:
        silent = await RawClient.open(sim.url("market"))
        talking = await RawClient.open(sim.url("user"))
        for _ in range(12):  # ~0.6 s of server pings, each answered: longer than the timeout
            assert await talking.next(within=2.0) == {"type": 6}
            await talking.send({"type": 6})
        closing = await silent.next(lambda m: m["type"] == 7, within=2.0)
        assert "without receiving a message from the client" in closing["error"]
        assert closing["allowReconnect"] is True
        with pytest.raises(ConnectionClosed):
            await silent.next()
        assert [c.hub for c in sim.hubs.connections()] == ["user"]  # the pinging one stayed
        assert (await talking.invoke("SubscribeAccounts"))["result"] is None
        await talking.close()


async def test_server_packs_records_into_bounded_frames() -> None:
    async with serve_hubs(max_frame_bytes=1024) as sim:
        client = await RawClient.open(sim.url("market"))
        await client.invoke("SubscribeContractTrades", MNQ)
        client.frames.clear()
        for i in range(200):  # queued in one go, before the writer runs
            sim.hubs.market.market_event(MNQ, "GatewayTrade", trade(float(i)))
        prices = [(await client.event())["arguments"][1][0]["price"] for _ in range(200)]
        assert prices == [float(i) for i in range(200)]
        frames = [frame.encode() for frame in client.frames]
        assert len(frames) < 50
        assert all(frame.endswith(sp.RS) and len(frame) <= 1024 for frame in frames)
        for frame, following in itertools.pairwise(frames):  # packed greedily
            assert len(frame) + following.index(sp.RS) + 1 > 1024
        await client.close()


async def test_drop_clean_sends_close_message_then_closes(sim: Sim) -> None:
    market = await RawClient.open(sim.url("market"))
    user = await RawClient.open(sim.url("user"))
    await market.invoke("SubscribeContractQuotes", MNQ)
    assert sim.hubs.drop("market", "clean") == 1
    assert await market.next() == {
        "type": 7,
        "error": "Connection closed with an error.",
        "allowReconnect": True,
    }
    with pytest.raises(ConnectionClosed):
        await market.next()
    assert market.ws.close_code == 1000
    await server_side_closed(sim.hubs, "market")
    assert sim.backend.interest[MNQ] == 0
    assert (await user.invoke("SubscribeAccounts"))["result"] is None  # other hub untouched
    await user.close()


async def test_drop_abort_kills_the_socket_without_close_frame(sim: Sim) -> None:
    clients = [await RawClient.open(sim.url(hub)) for hub in ("market", "user", "market")]
    await clients[0].invoke("SubscribeContractTrades", MNQ)
    assert sim.hubs.drop("all", "abort") == 3
    for client in clients:
        with pytest.raises(ConnectionClosedError):
            await client.next()
        assert client.ws.protocol.close_rcvd is None
        assert client.ws.close_code == 1006
    await server_side_closed(sim.hubs)
    assert sim.backend.interest[MNQ] == 0
    with pytest.raises(ValueError, match="drop mode"):
        sim.hubs.drop("all", "gentle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hub must be"):
        sim.hubs.drop("both")  # type: ignore[arg-type]


async def test_freeze_stops_market_data_but_not_pings() -> None:
    async with serve_hubs(ping_interval=0.05) as sim:
        client = await RawClient.open(sim.url("market"))
        await client.invoke("SubscribeContractTrades", MNQ)
        await client.invoke("SubscribeContractTrades", MES)
        market = sim.hubs.market
        sim.hubs.freeze(MNQ, True)
        market.market_event(MNQ, "GatewayTrade", trade(1.0))
        market.market_event(MES, "GatewayTrade", trade(2.0))
        assert (await client.event())["arguments"][0] == MES
        sim.hubs.freeze(None, True)
        market.market_event(MES, "GatewayTrade", trade(3.0))
        assert await client.next(lambda m: m["type"] != 3) == {"type": 6}  # pings go on
        assert (await client.invoke("SubscribeContractMarketDepth", MNQ))["result"] is None
        sim.hubs.freeze(None, False)  # the snapshot held back while frozen comes first
        market.market_event(MNQ, "GatewayTrade", trade(4.0))
        snapshot = await client.event()
        assert snapshot["target"] == "GatewayDepth" and snapshot["arguments"][1][0]["type"] == 6
        assert (await client.event())["arguments"] == [MNQ, trade(4.0)]
        await client.close()


async def test_inject_raw_sends_text_in_its_own_frame(sim: Sim) -> None:
    client = await RawClient.open(sim.url("user"))
    await client.invoke("SubscribeOrders", 101)
    client.frames.clear()
    assert sim.hubs.inject_raw("user", '{"type":1,"target":') == 1
    assert sim.hubs.inject_raw("market", "x") == 0
    assert await client.ws.recv() == '{"type":1,"target":'


async def test_slow_consumer_is_closed_with_an_error() -> None:
    async with serve_hubs(queue_limit_bytes=4_000) as sim:
        client = await RawClient.open(sim.url("market"))
        await client.invoke("SubscribeContractTrades", MNQ)
        for i in range(100):  # ~12 KB queued before the writer gets a chance to run
            sim.hubs.market.market_event(MNQ, "GatewayTrade", trade(float(i)))
        closing = await client.next()
        assert closing["type"] == 7
        assert "Send queue overflow" in closing["error"]
        with pytest.raises(ConnectionClosed):
            await client.next()
        await server_side_closed(sim.hubs)


async def test_malformed_record_closes_with_error_and_client_close_is_honoured(sim: Sim) -> None:
    client = await RawClient.open(sim.url("market"))
    await client.send_raw("{oops" + RS)
    closing = await client.next()
    assert closing["type"] == 7
    assert closing["error"].startswith("Connection closed with an error. InvalidDataException:")
    with pytest.raises(ConnectionClosed):
        await client.next()

    other = await RawClient.open(sim.url("market"))
    await other.send({"type": 7})
    with pytest.raises(ConnectionClosed):
        await other.next()
    assert other.ws.close_code == 1000
    await server_side_closed(sim.hubs)


async def test_shutdown_sends_close_and_refuses_new_connections(sim: Sim) -> None:
    client = await RawClient.open(sim.url("market"))
    await sim.hubs.shutdown(grace=2.0)
    assert await client.next() == {"type": 7, "allowReconnect": True}
    with pytest.raises(ConnectionClosed):
        await client.next()
    with pytest.raises(InvalidStatus) as refused:
        await RawClient.open(sim.url("market"))
    assert refused.value.response.status_code == 503


async def test_tokens_in_the_query_never_reach_the_server_log(
    sim: Sim, caplog: pytest.LogCaptureFixture
) -> None:
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addHandler(caplog.handler)
    # INFO: uvicorn's request lines. (At DEBUG, websockets traces raw requests, headers included.)
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    caplog.set_level(logging.DEBUG, logger="projectx_lab.sim.hubs")
    try:
        client = await RawClient.open(sim.url("market", "access_token=tok-alice&x=1"))
        with pytest.raises(InvalidStatus):
            await RawClient.open(sim.url("user", "access_token=tok-expired"))
        await client.close()
        await server_side_closed(sim.hubs)
    finally:
        uvicorn_log.removeHandler(caplog.handler)
    assert "access_token=%2A%2A%2A&x=1" in caplog.text
    assert "tok-" not in caplog.text
