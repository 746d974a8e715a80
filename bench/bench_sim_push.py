"""Market-hub push rate of the simulator to one client over loopback.

The hubs run in this process (uvicorn on 127.0.0.1, in-bench stand-ins for auth/exchange); a
producer pushes one-trade `GatewayTrade` events as fast as the connection's send queue drains.
The client runs in a subprocess so it has its own interpreter: a bare `websockets` + orjson
client, then stock signalrcore 1.0.2 (negotiate, its own JSON parser, handler on its thread).

    python bench/bench_sim_push.py [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import threading
import time
from typing import Any

import orjson

MNQ = "CON.F.US.MNQ.Z26"
TOKEN = "bench-token"
TS = "2026-10-02T14:31:05.1234567+00:00"
HIGH_WATER = 1 << 20  # producer waits while a connection has more than this queued
TARGET = 50_000


# --- client side (subprocess) -----------------------------------------------------------------


async def run_websockets_client(url: str, events: int) -> dict[str, float]:
    import websockets

    async with websockets.connect(
        f"{url}?access_token={TOKEN}", compression=None, ping_interval=None, max_size=None
    ) as ws:
        await ws.send('{"protocol":"json","version":1}\x1e')
        assert (await ws.recv()) == "{}\x1e"
        subscribe = {
            "type": 1,
            "invocationId": "1",
            "target": "SubscribeContractTrades",
            "arguments": [MNQ],
        }
        await ws.send(orjson.dumps(subscribe).decode() + "\x1e")
        seen = 0
        first = 0.0
        while seen < events:
            frame = await ws.recv()
            for record in frame.split("\x1e"):
                if not record:
                    continue
                message = orjson.loads(record)
                if message.get("target") == "GatewayTrade":
                    if seen == 0:
                        first = time.perf_counter()
                    seen += 1
        return {"events": seen, "seconds": time.perf_counter() - first}


def run_signalrcore_client(url: str, events: int) -> dict[str, float]:
    from signalrcore.hub_connection_builder import HubConnectionBuilder

    done = threading.Event()
    state = {"seen": 0, "first": 0.0, "last": 0.0}

    def on_trade(arguments: list[Any]) -> None:
        if state["seen"] == 0:
            state["first"] = time.perf_counter()
        state["seen"] += 1
        if state["seen"] >= events:
            state["last"] = time.perf_counter()
            done.set()

    hub = (
        HubConnectionBuilder()
        .with_url(url.replace("ws://", "http://"), options={"access_token_factory": lambda: TOKEN})
        .build()
    )
    hub.on("GatewayTrade", on_trade)
    opened = threading.Event()
    hub.on_open(opened.set)
    hub.start()
    if not opened.wait(10):
        raise RuntimeError("signalrcore did not open")
    hub.send("SubscribeContractTrades", [MNQ])
    if not done.wait(120):
        raise RuntimeError(f"signalrcore received only {state['seen']} events")
    return {"events": state["seen"], "seconds": state["last"] - state["first"]}


def client_main(kind: str, url: str, events: int) -> None:
    if kind == "websockets":
        result = asyncio.run(run_websockets_client(url, events))
    else:
        result = run_signalrcore_client(url, events)
    print(json.dumps(result), flush=True)
    os._exit(0)  # skip signalrcore's blocking stop(); the server sees the socket close


# --- server side ------------------------------------------------------------------------------


class StandIns:
    """Accepts the bench token and one contract; signals when the client subscribed."""

    def __init__(self) -> None:
        self.subscribed = asyncio.Event()

    def authenticate(self, token: str) -> object | None:
        return "bench" if token == TOKEN else None

    def accounts_of(self, user: object) -> tuple[int, ...]:
        return ()

    def acquire(self, contract_id: str) -> None:
        self.subscribed.set()

    def release(self, contract_id: str) -> None:
        self.subscribed.clear()

    def known_contract(self, contract_id: str) -> bool:
        return contract_id == MNQ

    def depth_snapshot(self, contract_id: str) -> list[dict[str, Any]]:
        return []


async def measure(kind: str, events: int) -> dict[str, float]:
    import uvicorn
    from starlette.applications import Starlette

    from projectx_lab.sim.config import SimConfig
    from projectx_lab.sim.hubs import UVICORN_WS_OPTIONS, Hubs

    backend = StandIns()
    hubs = Hubs(SimConfig(), backend, backend, backend)
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=hubs.routes()), lifespan="off", log_level="error", **UVICORN_WS_OPTIONS
        )
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    url = f"ws://127.0.0.1:{sock.getsockname()[1]}/hubs/market"
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--client",
        kind,
        "--url",
        url,
        "--events",
        str(events),
        stdout=asyncio.subprocess.PIPE,
    )
    payloads = [
        [{"symbolId": "F.US.MNQ", "price": 21450.25 + (i % 40) / 4, "timestamp": TS, "type": i % 2}]
        for i in range(events)
    ]
    await asyncio.wait_for(backend.subscribed.wait(), 30)
    [conn] = hubs.market.connections
    market_event = hubs.market.market_event
    cpu0 = time.process_time()
    for start in range(0, events, 256):
        for data in payloads[start : start + 256]:
            market_event(MNQ, "GatewayTrade", data)
        while conn.queued_bytes > HIGH_WATER:  # noqa: ASYNC110 - pacing on the send backlog
            await asyncio.sleep(0.0005)
        await asyncio.sleep(0)
    stdout, _ = await client.communicate()
    cpu = time.process_time() - cpu0
    await hubs.shutdown(grace=1.0)
    server.should_exit = True
    await serving
    result = json.loads(stdout)
    result["server_cpu_us"] = cpu / events * 1e6
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=0, help="events per client (0: defaults)")
    parser.add_argument("--client", choices=["websockets", "signalrcore"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args.client, args.url, args.events)
        return
    print(f"{'client':<12} {'events':>8} {'seconds':>8} {'events/s':>10} {'server CPU µs/ev':>17}")
    rates = {}
    for kind, default in (("websockets", 300_000), ("signalrcore", 150_000)):
        result = asyncio.run(measure(kind, args.events or default))
        rate = result["events"] / result["seconds"]
        rates[kind] = rate
        print(
            f"{kind:<12} {int(result['events']):>8} {result['seconds']:>8.2f} {rate:>10,.0f} "
            f"{result['server_cpu_us']:>17.1f}"
        )
    verdict = "met" if rates["websockets"] >= TARGET else "NOT met"
    print(f"target >= {TARGET:,} events/s to one websockets client: {verdict}")


if __name__ == "__main__":
    main()
