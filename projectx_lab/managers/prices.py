"""Live prices per contract for the order and position managers.

`LivePrices` keeps the last trade, best bid and best ask per contract from the market hub's
(partial) quotes and trade prints. For each contract somebody asked about it holds a claim on
the shared connection: on the trades or quotes that already flow there (a data manager's
contract: no extra feed), else on quotes. Holding its own claim keeps prices coming when the
other holder stops. `on_price(contract_id, last)` fires on every new last price (the alert and
drawdown hot path).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from projectx_lab.realtime.dispatch import CallbackTasks, Event
from projectx_lab.realtime.transport import RealtimeError

_PRICED = frozenset({"quotes", "trades"})


def _flags(kinds: frozenset[str]) -> dict[str, bool]:
    return {"quotes": "quotes" in kinds, "trades": "trades" in kinds}


class LivePrices:
    """Last / bid / ask per contract id, kept current from the market hub (floats)."""

    def __init__(
        self, realtime_client: Any, tasks: CallbackTasks, data_manager: Any = None
    ) -> None:
        self._realtime = realtime_client
        self.last: dict[str, float] = {}
        self.bid: dict[str, float] = {}
        self.ask: dict[str, float] = {}
        self.on_price: Event[str, float] = Event("price", tasks)
        self._waiters: dict[str, list[asyncio.Future[float]]] = {}
        self._claims: dict[str, frozenset[str]] = {}  # contract id → kinds this object holds
        self._data_manager = data_manager
        self._attached = False

    def __repr__(self) -> str:
        return f"LivePrices(contracts={sorted(self.last)})"

    def start(self) -> None:
        """Listen to quotes (and to the data manager's ticks when one was given)."""
        if self._attached:
            return
        self._attached = True
        self._realtime.quote_event += self._on_quote
        self._realtime.trade_event += self._on_trades

    async def close(self) -> None:
        """Stop listening and release the subscriptions this object holds."""
        if not self._attached:
            return
        self._attached = False
        self._realtime.quote_event -= self._on_quote
        self._realtime.trade_event -= self._on_trades
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.cancel()
        self._waiters.clear()
        claims, self._claims = self._claims, {}
        for contract_id, kinds in claims.items():
            with contextlib.suppress(RealtimeError):  # the connection may be going away too
                await self._realtime.unsubscribe_market(
                    contract_id, **_flags(kinds), depth=False, owner=self
                )

    async def watch(self, contract_id: str) -> None:
        """Make sure prices of `contract_id` flow: claims the contract's quotes or trades
        already on the shared connection, else subscribes quotes."""
        if contract_id in self._claims:
            return
        dm = self._data_manager
        if dm is not None and getattr(dm, "contract_id", None) == contract_id:
            price = getattr(dm, "last_price", None)  # seeded from its history until a print
            if price is not None and contract_id not in self.last:
                self.last[contract_id] = float(price)
        kinds = self._realtime.market_subscriptions.get(contract_id, frozenset()) & _PRICED
        kinds = kinds or frozenset({"quotes"})
        self._claims[contract_id] = kinds
        try:
            await self._realtime.subscribe_market(
                contract_id, **_flags(kinds), depth=False, owner=self
            )
        except BaseException:
            del self._claims[contract_id]
            raise

    def get(self, contract_id: str) -> float | None:
        """Last traded price, None before the first one arrived."""
        return self.last.get(contract_id)

    def entry_estimate(self, contract_id: str, buy: bool) -> float | None:
        """Where a market order would fill now: the ask for a buy, the bid for a sell, else last."""
        book = self.ask if buy else self.bid
        return book.get(contract_id) or self.last.get(contract_id)

    async def wait(self, contract_id: str, within: float) -> float:
        """The last price, waiting (event-driven) up to `within` s for the first one."""
        price = self.last.get(contract_id)
        if price is not None:
            return price
        await self.watch(contract_id)
        price = self.last.get(contract_id)
        if price is not None:
            return price
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(contract_id, []).append(waiter)
        try:
            return await asyncio.wait_for(waiter, within)
        finally:
            waiters = self._waiters.get(contract_id)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)

    # -- hot path ----------------------------------------------------------------------------

    def _on_quote(self, contract_id: str, data: dict[str, Any]) -> None:
        bid = data.get("bestBid")
        if bid is not None:
            self.bid[contract_id] = float(bid)
        ask = data.get("bestAsk")
        if ask is not None:
            self.ask[contract_id] = float(ask)
        last = data.get("lastPrice")
        if last is not None:
            self._set(contract_id, float(last))

    def _on_trades(self, contract_id: str, data: list[dict[str, Any]]) -> None:
        if data:
            price = data[-1].get("price")
            if price is not None:
                self._set(contract_id, float(price))

    def _set(self, contract_id: str, price: float) -> None:
        if self.last.get(contract_id) == price:
            return
        self.last[contract_id] = price
        waiters = self._waiters.pop(contract_id, None)
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(price)
        self.on_price.emit(contract_id, price)
