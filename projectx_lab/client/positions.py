"""Positions and fills: thin typed methods of the `ProjectX` facade. Closing is never retried
blindly: an ambiguous outcome is resolved by reading the positions back."""

from __future__ import annotations

from datetime import datetime

from .errors import OrderOutcomeUnknownError, ProjectXError
from .models import Instrument, Position, Trade
from .readback import TradingBase, is_ambiguous
from .validation import positive_int

CLOSE = "/api/Position/closeContract"
PARTIAL_CLOSE = "/api/Position/partialCloseContract"
POSITIONS_OPEN = "/api/Position/searchOpen"
TRADES = "/api/Trade/search"


class PositionMethods(TradingBase):
    """Mixin of `ProjectX`: `Position/*` and `Trade/search`."""

    async def search_open_positions(self, *, account_id: int | None = None) -> list[Position]:
        """`Position/searchOpen`: one row per contract with an open position."""
        account = await self._account_id(account_id)
        payload = await self._session.read(POSITIONS_OPEN, {"accountId": account})
        return [Position.from_wire(p) for p in payload.get("positions") or ()]

    async def get_positions(self, *, account_id: int | None = None) -> list[Position]:
        """Alias of `search_open_positions`."""
        return await self.search_open_positions(account_id=account_id)

    async def close_position(
        self, contract: str | Instrument, *, account_id: int | None = None
    ) -> None:
        """`Position/closeContract`: flatten at market. Working stops/targets on the contract
        are left alone by the gateway (gotcha 14). Never retried: ambiguity is resolved by
        reading the positions back."""
        contract_id = await self._contract_id(contract)
        account = await self._account_id(account_id)
        body = {"accountId": account, "contractId": contract_id}
        try:
            await self._session.write(CLOSE, body)
        except ProjectXError as exc:
            if not is_ambiguous(exc, CLOSE):
                raise
            await self._confirm_flat(account, contract_id, exc)

    async def _confirm_flat(self, account: int, contract_id: str, cause: BaseException) -> None:
        self._session.stats.lookups += 1
        last: list[Position] = []

        async def probe() -> bool | None:
            position = await self._position(account, contract_id)
            last[:] = [position] if position else []
            return True if position is None or position.size == 0 else None

        if await self._poll(probe):
            return
        raise OrderOutcomeUnknownError(
            f"close of {contract_id} unknown after {type(cause).__name__}: the position is "
            "still open",
            operation="close",
            state=last[0] if last else None,
            endpoint=CLOSE,
        ) from cause

    async def partial_close_position(
        self, contract: str | Instrument, size: int, *, account_id: int | None = None
    ) -> None:
        """`Position/partialCloseContract`: reduce by `size` at market (no order id comes back;
        tag an explicit market order instead when you need attribution). Never retried: after an
        ambiguous outcome the current position is read back and reported in the error."""
        qty = positive_int(size, "size")
        contract_id = await self._contract_id(contract)
        account = await self._account_id(account_id)
        body = {"accountId": account, "contractId": contract_id, "size": qty}
        try:
            await self._session.write(PARTIAL_CLOSE, body)
        except ProjectXError as exc:
            if not is_ambiguous(exc, PARTIAL_CLOSE):
                raise
            self._session.stats.lookups += 1
            try:
                state = await self._position(account, contract_id)
            except ProjectXError:
                state = None
            now = f"{state.signed_size:+d}" if state else "flat or unreadable"
            raise OrderOutcomeUnknownError(
                f"partial close of {qty} {contract_id} unknown after {type(exc).__name__}; the "
                f"position is now {now}. It was NOT re-sent.",
                operation="partial_close",
                state=state,
                endpoint=PARTIAL_CLOSE,
            ) from exc

    async def _position(self, account: int, contract_id: str) -> Position | None:
        for position in await self.search_open_positions(account_id=account):
            if position.contract_id == contract_id:
                return position
        return None

    # ------------------------------------------------------------------ fills

    async def search_trades(
        self,
        start_date: datetime | str | None = None,
        end_date: datetime | str | None = None,
        *,
        account_id: int | None = None,
    ) -> list[Trade]:
        """`Trade/search`: the account's fills in the window (default: the last 24 hours)."""
        body = await self._window_body(start_date, end_date, account_id)
        payload = await self._session.read(TRADES, body)
        return [Trade.from_wire(t) for t in payload.get("trades") or ()]
