"""One `httpx.AsyncClient` (HTTP/2 where the server offers it) speaking JSON via orjson, over
`ConnectionShards`: `max_connections` keep-alive connections that stay cheap with 100 requests
in flight.

It sends one request and classifies the result; it knows nothing of tokens' lifecycle, rate
limits or retries. Network failures become `ProjectXConnectionError` with `request_sent`
telling whether the server may have seen the request. It also reads the gateway's clock from
`Date` headers for default time windows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import httpx
import orjson

from .config import ClientSettings
from .errors import ProjectXConnectionError, ProjectXTimeoutError

_JSON_HEADERS = {"content-type": "application/json", "accept": "application/json"}
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
_CLOCK_TOLERANCE = 2.0  # Date has 1 s resolution: smaller offsets are noise


@dataclass(slots=True)
class Reply:
    """Status, decoded JSON body (None when empty or not JSON) and Retry-After seconds."""

    status: int
    data: Any
    retry_after: float | None


class ConnectionShards(httpx.AsyncBaseTransport):
    """`max_connections` single-connection httpcore pools behind one transport.

    httpcore's pool rescans (and polls the socket of) every connection it holds, with a
    quadratic idle count, each time a request starts or ends: with 100 requests in flight that
    bookkeeping costs more than the requests. Here each request takes an idle connection from a
    stack (LIFO, so warm sockets are reused) and each pool only ever scans one connection. Once
    the server answers over HTTP/2, everything goes to the first pool and is multiplexed.
    """

    def __init__(self, size: int, *, http2: bool, proxy: str | None = None) -> None:
        self._http2 = http2
        self._proxy = proxy
        self._ssl = httpx.create_ssl_context()  # one CA load shared by every pool
        self._pools: list[httpx.AsyncHTTPTransport | None] = [None] * size  # made on first use
        self._idle = list(range(size - 1, -1, -1))
        self._in_flight = [0] * size
        self._next_busy = 0
        self.multiplexed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.multiplexed:
            index = 0
        elif self._idle:
            index = self._idle.pop()
        else:  # every connection busy: queue behind one, round robin
            index = self._next_busy = (self._next_busy + 1) % len(self._pools)
        pool = self._pools[index] or self._open(index)
        self._in_flight[index] += 1
        try:
            response = await pool.handle_async_request(request)
            if response.extensions.get("http_version") == b"HTTP/2":
                self.multiplexed = True
            await response.aread()  # frees the connection before it is handed out again
        finally:
            self._in_flight[index] -= 1
            if not self._in_flight[index] and not self.multiplexed:
                self._idle.append(index)
        return response

    def _open(self, index: int) -> httpx.AsyncHTTPTransport:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=30.0)
        pool = httpx.AsyncHTTPTransport(
            verify=self._ssl, http2=self._http2, limits=limits, proxy=self._proxy
        )
        self._pools[index] = pool
        return pool

    async def aclose(self) -> None:
        for pool in self._pools:
            if pool is not None:
                await pool.aclose()


class HttpTransport:
    """Sends requests to the gateway's REST base URL through one `httpx.AsyncClient`."""

    def __init__(self, settings: ClientSettings) -> None:
        timeout = httpx.Timeout(settings.timeout, connect=settings.connect_timeout)
        self._client = httpx.AsyncClient(
            base_url=settings.api_url,
            transport=ConnectionShards(
                settings.max_connections, http2=settings.http2, proxy=env_proxy(settings.api_url)
            ),
            timeout=timeout,
            headers=_JSON_HEADERS,
        )
        self._urls: dict[str, httpx.URL] = {}  # absolute URL per path: no per-call URL merge
        self.clock_offset = 0.0  # gateway clock minus ours, seconds (from `Date` headers)
        self._last_date: str | None = None
        self._date_ts = 0.0  # the last distinct `Date` header, as a mid-second epoch time

    def __repr__(self) -> str:
        return f"HttpTransport(base_url={str(self._client.base_url)!r}, closed={self.closed})"

    @property
    def closed(self) -> bool:
        return self._client.is_closed

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> Reply:
        """Send one request; raise `ProjectXConnectionError` on network failure."""
        headers = {"authorization": f"Bearer {token}"} if token else None
        content = orjson.dumps(body) if body is not None else None
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = self._client.base_url.join(path.lstrip("/"))
        try:
            response = await self._client.request(method, url, content=content, headers=headers)
        except httpx.TimeoutException as exc:
            sent = not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
            raise ProjectXTimeoutError(
                f"{method} {path}: timed out ({type(exc).__name__})",
                request_sent=sent,
                endpoint=path,
            ) from exc
        except httpx.TransportError as exc:
            sent = not isinstance(exc, _NOT_SENT)
            raise ProjectXConnectionError(
                f"{method} {path}: connection failed ({type(exc).__name__}: {exc})",
                request_sent=sent,
                endpoint=path,
            ) from exc
        self._read_clock(response.headers.get("date"))
        raw = response.content
        data: Any = None
        if raw and "json" in response.headers.get("content-type", "json"):
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                data = None
        return Reply(response.status_code, data, _retry_after(response))

    def gateway_now(self) -> datetime:
        """The gateway's current time as estimated from its `Date` headers (UTC)."""
        return datetime.now(UTC) + timedelta(seconds=self.clock_offset)

    def _read_clock(self, date: str | None) -> None:
        """Re-estimate the offset on every reply (a held simulator clock sends the same `Date`
        for minutes while ours runs on); each distinct header is parsed once."""
        if not date:
            return
        if date != self._last_date:
            try:
                self._date_ts = parsedate_to_datetime(date).timestamp() + 0.5
            except (TypeError, ValueError):
                return
            self._last_date = date
        offset = self._date_ts - time.time()
        self.clock_offset = offset if abs(offset) > _CLOCK_TOLERANCE else 0.0


def env_proxy(url: str) -> str | None:
    """The proxy the environment (`HTTPS_PROXY`, `NO_PROXY`, …) names for `url`: httpx reads
    these only for clients without a custom transport, so we pass it on ourselves."""
    host = urlsplit(url).hostname or ""
    if host in ("localhost", "127.0.0.1", "::1") or proxy_bypass(host):
        return None  # a local simulator is never proxied
    return getproxies().get(urlsplit(url).scheme)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # HTTP-date form: not used by the gateway; fall back to backoff
