"""`ProjectXRealtimeClient`: one supervised connection per hub, shared by every manager.

Subscriptions live in our own registry and are re-issued after every rebuild; each holder
(a manager, or the caller directly) claims its own kinds and the hub carries their union, so
one manager letting go never silences another (`claims.py`). Payloads are
unwrapped defensively (gateway-api.md §6.4, gotchas 1–3): user events arrive as
`{action, data}` envelopes or bare objects and are delivered as `(data, action)`; market events
arrive as `[contractId, data]` and are delivered as `(contract_id, data)`, with trades and depth
always as lists. Malformed payloads (and malformed items of a list, see `payloads.py`) are
logged once per event name, counted in `malformed_events` and skipped; the stream continues.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from .claims import DIRECT, Claims
from .dispatch import CallbackTasks, Event, EventStream
from .payloads import SCHEMAS, clean_items, item_ok
from .redact import excerpt, install_log_redaction, logger, redact, strip_token_from_url
from .supervisor import (
    ConnectionState,
    DispatchClock,
    HubSupervisor,
    Subscription,
    SupervisorOptions,
    TokenProvider,
    TransportFactory,
)
from .transport import RealtimeConnectionError, RealtimeError, Transport, TransportOptions

TOPSTEPX_USER_HUB = "https://rtc.topstepx.com/hubs/user"
TOPSTEPX_MARKET_HUB = "https://rtc.topstepx.com/hubs/market"

TransportName = Literal["signalrcore", "native"]

_USER_METHODS = {
    "orders": ("SubscribeOrders", "UnsubscribeOrders"),
    "positions": ("SubscribePositions", "UnsubscribePositions"),
    "trades": ("SubscribeTrades", "UnsubscribeTrades"),
}
_ACCOUNTS = Subscription("SubscribeAccounts", "UnsubscribeAccounts", ())
_MARKET_METHODS = {
    "quotes": ("SubscribeContractQuotes", "UnsubscribeContractQuotes"),
    "trades": ("SubscribeContractTrades", "UnsubscribeContractTrades"),
    "depth": ("SubscribeContractMarketDepth", "UnsubscribeContractMarketDepth"),
}
_QUOTE_SCHEMA = SCHEMAS["GatewayQuote"]
_ALIASES = {
    "quote": "GatewayQuote",
    "trade": "GatewayTrade",
    "depth": "GatewayDepth",
    "order": "GatewayUserOrder",
    "position": "GatewayUserPosition",
    "user_trade": "GatewayUserTrade",
    "account": "GatewayUserAccount",
    "state": "connection",
}


class SubscriptionError(RealtimeError):
    """The hub refused a subscription; the registry was left as it was."""


class ProjectXRealtimeClient:
    """Real-time client for the ProjectX user and market hubs.

    ```python
    async with create_realtime_client(token, account_id=123) as rt:
        rt.quote_event += lambda contract_id, quote: ...
        await rt.subscribe_market("CON.F.US.MNQ.Z26")
        async for contract_id, trades in rt.stream("GatewayTrade"):
            ...
    ```
    Events (`+=`-able, sync or async callbacks): `quote_event`, `trade_event`, `depth_event`
    `(contract_id, data)`; `order_event`, `position_event`, `user_trade_event`, `account_event`
    `(data, action)`; `state_event` `(hub, ConnectionState)` with connected / reconnecting /
    reconnected / disconnected (reconcile by REST on "reconnected": nothing is replayed).
    """

    def __init__(
        self,
        token: str | TokenProvider | None = None,
        *,
        user_hub_url: str = TOPSTEPX_USER_HUB,
        market_hub_url: str = TOPSTEPX_MARKET_HUB,
        account_id: int | None = None,
        transport: TransportName | TransportFactory = "signalrcore",
        keepalive_interval: float = 10.0,
        server_timeout: float = 30.0,
        stale_after: float | None = 30.0,
        connect_timeout: float = 10.0,
        invoke_timeout: float = 10.0,
        reconnect_initial: float = 0.25,
        reconnect_max: float = 30.0,
        skip_negotiation: bool = False,
    ) -> None:
        install_log_redaction()
        self._user_url, url_token_user = _check_url("user_hub_url", user_hub_url)
        self._market_url, url_token_market = _check_url("market_hub_url", market_hub_url)
        self._token_provider = _token_provider(token, url_token_user or url_token_market)
        if account_id is not None:
            _check_account_id(account_id)
        self._transport_kind = _check_transport(transport)
        transport_options = TransportOptions(
            connect_timeout=connect_timeout, skip_negotiation=bool(skip_negotiation)
        )
        common = {
            "keepalive_interval": keepalive_interval,
            "server_timeout": server_timeout,
            "invoke_timeout": invoke_timeout,
            "reconnect_initial": reconnect_initial,
            "reconnect_max": reconnect_max,
            "transport": transport_options,
        }
        self._market_options = SupervisorOptions(stale_after=stale_after, **common)
        self._user_options = SupervisorOptions(stale_after=None, **common)

        self._tasks = CallbackTasks()
        self.quote_event: Event[str, dict[str, Any]] = Event("GatewayQuote", self._tasks)
        self.trade_event: Event[str, list[dict[str, Any]]] = Event("GatewayTrade", self._tasks)
        self.depth_event: Event[str, list[dict[str, Any]]] = Event("GatewayDepth", self._tasks)
        self.order_event: Event[dict[str, Any], int | None] = Event("GatewayUserOrder", self._tasks)
        self.position_event: Event[dict[str, Any], int | None] = Event(
            "GatewayUserPosition", self._tasks
        )
        self.user_trade_event: Event[dict[str, Any], int | None] = Event(
            "GatewayUserTrade", self._tasks
        )
        self.account_event: Event[dict[str, Any], int | None] = Event(
            "GatewayUserAccount", self._tasks
        )
        self.state_event: Event[str, ConnectionState] = Event("connection", self._tasks)

        self._user_claims: Claims[int] = Claims()
        self._market_claims: Claims[str] = Claims()
        if account_id is not None:
            self._user_claims.add(account_id, DIRECT, frozenset((*_USER_METHODS, "accounts")))
        self._clock = DispatchClock()
        self._warned: set[str] = set()
        self.malformed_events = 0
        self._http: httpx.AsyncClient | None = None
        self._user: HubSupervisor | None = None
        self._market: HubSupervisor | None = None
        self._started = False
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> ProjectXRealtimeClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open both hub connections (raising `RealtimeConnectionError` if either fails)."""
        if self._closed:
            raise RuntimeError("this real-time client is closed; create a new one")
        if self._started:
            raise RuntimeError("this real-time client is already connected")
        self._started = True
        self._http = httpx.AsyncClient(timeout=self._user_options.transport.connect_timeout)
        self._user = self._supervisor("user", self._user_url, self._user_options)
        self._market = self._supervisor("market", self._market_url, self._market_options)
        try:
            results = await asyncio.gather(
                self._user.start(), self._market.start(), return_exceptions=True
            )
        except BaseException:  # cancelled while connecting: release everything
            await self.close()
            raise
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            await self.close()
            if isinstance(failure, RealtimeError):
                raise failure
            if isinstance(failure, Exception):
                raise RealtimeConnectionError(
                    redact(f"{type(failure).__name__}: {failure}")
                ) from None
            raise failure

    async def close(self) -> None:
        """Close both hubs, finish or cancel callback tasks and end every stream (idempotent)."""
        if self._closed:
            return
        self._closed = True
        hubs = [h for h in (self._user, self._market) if h is not None]
        outcomes = await asyncio.gather(*(hub.close() for hub in hubs), return_exceptions=True)
        await self._tasks.close(grace=0.1)
        for event in self._events().values():
            event.close_streams()
        if self._http is not None:
            await self._http.aclose()
        for outcome in outcomes:  # surfaced only once everything else has been released
            if isinstance(outcome, BaseException):
                raise outcome

    def _supervisor(self, hub: str, url: str, options: SupervisorOptions) -> HubSupervisor:
        assert self._http is not None
        return HubSupervisor(
            hub,
            url,
            transport_factory=_make_factory(self._transport_kind, options.transport, self._http),
            token_provider=self._token_provider,
            routes=self._user_routes() if hub == "user" else self._market_routes(),
            desired=self._desired_user if hub == "user" else self._desired_market,
            on_state=self._on_state,
            options=options,
            clock=self._clock,
            expects_data=(lambda: bool(self._market_claims)) if hub == "market" else None,
        )

    # -- public API -----------------------------------------------------------------------

    def state(self, hub: Literal["user", "market"]) -> ConnectionState:
        """Current state of one hub's connection."""
        supervisor = self._hub(hub)
        return supervisor.state if supervisor is not None else ConnectionState.DISCONNECTED

    @property
    def is_connected(self) -> bool:
        """True when both hubs are connected and subscribed."""
        return all(h is not None and h.connected for h in (self._user, self._market))

    @property
    def frame_time_ns(self) -> int:
        """`perf_counter_ns` at which the frame now being dispatched reached the transport."""
        return self._clock.frame_ns

    @property
    def stats(self) -> dict[str, Any]:
        """Reconnect and malformed-record counters per hub."""
        out: dict[str, Any] = {"malformed_events": self.malformed_events}
        for name in ("user", "market"):
            hub = self._hub(name)  # type: ignore[arg-type]
            out[name] = {
                "state": hub.state.value if hub else "disconnected",
                "reconnects": hub.reconnects if hub else 0,
                "malformed_records": hub.malformed if hub else 0,
                "last_loss_reason": hub.last_loss_reason if hub else None,
            }
        return out

    @property
    def user_subscriptions(self) -> dict[int, frozenset[str]]:
        """Remembered user-hub subscriptions (all holders together): account id → kinds."""
        return self._user_claims.union()

    @property
    def market_subscriptions(self) -> dict[str, frozenset[str]]:
        """Remembered market-hub subscriptions (all holders together): contract id → kinds."""
        return self._market_claims.union()

    def on(self, event_name: str, callback: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        """Register `callback` for an event by wire name ("GatewayQuote", …), alias ("quote",
        "order", …) or "connection"; returns the callback."""
        return self._event(event_name).connect(callback)

    def off(self, event_name: str, callback: Callable[[Any, Any], Any]) -> None:
        """Unregister a callback registered with `on`."""
        self._event(event_name).disconnect(callback)

    def stream(self, event_name: str, maxsize: int = 10_000) -> EventStream[Any, Any]:
        """Async iterator of `(a, b)` tuples for an event; ends when the client closes."""
        return self._event(event_name).stream(maxsize)

    async def subscribe_user(
        self,
        account_id: int,
        *,
        orders: bool = True,
        positions: bool = True,
        trades: bool = True,
        accounts: bool = True,
        owner: Hashable = DIRECT,
    ) -> None:
        """Subscribe to one account's orders/positions/trades and to account updates.

        Remembered and re-issued after every reconnect. `owner` names the holder (managers
        pass themselves); the hub drops a kind only when no holder is left. Raises
        `SubscriptionError` (and forgets the request) if the hub refuses it; during a
        reconnect it waits for the hub (up to `invoke_timeout`) to hear its answer.
        """
        _check_account_id(account_id)
        kinds = _kinds(orders=orders, positions=positions, trades=trades, accounts=accounts)
        rollback = self._user_claims.add(account_id, owner, kinds)
        await self._apply(self._user, set(_user_subs_for(account_id, kinds)), rollback)

    async def unsubscribe_user(
        self,
        account_id: int,
        *,
        orders: bool = True,
        positions: bool = True,
        trades: bool = True,
        accounts: bool = True,
        owner: Hashable = DIRECT,
    ) -> None:
        """Release `owner`'s hold on the given kinds of one account; the hub unsubscribes the
        kinds nobody holds any more."""
        _check_account_id(account_id)
        kinds = _kinds(orders=orders, positions=positions, trades=trades, accounts=accounts)
        self._user_claims.remove(account_id, owner, kinds)
        await self._apply(self._user, set(), None)

    async def subscribe_market(
        self,
        contract_id: str,
        *,
        quotes: bool = True,
        trades: bool = True,
        depth: bool = True,
        owner: Hashable = DIRECT,
    ) -> None:
        """Subscribe to one contract's quotes, trades and/or depth (remembered across reconnects).

        `owner` names the holder (managers pass themselves); the hub drops a kind only when no
        holder is left. Raises `SubscriptionError` (and forgets the request) if the hub
        refuses it; during a reconnect it waits for the hub (up to `invoke_timeout`) to hear
        its answer.
        """
        _check_contract_id(contract_id)
        kinds = _kinds(quotes=quotes, trades=trades, depth=depth)
        rollback = self._market_claims.add(contract_id, owner, kinds)
        await self._apply(self._market, set(_market_subs_for(contract_id, kinds)), rollback)

    async def unsubscribe_market(
        self,
        contract_id: str,
        *,
        quotes: bool = True,
        trades: bool = True,
        depth: bool = True,
        owner: Hashable = DIRECT,
    ) -> None:
        """Release `owner`'s hold on the given kinds of one contract; the hub unsubscribes the
        kinds nobody holds any more."""
        _check_contract_id(contract_id)
        kinds = _kinds(quotes=quotes, trades=trades, depth=depth)
        self._market_claims.remove(contract_id, owner, kinds)
        await self._apply(self._market, set(), None)

    def __repr__(self) -> str:
        return (
            f"ProjectXRealtimeClient(transport={self._transport_name()!r}, "
            f"user={self.state('user').value}, market={self.state('market').value}, "
            f"user_hub={redact(self._user_url)!r}, market_hub={redact(self._market_url)!r}, "
            f"accounts={sorted(self._user_claims.union())}, "
            f"contracts={sorted(self._market_claims.union())})"
        )

    # -- internals ------------------------------------------------------------------------

    async def _apply(
        self,
        supervisor: HubSupervisor | None,
        mine: set[Subscription],
        rollback: Callable[[], None] | None,
    ) -> None:
        if supervisor is None or self._closed:
            return  # not connected yet: the first connect issues the registry
        try:
            failures = await supervisor.sync(wait=bool(mine))
        except RealtimeConnectionError as exc:
            logger.info("%s hub: subscription change deferred (%s)", supervisor.hub, exc)
            return
        refused = {sub: err for sub, err in failures.items() if sub in mine}
        if refused and rollback is not None:
            rollback()
            try:
                await supervisor.sync()
            except RealtimeConnectionError:
                pass
            detail = "; ".join(f"{s.subscribe}{list(s.args)}: {e}" for s, e in refused.items())
            raise SubscriptionError(redact(f"{supervisor.hub} hub refused {detail}"))

    def _hub(self, hub: Literal["user", "market"]) -> HubSupervisor | None:
        if hub == "user":
            return self._user
        if hub == "market":
            return self._market
        raise ValueError(f"hub must be 'user' or 'market', got {hub!r}")

    def _events(self) -> dict[str, Event[Any, Any]]:
        return {
            e.name: e
            for e in (
                self.quote_event,
                self.trade_event,
                self.depth_event,
                self.order_event,
                self.position_event,
                self.user_trade_event,
                self.account_event,
                self.state_event,
            )
        }

    def _event(self, name: str) -> Event[Any, Any]:
        events = self._events()
        event = events.get(_ALIASES.get(name, name)) if isinstance(name, str) else None
        if event is None:
            known = ", ".join([*events, *_ALIASES])
            raise ValueError(f"unknown event {name!r}; known: {known}")
        return event

    def _transport_name(self) -> str:
        kind = self._transport_kind
        return kind if isinstance(kind, str) else getattr(kind, "__name__", "custom")

    def _on_state(self, hub: str, state: ConnectionState) -> None:
        logger.info("%s hub %s", hub, state.value)
        self.state_event.emit(hub, state)

    def _desired_user(self) -> Iterable[Subscription]:
        out: list[Subscription] = []
        for account_id, kinds in self._user_claims.union().items():
            out.extend(_user_subs_for(account_id, kinds))
        return out

    def _desired_market(self) -> Iterable[Subscription]:
        out: list[Subscription] = []
        for contract_id, kinds in self._market_claims.union().items():
            out.extend(_market_subs_for(contract_id, kinds))
        return out

    def _user_routes(self) -> dict[str, Callable[[Any], None]]:
        events = (self.order_event, self.position_event, self.user_trade_event, self.account_event)
        return {e.name: functools.partial(self._route_user, e) for e in events}

    def _market_routes(self) -> dict[str, Callable[[Any], None]]:
        return {
            "GatewayQuote": self._route_quote,
            "GatewayTrade": functools.partial(self._route_market_list, self.trade_event),
            "GatewayDepth": functools.partial(self._route_market_list, self.depth_event),
        }

    def _route_quote(self, args: Any) -> None:
        try:
            contract_id, data = args
        except (TypeError, ValueError):
            self._malformed("GatewayQuote", args)
            return
        if contract_id.__class__ is not str or not item_ok(_QUOTE_SCHEMA, data):
            self._malformed("GatewayQuote", args)
            return
        self.quote_event.emit(contract_id, data)

    def _route_market_list(self, event: Event[str, list[Any]], args: Any) -> None:
        try:
            contract_id, data = args
        except (TypeError, ValueError):
            self._malformed(event.name, args)
            return
        if data.__class__ is dict:
            data = [data]
        elif data.__class__ is not list:
            self._malformed(event.name, args)
            return
        if contract_id.__class__ is not str:
            self._malformed(event.name, args)
            return
        data, bad = clean_items(event.name, data)
        if bad is not None:
            self._malformed(event.name, bad)
            if not data:
                return
        event.emit(contract_id, data)

    def _route_user(self, event: Event[dict[str, Any], int | None], args: Any) -> None:
        envelope = args[0] if args.__class__ is list and args else None
        if envelope.__class__ is not dict:
            self._malformed(event.name, args)
            return
        data = envelope.get("data")  # type: ignore[union-attr]
        action = envelope.get("action") if data.__class__ is dict else None  # type: ignore[union-attr]
        if data.__class__ is not dict:
            data = envelope  # a bare object, as the docs show it
        if not item_ok(SCHEMAS[event.name], data):
            self._malformed(event.name, args)
            return
        event.emit(data, action)  # type: ignore[arg-type]

    def _malformed(self, name: str, args: Any) -> None:
        """Count a payload (or item) that failed the checks of `payloads.py`; log the first
        one per event name."""
        self.malformed_events += 1
        if name in self._warned:
            return
        self._warned.add(name)
        logger.warning(
            "skipped a malformed %s payload (logged once): %s", name, excerpt(repr(args), 200)
        )


def create_realtime_client(
    jwt_token: str | TokenProvider | Any | None = None,
    account_id: int | None = None,
    *,
    user_hub_url: str | None = None,
    market_hub_url: str | None = None,
    transport: TransportName | TransportFactory = "signalrcore",
    **options: Any,
) -> ProjectXRealtimeClient:
    """A `ProjectXRealtimeClient` (use it with `async with`).

    `jwt_token` is a session token, a zero-argument callable (sync or async) returning the
    current one (called on every (re)connect), or a `ProjectX` client: then its
    `get_session_token`, hub URLs and selected account are used, and a token the hub rejects
    is replaced by a fresh login (`ClientTokenSource`). Hub URLs otherwise default
    to `PROJECTX_USER_HUB_URL` / `PROJECTX_MARKET_HUB_URL`, else TopstepX. `transport` is
    "signalrcore" (default) or "native" (asyncio websockets, no threads).
    """
    if not isinstance(jwt_token, str) and hasattr(jwt_token, "get_session_token"):
        settings = getattr(jwt_token, "settings", None)
        user_hub_url = user_hub_url or getattr(settings, "user_hub_url", None)
        market_hub_url = market_hub_url or getattr(settings, "market_hub_url", None)
        if account_id is None:
            account_id = getattr(getattr(jwt_token, "account_info", None), "id", None)
        jwt_token = ClientTokenSource(jwt_token)
    if user_hub_url is None:
        user_hub_url = os.environ.get("PROJECTX_USER_HUB_URL") or TOPSTEPX_USER_HUB
    if market_hub_url is None:
        market_hub_url = os.environ.get("PROJECTX_MARKET_HUB_URL") or TOPSTEPX_MARKET_HUB
    return ProjectXRealtimeClient(
        jwt_token,
        account_id=account_id,
        user_hub_url=user_hub_url,
        market_hub_url=market_hub_url,
        transport=transport,
        **options,
    )


class ClientTokenSource:
    """Hub tokens from a `ProjectX` client: its current token on every (re)connect, and a new
    session (`renew_session_token`) when a hub rejects that token (revoked or expired early)."""

    __slots__ = ("_client",)

    def __init__(self, client: Any) -> None:
        self._client = client

    async def __call__(self) -> str:
        return await self._client.get_session_token()

    async def renew(self, rejected: str) -> None:
        renew = getattr(self._client, "renew_session_token", None)
        if renew is not None:
            await renew(rejected)

    def __repr__(self) -> str:
        return f"ClientTokenSource({type(self._client).__name__})"


# -- helpers ------------------------------------------------------------------------------


def _make_factory(
    kind: TransportName | TransportFactory, options: TransportOptions, http: httpx.AsyncClient
) -> Callable[..., Transport]:
    if kind == "signalrcore":
        from .signalrcore_transport import SignalRCoreTransport as cls
    elif kind == "native":
        from .native_transport import NativeTransport as cls  # type: ignore[assignment]
    else:
        return functools.partial(kind, options=options, http=http)  # type: ignore[arg-type]
    return functools.partial(_build, cls, options, http)


def _build(
    cls: type[Transport],
    options: TransportOptions,
    http: httpx.AsyncClient,
    sink: Any,
    on_malformed: Any,
) -> Transport:
    return cls(sink, options, http, on_malformed)  # type: ignore[call-arg]


def _check_transport(transport: object) -> TransportName | TransportFactory:
    if transport in ("signalrcore", "native") or callable(transport):
        return transport  # type: ignore[return-value]
    raise ValueError(f"transport must be 'signalrcore', 'native' or a factory, got {transport!r}")


def _check_url(name: str, url: object) -> tuple[str, str | None]:
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"{name} must be a non-empty URL string")
    clean, token = strip_token_from_url(url.strip())
    parts = urlsplit(clean)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        raise ValueError(f"{name} must be an http(s) or ws(s) URL, got {redact(clean)!r}")
    return clean, token


def _token_provider(token: object, url_token: str | None) -> TokenProvider:
    if token is None:
        token = url_token
    if isinstance(token, str):
        if not token.strip():
            raise ValueError("the session token is empty")
        static = token.strip()
        return lambda: static
    if callable(token):
        return token  # type: ignore[return-value]
    raise TypeError(
        "token must be a session token string or a callable returning one "
        f"(got {type(token).__name__})"
    )


def _check_account_id(account_id: object) -> None:
    if not isinstance(account_id, int) or isinstance(account_id, bool) or account_id <= 0:
        raise ValueError(f"account_id must be a positive int, got {account_id!r}")


def _check_contract_id(contract_id: object) -> None:
    if not isinstance(contract_id, str) or not contract_id or contract_id != contract_id.strip():
        raise ValueError(f"contract_id must be a non-empty, unpadded string, got {contract_id!r}")


def _kinds(**flags: bool) -> frozenset[str]:
    kinds = frozenset(name for name, on in flags.items() if on)
    if not kinds:
        raise ValueError(f"nothing selected: enable at least one of {', '.join(flags)}")
    return kinds


def _user_subs_for(account_id: int, kinds: Iterable[str]) -> Iterable[Subscription]:
    for kind in kinds:
        if kind == "accounts":
            yield _ACCOUNTS
        else:
            subscribe, unsubscribe = _USER_METHODS[kind]
            yield Subscription(subscribe, unsubscribe, (account_id,))


def _market_subs_for(contract_id: str, kinds: Iterable[str]) -> Iterable[Subscription]:
    for kind in kinds:
        subscribe, unsubscribe = _MARKET_METHODS[kind]
        yield Subscription(subscribe, unsubscribe, (contract_id,))
