"""Simulator REST surface over real HTTP: routing, envelope, validation, per-endpoint codes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from projectx_lab.sim import AccountConfig, Simulator
from projectx_lab.sim.rest import ENDPOINTS
from projectx_lab.sim.wire import iso, parse_iso

Login = Callable[[httpx.AsyncClient, Simulator], Awaitable[str]]
MNQ = "CON.F.US.MNQ.Z26"  # front month on the test start date (2026-10-01)
ACCOUNT = 26_000_001
SEARCH = "/api/Account/search"
DAY_AGO = "2026-09-30T00:00:00Z"
BAR_BODY = {
    "contractId": MNQ,
    "live": False,
    "startTime": "2026-09-30T00:00:00Z",
    "endTime": "2026-10-01T14:30:00Z",
    "unit": 2,
    "unitNumber": 1,
    "limit": 100,
    "includePartialBar": False,
}

# A valid body per POST endpoint (business outcome may still be success:false).
VALID_BODIES: dict[str, dict[str, Any]] = {
    "/api/Auth/loginKey": {"userName": "demo", "apiKey": "sim-demo-key"},
    "/api/Auth/loginApp": {
        "userName": "demo",
        "password": "sim-demo-key",
        "deviceId": "d",
        "appId": "a",
        "verifyKey": "v",
    },
    "/api/Auth/validate": {},
    "/api/Auth/logout": {},
    "/api/Account/search": {"onlyActiveAccounts": True},
    "/api/Contract/search": {"searchText": "MNQ", "live": False},
    "/api/Contract/searchById": {"contractId": MNQ},
    "/api/Contract/available": {"live": False},
    "/api/History/retrieveBars": BAR_BODY,
    "/api/Order/place": {
        "accountId": ACCOUNT,
        "contractId": MNQ,
        "type": 1,
        "side": 0,
        "size": 1,
        "limitPrice": 1000,
    },
    "/api/Order/modify": {"accountId": ACCOUNT, "orderId": 1, "size": 2},
    "/api/Order/cancel": {"accountId": ACCOUNT, "orderId": 1},
    "/api/Order/search": {"accountId": ACCOUNT, "startTimestamp": DAY_AGO},
    "/api/Order/searchOpen": {"accountId": ACCOUNT},
    "/api/Order/searchById": {"accountId": ACCOUNT, "orderId": 1},
    "/api/Order/v2/query": {"filter": {"accountId": ACCOUNT}},
    "/api/Position/searchOpen": {"accountId": ACCOUNT},
    "/api/Position/closeContract": {"accountId": ACCOUNT, "contractId": MNQ},
    "/api/Position/partialCloseContract": {"accountId": ACCOUNT, "contractId": MNQ, "size": 1},
    "/api/Trade/search": {"accountId": ACCOUNT, "startTimestamp": DAY_AGO},
}
POST_PATHS = [ep.path for ep in ENDPOINTS if ep.method == "POST"]
AUTHED_PATHS = [ep.path for ep in ENDPOINTS if ep.auth in ("token", "validate")]
BAD_VALUES: list[Any] = [None, "x", [], {}, True, 1.5, 2**70, "", -1, "2026-13-45"]


def is_envelope(body: Any) -> bool:
    return isinstance(body, dict) and {"success", "errorCode", "errorMessage"} <= body.keys()


async def post(
    http: httpx.AsyncClient, path: str, body: Any, auth: dict[str, str]
) -> httpx.Response:
    return await http.post(path, json=body, headers=auth)


# --------------------------------------------------------------------------- routing


def test_valid_bodies_cover_every_post_endpoint() -> None:
    assert sorted(VALID_BODIES) == sorted(POST_PATHS)
    assert len(ENDPOINTS) == 21  # gateway-api.md §4.7


async def test_ping_is_get_without_auth(http: httpx.AsyncClient) -> None:
    for path in ("/api/Status/ping", "/API/STATUS/PING", "/api/status/ping/"):
        response = await http.get(path)
        assert response.status_code == 200
        assert response.json() == "pong"
    assert (await http.post("/api/Status/ping")).status_code == 405


@pytest.mark.parametrize("path", POST_PATHS)
async def test_every_endpoint_answers_in_any_case(
    path: str, sim: Simulator, http: httpx.AsyncClient, auth: dict[str, str], login: Login
) -> None:
    for variant in (path, path.lower(), path.upper()):
        if path == "/api/Auth/logout":  # logout revokes the token: use a fresh one each time
            auth = {"Authorization": f"Bearer {await login(http, sim)}"}
        response = await post(http, variant, VALID_BODIES[path], auth)
        assert response.status_code == 200, (variant, response.text)
        assert response.headers["content-type"].startswith("application/json")
        assert is_envelope(response.json())
    assert (await http.get(path, headers=auth)).status_code == 405


async def test_unknown_paths_are_404(http: httpx.AsyncClient, auth: dict[str, str]) -> None:
    for path in ("/api/Order/cancelAll", "/api/", "/api/Order/v3/query"):
        response = await post(http, path, {}, auth)
        assert response.status_code == 404
        assert response.content == b""
    assert (await post(http, "/nothing", {}, auth)).status_code == 404


@pytest.mark.parametrize("path", AUTHED_PATHS)
async def test_missing_or_unknown_token_is_401_with_empty_body(
    path: str, http: httpx.AsyncClient
) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        response = await http.post(path, json=VALID_BODIES[path], headers=headers)
        assert response.status_code == 401
        assert response.content == b""


# --------------------------------------------------------------------------- validation


async def test_malformed_json_is_400_problem_details(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for raw in (b"{", b"{'a': 1}", b"nul", b"[1,2"):
        response = await http.post(
            "/api/Account/search",
            content=raw,
            headers={**auth, "Content-Type": "application/json"},
        )
        assert response.status_code == 400
        problem = response.json()
        assert problem["status"] == 400 and problem["title"]
        assert "$" in problem["errors"]
        assert "not valid JSON" in problem["detail"]


async def test_body_must_be_a_json_object(http: httpx.AsyncClient, auth: dict[str, str]) -> None:
    for body in ([1, 2], "text", 3, None):
        response = await post(http, "/api/Account/search", body, auth)
        assert response.status_code == 400, body
    empty = await http.post("/api/Account/search", headers=auth)
    assert empty.status_code == 400
    assert "non-empty request body" in empty.json()["detail"]


async def test_non_json_content_type_is_415(http: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await http.post(
        "/api/Account/search",
        content=b'{"onlyActiveAccounts": true}',
        headers={**auth, "Content-Type": "text/plain"},
    )
    assert response.status_code == 415


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/Auth/loginKey", {"userName": "demo"}, "apiKey"),
        ("/api/Auth/loginKey", {"apiKey": "k"}, "userName"),
        ("/api/Account/search", {}, "onlyActiveAccounts"),
        ("/api/Account/search", {"onlyActiveAccounts": "yes"}, "onlyActiveAccounts"),
        ("/api/Account/search", {"onlyActiveAccounts": None}, "onlyActiveAccounts"),
        ("/api/Contract/search", {"searchText": 5, "live": False}, "searchText"),
        ("/api/History/retrieveBars", {**BAR_BODY, "unit": "two"}, "unit"),
        ("/api/History/retrieveBars", {**BAR_BODY, "startTime": "yesterday"}, "startTime"),
        ("/api/History/retrieveBars", {**BAR_BODY, "limit": 1.5}, "limit"),
        ("/api/Order/place", {**VALID_BODIES["/api/Order/place"], "accountId": "abc"}, "accountId"),
        ("/api/Order/place", {**VALID_BODIES["/api/Order/place"], "size": 2**40}, "size"),
        (
            "/api/Order/place",
            {**VALID_BODIES["/api/Order/place"], "limitPrice": "cheap"},
            "limitPrice",
        ),
        (
            "/api/Order/place",
            {**VALID_BODIES["/api/Order/place"], "stopLossBracket": {"ticks": "x", "type": 4}},
            "stopLossBracket.ticks",
        ),
        (
            "/api/Order/place",
            {**VALID_BODIES["/api/Order/place"], "stopLossBracket": 5},
            "stopLossBracket",
        ),
        ("/api/Order/cancel", {"accountId": ACCOUNT}, "orderId"),
        (
            "/api/Order/v2/query",
            {"filter": {"accountId": ACCOUNT, "statuses": [1, "x"]}},
            "filter.statuses[1]",
        ),
        ("/api/Order/v2/query", {}, "filter"),
        ("/api/Trade/search", {"accountId": ACCOUNT, "startTimestamp": 12}, "startTimestamp"),
    ],
)
async def test_missing_or_wrong_fields_are_400_naming_the_field(
    path: str, body: dict[str, Any], field: str, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await post(http, path, body, auth)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert field in problem["errors"], problem
    assert field in problem["detail"]
    assert problem["instance"] == path


async def test_binding_follows_aspnet_web_defaults(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """Property names are case-insensitive, numbers may be strings, unknown keys are ignored."""
    response = await post(
        http, "/api/Order/searchOpen", {"ACCOUNTID": str(ACCOUNT), "extra": [1]}, auth
    )
    assert response.status_code == 200
    assert response.json()["success"] is True


async def test_bad_values_never_cause_a_server_error(
    make_sim: Callable[..., Awaitable[Simulator]], login: Login
) -> None:
    """Every field of every endpoint, fed odd values: only 200 (business code) or 400."""
    sim = await make_sim(rest_rate=(100_000, 60.0), history_rate=(100_000, 30.0))
    async with httpx.AsyncClient(base_url=sim.api_url) as http:
        token = await login(http, sim)
        auth = {"Authorization": f"Bearer {token}"}
        statuses: set[int] = set()
        for path, valid in VALID_BODIES.items():
            if path == "/api/Auth/logout":
                continue
            for field in valid:
                for bad in BAD_VALUES:
                    response = await post(http, path, {**valid, field: bad}, auth)
                    statuses.add(response.status_code)
                    assert response.status_code in (200, 400), (path, field, bad, response.text)
        assert statuses == {200, 400}


# --------------------------------------------------------------------------- accounts, contracts


async def test_account_search_filters_inactive(
    make_sim: Callable[..., Awaitable[Simulator]], login: Login
) -> None:
    accounts = [AccountConfig("PRAC-A"), AccountConfig("OLD-B", active=False)]
    sim = await make_sim(accounts=accounts)
    async with httpx.AsyncClient(base_url=sim.api_url) as http:
        auth = {"Authorization": f"Bearer {await login(http, sim)}"}
        every = (
            await post(http, "/api/Account/search", {"onlyActiveAccounts": False}, auth)
        ).json()
        active = (
            await post(http, "/api/Account/search", {"onlyActiveAccounts": True}, auth)
        ).json()
    assert [a["name"] for a in every["accounts"]] == ["PRAC-A", "OLD-B"]
    assert [a["name"] for a in active["accounts"]] == ["PRAC-A"]
    row = active["accounts"][0]
    assert set(row) >= {"id", "name", "balance", "canTrade", "isVisible", "simulated"}


async def test_contract_search_available_and_by_id(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    found = await post(http, "/api/Contract/search", {"searchText": "NQ", "live": False}, auth)
    contracts = found.json()["contracts"]
    assert 0 < len(contracts) <= 20
    assert MNQ in [c["id"] for c in contracts]
    everything = await post(http, "/api/Contract/search", {"searchText": "", "live": False}, auth)
    assert len(everything.json()["contracts"]) == 20
    live = await post(http, "/api/Contract/search", {"searchText": "MNQ", "live": True}, auth)
    assert live.json() == {"contracts": [], "success": True, "errorCode": 0, "errorMessage": None}

    available = (await post(http, "/api/Contract/available", {"live": False}, auth)).json()
    ids = [c["id"] for c in available["contracts"]]
    assert ids == sorted(ids)
    symbols = [c["symbolId"] for c in available["contracts"]]
    assert len(symbols) == len(set(symbols))  # one front contract per product
    assert all(c["activeContract"] for c in available["contracts"])

    by_id = (await post(http, "/api/Contract/searchById", {"contractId": MNQ}, auth)).json()
    assert by_id["success"] and by_id["contract"]["id"] == MNQ
    assert set(by_id["contract"]) == {
        "id",
        "name",
        "description",
        "tickSize",
        "tickValue",
        "activeContract",
        "symbolId",
    }
    expired = await post(http, "/api/Contract/searchById", {"contractId": "CON.F.US.MNQ.U26"}, auth)
    assert expired.json()["contract"]["activeContract"] is False
    missing = await post(http, "/api/Contract/searchById", {"contractId": "CON.F.US.XX.Z26"}, auth)
    assert missing.json() == {
        "contract": None,
        "success": False,
        "errorCode": 1,
        "errorMessage": None,
    }


# --------------------------------------------------------------------------- bars


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"contractId": "CON.F.US.NOPE.Z26"}, 1),
        ({"live": True}, 1),
        ({"unit": 0}, 2),
        ({"unit": 7}, 2),
        ({"unitNumber": 0}, 3),
        ({"limit": 0}, 4),
        ({"limit": 20_001}, 4),
    ],
)
async def test_bars_error_codes(
    change: dict[str, Any], code: int, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await post(http, "/api/History/retrieveBars", {**BAR_BODY, **change}, auth)
    assert response.status_code == 200
    assert response.json() == {
        "bars": None,
        "success": False,
        "errorCode": code,
        "errorMessage": None,
    }


async def test_bars_newest_first_utc_and_limited(
    sim: Simulator, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    body = {**BAR_BODY, "limit": 20_000, "unit": 2, "unitNumber": 5}
    response = await post(http, "/api/History/retrieveBars", body, auth)
    bars = response.json()["bars"]
    assert response.json()["success"] and 0 < len(bars) <= 20_000
    stamps = [parse_iso(b["t"]) for b in bars]
    assert stamps == sorted(stamps, reverse=True)
    assert all(b["t"].endswith("+00:00") and b["d"] is None and b["k"] is None for b in bars)
    assert all(b["l"] <= min(b["o"], b["c"]) <= max(b["o"], b["c"]) <= b["h"] for b in bars)
    assert all(s % (300 * 10**9) == 0 for s in stamps)

    limited = await post(http, "/api/History/retrieveBars", {**body, "limit": 7}, auth)
    assert limited.json()["bars"] == bars[:7]  # the most recent bars survive the limit


async def test_bars_never_reach_past_now(
    sim: Simulator, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    body = {
        **BAR_BODY,
        "unit": 1,
        "unitNumber": 1,
        "endTime": "2030-01-01T00:00:00Z",
        "includePartialBar": True,
    }
    bars = (await post(http, "/api/History/retrieveBars", body, auth)).json()["bars"]
    assert bars and parse_iso(bars[0]["t"]) <= sim.clock.now_ns()
    assert parse_iso(bars[0]["t"]) >= sim.clock.start_ns - 120 * 10**9


# --------------------------------------------------------------------------- orders, positions


async def test_order_lifecycle_through_rest(
    sim: Simulator, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    place = {
        "accountId": ACCOUNT,
        "contractId": MNQ,
        "type": 1,
        "side": 0,
        "size": 1,
        "limitPrice": 15000,
        "customTag": "rest-1",
    }
    placed = (await post(http, "/api/Order/place", place, auth)).json()
    assert placed["success"] and isinstance(placed["orderId"], int)
    order_id = placed["orderId"]

    duplicate = (await post(http, "/api/Order/place", place, auth)).json()
    assert duplicate["errorCode"] == 2 and "unique" in duplicate["errorMessage"]
    off_grid = (
        await post(
            http, "/api/Order/place", {**place, "customTag": None, "limitPrice": 15000.1}, auth
        )
    ).json()
    assert off_grid["errorCode"] == 2
    assert off_grid["errorMessage"] == "Invalid limit price. Price is not aligned to tick size."
    unknown = (await post(http, "/api/Order/place", {**place, "accountId": 1}, auth)).json()
    assert unknown["errorCode"] == 1

    open_orders = (await post(http, "/api/Order/searchOpen", {"accountId": ACCOUNT}, auth)).json()
    assert [o["id"] for o in open_orders["orders"]] == [order_id]
    one = (
        await post(http, "/api/Order/searchById", {"accountId": ACCOUNT, "orderId": order_id}, auth)
    ).json()
    assert one["order"]["customTag"] == "rest-1" and one["order"]["limitPrice"] == 15000

    modified = await post(
        http, "/api/Order/modify", {"accountId": ACCOUNT, "orderId": order_id, "size": 3}, auth
    )
    assert modified.json() == {"success": True, "errorCode": 0, "errorMessage": None}
    query = {"filter": {"accountId": ACCOUNT, "statuses": [1]}, "includeTotalCount": True}
    queried = (await post(http, "/api/Order/v2/query", query, auth)).json()
    assert queried["totalCount"] == 1 and queried["orders"][0]["size"] == 3

    cancelled = (
        await post(http, "/api/Order/cancel", {"accountId": ACCOUNT, "orderId": order_id}, auth)
    ).json()
    assert cancelled["success"]
    again = (
        await post(http, "/api/Order/cancel", {"accountId": ACCOUNT, "orderId": order_id}, auth)
    ).json()
    assert again["errorCode"] == 3
    gone = (
        await post(http, "/api/Order/cancel", {"accountId": ACCOUNT, "orderId": 42}, auth)
    ).json()
    assert gone["errorCode"] == 2
    history = (
        await post(
            http, "/api/Order/search", {"accountId": ACCOUNT, "startTimestamp": DAY_AGO}, auth
        )
    ).json()
    assert [o["status"] for o in history["orders"]] == [3]
    missing = (
        await post(http, "/api/Order/searchById", {"accountId": ACCOUNT, "orderId": 42}, auth)
    ).json()
    assert missing == {"order": None, "success": False, "errorCode": 1, "errorMessage": None}


async def test_order_v2_query_validation_is_problem_details(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for extra, field in (
        ({"pageSize": 0}, "pageSize"),
        ({"sortBy": 5}, "sortBy"),
        ({"pageOffset": -1}, "pageOffset"),
    ):
        body = {"filter": {"accountId": ACCOUNT}, **extra}
        response = await post(http, "/api/Order/v2/query", body, auth)
        assert response.status_code == 400
        problem = response.json()
        assert set(problem) >= {"type", "title", "status", "detail", "instance"}
        assert field in problem["detail"]
    unknown = await post(http, "/api/Order/v2/query", {"filter": {"accountId": 7}}, auth)
    assert unknown.json()["errorCode"] == 1


async def test_positions_and_trades_through_rest(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    market = {"accountId": ACCOUNT, "contractId": MNQ, "type": 2, "side": 0, "size": 2}
    assert (await post(http, "/api/Order/place", market, auth)).json()["success"]
    positions = (await post(http, "/api/Position/searchOpen", {"accountId": ACCOUNT}, auth)).json()
    [position] = positions["positions"]
    assert position["contractId"] == MNQ and position["type"] == 1 and position["size"] == 2

    close = {"accountId": ACCOUNT, "contractId": MNQ}
    bad_size = (
        await post(http, "/api/Position/partialCloseContract", {**close, "size": 5}, auth)
    ).json()
    assert bad_size["errorCode"] == 5  # InvalidCloseSize
    partial = await post(http, "/api/Position/partialCloseContract", {**close, "size": 1}, auth)
    assert partial.json()["success"]
    assert (await post(http, "/api/Position/closeContract", close, auth)).json()["success"]
    flat = (await post(http, "/api/Position/closeContract", close, auth)).json()
    assert flat["errorCode"] == 2  # PositionNotFound
    positions = (await post(http, "/api/Position/searchOpen", {"accountId": ACCOUNT}, auth)).json()
    assert positions["positions"] == []
    not_mine = (await post(http, "/api/Position/searchOpen", {"accountId": 5}, auth)).json()
    assert not_mine["errorCode"] == 1

    trades = (
        await post(
            http, "/api/Trade/search", {"accountId": ACCOUNT, "startTimestamp": DAY_AGO}, auth
        )
    ).json()
    rows = trades["trades"]
    stamps = [parse_iso(t["creationTimestamp"]) for t in rows]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    opening = [t for t in rows if t["profitAndLoss"] is None]
    closing = [t for t in rows if t["profitAndLoss"] is not None]
    assert sum(t["size"] for t in opening) == 2 and {t["side"] for t in opening} == {0}
    assert sum(t["size"] for t in closing) == 2 and {t["side"] for t in closing} == {1}
    assert rows[0] in closing
    later = iso(parse_iso(rows[0]["creationTimestamp"]) + 100)  # wire resolution is 100 ns
    none = (
        await post(http, "/api/Trade/search", {"accountId": ACCOUNT, "startTimestamp": later}, auth)
    ).json()
    assert none["trades"] == []


async def test_requests_act_on_the_market_as_of_now_not_the_last_pump_step(
    make_sim: Callable[..., Awaitable[Simulator]], login: Login
) -> None:
    # The pump steps once at start and then sleeps: only the requests themselves can bring the
    # broker up to date. A limit the tape traded through before the cancel must be filled, and
    # the cancel refused, exactly as if the pump had run in between.
    sim = await make_sim(pump_interval=3600.0)
    async with httpx.AsyncClient(base_url=sim.api_url, timeout=10.0) as http:
        auth = {"Authorization": f"Bearer {await login(http, sim)}"}
        t0 = sim.clock.hold()
        last = sim.exchange.last_trade(MNQ, t0)
        assert last is not None
        limit = last[1] - 6
        spec = sim.exchange.spec(MNQ)
        assert spec is not None
        body = {"accountId": ACCOUNT, "contractId": MNQ, "type": 1, "side": 0, "size": 1}
        placed = await post(
            http, "/api/Order/place", {**body, "limitPrice": spec.to_price(limit)}, auth
        )
        order_id = placed.json()["orderId"]
        tape = sim.exchange.tape(MNQ, t0, t0 + 3600 * 10**9)
        through = int(tape.ts_ns[(tape.price < limit).argmax()])
        assert tape.price[(tape.price < limit).argmax()] < limit, "no print through the limit"
        sim.clock.advance_to(through + 10**9)
        cancel = (
            await post(http, "/api/Order/cancel", {"accountId": ACCOUNT, "orderId": order_id}, auth)
        ).json()
        assert (cancel["success"], cancel["errorCode"]) == (False, 3), cancel
        [fill] = (
            await post(
                http, "/api/Trade/search", {"accountId": ACCOUNT, "startTimestamp": DAY_AGO}, auth
            )
        ).json()["trades"]
        assert fill["orderId"] == order_id and parse_iso(fill["creationTimestamp"]) <= through
