"""Auth refresh, rate limits and retries of reads, against the simulator's fault hooks."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from projectx_lab import (
    ProjectX,
    ProjectXConnectionError,
    ProjectXTimeoutError,
    RateLimitError,
    ServerError,
)

from ..conftest import wait_until

ACCOUNTS = "/api/Account/search"
LOGIN = "/api/Auth/loginKey"
VALIDATE = "/api/Auth/validate"


async def test_401_triggers_one_relogin_and_a_replay(client, sim):
    before = client.session_token
    sim.faults.expire_all_tokens()
    accounts = await client.list_accounts()
    assert accounts and client.session_token != before
    assert sim.request_count(LOGIN) == 2 and sim.request_count(ACCOUNTS) == 3
    assert client.stats.unauthorized == 1


async def test_concurrent_401s_share_one_relogin(client, sim):
    sim.faults.expire_all_tokens()
    results = await asyncio.gather(*(client.list_accounts() for _ in range(10)))
    assert all(results) and sim.request_count(LOGIN) == 2


async def test_token_is_refreshed_by_validate_before_expiry(make_sim, make_client):
    sim = await make_sim(token_ttl=3.0)
    client = await make_client(sim)
    await client.authenticate()
    first = client.session_token
    assert client.token_factory() == first
    await wait_until(lambda: client.session_token != first)
    assert sim.request_count(VALIDATE) == 1 and sim.request_count(LOGIN) == 1
    assert client.token_factory() == client.session_token
    assert await client.list_accounts()
    assert client.stats.unauthorized == 0


async def test_429_waits_for_retry_after_then_succeeds(client, sim):
    sim.faults.fail_next(ACCOUNTS, 1, 429)  # answered with Retry-After: 1
    started = time.monotonic()
    assert await client.list_accounts()
    assert time.monotonic() - started >= 1.0
    assert client.stats.rate_limited == 1 and client.stats.retries == 1
    assert sim.request_count(ACCOUNTS) == 3  # authenticate + 429 + retry


async def test_429_asking_too_long_a_wait_is_raised(sim, make_client):
    client = await make_client(sim, max_retry_after=0.5)
    await client.authenticate()
    sim.faults.fail_next(ACCOUNTS, 1, 429)
    with pytest.raises(RateLimitError) as info:
        await client.list_accounts()
    assert info.value.retry_after == 1.0 and sim.request_count(ACCOUNTS) == 2


async def test_5xx_on_a_read_is_retried(client, sim):
    sim.faults.fail_next(ACCOUNTS, 2, 503)
    assert await client.list_accounts()
    assert client.stats.retries == 2 and client.stats.server_errors == 2


async def test_persistent_5xx_gives_up_after_the_attempts(client, sim):
    sim.faults.fail_next(ACCOUNTS, 10, 500)
    with pytest.raises(ServerError) as info:
        await client.list_accounts()
    assert info.value.status == 500
    assert sim.request_count(ACCOUNTS) == 1 + client.settings.retry_attempts


async def test_read_timeout_is_retried(sim, make_client):
    client = await make_client(sim, timeout=0.3)
    await client.authenticate()
    sim.faults.swallow_next(ACCOUNTS)
    assert await client.list_accounts()
    assert client.stats.retries == 1
    sim.faults.swallow_next(ACCOUNTS, count=10)
    with pytest.raises(ProjectXTimeoutError):
        await client.list_accounts()


async def test_unreachable_gateway_is_a_connection_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    async with ProjectX(
        username="u", api_key="k", api_url=url, retry_attempts=2, retry_initial_wait=0.01
    ) as client:
        with pytest.raises(ProjectXConnectionError) as info:
            await client.authenticate()
    assert info.value.request_sent is False


async def test_gather_burst_queues_instead_of_earning_429(make_sim, make_client):
    sim = await make_sim(rest_rate=(40, 1.0))
    client = await make_client(sim)  # adopts the simulator's 40 / 1 s bucket
    await client.authenticate()
    started = time.monotonic()
    results = await asyncio.gather(*(client.list_accounts() for _ in range(60)))
    elapsed = time.monotonic() - started
    assert len(results) == 60 and all(results)
    assert client.stats.rate_limited == 0
    assert elapsed >= 1.0  # ~20 burst slots, the rest drained at 20/s


async def test_same_burst_without_client_pacing_earns_429s(make_sim, make_client):
    sim = await make_sim(rest_rate=(40, 1.0))
    client = await make_client(sim, rest_rate=(100_000, 1.0))  # pacing effectively off
    await client.authenticate()
    results = await asyncio.gather(*(client.list_accounts() for _ in range(60)))
    assert all(results)  # 429s were absorbed by retries honouring Retry-After
    assert client.stats.rate_limited > 0


async def test_failed_login_inside_a_read_is_not_retried_twice(sim, make_client):
    client = await make_client(sim)
    sim.faults.fail_next(LOGIN, 10, 503)
    with pytest.raises(ServerError) as info:
        await client.list_accounts()
    assert info.value.endpoint == LOGIN
    assert sim.request_count(LOGIN) == client.settings.retry_attempts
    assert sim.request_count(ACCOUNTS) == 0
