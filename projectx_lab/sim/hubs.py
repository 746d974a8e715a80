"""The simulator's SignalR hubs: `/hubs/user` and `/hubs/market` (negotiate + WebSocket).

Per-connection subscriptions, event fan-out (each event serialised once, shared bytes queued to
every subscriber, one writer task per connection packing records into frames), server pings,
and the fault hooks (drop, freeze, block, raw injection). Everything runs on the server's
event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl, urlencode

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request as WsRequest

from projectx_lab.sim import protocol as sp
from projectx_lab.sim.config import SimConfig

logger = logging.getLogger(__name__)

HubName = Literal["user", "market"]
HubSelector = Literal["user", "market", "all"]
DropMode = Literal["clean", "abort"]

TRANSPORT_SCOPE_KEY = "projectx_lab.transport"
"""ASGI scope key under which `HubWebSocketProtocol` stores the connection's asyncio transport."""

ERROR_CLOSE = "Connection closed with an error."
_AVAILABLE_TRANSPORTS = [{"transport": "WebSockets", "transferFormats": ["Text"]}]

QUOTE, TRADE, DEPTH = "GatewayQuote", "GatewayTrade", "GatewayDepth"
ACCOUNT, ORDER, POSITION, FILL = (
    "GatewayUserAccount",
    "GatewayUserOrder",
    "GatewayUserPosition",
    "GatewayUserTrade",
)


# --- what the hubs need from the rest of the simulator ---------------------------------------


class Authenticator(Protocol):
    """Bearer-token check used at negotiate and at the WebSocket upgrade."""

    def authenticate(self, token: str) -> object | None:
        """The user of a valid, unexpired token; None otherwise."""
        ...


class AccountDirectory(Protocol):
    """Which trading accounts a user owns (user-hub subscriptions are limited to them)."""

    def accounts_of(self, user: object) -> Collection[int]: ...


class MarketFeed(Protocol):
    """Market interest and book snapshots (implemented by `Exchange`)."""

    def acquire(self, contract_id: str) -> None: ...
    def release(self, contract_id: str) -> None: ...
    def depth_snapshot(self, contract_id: str) -> list[dict[str, Any]]:
        """`Reset` item, then the full book as type 1/2 items."""
        ...

    def quote_snapshot(self, contract_id: str) -> dict[str, Any]:
        """A full GatewayQuote, sent to a new quote subscriber so it has every field once."""
        ...

    def known_contract(self, contract_id: str) -> bool: ...


class HubWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn WebSocket protocol that exposes its transport in the ASGI scope.

    Needed by `Hubs.drop(mode="abort")` to kill a TCP connection without a close frame. It also
    marks a finished denial response (401/404 at upgrade) as a completed handshake, which the
    base class forgets, logging a spurious "returned without completing handshake" error.
    """

    def handle_connect(self, event: WsRequest) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope[TRANSPORT_SCOPE_KEY] = self.transport  # type: ignore[literal-required]

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            self.handshake_complete = True


UVICORN_WS_OPTIONS: Mapping[str, Any] = {
    "ws": HubWebSocketProtocol,
    "ws_ping_interval": None,  # signalrcore 1.0.2 drops the connection on a WS ping frame
    "ws_per_message_deflate": False,
}
"""Keyword arguments for `uvicorn.Config` that the hubs require."""


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """Test/diagnostic view of one hub connection."""

    connection_id: str
    hub: HubName
    subscriptions: frozenset[tuple[str, str | int]]  # (event target, contract id | account id)
    queued_bytes: int
    pings_received: int


# --- one connection ---------------------------------------------------------------------------


class _OwnFrame(bytes):
    """Queued text that travels in a WebSocket frame of its own (raw injection)."""


class Connection:
    """One hub WebSocket: bounded send queue drained by a writer task, pings, subscriptions."""

    def __init__(
        self,
        websocket: WebSocket,
        hub: HubName,
        connection_id: str,
        user: object,
        *,
        max_frame_bytes: int,
        queue_limit_bytes: int,
        close_timeout: float,
    ) -> None:
        self.websocket = websocket
        self.hub = hub
        self.connection_id = connection_id
        self.user = user
        self.subscriptions: set[tuple[str, str | int]] = set()
        self.interest: dict[str, int] = {}  # market: contract id -> subscribed targets
        self.pings_received = 0
        self.closed = asyncio.Event()
        self._max_frame = max_frame_bytes
        self._limit = queue_limit_bytes
        self._close_timeout = close_timeout
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._close_code = 1000
        self._loop = asyncio.get_running_loop()
        self._writer: asyncio.Task[None] | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._client_timer: asyncio.TimerHandle | None = None
        self._abort_timer: asyncio.TimerHandle | None = None
        self.last_received = self._loop.time()  # any frame from the client (loop clock)
        self._transport: asyncio.Transport | None = websocket.scope.get(TRANSPORT_SCOPE_KEY)

    @property
    def closing(self) -> bool:
        """True once a close or abort was requested; nothing more is queued then."""
        return self._closing

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting in the send queue (the frame being written excluded)."""
        return self._queued

    def enqueue(self, record: bytes) -> None:
        """Queue one encoded record; a queue over its byte limit closes the connection."""
        if self._closing:
            return
        self._queue.append(record)
        self._queued += len(record)
        if self._queued > self._limit:
            logger.warning(
                "hub %s connection %s: send queue overflow", self.hub, self.connection_id
            )
            self.close(
                f"{ERROR_CLOSE} Send queue overflow: the client did not read fast enough.",
                allow_reconnect=True,
            )
            return
        self._wake.set()

    def enqueue_raw(self, text: str) -> None:
        """Queue arbitrary text to go out unchanged in a frame of its own."""
        self.enqueue(_OwnFrame(text.encode()))

    def start(self, ping_interval: float, client_timeout: float | None = None) -> None:
        """Start the writer task, the server keep-alive pings and, with `client_timeout`, the
        watch that drops a client silent for that long (SignalR's client timeout)."""
        self._writer = self._loop.create_task(self._write_loop())
        if ping_interval > 0:
            self._ping_timer = self._loop.call_later(ping_interval, self._ping, ping_interval)
        if client_timeout:
            self._client_timer = self._loop.call_later(
                client_timeout, self._check_client, client_timeout
            )

    def close(self, error: str | None = None, *, allow_reconnect: bool = False) -> None:
        """Clean close: drop pending records, send the close message, then close the socket."""
        if self._begin_close():
            self._queue.append(sp.encode_close(error, allow_reconnect))
            self._queued = len(self._queue[0])
            self._wake.set()

    def finish(self, code: int = 1000) -> None:
        """Close the socket without a SignalR close message (client asked, or no transport)."""
        if self._begin_close():
            self._close_code = code
            self._wake.set()

    def abort(self) -> bool:
        """Kill the TCP connection without a close frame; False if the transport is unknown."""
        if self._transport is None:
            logger.warning("hub connection abort needs HubWebSocketProtocol; closing instead")
            self.finish(1011)
            return False
        self._begin_close()
        self._transport.abort()
        return True

    async def stop(self) -> None:
        """Stop timers and the writer after the connection ended."""
        self._closing = True
        for timer in (self._ping_timer, self._client_timer, self._abort_timer):
            if timer is not None:
                timer.cancel()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        self.closed.set()

    def info(self) -> ConnectionInfo:
        """A snapshot of this connection for tests and diagnostics."""
        return ConnectionInfo(
            self.connection_id,
            self.hub,
            frozenset(self.subscriptions),
            self._queued,
            self.pings_received,
        )

    def _begin_close(self) -> bool:
        if self._closing:
            return False
        self._closing = True
        self._queue.clear()
        self._queued = 0
        for timer in (self._ping_timer, self._client_timer):
            if timer is not None:
                timer.cancel()
        if self._close_timeout > 0 and self._transport is not None:
            self._abort_timer = self._loop.call_later(self._close_timeout, self._transport.abort)
        return True

    def _check_client(self, timeout: float) -> None:
        if self._closing:
            return
        idle = self._loop.time() - self.last_received
        if idle < timeout:
            self._client_timer = self._loop.call_later(timeout - idle, self._check_client, timeout)
            return
        logger.info("hub %s connection %s: client timeout", self.hub, self.connection_id)
        self.close(
            f"{ERROR_CLOSE} Server timeout elapsed without receiving a message from the client.",
            allow_reconnect=True,
        )

    def _ping(self, interval: float) -> None:
        if self._closing:
            return
        self.enqueue(sp.PING)
        self._ping_timer = self._loop.call_later(interval, self._ping, interval)

    async def _write_loop(self) -> None:
        queue = self._queue
        limit = self._max_frame
        send = self.websocket.send
        try:
            while True:
                if not queue:
                    if self._closing:
                        break
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                frame = queue.popleft()
                size = len(frame)
                if type(frame) is not _OwnFrame:
                    parts: list[bytes] | None = None
                    while queue:
                        following = queue[0]
                        length = len(following)
                        if size + length > limit or type(following) is _OwnFrame:
                            break
                        queue.popleft()
                        if parts is None:
                            parts = [frame]
                        parts.append(following)
                        size += length
                    if parts is not None:
                        frame = b"".join(parts)
                self._queued -= size
                await send({"type": "websocket.send", "text": frame.decode()})
            await self.websocket.close(self._close_code)
        except (WebSocketDisconnect, OSError, RuntimeError):
            return
        except Exception:
            logger.exception("hub %s connection %s: writer failed", self.hub, self.connection_id)
            self.abort()


# --- hubs -------------------------------------------------------------------------------------


class _Channel:
    """Subscribers of one (target, key) plus the invocation prefix shared by its events."""

    __slots__ = ("connections", "prefix")

    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix
        self.connections: set[Connection] = set()


Handler = Callable[[Connection, Any], str | None]


@dataclass(frozen=True, slots=True)
class _Method:
    name: str
    param: tuple[str, type] | None  # (argument name, int | str), None for no argument
    handler: Handler


_JSON_TYPES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
    list: "an array",
    dict: "an object",
}


def _bind(method: _Method, arguments: object) -> tuple[object, str | None]:
    """Check an invocation's arguments against the method; (value, None) or (None, error)."""
    prefix = f"Failed to invoke '{method.name}' due to an error on the server. "
    if not isinstance(arguments, list):
        return None, prefix + "InvalidDataException: 'arguments' must be an array."
    expected = 0 if method.param is None else 1
    if len(arguments) != expected:
        signature = "" if method.param is None else f"{method.param[0]}: {method.param[1].__name__}"
        return None, (
            prefix + f"InvalidDataException: Invocation provides {len(arguments)} argument(s) "
            f"but target expects {expected} ({signature})."
        )
    if method.param is None:
        return None, None
    name, kind = method.param
    value = arguments[0]
    if not isinstance(value, kind) or isinstance(value, bool):
        got = _JSON_TYPES.get(type(value), type(value).__name__)
        return None, (
            prefix + f"InvalidDataException: Error binding arguments: '{name}' must be "
            f"{_JSON_TYPES[kind]}, got {got}."
        )
    return value, None


class _Hub:
    """Connections, subscription index and hub-method dispatch shared by both hubs."""

    name: HubName

    def __init__(self, targets: tuple[str, ...]) -> None:
        self.connections: set[Connection] = set()
        self._channels: dict[str, dict[Any, _Channel]] = {target: {} for target in targets}
        self._methods: dict[str, _Method] = {}

    def _method(self, name: str, param: tuple[str, type] | None, handler: Handler) -> None:
        self._methods[name.lower()] = _Method(name, param, handler)

    def attach(self, conn: Connection) -> None:
        """Register a connection that completed its handshake."""
        self.connections.add(conn)

    def detach(self, conn: Connection) -> None:
        """Forget a finished connection and all its subscriptions."""
        self.connections.discard(conn)
        for target, key in list(conn.subscriptions):
            self._unsubscribe(conn, target, key)

    def dispatch(self, conn: Connection, record: str) -> None:
        """Handle one client record; raises `ProtocolError` for protocol violations."""
        message = sp.decode_message(record)
        kind = message["type"]
        if kind == sp.MessageType.INVOCATION:
            self._invoke(conn, sp.parse_invocation(message))
        elif kind == sp.MessageType.PING:
            conn.pings_received += 1
        elif kind == sp.MessageType.CLOSE:
            conn.finish()
        elif kind == sp.MessageType.STREAM_INVOCATION:
            invocation = sp.parse_invocation(message)
            if invocation.invocation_id is not None:
                error = f"Streaming hub method '{invocation.target}' is not supported."
                conn.enqueue(sp.encode_completion(invocation.invocation_id, error))
        elif kind not in _IGNORED_TYPES:
            raise sp.ProtocolError(f"unknown message type {kind}")

    def _invoke(self, conn: Connection, invocation: sp.Invocation) -> None:
        method = self._methods.get(invocation.target.lower())
        if method is None:
            error: str | None = f"Unknown hub method '{invocation.target}'"
        else:
            value, error = _bind(method, invocation.arguments)
            if error is None:
                try:
                    error = method.handler(conn, value)
                except Exception:
                    logger.exception("hub method %s failed", method.name)
                    error = f"Failed to invoke '{method.name}' due to an error on the server."
        if invocation.invocation_id is not None:
            conn.enqueue(sp.encode_completion(invocation.invocation_id, error))

    def _prefix(self, target: str, key: Any) -> bytes:
        return sp.invocation_prefix(target)

    def _subscribe(self, conn: Connection, target: str, key: Any) -> bool:
        """Add a subscription; False if the connection already had it."""
        if (target, key) in conn.subscriptions:
            return False
        channels = self._channels[target]
        channel = channels.get(key)
        if channel is None:
            channel = channels[key] = _Channel(self._prefix(target, key))
        channel.connections.add(conn)
        conn.subscriptions.add((target, key))
        return True

    def _unsubscribe(self, conn: Connection, target: str, key: Any) -> bool:
        """Remove a subscription; False if the connection did not have it."""
        if (target, key) not in conn.subscriptions:
            return False
        conn.subscriptions.discard((target, key))
        channels = self._channels[target]
        channel = channels.get(key)
        if channel is not None:
            channel.connections.discard(conn)
            if not channel.connections:
                del channels[key]
        return True


_IGNORED_TYPES = frozenset(
    {
        sp.MessageType.STREAM_ITEM,
        sp.MessageType.COMPLETION,
        sp.MessageType.CANCEL_INVOCATION,
        sp.MessageType.ACK,
        sp.MessageType.SEQUENCE,
    }
)


class UserHub(_Hub):
    """`/hubs/user`: account, order, position and trade events of the user's own accounts.

    Implements `UserSink`: register it with the exchange to receive `user_event` calls.
    """

    name: HubName = "user"

    def __init__(self, accounts: AccountDirectory) -> None:
        super().__init__((ACCOUNT, ORDER, POSITION, FILL))
        self._accounts = accounts
        self._method("SubscribeAccounts", None, self._subscribe_accounts)
        self._method("UnsubscribeAccounts", None, self._unsubscribe_accounts)
        for noun, target in (("Orders", ORDER), ("Positions", POSITION), ("Trades", FILL)):
            param = ("accountId", int)
            self._method(f"Subscribe{noun}", param, partial(self._subscribe_account, target))
            self._method(f"Unsubscribe{noun}", param, partial(self._unsubscribe_account, target))

    def user_event(self, account_id: int, target: str, action: int, data: dict[str, Any]) -> None:
        """Fan one user event out as `[{"action": n, "data": {...}}]` to its subscribers."""
        channels = self._channels.get(target)
        if channels is None:
            raise ValueError(f"unknown user-hub event target {target!r}")
        channel = channels.get(account_id)
        if channel is None:
            return
        record = b"".join(
            (channel.prefix, sp.dumps({"action": action, "data": data}), sp.INVOCATION_END)
        )
        for conn in channel.connections:
            conn.enqueue(record)

    def _subscribe_accounts(self, conn: Connection, _: object) -> None:
        for account_id in self._accounts.accounts_of(conn.user):
            self._subscribe(conn, ACCOUNT, account_id)

    def _unsubscribe_accounts(self, conn: Connection, _: object) -> None:
        for target, key in list(conn.subscriptions):
            if target == ACCOUNT:
                self._unsubscribe(conn, target, key)

    def _subscribe_account(self, target: str, conn: Connection, account_id: int) -> str | None:
        if account_id not in self._accounts.accounts_of(conn.user):
            return f"Account {account_id} not found for this user."
        self._subscribe(conn, target, account_id)
        return None

    def _unsubscribe_account(self, target: str, conn: Connection, account_id: int) -> None:
        self._unsubscribe(conn, target, account_id)


class MarketHub(_Hub):
    """`/hubs/market`: quotes, trades and depth as `[contractId, data]`.

    Implements `MarketSink`: register it with the exchange to receive `market_event` calls.
    """

    name: HubName = "market"

    def __init__(self, feed: MarketFeed) -> None:
        super().__init__((QUOTE, TRADE, DEPTH))
        self._feed = feed
        self._frozen_all = False
        self._frozen: set[str] = set()
        # snapshots held back from subscriptions made while frozen: sent on unfreeze
        self._withheld: dict[Connection, set[tuple[str, str]]] = {}
        param = ("contractId", str)
        for noun, target in (("Quotes", QUOTE), ("Trades", TRADE), ("MarketDepth", DEPTH)):
            self._method(f"SubscribeContract{noun}", param, partial(self._add, target))
            self._method(f"UnsubscribeContract{noun}", param, partial(self._remove, target))

    def market_event(self, contract_id: str, target: str, data: object) -> None:
        """Serialise one market event once and queue the bytes to every subscriber."""
        channels = self._channels.get(target)
        if channels is None:
            raise ValueError(f"unknown market-hub event target {target!r}")
        channel = channels.get(contract_id)
        if channel is None or self._frozen_all or contract_id in self._frozen:
            return
        record = b"".join((channel.prefix, sp.dumps(data), sp.INVOCATION_END))
        for conn in channel.connections:
            conn.enqueue(record)

    def freeze(self, contract_id: str | None, frozen: bool) -> None:
        """Stop (or resume) market data for one contract or, with None, for all of them.

        A subscription made while frozen gets its depth/quote snapshot when the stream resumes
        (before any later update), as a stalled feed would deliver it.
        """
        if contract_id is None:
            self._frozen_all = frozen
            if not frozen:
                self._frozen.clear()
        elif frozen:
            self._frozen.add(contract_id)
        else:
            self._frozen.discard(contract_id)
        if not frozen:
            self._send_withheld()

    def _send_withheld(self) -> None:
        for conn, pending in list(self._withheld.items()):
            for target, contract_id in sorted(pending):
                if self.is_frozen(contract_id):
                    continue
                pending.discard((target, contract_id))
                if not conn.closing and (target, contract_id) in conn.subscriptions:
                    self._send_snapshot(conn, target, contract_id)
            if not pending:
                del self._withheld[conn]

    def _send_snapshot(self, conn: Connection, target: str, contract_id: str) -> None:
        snapshot = (
            self._feed.depth_snapshot(contract_id)
            if target == DEPTH
            else self._feed.quote_snapshot(contract_id)
        )
        prefix = self._channels[target][contract_id].prefix
        conn.enqueue(b"".join((prefix, sp.dumps(snapshot), sp.INVOCATION_END)))

    def is_frozen(self, contract_id: str) -> bool:
        """True while market data for `contract_id` is held back by `freeze`."""
        return self._frozen_all or contract_id in self._frozen

    def detach(self, conn: Connection) -> None:
        """Forget the connection and release its market interest."""
        super().detach(conn)
        self._withheld.pop(conn, None)
        for contract_id in list(conn.interest):
            del conn.interest[contract_id]
            self._feed.release(contract_id)

    def _prefix(self, target: str, key: Any) -> bytes:
        return sp.invocation_prefix(target, key)

    def _add(self, target: str, conn: Connection, contract_id: str) -> str | None:
        if not self._feed.known_contract(contract_id):
            return f"Contract '{contract_id}' not found."
        if conn.closing or (target, contract_id) in conn.subscriptions:
            return None
        count = conn.interest.get(contract_id, 0)
        if count == 0:
            self._feed.acquire(contract_id)
        conn.interest[contract_id] = count + 1
        self._subscribe(conn, target, contract_id)
        if target in (DEPTH, QUOTE):
            if self.is_frozen(contract_id):
                self._withheld.setdefault(conn, set()).add((target, contract_id))
            else:
                self._send_snapshot(conn, target, contract_id)
        return None

    def _remove(self, target: str, conn: Connection, contract_id: str) -> None:
        if not self._unsubscribe(conn, target, contract_id):
            return
        pending = self._withheld.get(conn)
        if pending is not None:
            pending.discard((target, contract_id))
        count = conn.interest.pop(contract_id, 1) - 1
        if count > 0:
            conn.interest[contract_id] = count
        else:
            self._feed.release(contract_id)


# --- HTTP / WebSocket endpoints and fault hooks -----------------------------------------------


@dataclass(slots=True)
class _Pending:
    hub: HubName
    connection_id: str
    expires_at: float


def _request_token(conn: HTTPConnection) -> str | None:
    """Bearer token from the `Authorization` header, else the `access_token` query parameter."""
    header = conn.headers.get("authorization")
    if header:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return conn.query_params.get("access_token") or None


def _redact_token(websocket: WebSocket) -> None:
    """Mask `access_token` in the scope's query string: uvicorn logs it with the request line."""
    raw = websocket.scope.get("query_string", b"")
    if b"access_token" not in raw:
        return
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    masked = [(k, "***" if k == "access_token" else v) for k, v in pairs]
    websocket.scope["query_string"] = urlencode(masked).encode("latin-1")


async def _deny(websocket: WebSocket, status: int, body: str = "") -> None:
    try:
        await websocket.send_denial_response(Response(body, status_code=status))
    except RuntimeError:
        await websocket.close(code=1008)


def _text(message: Mapping[str, Any]) -> str:
    text = message.get("text")
    if text is not None:
        return str(text)
    try:
        return bytes(message.get("bytes") or b"").decode()
    except UnicodeDecodeError:
        raise sp.ProtocolError("frame is not valid UTF-8") from None


class Hubs:
    """Both hubs, their Starlette routes and the fault hooks; loop-thread only.

    Register `hubs.market` as the exchange's MarketSink and `hubs.user` as its UserSink, mount
    `hubs.routes()`, run uvicorn with `UVICORN_WS_OPTIONS`, and `await hubs.shutdown()` before
    stopping uvicorn so clients get a close message.
    """

    def __init__(
        self,
        config: SimConfig,
        auth: Authenticator,
        accounts: AccountDirectory,
        exchange: MarketFeed,
        *,
        queue_limit_bytes: int = 8 * 1024 * 1024,
        handshake_timeout: float = 15.0,
        negotiate_ttl: float = 60.0,
        close_timeout: float = 5.0,
    ) -> None:
        self.config = config
        self.user = UserHub(accounts)
        self.market = MarketHub(exchange)
        self._auth = auth
        self._hubs: dict[HubName, _Hub] = {"user": self.user, "market": self.market}
        self._pending: dict[str, _Pending] = {}
        self._queue_limit = queue_limit_bytes
        self._handshake_timeout = handshake_timeout
        self._negotiate_ttl = negotiate_ttl
        self._close_timeout = close_timeout
        self._shut_down = False
        self._blocked: set[str] = set()

    def routes(self) -> list[BaseRoute]:
        """`POST /hubs/{user,market}/negotiate` and the two WebSocket endpoints."""
        routes: list[BaseRoute] = []
        for name, hub in self._hubs.items():
            routes.append(
                Route(f"/hubs/{name}/negotiate", partial(self._negotiate, hub), methods=["POST"])
            )
            routes.append(WebSocketRoute(f"/hubs/{name}", partial(self._serve, hub)))
        return routes

    # fault hooks and diagnostics

    def drop(self, hub: HubSelector = "all", mode: DropMode = "clean") -> int:
        """Drop every connection of `hub`: "clean" sends an error close message then closes the
        WebSocket; "abort" kills the TCP connection without a close frame. Returns the count."""
        if mode not in ("clean", "abort"):
            raise ValueError(f"drop mode must be 'clean' or 'abort', got {mode!r}")
        conns = self._select(hub)
        for conn in conns:
            if mode == "clean":
                conn.close(ERROR_CLOSE, allow_reconnect=True)
            else:
                conn.abort()
        return len(conns)

    def freeze(self, contract_id: str | None = None, frozen: bool = True) -> None:
        """Stop (frozen=True) or resume market data for one contract or all; pings continue."""
        self.market.freeze(contract_id, frozen)

    def block(self, hub: HubSelector = "all", blocked: bool = True) -> None:
        """Refuse (blocked=True) or accept again new connections to `hub`: negotiate and the
        WebSocket upgrade answer 503 meanwhile; open connections are not touched."""
        names = list(self._hubs) if hub == "all" else [hub]
        if any(name not in self._hubs for name in names):
            raise ValueError(f"hub must be 'user', 'market' or 'all', got {hub!r}")
        if blocked:
            self._blocked.update(names)
        else:
            self._blocked.difference_update(names)

    def inject_raw(self, hub: HubSelector, text: str) -> int:
        """Send `text` verbatim, in a frame of its own, to every connection of `hub`."""
        conns = self._select(hub)
        for conn in conns:
            conn.enqueue_raw(text)
        return len(conns)

    def connection_count(self, hub: HubSelector = "all") -> int:
        """Open (handshaken) connections of `hub`."""
        return len(self._select(hub))

    def connections(self, hub: HubSelector = "all") -> list[ConnectionInfo]:
        """Per-connection subscriptions and queue state (for tests)."""
        return [conn.info() for conn in self._select(hub)]

    async def shutdown(self, grace: float = 2.0) -> None:
        """Refuse new connections, send every client a close message and wait for them to go."""
        self._shut_down = True
        conns = self._select("all")
        for conn in conns:
            conn.close(None, allow_reconnect=True)
        if not conns:
            return
        waits = [asyncio.ensure_future(conn.closed.wait()) for conn in conns]
        _, pending = await asyncio.wait(waits, timeout=grace)
        for waiter in pending:
            waiter.cancel()
        for conn in conns:
            if not conn.closed.is_set():
                conn.abort()

    def _select(self, hub: str) -> list[Connection]:
        if hub == "all":
            return [*self.user.connections, *self.market.connections]
        if hub not in self._hubs:
            raise ValueError(f"hub must be 'user', 'market' or 'all', got {hub!r}")
        return list(self._hubs[hub].connections)  # type: ignore[index]

    # negotiate

    async def _negotiate(self, hub: _Hub, request: Request) -> Response:
        if hub.name in self._blocked:
            return Response("hub unavailable", status_code=503)
        token = _request_token(request)
        if token is None or self._auth.authenticate(token) is None:
            return Response(status_code=401)
        raw = request.query_params.get("negotiateVersion")
        try:
            version = 0 if raw is None else int(raw)
        except ValueError:
            return Response(
                sp.dumps({"error": f"Invalid negotiateVersion '{raw}'."}),
                status_code=400,
                media_type="application/json",
            )
        version = 1 if version >= 1 else 0
        now = time.monotonic()
        self._pending = {k: p for k, p in self._pending.items() if p.expires_at > now}
        connection_id = secrets.token_urlsafe(16)
        body: dict[str, object] = {"negotiateVersion": version, "connectionId": connection_id}
        key = connection_id
        if version >= 1:
            key = body["connectionToken"] = secrets.token_urlsafe(16)
        body["availableTransports"] = _AVAILABLE_TRANSPORTS
        self._pending[key] = _Pending(hub.name, connection_id, now + self._negotiate_ttl)
        return Response(sp.dumps(body), media_type="application/json")

    def _claim(self, hub: _Hub, key: str | None) -> str | None:
        """Connection id for a connect URL's `?id=`: a negotiated one, or fresh when absent."""
        if key is None:
            return secrets.token_urlsafe(16)
        pending = self._pending.pop(key, None)
        if pending is None or pending.hub != hub.name or pending.expires_at < time.monotonic():
            return None
        return pending.connection_id

    # WebSocket

    async def _serve(self, hub: _Hub, websocket: WebSocket) -> None:
        token = _request_token(websocket)
        key = websocket.query_params.get("id")
        _redact_token(websocket)
        user = None if token is None else self._auth.authenticate(token)
        if user is None:
            await _deny(websocket, 401)
            return
        if self._shut_down or hub.name in self._blocked:
            await _deny(websocket, 503)
            return
        connection_id = self._claim(hub, key)
        if connection_id is None:
            await _deny(websocket, 404, "No Connection with that ID")
            return
        reader = sp.RecordReader()
        try:
            await websocket.accept()
            records = await self._handshake(websocket, reader)
        except (WebSocketDisconnect, OSError, RuntimeError):
            return
        if records is None:
            return
        conn = Connection(
            websocket,
            hub.name,
            connection_id,
            user,
            max_frame_bytes=self.config.max_frame_bytes,
            queue_limit_bytes=self._queue_limit,
            close_timeout=self._close_timeout,
        )
        hub.attach(conn)
        logger.debug("hub %s: connection %s open", hub.name, connection_id)
        try:
            await websocket.send_text(sp.HANDSHAKE_OK.decode())
            conn.start(self.config.ping_interval, self.config.client_timeout)
            self._handle(hub, conn, records)
            await self._read_loop(hub, conn, websocket, reader)
        except (WebSocketDisconnect, OSError, RuntimeError):
            pass
        finally:
            hub.detach(conn)
            await conn.stop()
            logger.debug("hub %s: connection %s closed", hub.name, connection_id)

    async def _handshake(self, websocket: WebSocket, reader: sp.RecordReader) -> list[str] | None:
        """Read and answer the handshake; the records after it, or None if the client failed."""
        try:
            async with asyncio.timeout(self._handshake_timeout):
                while True:
                    message = await websocket.receive()
                    if message["type"] == "websocket.disconnect":
                        return None
                    records = reader.feed(_text(message))
                    if records:
                        break
            sp.parse_handshake(records[0])
        except TimeoutError:
            await websocket.close(reason="Handshake was canceled.")
            return None
        except sp.ProtocolError as exc:
            await websocket.send_text(sp.handshake_response(str(exc)).decode())
            await websocket.close()
            return None
        return records[1:]

    async def _read_loop(
        self, hub: _Hub, conn: Connection, websocket: WebSocket, reader: sp.RecordReader
    ) -> None:
        clock = asyncio.get_running_loop().time
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            conn.last_received = clock()
            if conn.closing:
                continue
            try:
                records = reader.feed(_text(message))
            except sp.ProtocolError as exc:
                conn.close(f"{ERROR_CLOSE} InvalidDataException: {exc}")
                continue
            self._handle(hub, conn, records)

    @staticmethod
    def _handle(hub: _Hub, conn: Connection, records: list[str]) -> None:
        """Dispatch client records; a protocol violation closes the connection with an error."""
        try:
            for record in records:
                if conn.closing:
                    return
                hub.dispatch(conn, record)
        except sp.ProtocolError as exc:
            conn.close(f"{ERROR_CLOSE} InvalidDataException: {exc}")
