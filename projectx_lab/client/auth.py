"""Session token lifecycle: `loginKey`, refresh via `validate` before expiry, single-flight
re-login after a 401, and a token *factory* for hub connections (gotchas 19, §1.5–1.7).

Expiry is read from the JWT (`exp − iat`, measured on our monotonic clock so client/server
clock skew does not matter); without readable claims `token_lifetime` is assumed.
A background task refreshes `refresh_margin` (at most 20 % of the lifetime) before expiry, so
the factory hands hubs a valid token even when REST sits idle.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from .config import ClientSettings
from .errors import AuthenticationError, ProjectXError, envelope_error
from .redaction import SecretRedactor

log = logging.getLogger("projectx_lab.client")

LOGIN = "/api/Auth/loginKey"
VALIDATE = "/api/Auth/validate"

AuthCall = Callable[[str, Any, "str | None"], Awaitable[Any]]


def token_lifetime(token: str, default: float) -> float:
    """Seconds a fresh token lives, from its JWT `exp`/`iat` claims (else `default`)."""
    try:
        payload = token.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = float(claims["exp"])
        iat = float(claims.get("iat") or time.time())
    except (IndexError, KeyError, TypeError, ValueError, orjson.JSONDecodeError):
        return default
    lifetime = exp - iat
    return lifetime if lifetime > 0 else default


class TokenManager:
    """Owns the current session token; every coroutine asks it for a token before a call."""

    def __init__(self, settings: ClientSettings, call: AuthCall, redactor: SecretRedactor) -> None:
        self._settings = settings
        self._call = call  # (path, body, token) -> JSON payload; retried, rate limited
        self._redactor = redactor
        self._token: str | None = None
        self._issued: list[str] = []
        self._expires_at = 0.0
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()
        self._refresher: asyncio.Task[None] | None = None
        self.logins = 0
        self.refreshes = 0

    def __repr__(self) -> str:
        state = "authenticated" if self._token else "anonymous"
        return f"TokenManager({state}, expires_in={self.expires_in})"

    # ------------------------------------------------------------------ reading the token

    @property
    def token(self) -> str | None:
        """The current token (None before the first login)."""
        return self._token

    @property
    def expires_in(self) -> float | None:
        """Seconds until the current token expires (None before login)."""
        if self._token is None:
            return None
        return round(max(0.0, self._expires_at - time.monotonic()), 3)

    def token_factory(self) -> str:
        """Synchronous factory for hub connections: the current token, refreshed in background."""
        if self._token is None:
            raise AuthenticationError("not authenticated yet: call authenticate() first")
        return self._token

    async def fresh_token(self) -> str:
        """A token valid for a while: logs in when needed, refreshes when due."""
        token = self._token
        if token is None:
            return await self.login_once(None)
        if time.monotonic() >= self._refresh_at:
            await self.refresh()
            return self._token  # type: ignore[return-value]
        return token

    # ------------------------------------------------------------------ changing the token

    async def login_once(self, stale: str | None) -> str:
        """Log in unless someone already replaced `stale` (the token a 401 was answered to)."""
        async with self._lock:
            if self._token is not None and self._token != stale:
                return self._token
            return await self._login()

    async def refresh(self) -> None:
        """`validate` for a new token; falls back to a fresh login when validate refuses."""
        async with self._lock:
            token = self._token
            if token is None or time.monotonic() < self._refresh_at:
                return
            try:
                payload = await self._call(VALIDATE, None, token)
            except AuthenticationError:
                payload = None
            new = payload.get("newToken") if isinstance(payload, dict) else None
            if (
                isinstance(payload, dict)
                and payload.get("success")
                and isinstance(new, str)
                and new
            ):
                self.refreshes += 1
                self._set(new)
                log.debug("session token refreshed via validate")
            else:
                await self._login()

    async def _login(self) -> str:
        s = self._settings
        payload = await self._call(LOGIN, {"userName": s.username, "apiKey": s.api_key}, None)
        if not isinstance(payload, dict):
            raise AuthenticationError("login returned an unreadable response", endpoint=LOGIN)
        if not payload.get("success"):
            raise envelope_error(LOGIN, payload)
        token = payload.get("token")
        if not isinstance(token, str) or not token:
            raise AuthenticationError("login succeeded without a token", endpoint=LOGIN)
        self.logins += 1
        self._set(token)
        log.debug("logged in as %s", s.username)
        return token

    def _set(self, token: str) -> None:
        self._redactor.add(token)
        self._issued.append(token)
        lifetime = token_lifetime(token, self._settings.token_lifetime)
        now = time.monotonic()
        self._token = token
        self._expires_at = now + lifetime
        self._refresh_at = self._expires_at - min(self._settings.refresh_margin, 0.2 * lifetime)
        self._ensure_refresher()

    # ------------------------------------------------------------------ background refresh

    def _ensure_refresher(self) -> None:
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(
                self._refresh_loop(), name="projectx-token-refresh"
            )

    async def _refresh_loop(self) -> None:
        failures = 0
        while True:
            await asyncio.sleep(max(0.0, self._refresh_at - time.monotonic()))
            try:
                await self.refresh()
                failures = 0
            except ProjectXError as exc:
                failures += 1
                log.warning("token refresh failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(min(60.0, 0.5 * 2**failures))

    async def aclose(self) -> None:
        """Stop the refresher and forget issued tokens (they stay valid on the gateway)."""
        task, self._refresher = self._refresher, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for token in self._issued:
            self._redactor.discard(token)
        self._issued.clear()
        self._token = None
