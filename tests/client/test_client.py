"""`ProjectX` against the simulator over real HTTP: login, accounts, instruments, bars, health,
lifecycle."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta

import polars as pl
import pytest

from projectx_lab import (
    AccountNotFoundError,
    AuthenticationError,
    ClientSettings,
    InstrumentNotFoundError,
    ProjectX,
    ProjectXError,
    ValidationError,
    create_client,
)

BARS = "/api/History/retrieveBars"
SEARCH = "/api/Contract/search"


async def test_authenticate_logs_in_and_selects_first_tradable_account(sim, make_client):
    client = await make_client(sim)
    assert client.session_token is None and client.account_info is None
    account = await client.authenticate()
    assert account.name == "PRAC-V2-SIM-1" and account.can_trade
    assert client.account_info is account and client.session_token
    assert client.token_factory() == client.session_token
    assert sim.request_count("/api/Auth/loginKey") == 1


async def test_account_name_setting_and_select_account(sim, make_client):
    client = await make_client(sim, account_name="50ktc-v2-sim-2")  # case-insensitive
    assert (await client.authenticate()).name == "50KTC-V2-SIM-2"
    accounts = await client.list_accounts(only_active=False)
    locked = next(a for a in accounts if not a.can_trade)
    assert (await client.select_account(locked.id)).name == "PRAC-V2-SIM-LOCKED"
    assert (await client.select_account("PRAC-V2-SIM-1")).id == accounts[0].id
    with pytest.raises(AccountNotFoundError, match="PRAC-V2-SIM-1"):
        await client.select_account("NOPE")
    assert client.account_info.name == "PRAC-V2-SIM-1"


async def test_bad_credentials_raise_authentication_error(sim):
    async with ProjectX.for_simulator(sim, api_key="wrong-key-123") as client:
        with pytest.raises(AuthenticationError) as info:
            await client.authenticate()
    assert info.value.error_name == "InvalidCredentials" and info.value.error_code == 3
    assert "wrong-key-123" not in str(info.value)


async def test_get_instrument_resolves_symbols_names_and_ids(client, sim):
    mnq = await client.get_instrument("MNQ")
    assert mnq.id.startswith("CON.F.US.MNQ.") and mnq.active_contract and mnq.symbol == "MNQ"
    es = await client.get_instrument("ES")  # exchange symbol differs from the gateway root EP
    assert es.root == "EP" and es.symbol == "ES"
    assert (await client.get_instrument(mnq.name)).id == mnq.id
    assert (await client.get_instrument("F.US.MNQ")).id == mnq.id
    assert (await client.get_instrument(mnq.id)).id == mnq.id
    assert (await client.get_instrument_by_id(mnq.id)).tick_size == mnq.tick_size
    searches = sim.request_count(SEARCH)
    assert (await client.get_instrument("MNQ")) == mnq  # served from the cache
    assert sim.request_count(SEARCH) == searches
    await client.get_instrument("MNQ", use_cache=False)
    assert sim.request_count(SEARCH) == searches + 1


async def test_fuzzy_search_returns_neighbours_but_lookup_filters_them(client):
    found = await client.search_instruments("NQ")
    assert len(found) <= 20 and len({c.symbol for c in found}) > 1
    assert (await client.get_instrument("NQ")).symbol == "NQ"
    available = await client.list_available_instruments()
    assert len({c.root for c in available}) == len(available)


async def test_unknown_symbol_names_close_matches(client):
    with pytest.raises(InstrumentNotFoundError) as info:
        await client.get_instrument("MNQX")
    assert "MNQ" in info.value.close_matches and "MNQ" in str(info.value)
    with pytest.raises(InstrumentNotFoundError):
        await client.get_instrument_by_id("CON.F.US.NOPE.Z26")
    with pytest.raises(ValidationError):
        await client.get_instrument("  ")


async def test_get_bars_frame_shape_order_and_cache(client, sim):
    end = sim.clock.now()
    start = end - timedelta(hours=6)
    frame = await client.get_bars("MNQ", start_time=start, end_time=end, interval=5)
    assert frame.columns == ["timestamp", "open", "high", "low", "close", "volume"]
    assert frame.schema["timestamp"] == pl.Datetime("ns", "America/Chicago")
    assert frame["timestamp"].is_sorted() and frame["timestamp"].n_unique() == frame.height
    assert 60 <= frame.height <= 73
    assert (frame["high"] >= frame["low"]).all()
    calls = sim.request_count(BARS)
    again = await client.get_bars("MNQ", start_time=start, end_time=end, interval=5)
    assert again.equals(frame) and sim.request_count(BARS) == calls
    await client.get_bars("MNQ", start_time=start, end_time=end, interval=5, use_cache=False)
    assert sim.request_count(BARS) == calls + 1
    utc = await client.get_bars("MNQ", start_time=start, end_time=end, interval=5, tz="UTC")
    assert str(utc.schema["timestamp"].time_zone) == "UTC"


async def test_default_windows_follow_the_gateway_clock(client, sim):
    # the simulator's clock starts in the past; its Date headers say so
    await client.list_accounts()
    skew = abs((client.gateway_time() - sim.clock.now()).total_seconds())
    assert skew < 3
    frame = await client.get_bars("MNQ", days=1)
    newest = frame["timestamp"].max().astimezone(UTC)
    assert timedelta(0) <= sim.clock.now() - newest <= timedelta(minutes=3)
    placed = await client.place_order("MNQ", side="buy", size=1)
    assert [o.id for o in await client.search_orders()] == [placed.order_id]
    assert {t.order_id for t in await client.search_trades()} == {placed.order_id}


async def test_a_held_gateway_clock_is_followed_between_identical_date_headers(
    sim, monkeypatch
) -> None:
    # A held simulator clock (lockstep) sends the same Date for minutes while ours runs on:
    # the estimate must stay at the held instant, not drift ahead with our clock.
    from projectx_lab.client import transport as transport_module

    sim.clock.hold()
    transport = transport_module.HttpTransport(ClientSettings(api_url=sim.api_url))
    now = [transport_module.time.time()]
    monkeypatch.setattr(transport_module.time, "time", lambda: now[0])
    try:
        await transport.request("GET", "/api/Status/ping", None, None)
        first = transport.clock_offset
        now[0] += 150.0  # 2.5 minutes of our time; the server answers with the same Date
        await transport.request("GET", "/api/Status/ping", None, None)
        assert transport.clock_offset == pytest.approx(first - 150.0)
    finally:
        await transport.aclose()
        sim.clock.release()


async def test_partial_bar_is_never_cached(client, sim):
    closed = await client.get_bars("MNQ", days=2, unit="hour")
    calls = sim.request_count(BARS)
    with_partial = await client.get_bars("MNQ", days=2, unit="hour", partial=True)
    assert with_partial["timestamp"].max() > closed["timestamp"].max()
    await client.get_bars("MNQ", days=2, unit="hour", partial=True)
    assert sim.request_count(BARS) == calls + 2  # both partial requests went to the gateway
    assert (await client.get_bars("MNQ", days=2, unit="hour")).equals(closed)
    assert sim.request_count(BARS) == calls + 2


async def test_get_bars_pages_past_the_20000_cap(client, sim):
    end = sim.clock.now()
    frame = await client.get_bars(
        "MNQ", start_time=end - timedelta(hours=7), end_time=end, unit="second"
    )
    assert frame.height > 20_000 and frame["timestamp"].n_unique() == frame.height
    assert sim.request_count(BARS) >= 2
    newest = await client.get_bars(
        "MNQ", start_time=end - timedelta(hours=7), end_time=end, unit="second", limit=500
    )
    assert newest.equals(frame.tail(500))


async def test_bad_bar_arguments_fail_before_sending(client, sim):
    now = sim.clock.now()
    for kwargs in (
        {"unit": "fortnight"},
        {"interval": 0},
        {"limit": 0},
        {"days": -1},
        {"days": 1, "start_time": now},
        {"start_time": now, "end_time": now - timedelta(hours=1)},
        {"tz": "Mars/Olympus"},
        {"start_time": "yesterday"},
    ):
        with pytest.raises(ValidationError):
            await client.get_bars("MNQ", **kwargs)
    assert sim.request_count(BARS) == 0


async def test_gateway_side_bar_errors_surface(sim, make_client):
    client = await make_client(sim, live=True)  # practice data lives under live=false (gotcha 9)
    mnq = await client.get_instrument_by_id("CON.F.US.MNQ.Z26")
    with pytest.raises(InstrumentNotFoundError) as info:
        await client.get_bars(mnq, end_time=sim.clock.now())
    assert info.value.error_name == "ContractNotFound" and info.value.endpoint == BARS


async def test_health_status_reports_latency_and_failure(sim, make_client):
    client = await make_client(sim)
    status = await client.get_health_status()
    assert status.healthy and status.api_reachable and status.authenticated
    assert status.ping_ms > 0 and status.auth_ms > 0 and status.token_valid_for > 3600
    await sim.stop()
    down = await client.get_health_status()
    assert not down.healthy and not down.api_reachable and "ping failed" in down.error


async def test_closed_client_refuses_calls(sim, make_client):
    client = await make_client(sim)
    await client.aclose()
    with pytest.raises(ProjectXError, match="closed"):
        await client.list_accounts()
    with pytest.raises(ProjectXError, match="closed"):
        async with client:
            pass


async def test_from_env_and_create_client(sim, monkeypatch):
    monkeypatch.setenv("PROJECTX_USERNAME", sim.username)
    monkeypatch.setenv("PROJECTX_API_KEY", sim.api_key)
    monkeypatch.setenv("PROJECTX_API_URL", sim.api_url)
    monkeypatch.setenv("PROJECTX_USER_HUB_URL", sim.user_hub_url)
    monkeypatch.setenv("PROJECTX_MARKET_HUB_URL", sim.market_hub_url)
    monkeypatch.setenv("PROJECTX_ACCOUNT_NAME", "50KTC-V2-SIM-2")
    async with ProjectX.from_env() as client:
        assert (await client.authenticate()).name == "50KTC-V2-SIM-2"
        assert client.settings.market_hub_url == sim.market_hub_url
    async with create_client(account_name="PRAC-V2-SIM-1") as client:
        assert (await client.authenticate()).name == "PRAC-V2-SIM-1"


async def test_concurrent_lookups_share_one_request_and_cache_can_be_cleared(client, sim):
    found = await asyncio.gather(*(client.get_instrument("MES") for _ in range(10)))
    assert len({f.id for f in found}) == 1 and sim.request_count(SEARCH) == 1
    client.clear_cache()
    await client.get_instrument("MES")
    assert sim.request_count(SEARCH) == 2


async def test_session_token_accessors(sim, make_client):
    client = await make_client(sim)
    with pytest.raises(AuthenticationError):
        client.token_factory()  # nothing to hand a hub before login
    token = await client.get_session_token()  # logs in on demand
    assert token == client.session_token == client.token_factory()
    assert sim.request_count("/api/Auth/loginKey") == 1
