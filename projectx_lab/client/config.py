"""Client settings: gateway URLs (TopstepX by default, any firm by configuration), credentials,
timeouts, rate buckets, retry and cache knobs. One frozen dataclass, validated on creation."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .errors import ValidationError

ENV_VARS = {
    "username": "PROJECTX_USERNAME",
    "api_key": "PROJECTX_API_KEY",
    "api_url": "PROJECTX_API_URL",
    "user_hub_url": "PROJECTX_USER_HUB_URL",
    "market_hub_url": "PROJECTX_MARKET_HUB_URL",
    "account_name": "PROJECTX_ACCOUNT_NAME",
}


class Endpoints(NamedTuple):
    """The three URLs of one gateway deployment: REST base, user hub, market hub."""

    api_url: str
    user_hub_url: str
    market_hub_url: str

    @classmethod
    def for_firm(cls, firm: str, *, legacy: bool = False) -> Endpoints:
        """URLs of a prop firm by its slug (`"topstepx"`, `"alphaticks"`, …).

        Newer firms use `api.{firm}.projectx.com`; `legacy=True` gives the older
        `gateway-api-{firm}.s2f.projectx.com` pattern. Both are observed, not contractual:
        when in doubt take the URLs from the firm's own documentation.
        """
        slug = firm.strip().lower()
        if not slug or not slug.replace("-", "").isalnum():
            raise ValidationError(f"firm must be a slug like 'topstepx', got {firm!r}")
        if slug == "topstepx" and not legacy:
            return TOPSTEPX
        if legacy:
            rtc = f"https://gateway-rtc-{slug}.s2f.projectx.com/hubs"
            return cls(
                f"https://gateway-api-{slug}.s2f.projectx.com", f"{rtc}/user", f"{rtc}/market"
            )
        rtc = f"https://rtc.{slug}.projectx.com/hubs"
        return cls(f"https://api.{slug}.projectx.com", f"{rtc}/user", f"{rtc}/market")


TOPSTEPX = Endpoints(
    "https://api.topstepx.com",
    "https://rtc.topstepx.com/hubs/user",
    "https://rtc.topstepx.com/hubs/market",
)


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Every knob of `ProjectX`. Defaults match the real gateway (TopstepX, its rate buckets).

    Rates are `(requests, window_seconds)` as the gateway enforces them; the client admits at
    most that many in *any* window (see `ratelimit.py`). `api_key` never appears in the repr.
    """

    username: str = ""
    api_key: str = field(default="", repr=False)
    api_url: str = TOPSTEPX.api_url
    user_hub_url: str = TOPSTEPX.user_hub_url
    market_hub_url: str = TOPSTEPX.market_hub_url
    account_name: str | None = None
    live: bool = False  # market-data flag: practice/evaluation data lives under live=False
    timezone: str = "America/Chicago"  # timezone of bar timestamps
    timeout: float = 10.0  # seconds for read/write of one request
    connect_timeout: float = 5.0
    http2: bool = True
    max_connections: int = 128  # pool size; 100 concurrent calls never wait for a socket
    rest_rate: tuple[int, float] = (200, 60.0)
    history_rate: tuple[int, float] = (50, 30.0)
    burst_fraction: float = 0.5  # share of a bucket usable as an instant burst
    retry_attempts: int = 4  # total attempts for reads and auth calls
    retry_initial_wait: float = 0.25  # seconds; doubles per attempt, full jitter
    retry_max_wait: float = 8.0
    max_retry_after: float = 60.0  # a 429 asking to wait longer than this is raised, not slept
    token_lifetime: float = 24 * 3600.0  # used when the token carries no readable expiry
    refresh_margin: float = 3600.0  # refresh this long before expiry (at most 20 % of lifetime)
    order_lookup_timeout: float = 5.0  # seconds spent resolving an ambiguous mutation
    instrument_ttl: float = 3600.0
    bars_ttl: float = 300.0

    def __post_init__(self) -> None:
        for name in ("api_url", "user_hub_url", "market_hub_url"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.startswith(("http://", "https://")):
                raise ValidationError(f"{name} must be an http(s) URL, got {value!r}")
            object.__setattr__(self, name, value.rstrip("/"))
        positive = (
            "timeout",
            "connect_timeout",
            "retry_initial_wait",
            "retry_max_wait",
            "token_lifetime",
            "order_lookup_timeout",
            "instrument_ttl",
            "bars_ttl",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ValidationError(f"{name} must be a positive number, got {value!r}")
        for name in ("max_connections", "retry_attempts"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValidationError(f"{name} must be an integer >= 1, got {value!r}")
        if self.refresh_margin < 0 or self.max_retry_after < 0:
            raise ValidationError("refresh_margin and max_retry_after must be >= 0")
        if not 0 < self.burst_fraction < 1:
            raise ValidationError(f"burst_fraction must be in (0, 1), got {self.burst_fraction!r}")
        for name in ("rest_rate", "history_rate"):
            value = getattr(self, name)
            try:
                count, window = value
                ok = int(count) == count >= 2 and float(window) > 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValidationError(f"{name} must be (requests >= 2, window > 0), got {value!r}")
            object.__setattr__(self, name, (int(count), float(window)))

    def replace(self, **changes: Any) -> ClientSettings:
        """A copy with `changes` applied; unknown names are a `ValidationError`."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValidationError(f"unknown client setting(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)

    def require_credentials(self) -> None:
        """Raise `ValidationError` naming what is missing (never the values)."""
        missing = [n for n in ("username", "api_key") if not str(getattr(self, n) or "").strip()]
        if missing:
            names = " and ".join(f"{n} ({ENV_VARS[n]})" for n in missing)
            raise ValidationError(f"missing credentials: {names}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ClientSettings:
        """Settings from `PROJECTX_*` environment variables; explicit `overrides` win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, var in ENV_VARS.items():
            raw = env.get(var, "").strip()
            if raw:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls().replace(**values)
