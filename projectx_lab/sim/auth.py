"""Simulator sessions: API-key credentials, opaque JWT-looking bearer tokens and their expiry."""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import orjson

_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()
_PRUNE_AT = 4096  # sessions kept before long-expired ones are forgotten


class TokenState(Enum):
    """What the store knows about a bearer token."""

    VALID = "valid"
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # never issued, malformed, or logged out


@dataclass(slots=True)
class _Session:
    username: str
    expires_at: float  # monotonic seconds


class Credentials:
    """The one user the simulator serves: user name (case-insensitive) plus API key."""

    __slots__ = ("_api_key", "username")

    def __init__(self, username: str, api_key: str) -> None:
        self.username = username
        self._api_key = api_key.encode()

    def matches(self, username: str, api_key: str) -> bool:
        """True when both the user name and the key match (constant-time key compare)."""
        key_ok = hmac.compare_digest(self._api_key, api_key.encode())
        return key_ok and username.casefold() == self.username.casefold()

    def knows_user(self, username: str) -> bool:
        return username.casefold() == self.username.casefold()

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r})"


class TokenStore:
    """Issues and checks session tokens; lifetime is `ttl` real seconds.

    Re-login and `refresh` never revoke older tokens (as on the real gateway); `revoke` does.
    Not thread-safe by itself: the simulator calls it from its event loop only.
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        if ttl <= 0:
            raise ValueError(f"token ttl must be > 0 seconds, got {ttl!r}")
        self.ttl = float(ttl)
        self._clock = clock
        self._sessions: dict[str, _Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def __repr__(self) -> str:
        return f"TokenStore(ttl={self.ttl}, sessions={len(self._sessions)})"

    def issue(self, username: str) -> str:
        """A fresh token for `username`, valid for `ttl` seconds from now."""
        now = self._clock()
        if len(self._sessions) >= _PRUNE_AT:
            self._prune(now)
        claims = {
            "sub": username,
            "jti": secrets.token_hex(8),
            "iat": int(time.time()),
            "exp": int(time.time() + self.ttl),
        }
        payload = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
        token = f"{_HEADER}.{payload}.{secrets.token_urlsafe(32)}"
        self._sessions[token] = _Session(username, now + self.ttl)
        return token

    def state(self, token: str | None) -> TokenState:
        """VALID, EXPIRED or UNKNOWN for a token (None counts as UNKNOWN)."""
        session = self._sessions.get(token) if token else None
        if session is None:
            return TokenState.UNKNOWN
        return TokenState.VALID if self._clock() < session.expires_at else TokenState.EXPIRED

    def is_valid(self, token: str | None) -> bool:
        return self.state(token) is TokenState.VALID

    def username(self, token: str) -> str | None:
        session = self._sessions.get(token)
        return session.username if session else None

    def refresh(self, token: str | None) -> tuple[TokenState, str | None]:
        """`Auth/validate`: a new token when `token` is valid, else its state and None."""
        state = self.state(token)
        if state is not TokenState.VALID or token is None:
            return state, None
        return state, self.issue(self._sessions[token].username)

    def revoke(self, token: str | None) -> bool:
        """`Auth/logout`: forget the token; True if it was known."""
        return self._sessions.pop(token, None) is not None if token else False

    def expire_all(self) -> int:
        """Fault hook: every token issued so far is expired from now on; returns how many."""
        now = self._clock()
        for session in self._sessions.values():
            session.expires_at = min(session.expires_at, now)
        return len(self._sessions)

    def _prune(self, now: float) -> None:
        horizon = now - max(self.ttl, 3600.0)
        self._sessions = {t: s for t, s in self._sessions.items() if s.expires_at > horizon}


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value (scheme case-insensitive)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
