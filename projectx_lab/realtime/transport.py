"""The small interface every hub transport implements, plus what they share: options, errors,
SignalR negotiation over httpx, URL helpers.

A transport is one connection's lifetime: `connect(url, token)`, `invoke(...)`, `ping()`,
`stop()`. Parsed records reach the sink on the event loop; `lost` resolves with a reason when
the connection ends for any cause. Supervision (reconnects, subscriptions) lives elsewhere.
"""

from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import orjson

from projectx_lab.client.errors import (
    AuthenticationError,
    ProjectXConnectionError,
    ProjectXError,
)

from .hub_protocol import MalformedHook, RecordSink
from .redact import redact


class RealtimeError(ProjectXError):
    """Base class of real-time client errors (texts never carry tokens)."""


class RealtimeConnectionError(RealtimeError, ProjectXConnectionError):
    """A hub connection could not be opened or was lost."""


class HubUnauthorizedError(RealtimeConnectionError, AuthenticationError):
    """The hub rejected the bearer token (401/403)."""


class HubInvocationError(RealtimeError):
    """The hub answered an invocation with an error completion."""


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """Connection knobs shared by both transports."""

    connect_timeout: float = 10.0  # negotiate + upgrade + handshake
    skip_negotiation: bool = False  # connect the WebSocket directly (as the gateway docs' sample)
    max_message_bytes: int = 16 * 1024 * 1024  # large depth snapshots exceed 1 MiB-capped clients
    close_timeout: float = 0.25  # wait this long for a polite close before aborting the socket

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "close_timeout", "max_message_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")


class Transport(abc.ABC):
    """One hub connection; records are delivered to `sink` on the event loop thread."""

    name: str

    def __init__(
        self,
        sink: RecordSink,
        options: TransportOptions,
        http: httpx.AsyncClient,
        on_malformed: MalformedHook,
    ) -> None:
        self._sink = sink
        self._options = options
        self._http = http
        self._on_malformed = on_malformed
        self._loop = asyncio.get_running_loop()
        self.lost: asyncio.Future[str] = self._loop.create_future()
        self.subscriptions: set[Any] = set()  # what the server holds on this connection

    @property
    @abc.abstractmethod
    def last_frame_ns(self) -> int:
        """perf_counter_ns of the last frame received (any record, pings included)."""

    @abc.abstractmethod
    async def connect(self, url: str, token: str) -> None:
        """Negotiate (unless skipped), open the socket and finish the SignalR handshake."""

    @abc.abstractmethod
    async def invoke(self, invocation_id: str, target: str, arguments: list[Any]) -> None:
        """Send one invocation record (the completion arrives through the sink)."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Send a SignalR keep-alive record."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Close the connection and release every thread, task and socket; never blocks the loop."""

    def mark_lost(self, reason: str) -> None:
        """Resolve `lost` with `reason` (first cause wins); loop thread only."""
        if not self.lost.done():
            self.lost.set_result(reason)

    def mark_lost_threadsafe(self, reason: str) -> None:
        """`mark_lost` from any thread."""
        try:
            self._loop.call_soon_threadsafe(self.mark_lost, reason)
        except RuntimeError:  # loop already closed: nobody is waiting any more
            pass


def http_url(url: str) -> str:
    """`url` with a ws/wss scheme turned into http/https."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit(parts._replace(scheme=scheme))


def ws_url(url: str) -> str:
    """`url` with an http/https scheme turned into ws/wss."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit(parts._replace(scheme=scheme))


def with_query(url: str, **params: str) -> str:
    """`url` with query parameters added or replaced."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


async def negotiate(http: httpx.AsyncClient, url: str, token: str, limit: float) -> str:
    """SignalR negotiate (v1, v0 replies accepted): the WebSocket URL carrying the connection id."""
    parts = urlsplit(http_url(url))
    endpoint = urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/negotiate"))
    try:
        response = await http.post(
            with_query(endpoint, negotiateVersion="1"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=limit,
        )
    except httpx.HTTPError as exc:
        raise RealtimeConnectionError(
            redact(f"negotiate failed: {type(exc).__name__}: {exc}")
        ) from None
    if response.status_code in (401, 403):
        raise HubUnauthorizedError(f"hub rejected the token (HTTP {response.status_code})")
    if response.status_code != 200:
        raise RealtimeConnectionError(f"negotiate failed: HTTP {response.status_code}")
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise RealtimeConnectionError("negotiate reply is not JSON") from None
    if not isinstance(body, dict):
        raise RealtimeConnectionError("negotiate reply is not an object")
    if body.get("error"):
        raise RealtimeConnectionError(redact(f"negotiate refused: {body['error']}"))
    transports = body.get("availableTransports")
    if (
        isinstance(transports, list)
        and transports
        and not any(isinstance(t, dict) and t.get("transport") == "WebSockets" for t in transports)
    ):
        raise RealtimeConnectionError("hub does not offer WebSockets")
    connection = body.get("connectionToken") or body.get("connectionId")
    if not isinstance(connection, str) or not connection:
        raise RealtimeConnectionError("negotiate reply has no connection id")
    return ws_url(with_query(url, id=connection))
