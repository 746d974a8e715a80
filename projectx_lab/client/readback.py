"""What the trading methods share: telling an ambiguous mutation outcome from a definite one,
polling a read-back until the real outcome shows, and resolving contract/account/time args."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import (
    AMBIGUOUS_CODE_NAMES,
    OrderNotFoundError,
    ProjectXConnectionError,
    ProjectXError,
    ServerError,
    ValidationError,
)
from .models import Instrument, as_utc, format_timestamp

if TYPE_CHECKING:
    from .config import ClientSettings
    from .session import Session

log = logging.getLogger("projectx_lab.client")
T = TypeVar("T")


def is_ambiguous(exc: BaseException, endpoint: str) -> bool:
    """True when the mutation on `endpoint` may or may not have taken effect. Failures of other
    requests made first (a login, a contract lookup) mean the mutation was never sent."""
    if not isinstance(exc, ProjectXError) or exc.endpoint != endpoint:
        return False
    if isinstance(exc, ProjectXConnectionError):
        return exc.request_sent
    return isinstance(exc, ServerError) or exc.error_name in AMBIGUOUS_CODE_NAMES


class TradingBase:
    """Helpers of the order and position mixins. Needs `settings`, `_session`, `_account_id()`
    and `get_instrument()` from `ProjectX`."""

    settings: ClientSettings
    _session: Session

    if TYPE_CHECKING:

        async def _account_id(self, account_id: int | None) -> int: ...

        async def get_instrument(self, symbol: str | Instrument, **kw: Any) -> Instrument: ...

    async def _instrument(self, contract: str | Instrument) -> Instrument:
        """The contract's spec (cached by `get_instrument`), for checks made before sending."""
        if not isinstance(contract, Instrument | str) or not str(contract).strip():
            raise ValidationError(f"contract must be a contract id or symbol, got {contract!r}")
        return await self.get_instrument(contract)

    async def _contract_id(self, contract: str | Instrument) -> str:
        if isinstance(contract, Instrument):
            return contract.id
        if not isinstance(contract, str) or not contract.strip():
            raise ValidationError(f"contract must be a contract id or symbol, got {contract!r}")
        if contract.strip().upper().startswith("CON."):
            return contract.strip()
        return (await self.get_instrument(contract)).id

    async def _window_body(
        self, start: datetime | str | None, end: datetime | str | None, account_id: int | None
    ) -> dict[str, Any]:
        stop = as_utc(end, "end_date") if end is not None else None
        begin = (
            as_utc(start, "start_date")
            if start is not None
            else (stop or self._session.transport.gateway_now()) - timedelta(days=1)
        )
        if stop is not None and begin >= stop:
            raise ValidationError(f"start_date {begin} is not before end_date {stop}")
        body: dict[str, Any] = {
            "accountId": await self._account_id(account_id),
            "startTimestamp": format_timestamp(begin),
        }
        if stop is not None:
            body["endTimestamp"] = format_timestamp(stop)
        return body

    async def _poll(
        self, probe: Callable[[], Awaitable[T | None]], *, patience: bool = True
    ) -> T | None:
        """Call `probe` until it returns a value or `order_lookup_timeout` passes.

        A probe that keeps failing counts as "not found". `patience=False` probes once.
        """
        deadline = time.monotonic() + self.settings.order_lookup_timeout
        delay = 0.05
        while True:
            try:
                result = await probe()
            except OrderNotFoundError:
                raise
            except ProjectXError as exc:
                log.warning("read-back after an ambiguous mutation failed: %s", exc)
                result = None
            if result is not None or not patience:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 1.0)
