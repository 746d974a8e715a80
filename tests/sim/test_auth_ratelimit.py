"""Simulator sessions and rate limits over real HTTP: login, validate, logout, expiry, 401, 429."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx

from projectx_lab.sim import Simulator
from projectx_lab.sim.auth import TokenState, TokenStore, bearer_token
from projectx_lab.sim.ratelimit import SlidingWindow

Login = Callable[[httpx.AsyncClient, Simulator], Awaitable[str]]
MakeSim = Callable[..., Awaitable[Simulator]]
SEARCH = "/api/Account/search"
BODY = {"onlyActiveAccounts": True}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def until_status(
    http: httpx.AsyncClient, token: str, status: int, within: float = 5.0
) -> float:
    """Poll Account/search with `token` until it answers `status`; returns the seconds it took."""
    start = time.monotonic()
    while (await http.post(SEARCH, json=BODY, headers=bearer(token))).status_code != status:
        if time.monotonic() - start > within:
            raise AssertionError(f"no HTTP {status} within {within} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


# --------------------------------------------------------------------------- login


async def test_login_key_success_and_failures(sim: Simulator, http: httpx.AsyncClient) -> None:
    ok = await http.post("/api/Auth/loginKey", json={"userName": "DeMo", "apiKey": sim.api_key})
    assert ok.status_code == 200
    body = ok.json()
    assert body["success"] and body["errorCode"] == 0 and body["errorMessage"] is None
    assert body["token"].count(".") == 2  # JWT-looking

    for user, key in (("demo", "wrong"), ("nobody", sim.api_key), ("demo", sim.api_key.upper())):
        failed = await http.post("/api/Auth/loginKey", json={"userName": user, "apiKey": key})
        assert failed.status_code == 200
        assert failed.json() == {
            "token": None,
            "success": False,
            "errorCode": 3,
            "errorMessage": None,
        }

    missing = await http.post("/api/Auth/loginKey", json={"userName": "demo"})
    assert missing.status_code == 400 and "apiKey" in missing.json()["errors"]


async def test_login_app_minimal(sim: Simulator, http: httpx.AsyncClient) -> None:
    base = {
        "userName": "demo",
        "password": sim.api_key,
        "deviceId": "d",
        "appId": "a",
        "verifyKey": "v",
    }
    ok = (await http.post("/api/Auth/loginApp", json=base)).json()
    assert ok["success"] and ok["token"]
    wrong = (await http.post("/api/Auth/loginApp", json={**base, "password": "x"})).json()
    assert wrong["errorCode"] == 2 and wrong["token"] is None
    unknown = (await http.post("/api/Auth/loginApp", json={**base, "userName": "zed"})).json()
    assert unknown["errorCode"] == 1
    partial = await http.post("/api/Auth/loginApp", json={"userName": "demo"})
    assert partial.status_code == 400


async def test_relogin_and_validate_keep_older_tokens(
    sim: Simulator, http: httpx.AsyncClient, login: Login
) -> None:
    first = await login(http, sim)
    second = await login(http, sim)
    assert first != second
    validated = await http.post("/api/Auth/validate", headers=bearer(first))
    body = validated.json()
    assert body["success"] and body["newToken"] not in (first, second)
    for token in (first, second, body["newToken"]):
        assert (await http.post(SEARCH, json=BODY, headers=bearer(token))).status_code == 200


async def test_logout_revokes_only_that_token(
    sim: Simulator, http: httpx.AsyncClient, login: Login
) -> None:
    keep, drop = await login(http, sim), await login(http, sim)
    out = await http.post("/api/Auth/logout", headers=bearer(drop))
    assert out.json() == {"success": True, "errorCode": 0, "errorMessage": None}
    assert (await http.post(SEARCH, json=BODY, headers=bearer(drop))).status_code == 401
    assert (await http.post("/api/Auth/validate", headers=bearer(drop))).status_code == 401
    assert (await http.post(SEARCH, json=BODY, headers=bearer(keep))).status_code == 200


async def test_tokens_expire_after_ttl(make_sim: MakeSim, login: Login) -> None:
    sim = await make_sim(token_ttl=0.4)
    async with httpx.AsyncClient(base_url=sim.api_url) as http:
        started = time.monotonic()
        token = await login(http, sim)
        assert (await http.post(SEARCH, json=BODY, headers=bearer(token))).status_code == 200
        await until_status(http, token, 401)
        assert time.monotonic() - started >= 0.4
        expired = await http.post(SEARCH, json=BODY, headers=bearer(token))
        assert expired.status_code == 401 and expired.content == b""
        assert expired.headers["www-authenticate"] == "Bearer"
        validate = await http.post("/api/Auth/validate", headers=bearer(token))
        assert validate.status_code == 200
        assert validate.json() == {
            "newToken": None,
            "success": False,
            "errorCode": 3,
            "errorMessage": None,
        }
        fresh = await login(http, sim)  # re-login is the way back
        assert (await http.post(SEARCH, json=BODY, headers=bearer(fresh))).status_code == 200


async def test_expire_all_tokens_fault(
    sim: Simulator, http: httpx.AsyncClient, login: Login
) -> None:
    old = await login(http, sim)
    assert sim.faults.expire_all_tokens() >= 1
    assert (await http.post(SEARCH, json=BODY, headers=bearer(old))).status_code == 401
    assert (await http.post("/api/Auth/validate", headers=bearer(old))).json()["errorCode"] == 3
    negotiate = await http.post(f"{sim.market_hub_url}/negotiate", headers=bearer(old))
    assert negotiate.status_code == 401
    new = await login(http, sim)
    assert (await http.post(SEARCH, json=BODY, headers=bearer(new))).status_code == 200
    assert (await http.post(f"{sim.market_hub_url}/negotiate", headers=bearer(new))).is_success


def test_token_store_and_bearer_parsing_units() -> None:
    now = [100.0]
    store = TokenStore(10.0, clock=lambda: now[0])
    token = store.issue("demo")
    assert store.state(token) is TokenState.VALID and store.username(token) == "demo"
    assert store.state(None) is TokenState.UNKNOWN and store.state("x.y.z") is TokenState.UNKNOWN
    now[0] = 110.0
    assert store.state(token) is TokenState.EXPIRED
    assert store.refresh(token) == (TokenState.EXPIRED, None)
    assert token not in repr(store)
    assert bearer_token("bearer abc") == "abc" and bearer_token("Bearer  ") is None
    assert bearer_token("Basic abc") is None and bearer_token(None) is None


# --------------------------------------------------------------------------- rate limits


async def test_rest_bucket_429_with_retry_after_per_token(make_sim: MakeSim, login: Login) -> None:
    sim = await make_sim(rest_rate=(6, 60.0))
    async with httpx.AsyncClient(base_url=sim.api_url) as http:
        token = await login(http, sim)  # login counts per user name, not per token
        for _ in range(6):
            assert (await http.post(SEARCH, json=BODY, headers=bearer(token))).status_code == 200
        limited = await http.post("/api/account/SEARCH", json=BODY, headers=bearer(token))
        assert limited.status_code == 429
        assert limited.headers["content-type"].startswith("text/plain")
        assert limited.text == "Too Many Requests"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        other = await login(http, sim)
        assert (await http.post(SEARCH, json=BODY, headers=bearer(other))).status_code == 200


async def test_history_bucket_is_separate(make_sim: MakeSim, login: Login) -> None:
    sim = await make_sim(history_rate=(2, 30.0), rest_rate=(50, 60.0))
    body = {
        "contractId": "CON.F.US.MNQ.Z26",
        "live": False,
        "startTime": "2026-10-01T14:00:00Z",
        "endTime": "2026-10-01T14:30:00Z",
        "unit": 2,
        "unitNumber": 1,
        "limit": 10,
        "includePartialBar": False,
    }
    async with httpx.AsyncClient(base_url=sim.api_url) as http:
        auth = bearer(await login(http, sim))
        for _ in range(2):
            assert (
                await http.post("/api/History/retrieveBars", json=body, headers=auth)
            ).is_success
        limited = await http.post("/api/History/retrieveBars", json=body, headers=auth)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) <= 30
        assert (await http.post(SEARCH, json=BODY, headers=auth)).status_code == 200
    assert sim.request_count("/api/history/retrievebars") == 3


async def test_window_slides(make_sim: MakeSim, login: Login) -> None:
    sim = await make_sim(rest_rate=(1, 0.5))
    async with httpx.AsyncClient(base_url=sim.api_url) as http:
        token = await login(http, sim)
        started = time.monotonic()
        assert (await http.post(SEARCH, json=BODY, headers=bearer(token))).status_code == 200
        limited = await http.post(SEARCH, json=BODY, headers=bearer(token))
        assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
        await until_status(http, token, 200)
        assert 0.3 < time.monotonic() - started < 2.0


async def test_login_is_limited_per_user_name(make_sim: MakeSim) -> None:
    sim = await make_sim(rest_rate=(3, 60.0))
    async with httpx.AsyncClient(base_url=sim.api_url) as http:
        creds = {"userName": sim.username, "apiKey": sim.api_key}
        for _ in range(3):
            assert (await http.post("/api/Auth/loginKey", json=creds)).json()["success"]
        upper = {**creds, "userName": sim.username.upper()}
        assert (await http.post("/api/Auth/loginKey", json=upper)).status_code == 429
        stranger = await http.post("/api/Auth/loginKey", json={"userName": "x", "apiKey": "y"})
        assert stranger.status_code == 200 and stranger.json()["errorCode"] == 3
    assert sim.request_count("/api/Auth/loginKey") == 5


async def test_request_counts_include_every_outcome(
    sim: Simulator, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await http.post(SEARCH, json=BODY)  # 401
    await http.post(SEARCH, content=b"{", headers=auth)  # 400
    await http.post("/API/ACCOUNT/SEARCH", json=BODY, headers=auth)  # 200
    assert sim.request_count(SEARCH) == 3
    assert sim.request_count("/api/account/search/") == 3
    assert sim.request_counts()["/api/Auth/loginKey"] == 1
    try:
        sim.request_count("/api/Nope")
    except ValueError as exc:
        assert "not a gateway REST path" in str(exc)
    else:
        raise AssertionError("unknown path accepted")


def test_sliding_window_unit() -> None:
    now = [0.0]
    window = SlidingWindow(2, 10.0, clock=lambda: now[0])
    assert window.hit("a") == 0.0 and window.hit("a") == 0.0
    now[0] = 4.0
    assert window.hit("a") == 6.0  # the first hit leaves the window at t=10
    assert window.hit("b") == 0.0
    now[0] = 10.0
    assert window.hit("a") == 0.0
