"""The request pipeline every call goes through: rate limiter → transport → status mapping →
envelope check, with the token manager in front and two entry points:

* `read()` — safe requests: retried on transient failures (see `retry.py`);
* `write()` — mutations: one attempt, never retried; only a 401 (refused before the handler
  ran) is replayed once after re-login. Callers resolve ambiguous outcomes by reading back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from tenacity import RetryCallState

from .auth import TokenManager
from .config import ClientSettings
from .errors import (
    MUTATIONS,
    AuthenticationError,
    NotFoundError,
    OrderRejectedError,
    ProjectXError,
    RateLimitError,
    RequestRejectedError,
    ServerError,
    envelope_error,
)
from .ratelimit import RateLimiter
from .redaction import SecretRedactor
from .retry import ReadRetryPolicy
from .transport import HttpTransport, Reply


@dataclass(slots=True)
class ClientStats:
    """Counters for health checks, tests and benchmarks."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    unauthorized: int = 0
    lookups: int = 0


class _Unauthorized(Exception):
    """HTTP 401: handled inside the pipeline, never escapes it."""


class Session:
    """Authenticated, rate-limited, retrying access to the gateway's REST API."""

    def __init__(self, settings: ClientSettings, redactor: SecretRedactor) -> None:
        self.settings = settings
        self.stats = ClientStats()
        self.transport = HttpTransport(settings)
        self.limiter = RateLimiter(settings)
        self.policy = ReadRetryPolicy(settings, on_retry=self._count_retry)
        self.auth = TokenManager(settings, self._auth_call, redactor)
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop its connections live on

    def __repr__(self) -> str:
        return f"Session(api_url={self.settings.api_url!r}, auth={self.auth!r})"

    async def aclose(self) -> None:
        await self.auth.aclose()
        await self.transport.aclose()

    # ------------------------------------------------------------------ entry points

    async def read(self, path: str, body: Any = None, *, method: str = "POST") -> Any:
        """An authenticated safe request, retried on transient failures; returns the payload."""
        async for attempt in self.policy.retrying(path=path):
            with attempt:
                return await self._authorized(method, path, body)
        raise AssertionError("unreachable")  # pragma: no cover

    async def write(self, path: str, body: Any) -> dict[str, Any]:
        """An authenticated mutation: exactly one attempt (plus a replay after a 401)."""
        return await self._authorized("POST", path, body)

    async def anonymous(self, path: str, *, method: str = "GET") -> Any:
        """One unauthenticated request (`Status/ping`), not retried; raw payload, no envelope."""
        return await self._once(method, path, None, None)

    # ------------------------------------------------------------------ internals

    async def _auth_call(self, path: str, body: Any, token: str | None) -> Any:
        async for attempt in self.policy.retrying(path=path):
            with attempt:
                try:
                    return await self._once("POST", path, body, token)
                except _Unauthorized:
                    raise AuthenticationError(f"{path} answered 401", endpoint=path) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _authorized(self, method: str, path: str, body: Any) -> Any:
        token = await self.auth.fresh_token()
        try:
            data = await self._once(method, path, body, token)
        except _Unauthorized:
            self.stats.unauthorized += 1
            token = await self.auth.login_once(token)
            try:
                data = await self._once(method, path, body, token)
            except _Unauthorized:
                raise AuthenticationError(
                    f"{path} answered 401 even after a fresh login", endpoint=path
                ) from None
        if isinstance(data, dict):
            if data.get("success") is False:
                raise envelope_error(path, data)
            return data
        raise ServerError(f"{path}: unreadable response body", status=200, endpoint=path)

    async def _once(self, method: str, path: str, body: Any, token: str | None) -> Any:
        if self.transport.closed:
            raise ProjectXError("this client is closed; create a new one", endpoint=path)
        self._check_loop(path)
        await self.limiter.acquire(path)
        self.stats.requests += 1
        reply = await self.transport.request(method, path, body, token)
        if 200 <= reply.status < 300:
            return reply.data
        raise self._status_error(path, reply)

    def _check_loop(self, path: str) -> None:
        """Refuse, before sending, a request from another event loop than the (still open) one
        the client's connections and waiters live on: its reply could not be read there."""
        loop = asyncio.get_running_loop()
        home = self._loop
        if home is None or home.is_closed():
            self._loop = loop
        elif home is not loop:
            raise ProjectXError(
                f"{path}: this client (and any suite using it) belongs to another event loop "
                "than this call's; nothing was sent. Call it on its own loop: for a suite "
                "made by %px_connect in a terminal or script, `run(...)` from "
                "projectx_lab.notebook instead of `await`.",
                endpoint=path,
            )

    def _status_error(self, path: str, reply: Reply) -> Exception:
        status = reply.status
        if status == 401:
            return _Unauthorized()
        if status == 429:
            self.stats.rate_limited += 1
            wait = reply.retry_after if reply.retry_after is not None else 1.0
            self.limiter.pause(min(wait, self.settings.max_retry_after))
            return RateLimitError(
                f"{path}: rate limited (HTTP 429, retry after {wait:g}s)",
                retry_after=reply.retry_after,
                endpoint=path,
            )
        if status >= 500:
            self.stats.server_errors += 1
            return ServerError(f"{path}: server error HTTP {status}", status=status, endpoint=path)
        if status == 404:
            return NotFoundError(f"{path}: HTTP 404 (no such endpoint)", endpoint=path)
        detail = _problem_detail(reply.data)
        text = f"{path}: HTTP {status}" + (f": {detail}" if detail else "")
        cls: type[ProjectXError] = OrderRejectedError if path in MUTATIONS else RequestRejectedError
        return cls(text, endpoint=path, gateway_message=detail)

    def _count_retry(self, _state: RetryCallState) -> None:
        self.stats.retries += 1


def _problem_detail(data: Any) -> str | None:
    """The human part of an RFC 7807 `ProblemDetails` body (400 answers)."""
    if isinstance(data, dict):
        detail = data.get("detail") or data.get("title")
        return str(detail) if detail else None
    return None
