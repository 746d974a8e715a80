"""Instrument lookup and historical bars: the market-data half of the `ProjectX` facade.

`get_instrument("MNQ")` turns the gateway's fuzzy, 20-result contract search (gotcha 11) into
one active contract; `get_bars` pages past the 20,000-bar cap, sorts and de-duplicates
(gotchas 6–8) and caches closed bars for `bars_ttl` (never a request including the forming bar).
"""

from __future__ import annotations

import difflib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from . import bars as _bars
from .errors import InstrumentNotFoundError, ValidationError
from .models import Instrument, as_utc, format_timestamp

if TYPE_CHECKING:
    from .cache import AsyncTTLCache
    from .config import ClientSettings
    from .session import Session

SEARCH = "/api/Contract/search"
BY_ID = "/api/Contract/searchById"
AVAILABLE = "/api/Contract/available"
BARS = "/api/History/retrieveBars"


class MarketDataMethods:
    """Mixin of `ProjectX`: contracts and bars. Needs `settings`, `_session` and two caches."""

    settings: ClientSettings
    _session: Session
    _instrument_cache: AsyncTTLCache[Any]
    _bars_cache: AsyncTTLCache[pl.DataFrame]

    # ------------------------------------------------------------------ instruments

    async def search_instruments(
        self, text: str, *, live: bool | None = None, use_cache: bool = True
    ) -> list[Instrument]:
        """`Contract/search`: up to 20 fuzzy matches (`"NQ"` also finds natural gas)."""
        if not isinstance(text, str) or not text.strip():
            raise ValidationError(f"search text must be a non-empty string, got {text!r}")
        live = self.settings.live if live is None else bool(live)
        body = {"searchText": text.strip(), "live": live}

        async def load() -> list[Instrument]:
            payload = await self._session.read(SEARCH, body)
            return [Instrument.from_wire(c) for c in payload.get("contracts") or ()]

        key = ("search", text.strip().upper(), live)
        return list(await self._instrument_cache.get_or_load(key, load, bypass=not use_cache))

    async def list_available_instruments(
        self, *, live: bool | None = None, use_cache: bool = True
    ) -> list[Instrument]:
        """`Contract/available`: the tradable products, one front contract each."""
        live = self.settings.live if live is None else bool(live)

        async def load() -> list[Instrument]:
            payload = await self._session.read(AVAILABLE, {"live": live})
            return [Instrument.from_wire(c) for c in payload.get("contracts") or ()]

        key = ("available", live)
        return list(await self._instrument_cache.get_or_load(key, load, bypass=not use_cache))

    async def get_instrument_by_id(self, contract_id: str, *, use_cache: bool = True) -> Instrument:
        """`Contract/searchById` (works for expired contracts too)."""
        if not isinstance(contract_id, str) or not contract_id.strip():
            raise ValidationError(f"contract id must be a non-empty string, got {contract_id!r}")
        cid = contract_id.strip()

        async def load() -> Instrument:
            payload = await self._session.read(BY_ID, {"contractId": cid})
            contract = payload.get("contract")
            if isinstance(contract, list):  # an older edition answered with a list
                contract = contract[0] if contract else None
            if not isinstance(contract, dict):
                raise InstrumentNotFoundError(f"unknown contract id {cid!r}", endpoint=BY_ID)
            return Instrument.from_wire(contract)

        return await self._instrument_cache.get_or_load(("id", cid), load, bypass=not use_cache)

    async def get_instrument(
        self, symbol: str | Instrument, *, live: bool | None = None, use_cache: bool = True
    ) -> Instrument:
        """Resolve a symbol (`"MNQ"`, `"ES"`), a contract name (`"MNQZ6"`), a symbol id
        (`"F.US.MNQ"`) or a contract id to one contract; symbols resolve to the active one."""
        if isinstance(symbol, Instrument):
            return symbol
        if not isinstance(symbol, str) or not symbol.strip():
            raise ValidationError(f"symbol must be a non-empty string, got {symbol!r}")
        query = symbol.strip()
        if query.upper().startswith("CON."):
            return await self.get_instrument_by_id(query, use_cache=use_cache)
        search_text = query.rsplit(".", 1)[-1] if query.upper().startswith("F.") else query
        found = await self.search_instruments(search_text, live=live, use_cache=use_cache)
        match = pick_contract(query, found)
        if match is None:  # the fuzzy search caps at 20 hits: try the one-per-product list
            available = await self.list_available_instruments(live=live, use_cache=use_cache)
            match = pick_contract(query, available)
        if match is not None:
            return match
        close = await self._close_matches(query, found, live)
        hint = f"; close matches: {', '.join(close)}" if close else "; no similar symbol is known"
        raise InstrumentNotFoundError(
            f"no active contract for symbol {query!r}{hint}",
            endpoint=SEARCH,
            close_matches=tuple(close),
        )

    async def _close_matches(
        self, query: str, found: list[Instrument], live: bool | None
    ) -> list[str]:
        """Symbols similar to `query`: from the search hits, else from the product list."""
        hits = sorted({c.symbol for c in found})
        pool = hits or sorted({c.symbol for c in await self.list_available_instruments(live=live)})
        ranked = difflib.get_close_matches(query.upper(), pool, n=5, cutoff=0.5)
        return ranked or hits[:5]

    # ------------------------------------------------------------------ bars

    async def get_bars(
        self,
        symbol: str | Instrument,
        *,
        days: float | None = None,
        interval: int = 1,
        unit: str | int = "minute",
        start_time: datetime | str | None = None,
        end_time: datetime | str | None = None,
        limit: int | None = None,
        partial: bool = False,
        use_cache: bool = True,
        tz: str | None = None,
    ) -> pl.DataFrame:
        """Historical bars as a DataFrame (timestamp, open, high, low, close, volume), oldest
        first. The window is `start_time`..`end_time` (default now) or the last `days` (default
        1); `limit` keeps the newest N bars. `partial=True` adds the still-forming bar (such a
        request is never cached); `use_cache=False` fetches fresh data."""
        bar_unit = _bars.parse_unit(unit)
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValidationError(f"interval must be an integer >= 1, got {interval!r}")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise ValidationError(f"limit must be None or an integer >= 1, got {limit!r}")
        if days is not None and start_time is not None:
            raise ValidationError("give either days or start_time, not both")
        if days is not None and (
            isinstance(days, bool) or not isinstance(days, int | float) or days <= 0
        ):
            raise ValidationError(f"days must be a positive number, got {days!r}")
        zone = _check_zone(tz or self.settings.timezone)
        end = as_utc(end_time, "end_time") if end_time is not None else None
        start = as_utc(start_time, "start_time") if start_time is not None else None
        now = self._session.transport.gateway_now()
        if start is not None and start >= (end or now):
            raise ValidationError(f"start_time {start} is not before end_time {end or now}")
        instrument = await self.get_instrument(symbol)
        window_key = ("since", start) if start is not None else ("days", days or 1)
        key = (instrument.id, bar_unit, interval, window_key, end, limit, self.settings.live, zone)

        async def load() -> pl.DataFrame:
            stop = end or self._session.transport.gateway_now()
            begin = start or stop - timedelta(days=days or 1)
            rows = await self._fetch_bars(
                instrument.id, bar_unit, interval, begin, stop, limit, partial
            )
            return _bars.to_frame(rows, zone, limit)

        return await self._bars_cache.get_or_load(
            key, load, bypass=not use_cache or partial, store=lambda _frame: not partial
        )

    async def _fetch_bars(
        self,
        contract_id: str,
        unit: int,
        interval: int,
        start: datetime,
        end: datetime,
        limit: int | None,
        partial: bool,
    ) -> dict[int, tuple[Any, ...]]:
        """Page backwards from `end` until the window or `limit` is covered."""
        collected: dict[int, tuple[Any, ...]] = {}
        start_ns = (start - _bars.EPOCH) // timedelta(microseconds=1) * 1000
        page_end = end
        previous_oldest: int | None = None
        while True:
            want = _bars.MAX_BARS_PER_REQUEST
            if limit is not None:
                want = min(want, limit - len(collected))
            body = {
                "contractId": contract_id,
                "live": self.settings.live,
                "startTime": format_timestamp(start),
                "endTime": format_timestamp(page_end),
                "unit": int(unit),
                "unitNumber": interval,
                "limit": want,
                "includePartialBar": partial and previous_oldest is None,
            }
            payload = await self._session.read(BARS, body)
            page = payload.get("bars") or []
            oldest = _bars.collect(page, collected)
            full = len(page) >= want
            if not full or oldest is None or oldest <= start_ns:
                return collected
            if limit is not None and len(collected) >= limit:
                return collected
            if previous_oldest is not None and oldest >= previous_oldest:
                return collected  # the server ignored endTime: no progress, stop paging
            previous_oldest = oldest
            page_end = _bars.EPOCH + timedelta(microseconds=oldest // 1000)


def pick_contract(query: str, contracts: list[Instrument]) -> Instrument | None:
    """The contract `query` names among search results: exact id or contract name first, then
    the *active* contract whose exchange symbol, product root or symbol id equals the query."""
    q = query.strip().upper()
    for contract in contracts:
        if q in (contract.id.upper(), contract.name.upper()):
            return contract
    for contract in contracts:
        keys = (contract.symbol.upper(), contract.root.upper(), (contract.symbol_id or "").upper())
        if contract.active_contract and q in keys:
            return contract
    return None


def _check_zone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValidationError(f"unknown timezone {tz!r}") from None
    return tz
