"""The simulator's ASGI app: `/api/...` (any case) to the REST layer, everything else to the
SignalR hubs' Starlette routes; wires hubs, faults and REST to one `Exchange`."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from starlette.routing import Router

from .auth import Credentials, TokenStore
from .exchange import Exchange
from .faults import Faults
from .hubs import Hubs
from .ratelimit import RateLimiter
from .rest import RestApi

_HUB_SHUTDOWN_GRACE = 0.3  # seconds hub clients get to answer the close message


class _HubDirectory:
    """Token check and account ownership for the hubs: one user owning every account."""

    def __init__(self, tokens: TokenStore, account_ids: Collection[int]) -> None:
        self._tokens = tokens
        self._account_ids = frozenset(account_ids)

    def authenticate(self, token: str) -> object | None:
        return self._tokens.username(token) if self._tokens.is_valid(token) else None

    def accounts_of(self, user: object) -> Collection[int]:
        return self._account_ids


class SimApp:
    """ASGI callable serving REST and both hubs from one port."""

    def __init__(
        self,
        exchange: Exchange,
        tokens: TokenStore,
        credentials: Credentials,
        limiter: RateLimiter,
    ) -> None:
        self.exchange = exchange
        directory = _HubDirectory(tokens, [a["id"] for a in exchange.broker.accounts()])
        self.hubs = Hubs(exchange.config, directory, directory, exchange)
        exchange.add_market_sink(self.hubs.market)
        exchange.add_user_sink(self.hubs.user)
        self.faults = Faults(tokens, self.hubs, exchange.call, exchange.broker)
        self.rest = RestApi(exchange, tokens, credentials, limiter, self.faults)
        self._router = Router(routes=self.hubs.routes())

    def __repr__(self) -> str:
        return f"SimApp(rest={self.rest!r})"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"][:5].lower() == "/api/":
            await self.rest(scope, receive, send)
        else:
            await self._router(scope, receive, send)

    async def close(self) -> None:
        """Release held requests and send every hub client a close message (in the loop)."""
        self.faults.close()
        await self.hubs.shutdown(_HUB_SHUTDOWN_GRACE)
