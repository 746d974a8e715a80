"""`ProjectX`: the public async facade of the gateway REST API (lifecycle, auth, accounts,
health), with market data (`market.py`), orders (`orders.py`) and positions/fills
(`positions.py`) mixed in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any

import polars as pl

from . import redaction
from .cache import AsyncTTLCache
from .config import ClientSettings
from .errors import AccountNotFoundError, ProjectXError, ValidationError
from .market import MarketDataMethods
from .models import Account, HealthStatus
from .orders import OrderMethods
from .positions import PositionMethods
from .session import ClientStats, Session

ACCOUNTS = "/api/Account/search"
PING = "/api/Status/ping"


class ProjectX(MarketDataMethods, OrderMethods, PositionMethods):
    """Async client of the ProjectX Gateway. Credentials are keyword-only; use `async with`.

        async with ProjectX(username="me", api_key="…") as client:
            await client.authenticate()
            bars = await client.get_bars("MNQ", days=5, interval=5)

    Defaults point at TopstepX; `ProjectX.for_simulator(sim)` points at a local simulator and
    `ProjectX.from_env()` reads `PROJECTX_*` variables. Extra keywords are `ClientSettings`
    fields (`timeout=`, `rest_rate=`, …).
    """

    def __init__(
        self,
        *,
        username: str | None = None,
        api_key: str | None = None,
        api_url: str | None = None,
        user_hub_url: str | None = None,
        market_hub_url: str | None = None,
        account_name: str | None = None,
        settings: ClientSettings | None = None,
        **options: Any,
    ) -> None:
        given = {
            "username": username,
            "api_key": api_key,
            "api_url": api_url,
            "user_hub_url": user_hub_url,
            "market_hub_url": market_hub_url,
            "account_name": account_name,
        }
        changes = {k: v for k, v in given.items() if v is not None} | options
        self.settings = (settings or ClientSettings()).replace(**changes)
        self.settings.require_credentials()
        self._redactor = redaction.install()
        self._redactor.add(self.settings.api_key)
        self._session = Session(self.settings, self._redactor)
        self._instrument_cache: AsyncTTLCache[Any] = AsyncTTLCache(
            1024, self.settings.instrument_ttl
        )
        self._bars_cache: AsyncTTLCache[pl.DataFrame] = AsyncTTLCache(256, self.settings.bars_ttl)
        self._account: Account | None = None
        self._account_lock = asyncio.Lock()
        self._closed = False

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_env(cls, **overrides: Any) -> ProjectX:
        """A client configured from `PROJECTX_USERNAME`, `PROJECTX_API_KEY`, `PROJECTX_API_URL`,
        `PROJECTX_USER_HUB_URL`, `PROJECTX_MARKET_HUB_URL`, `PROJECTX_ACCOUNT_NAME`."""
        return cls(settings=ClientSettings.from_env(), **overrides)

    @classmethod
    def for_simulator(cls, sim: Any, **options: Any) -> ProjectX:
        """A client for a running simulator (anything with `api_url`, `user_hub_url`,
        `market_hub_url`, `username`, `api_key`); adopts its rate buckets when it exposes them.
        `options` (any setting, credentials included) override what the simulator offers."""
        config = getattr(sim, "config", None)
        for name in ("rest_rate", "history_rate"):
            rate = getattr(config, name, None)
            if rate is not None:
                options.setdefault(name, tuple(rate))
        target = {
            "username": sim.username,
            "api_key": sim.api_key,
            "api_url": sim.api_url,
            "user_hub_url": sim.user_hub_url,
            "market_hub_url": sim.market_hub_url,
        }
        return cls(**{**target, **options})

    def __repr__(self) -> str:
        account = self._account.name if self._account else None
        return (
            f"ProjectX(api_url={self.settings.api_url!r}, username={self.settings.username!r}, "
            f"account={account!r}, authenticated={self._session.auth.token is not None}, "
            f"closed={self._closed})"
        )

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> ProjectX:
        if self._closed:
            raise ProjectXError("this client is closed; create a new one")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the token refresher, cancel pending cache loads and close the connection pool."""
        if self._closed:
            return
        self._closed = True
        await self._instrument_cache.aclose()
        await self._bars_cache.aclose()
        await self._session.aclose()
        self._redactor.discard(self.settings.api_key)

    # ------------------------------------------------------------------ auth and accounts

    async def authenticate(self) -> Account:
        """Log in (if not yet) and select the account (`account_name`, else the first active
        account that can trade); returns it."""
        self._check_open()
        await self._session.auth.fresh_token()
        async with self._account_lock:
            if self._account is None:
                self._account = await self._default_account()
        return self._account

    @property
    def session_token(self) -> str | None:
        """The current session JWT (None before login). Never shown in reprs or logs."""
        return self._session.auth.token

    @property
    def token_factory(self) -> Callable[[], str]:
        """Synchronous callable returning the current token, for hub (re)connects."""
        return self._session.auth.token_factory

    async def get_session_token(self) -> str:
        """A valid token (logs in or refreshes first when needed), for async hub transports."""
        self._check_open()
        return await self._session.auth.fresh_token()

    async def renew_session_token(self, rejected: str | None = None) -> str:
        """A token to replace `rejected` (one a hub refused): logs in again unless another call
        already replaced it; concurrent callers share one login."""
        self._check_open()
        return await self._session.auth.login_once(rejected)

    @property
    def account_info(self) -> Account | None:
        """The selected account (None before `authenticate()` / `select_account()`)."""
        return self._account

    @property
    def stats(self) -> ClientStats:
        """Request counters: requests, retries, 429s, 5xx, 401s, ambiguous-outcome lookups."""
        return self._session.stats

    async def list_accounts(self, *, only_active: bool = True) -> list[Account]:
        """`Account/search`: the user's accounts (one API key covers all of them)."""
        self._check_open()
        payload = await self._session.read(ACCOUNTS, {"onlyActiveAccounts": bool(only_active)})
        return [Account.from_wire(a) for a in payload.get("accounts") or ()]

    async def select_account(self, name_or_id: str | int) -> Account:
        """Make the account with this id or name (exact, then case-insensitive) the default."""
        if isinstance(name_or_id, bool) or not isinstance(name_or_id, str | int):
            raise ValidationError(f"account must be a name or an id, got {name_or_id!r}")
        accounts = await self.list_accounts(only_active=False)
        account = _find_account(accounts, name_or_id)
        self._account = account
        return account

    async def _default_account(self) -> Account:
        accounts = await self.list_accounts(only_active=True)
        wanted = self.settings.account_name
        if wanted:
            return _find_account(accounts, wanted)
        for account in accounts:
            if account.can_trade:
                return account
        if accounts:
            return accounts[0]
        raise AccountNotFoundError("this user has no active account", endpoint=ACCOUNTS)

    async def _account_id(self, account_id: int | None) -> int:
        if account_id is not None:
            if isinstance(account_id, bool) or not isinstance(account_id, int) or account_id < 1:
                raise ValidationError(f"account_id must be a positive integer, got {account_id!r}")
            return account_id
        if self._account is None:
            await self.authenticate()
        return self._account.id  # type: ignore[union-attr]

    # ------------------------------------------------------------------ health

    async def get_health_status(self) -> HealthStatus:
        """Ping (unauthenticated) plus one authenticated read, with latencies; never raises for
        an unhealthy gateway, the result says what failed."""
        self._check_open()
        error: str | None = None
        ping_ms = auth_ms = None
        started = time.perf_counter()
        try:
            await self._session.anonymous(PING)
            ping_ms = round((time.perf_counter() - started) * 1000, 3)
        except ProjectXError as exc:
            error = f"ping failed: {exc}"
        started = time.perf_counter()
        try:
            await self._session.read(ACCOUNTS, {"onlyActiveAccounts": True})
            auth_ms = round((time.perf_counter() - started) * 1000, 3)
        except ProjectXError as exc:
            error = error or f"authenticated call failed: {exc}"
        return HealthStatus(
            healthy=ping_ms is not None and auth_ms is not None,
            api_url=self.settings.api_url,
            api_reachable=ping_ms is not None,
            ping_ms=ping_ms,
            authenticated=auth_ms is not None,
            auth_ms=auth_ms,
            account_name=self._account.name if self._account else None,
            token_valid_for=self._session.auth.expires_in,
            error=error,
        )

    def gateway_time(self) -> datetime:
        """The gateway's current time (UTC) as read from its `Date` headers (a simulator's
        virtual clock included); the local clock until the first response."""
        return self._session.transport.gateway_now()

    def clear_cache(self) -> None:
        """Forget cached instruments and bars."""
        self._instrument_cache.clear()
        self._bars_cache.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise ProjectXError("this client is closed; create a new one")


def _find_account(accounts: list[Account], wanted: str | int) -> Account:
    if isinstance(wanted, int) or (isinstance(wanted, str) and wanted.strip().isdigit()):
        for account in accounts:
            if account.id == int(wanted):
                return account
    if isinstance(wanted, str):
        for account in accounts:
            if account.name == wanted.strip():
                return account
        for account in accounts:
            if account.name.casefold() == wanted.strip().casefold():
                return account
    names = ", ".join(a.name for a in accounts) or "none"
    raise AccountNotFoundError(f"no account {wanted!r}; available: {names}", endpoint=ACCOUNTS)


def create_client(**kwargs: Any) -> ProjectX:
    """Factory of the product plan: `ProjectX` from `PROJECTX_*` variables, `kwargs` winning."""
    return ProjectX.from_env(**kwargs)
