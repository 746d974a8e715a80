"""Gateway REST surface (`/api/...`): case-insensitive routes, body validation, auth, rate limits,
fault hooks, the `success/errorCode/errorMessage` envelope and per-endpoint error codes.

Implemented as a raw ASGI app so the swallow fault can hold a response until the client leaves.
Body binding mimics ASP.NET web defaults: property names are case-insensitive, numbers may come
as numeric strings, unknown properties are ignored; anything else malformed is a 400
`ProblemDetails` naming the field.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

import orjson

from .auth import Credentials, TokenState, TokenStore, bearer_token
from .ratelimit import RateLimiter, retry_after_header
from .wire import parse_iso

if TYPE_CHECKING:
    from .exchange import Exchange
    from .faults import Faults

log = logging.getLogger("projectx_lab.sim")

MAX_BARS = 20_000
MAX_BODY = 1 << 20

# ----------------------------------------------------------------------------- body schema

INT32, INT64, BOOL, STR, NUM, TIME, INT_LIST = (
    "Int32",
    "Int64",
    "Boolean",
    "String",
    "Decimal",
    "DateTime",
    "Int32[]",
)
_INT_RANGE = {INT32: (-(2**31), 2**31 - 1), INT64: (-(2**63), 2**63 - 1)}
_INT_TEXT = re.compile(r"\s*-?\d+\s*")
_NUMERIC_TEXT = re.compile(r"\s*-?\d+(\.\d+)?([eE][+-]?\d+)?\s*")


@dataclass(frozen=True, slots=True)
class Field:
    """One request property: wire name, kind (a type name or a nested schema), required-ness."""

    name: str
    kind: str | tuple[Field, ...]
    required: bool = True


class BadRequest(Exception):
    """A request body that cannot be bound; `field` is its JSON path (`$` for the whole body)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _convert(value: Any, kind: str, where: str) -> Any:
    def wrong() -> BadRequest:
        return BadRequest(where, f"The JSON value at $.{where} could not be converted to {kind}.")

    if kind in _INT_RANGE:
        if isinstance(value, str) and _INT_TEXT.fullmatch(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong()
        low, high = _INT_RANGE[kind]
        if not low <= value <= high:
            raise wrong()
        return value
    if kind == NUM:
        if isinstance(value, str) and _NUMERIC_TEXT.fullmatch(value):
            value = float(value)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise wrong()
        return value
    if kind == BOOL:
        if not isinstance(value, bool):
            raise wrong()
        return value
    if kind == STR:
        if not isinstance(value, str):
            raise wrong()
        return value
    if kind == TIME:
        if not isinstance(value, str):
            raise wrong()
        try:
            return parse_iso(value)
        except ValueError:
            raise wrong() from None
    if kind == INT_LIST:
        if not isinstance(value, list):
            raise wrong()
        return [_convert(item, INT32, f"{where}[{i}]") for i, item in enumerate(value)]
    raise AssertionError(kind)


def bind(data: Any, schema: tuple[Field, ...], prefix: str = "") -> dict[str, Any]:
    """Validate `data` against `schema`; returns every schema field under its canonical name
    (absent optionals are None, timestamps become ns). Raises `BadRequest`."""
    if not isinstance(data, dict):
        where = prefix.rstrip(".") or "$"
        raise BadRequest(where, f"The JSON value at {where} must be an object.")
    folded = {str(k).casefold(): v for k, v in data.items()}
    out: dict[str, Any] = {}
    for field in schema:
        where = prefix + field.name
        value = folded.get(field.name.casefold())
        if value is None:
            if field.required:
                raise BadRequest(where, f"The {where} field is required.")
            out[field.name] = None
        elif isinstance(field.kind, tuple):
            out[field.name] = bind(value, field.kind, where + ".")
        else:
            out[field.name] = _convert(value, field.kind, where)
    return out


def parse_json(raw: bytes) -> Any:
    """Decode a request body; malformed JSON is a `BadRequest` on `$`."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("$", f"The request body is not valid JSON: {exc}") from None


_BRACKET = (Field("ticks", INT32), Field("type", INT32))
_ACCOUNT = (Field("accountId", INT32),)
_V2_FILTER = (
    Field("accountId", INT32),
    Field("statuses", INT_LIST, False),
    Field("contractId", STR, False),
    Field("createdAfter", TIME, False),
    Field("createdBefore", TIME, False),
)

# ----------------------------------------------------------------------------- responses

_JSON = [(b"content-type", b"application/json; charset=utf-8")]
_PROBLEM = [(b"content-type", b"application/problem+json; charset=utf-8")]
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]


@dataclass(slots=True)
class Reply:
    """An HTTP response before it is sent."""

    status: int
    body: bytes = b""
    headers: list[tuple[bytes, bytes]] | None = None


def envelope(code: int = 0, message: str | None = None, **payload: Any) -> dict[str, Any]:
    """The gateway envelope: payload fields plus `success`, `errorCode`, `errorMessage`."""
    payload["success"] = code == 0
    payload["errorCode"] = code
    payload["errorMessage"] = message
    return payload


def problem(path: str, field: str, message: str) -> Reply:
    """HTTP 400 with an RFC 7807 `ProblemDetails` body naming the offending field."""
    body = {
        "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
        "title": "One or more validation errors occurred.",
        "status": 400,
        "detail": message,
        "instance": path,
        "errors": {field: [message]},
    }
    return Reply(400, orjson.dumps(body), _PROBLEM)


def plain(status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> Reply:
    return Reply(status, text.encode(), _TEXT + (extra or []))


def too_many(wait: float) -> Reply:
    """HTTP 429 with a plain-text body and `Retry-After` in whole seconds."""
    return plain(429, "Too Many Requests", [(b"retry-after", retry_after_header(wait).encode())])


# ----------------------------------------------------------------------------- routes


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One gateway route: canonical path, verb, body schema, rate bucket and auth mode."""

    path: str
    method: str
    handler: str  # RestApi method name
    schema: tuple[Field, ...] | None = None
    bucket: str = "rest"  # "rest" | "history" | "none"
    auth: str = "token"  # "token" | "none" | "login" | "validate"


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "/api/Auth/loginKey", "POST", "login_key", (Field("userName", STR), Field("apiKey", STR)),
        auth="login",
    ),
    Endpoint(
        "/api/Auth/loginApp", "POST", "login_app",
        tuple(Field(n, STR) for n in ("userName", "password", "deviceId", "appId", "verifyKey")),
        auth="login",
    ),
    Endpoint("/api/Auth/validate", "POST", "validate", auth="validate"),
    Endpoint("/api/Auth/logout", "POST", "logout"),
    Endpoint("/api/Account/search", "POST", "account_search", (Field("onlyActiveAccounts", BOOL),)),
    Endpoint(
        "/api/Contract/search", "POST", "contract_search",
        (Field("searchText", STR), Field("live", BOOL)),
    ),
    Endpoint("/api/Contract/searchById", "POST", "contract_by_id", (Field("contractId", STR),)),
    Endpoint("/api/Contract/available", "POST", "contract_available", (Field("live", BOOL),)),
    Endpoint(
        "/api/History/retrieveBars", "POST", "retrieve_bars",
        (
            Field("contractId", STR), Field("live", BOOL), Field("startTime", TIME),
            Field("endTime", TIME), Field("unit", INT32), Field("unitNumber", INT32),
            Field("limit", INT32), Field("includePartialBar", BOOL),
        ),
        bucket="history",
    ),
    Endpoint(
        "/api/Order/place", "POST", "order_place",
        (
            Field("accountId", INT32), Field("contractId", STR), Field("type", INT32),
            Field("side", INT32), Field("size", INT32), Field("limitPrice", NUM, False),
            Field("stopPrice", NUM, False), Field("trailPrice", NUM, False),
            Field("customTag", STR, False), Field("stopLossBracket", _BRACKET, False),
            Field("takeProfitBracket", _BRACKET, False), Field("linkedOrderId", INT64, False),
        ),
    ),
    Endpoint(
        "/api/Order/modify", "POST", "order_modify",
        (
            Field("accountId", INT32), Field("orderId", INT64), Field("size", INT32, False),
            Field("limitPrice", NUM, False), Field("stopPrice", NUM, False),
            Field("trailPrice", NUM, False),
        ),
    ),
    Endpoint(
        "/api/Order/cancel", "POST", "order_cancel",
        (Field("accountId", INT32), Field("orderId", INT64)),
    ),
    Endpoint(
        "/api/Order/search", "POST", "order_search",
        (Field("accountId", INT32), Field("startTimestamp", TIME),
         Field("endTimestamp", TIME, False)),
    ),
    Endpoint("/api/Order/searchOpen", "POST", "order_search_open", _ACCOUNT),
    Endpoint(
        "/api/Order/searchById", "POST", "order_by_id",
        (Field("accountId", INT32), Field("orderId", INT64)),
    ),
    Endpoint(
        "/api/Order/v2/query", "POST", "order_query_v2",
        (
            Field("filter", _V2_FILTER), Field("pageSize", INT32, False),
            Field("pageOffset", INT32, False), Field("sortBy", INT32, False),
            Field("sortDirection", INT32, False), Field("includeTotalCount", BOOL, False),
        ),
    ),
    Endpoint("/api/Position/searchOpen", "POST", "position_search_open", _ACCOUNT),
    Endpoint(
        "/api/Position/closeContract", "POST", "position_close",
        (Field("accountId", INT32), Field("contractId", STR)),
    ),
    Endpoint(
        "/api/Position/partialCloseContract", "POST", "position_partial_close",
        (Field("accountId", INT32), Field("contractId", STR), Field("size", INT32)),
    ),
    Endpoint(
        "/api/Trade/search", "POST", "trade_search",
        (Field("accountId", INT32), Field("startTimestamp", TIME, False),
         Field("endTimestamp", TIME, False)),
    ),
    Endpoint("/api/Status/ping", "GET", "ping", bucket="none", auth="none"),
)  # fmt: skip

_BY_PATH = {ep.path.lower(): ep for ep in ENDPOINTS}
_BROKER_PATHS = ("/api/Account/", "/api/Order/", "/api/Position/", "/api/Trade/")


def find_endpoint(path: str) -> Endpoint | None:
    """The endpoint serving `path` (case-insensitive, trailing slash ignored), or None."""
    return _BY_PATH.get(path.rstrip("/").lower())


def canonical_path(path: str) -> str:
    """The documented spelling of a REST path; ValueError for paths the gateway does not serve."""
    endpoint = find_endpoint(path)
    if endpoint is None:
        raise ValueError(f"not a gateway REST path: {path!r}")
    return endpoint.path


def _is_json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("application/json", "text/json") or media.endswith("+json")


class RestApi:
    """ASGI app serving every `/api/...` endpoint of the gateway against an `Exchange`."""

    def __init__(
        self,
        exchange: Exchange,
        tokens: TokenStore,
        credentials: Credentials,
        limiter: RateLimiter,
        faults: Faults,
    ) -> None:
        self.exchange = exchange
        self.broker = exchange.broker
        self.tokens = tokens
        self.credentials = credentials
        self.limiter = limiter
        self.faults = faults
        self.counts: Counter[str] = Counter()
        self._handlers: dict[str, Callable[[dict[str, Any], str | None], Any]] = {
            ep.path: getattr(self, ep.handler) for ep in ENDPOINTS
        }

    def __repr__(self) -> str:
        return f"RestApi(requests={sum(self.counts.values())})"

    def request_count(self, path: str) -> int:
        """Requests received on `path` (any case), whatever their outcome."""
        return self.counts[canonical_path(path)]

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        endpoint = find_endpoint(scope["path"])
        if endpoint is None:
            await _send(send, Reply(404))
            return
        self.counts[endpoint.path] += 1
        faults = self.faults
        delay = faults.latency_for(endpoint.path)
        if delay > 0:
            await asyncio.sleep(delay)
        status = faults.take_failure(endpoint.path)
        if status is not None:
            await _send(send, _fault_reply(status))
            return
        swallow = faults.take_swallow(endpoint.path)
        reply = await self._serve(endpoint, scope, receive)
        if reply is None:  # client left while we read its body
            return
        if swallow:
            await faults.hold(receive)
            if not faults.closing:
                return
            reply = plain(503, "Service Unavailable")
        await _send(send, reply, self._date_header())

    def _date_header(self) -> bytes:
        """HTTP `Date` in *simulated* time, so clients can tell the gateway's clock."""
        return formatdate(self.exchange.clock.now_ns() / 1e9, usegmt=True).encode()

    async def _serve(self, ep: Endpoint, scope: dict[str, Any], receive: Any) -> Reply | None:
        if scope["method"] != ep.method:
            return Reply(405, b"", [(b"allow", ep.method.encode())])
        headers = dict(scope["headers"])
        token: str | None = None
        if ep.auth in ("token", "validate"):
            token = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
            state = self.tokens.state(token)
            allowed = state is TokenState.VALID or (
                ep.auth == "validate" and state is TokenState.EXPIRED
            )
            if not allowed:
                return Reply(401, b"", [(b"www-authenticate", b"Bearer")])
            wait = self.limiter.hit(ep.bucket, f"token:{token}")
            if wait:
                return too_many(wait)
        try:
            raw = await _read_body(receive)
            if raw is None:
                return None
            body: dict[str, Any] = {}
            if ep.schema is not None:
                if not raw.strip():
                    raise BadRequest("$", "A non-empty request body is required.")
                content_type = headers.get(b"content-type", b"").decode("latin-1")
                if not _is_json_type(content_type):
                    return plain(415, "Unsupported Media Type")
                body = bind(parse_json(raw), ep.schema)
            if ep.auth == "login":
                wait = self.limiter.hit("rest", f"user:{body['userName'].casefold()}")
                if wait:
                    return too_many(wait)
            if ep.path.startswith(_BROKER_PATHS):
                self.exchange.step()  # the broker acts on the market as of now
            result = self._handlers[ep.path](body, token)
        except BadRequest as exc:
            return problem(ep.path, exc.field, exc.message)
        except Exception:
            log.exception("simulator REST handler failed on %s", ep.path)
            return plain(500, "Internal Server Error")
        if isinstance(result, Reply):
            return result
        return Reply(200, orjson.dumps(result), _JSON)

    # ------------------------------------------------------------------ auth

    def login_key(self, body: dict[str, Any], _token: str | None) -> dict[str, Any]:
        if self.credentials.matches(body["userName"], body["apiKey"]):
            return envelope(token=self.tokens.issue(self.credentials.username))
        return envelope(3, None, token=None)  # InvalidCredentials

    def login_app(self, body: dict[str, Any], _token: str | None) -> dict[str, Any]:
        """Minimal app login: the API key doubles as the password; device/app fields unchecked."""
        if not self.credentials.knows_user(body["userName"]):
            return envelope(1, None, token=None)  # UserNotFound
        if not self.credentials.matches(body["userName"], body["password"]):
            return envelope(2, None, token=None)  # PasswordVerificationFailed
        return envelope(token=self.tokens.issue(self.credentials.username))

    def validate(self, _body: dict[str, Any], token: str | None) -> dict[str, Any]:
        state, new_token = self.tokens.refresh(token)
        if state is TokenState.EXPIRED:
            return envelope(3, None, newToken=None)  # ExpiredToken
        return envelope(newToken=new_token)

    def logout(self, _body: dict[str, Any], token: str | None) -> dict[str, Any]:
        self.tokens.revoke(token)
        return envelope()

    # ------------------------------------------------------------------ accounts, contracts, bars

    def account_search(self, body: dict[str, Any], _token: str | None) -> dict[str, Any]:
        return envelope(accounts=self.broker.accounts(body["onlyActiveAccounts"]))

    def contract_search(self, body: dict[str, Any], _token: str | None) -> dict[str, Any]:
        return envelope(contracts=self.exchange.search_contracts(body["searchText"], body["live"]))

    def contract_by_id(self, body: dict[str, Any], _token: str | None) -> dict[str, Any]:
        contract = self.exchange.contract(body["contractId"])
        if contract is None:
            return envelope(1, None, contract=None)  # ContractNotFound
        return envelope(contract=contract)

    def contract_available(self, body: dict[str, Any], _token: str | None) -> dict[str, Any]:
        return envelope(contracts=self.exchange.available_contracts(body["live"]))

    def retrieve_bars(self, body: dict[str, Any], _token: str | None) -> dict[str, Any]:
        if body["live"] or self.exchange.contract(body["contractId"]) is None:
            return envelope(1, None, bars=None)  # ContractNotFound (no live data for sim accounts)
        if not 1 <= body["unit"] <= 6:
            return envelope(2, None, bars=None)  # UnitInvalid
        if body["unitNumber"] < 1:
            return envelope(3, None, bars=None)  # UnitNumberInvalid
        if not 1 <= body["limit"] <= MAX_BARS:
            return envelope(4, None, bars=None)  # LimitInvalid
        bars = self.exchange.bars(
            body["contractId"],
            body["unit"],
            body["unitNumber"],
            body["startTime"],
            body["endTime"],
            body["limit"],
            body["includePartialBar"],
        )
        return envelope(bars=bars)

    # ------------------------------------------------------------------ orders

    def order_place(self, body: dict[str, Any], _token: str | None) -> dict[str, Any]:
        code, message, order_id = self.broker.place(body)
        return envelope(code, message, orderId=order_id)

    def order_modify(self, body: dict[str, Any], _token: str | None) -> dict[str, Any]:
        code, message, _ = self.broker.modify(body)
        return envelope(code, message)

    def order_cancel(self, body: dict[str, Any], _token: str | None) -> dict[str, Any]:
        code, message, _ = self.broker.cancel(body["accountId"], body["orderId"])
        return envelope(code, message)

    def order_search(self, body: dict[str, Any], _token: str | None) -> dict[str, Any]:
        code, message, orders = self.broker.search_orders(
            body["accountId"], body["startTimestamp"], body["endTimestamp"]
        )
        return envelope(code, message, orders=orders)

    def order_search_open(self, body: dict[str, Any], _token: str | None) -> dict[str, Any]:
        code, message, orders = self.broker.search_open_orders(body["accountId"])
        return envelope(code, message, orders=orders)

    def order_by_id(self, body: dict[str, Any], _token: str | None) -> dict[str, Any]:
        code, message, order = self.broker.order_by_id(body["accountId"], body["orderId"])
        return envelope(code, message, order=order)

    def order_query_v2(self, body: dict[str, Any], _token: str | None) -> Any:
        try:
            code, message, payload = self.broker.query_orders_v2(body)
        except ValueError as exc:  # paging/sort values out of range
            text = str(exc)
            return problem("/api/Order/v2/query", text.split(" ", 1)[0], text)
        return envelope(code, message, **payload)

    # ------------------------------------------------------------------ positions, trades, status

    def position_search_open(self, body: dict[str, Any], _token: str | None) -> dict[str, Any]:
        code, message, positions = self.broker.open_positions(body["accountId"])
        return envelope(code, message, positions=positions)

    def position_close(self, body: dict[str, Any], _token: str | None) -> dict[str, Any]:
        code, message, _ = self.broker.close_position(body["accountId"], body["contractId"])
        return envelope(code, message)

    def position_partial_close(self, body: dict[str, Any], _token: str | None) -> dict[str, Any]:
        code, message, _ = self.broker.partial_close(
            body["accountId"], body["contractId"], body["size"]
        )
        return envelope(code, message)

    def trade_search(self, body: dict[str, Any], _token: str | None) -> dict[str, Any]:
        code, message, trades = self.broker.search_trades(
            body["accountId"], body["startTimestamp"], body["endTimestamp"]
        )
        return envelope(code, message, trades=trades)

    def ping(self, _body: dict[str, Any], _token: str | None) -> str:
        return "pong"


def _fault_reply(status: int) -> Reply:
    if status == 429:
        return too_many(1.0)
    return plain(status, "Injected fault")


async def _read_body(receive: Any) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise BadRequest("$", "The request body is too large.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Any, reply: Reply, date: bytes | None = None) -> None:
    headers = list(reply.headers or [])
    headers.append((b"content-length", str(len(reply.body)).encode()))
    if date is not None:
        headers.append((b"date", date))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
