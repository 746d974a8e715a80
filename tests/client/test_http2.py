"""The client over TLS and HTTP/2, as it meets the real gateway: the simulator's REST app served
by hypercorn with a certificate from a test CA that the client trusts through `SSL_CERT_FILE`
(how a user behind a TLS-inspecting proxy would configure it). Concurrent calls multiplex on
one connection and every answer is right."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trustme
from hypercorn.asyncio import serve
from hypercorn.config import Config

from projectx_lab import ProjectX
from projectx_lab.client.models import OrderSide
from projectx_lab.sim import Simulator


@pytest.fixture
async def https_url(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile, cafile = (tmp_path / name for name in ("cert.pem", "key.pem", "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(certfile)
    cert.private_key_pem.write_to_path(keyfile)
    ca.cert_pem.write_to_path(cafile)
    monkeypatch.setenv("SSL_CERT_FILE", str(cafile))
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.certfile, config.keyfile = str(certfile), str(keyfile)
    config.alpn_protocols = ["h2", "http/1.1"]
    config.accesslog = config.errorlog = None
    stop = asyncio.Event()
    server = asyncio.create_task(serve(sim.app, config, shutdown_trigger=stop.wait))
    try:
        async with asyncio.timeout(10):
            while True:  # bounded: nothing announces that hypercorn is listening
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.01)
                    continue
                writer.close()
                break
        yield f"https://127.0.0.1:{port}"
    finally:
        stop.set()
        await asyncio.wait_for(server, 10)


async def test_concurrent_calls_multiplex_over_http2_and_stay_correct(
    sim: Simulator, https_url: str
) -> None:
    async with ProjectX.for_simulator(sim, api_url=https_url, max_connections=4) as client:
        await client.authenticate()
        shards = client._session.transport._client._transport
        assert shards.multiplexed, "the server offered h2 but the client stayed on HTTP/1.1"
        names = ["MNQ", "MES", "MYM", "M2K"] * 25
        instruments = await asyncio.gather(*(client.get_instrument(n) for n in names))
        assert [i.id.split(".")[3] for i in instruments] == names
        bars = await asyncio.gather(
            *(client.get_bars("MNQ", days=1, unit="minute", interval=n) for n in (1, 5, 15))
        )
        assert [b.height > 0 for b in bars] == [True] * 3
        placed = await client.place_order("MNQ", side=OrderSide.BUY, size=1)
        (order,) = [o for o in await client.search_orders() if o.id == placed.order_id]
        assert order.size == 1
        await client.close_position("MNQ")
    async with httpx.AsyncClient(http2=True) as raw:  # what the server spoke, seen from outside
        response = await raw.get(f"{https_url}/api/Status/ping")
        assert response.http_version == "HTTP/2" and response.status_code == 200
