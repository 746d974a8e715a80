"""TradingSuite: one client, one shared real-time connection, and the managers wired to them.

```python
suite = await create_trading_suite("MNQ", project_x=client, timeframes=["1min", "5min"])
suite["data_manager"] is suite.data   # mapping keys and attributes name the same objects
async with suite: ...                  # clean teardown of everything the suite opened
```
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from projectx_lab.client import Account, Instrument, ProjectX
from projectx_lab.managers.book_feed import BookFeed
from projectx_lab.managers.data import RealtimeDataManager
from projectx_lab.managers.orderbook import OrderBook
from projectx_lab.managers.orders import OrderManager
from projectx_lab.managers.positions import PositionManager
from projectx_lab.managers.prices import LivePrices
from projectx_lab.realtime import ProjectXRealtimeClient, create_realtime_client
from projectx_lab.realtime.dispatch import CallbackTasks

_KEYS = {
    "client": "client",
    "project_x": "client",
    "realtime_client": "realtime",
    "data_manager": "data",
    "order_manager": "orders",
    "position_manager": "positions",
    "orderbook": "orderbook",
    "instrument_info": "instrument",
}
FEATURES = frozenset({"orderbook"})


class TradingSuite:
    """Everything a trader touches for one instrument, sharing one client and one connection.

    Attributes: `client`, `realtime`, `instrument`, `data`, `orders`, `positions`, `orderbook`
    (None unless the "orderbook" feature is on); the same objects under the mapping keys
    "project_x", "realtime_client", "data_manager", "order_manager", "position_manager",
    "orderbook", "instrument_info".
    """

    def __init__(
        self,
        client: ProjectX,
        realtime: ProjectXRealtimeClient,
        instrument: Instrument,
        data: RealtimeDataManager,
        orders: OrderManager,
        positions: PositionManager,
        orderbook: OrderBook | None,
        *,
        book_feed: BookFeed | None = None,
        prices: LivePrices | None = None,
        owned: Iterable[Any] = (),
    ) -> None:
        self.client = client
        self.realtime = realtime
        self.instrument = instrument
        self.data = data
        self.orders = orders
        self.positions = positions
        self.orderbook = orderbook
        self.book_feed = book_feed
        self.prices = prices
        self._owned = list(owned)
        self._closed = False

    # -- construction ---------------------------------------------------------------------

    @classmethod
    async def create(
        cls,
        instrument: str = "MNQ",
        *,
        project_x: ProjectX | None = None,
        realtime_client: ProjectXRealtimeClient | None = None,
        jwt_token: str | None = None,
        account_id: int | None = None,
        timeframes: Iterable[str] = ("1min", "5min"),
        features: Iterable[str] = ("orderbook",),
        initial_bars: int = 500,
        max_bars: int = 10_000,
        timezone: str = "America/Chicago",
        transport: str = "signalrcore",
        realtime_options: dict[str, Any] | None = None,
    ) -> TradingSuite:
        """Connect (or reuse the given client/connection), load history, start every stream.

        Without `project_x`, credentials come from the environment (`ProjectX.from_env()`).
        """
        wanted = set(features)
        unknown = wanted - FEATURES
        if unknown:
            raise ValueError(f"unknown features {sorted(unknown)}; known: {sorted(FEATURES)}")
        owned: list[Any] = []
        try:
            client = project_x
            if client is None:
                client = await ProjectX.from_env().__aenter__()
                owned.append(client)
            if client.account_info is None:
                await client.authenticate()
            if account_id is not None and client.account_info.id != account_id:
                await client.select_account(account_id)
            info = await client.get_instrument(instrument)
            realtime = realtime_client
            if realtime is None:
                realtime = create_realtime_client(
                    jwt_token or client,
                    client.account_info.id,
                    user_hub_url=client.settings.user_hub_url,
                    market_hub_url=client.settings.market_hub_url,
                    transport=transport,
                    **(realtime_options or {}),
                )
                await realtime.connect()
                owned.append(realtime)
            data = RealtimeDataManager(
                info.id,
                client,
                realtime,
                timeframes,
                max_bars=max_bars,
                timezone=timezone,
                initial_bars=initial_bars,
            )
            prices = LivePrices(realtime, CallbackTasks(), data)
            orders = OrderManager(client, realtime, client.account_info.id, price_source=prices)
            positions = PositionManager(
                client, realtime, client.account_info.id, price_source=prices, order_manager=orders
            )
            book = feed = None
            if "orderbook" in wanted:
                book = OrderBook(info.id, float(info.tick_size))
                feed = book.feed = BookFeed(book, realtime)
            await data.initialize()
            await asyncio.gather(
                data.start_realtime_feed(),
                orders.initialize(),
                positions.initialize(),
                *([feed.start()] if feed else []),
            )
        except BaseException:
            for resource in reversed(owned):
                await _close(resource)
            raise
        suite = cls(
            client,
            realtime,
            info,
            data,
            orders,
            positions,
            book,
            book_feed=feed,
            prices=prices,
            owned=owned,
        )
        if "IPython" in sys.modules:  # a re-run cell closes the suite its last run made
            from projectx_lab.notebook.loop import own_suite

            own_suite(suite)
        return suite

    # -- mapping access -------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, _KEYS[key])
        except KeyError:
            raise KeyError(
                f"{key!r} is not part of a TradingSuite; keys: {sorted(_KEYS)}"
            ) from None

    def __contains__(self, key: object) -> bool:
        return key in _KEYS

    def __iter__(self) -> Iterator[str]:
        return iter(_KEYS)

    def keys(self) -> list[str]:
        return list(_KEYS)

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Stop every stream and close what the suite opened (the given client stays open)."""
        if self._closed:
            return
        self._closed = True
        if self.book_feed is not None:
            await self.book_feed.stop()
        await self.data.stop_realtime_feed()
        await self.positions.close()
        await self.orders.close()
        if self.prices is not None:
            await self.prices.close()
        for resource in reversed(self._owned):
            await _close(resource)

    async def __aenter__(self) -> TradingSuite:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def status(self) -> SuiteStatus:
        """A snapshot for dashboards: instrument, account, connection, last price, positions."""
        account: Account | None = self.client.account_info
        status = {
            "instrument": self.instrument.id,
            "account": account.name if account else None,
            "connected": self.realtime.is_connected,
            "last_price": self.data.last_price,
            "trades_seen": self.data.trades_seen,
            "best_bid": self.orderbook.best_bid if self.orderbook else None,
            "best_ask": self.orderbook.best_ask if self.orderbook else None,
            "closed": self._closed,
        }
        return SuiteStatus(status)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        frames = list(self.data.timeframes)
        return f"TradingSuite({self.instrument.id!r}, {state}, timeframes={frames})"

    def _repr_html_(self) -> str:
        from projectx_lab.notebook.reprs import suite_html

        return suite_html(self)


class SuiteStatus(dict):
    """`TradingSuite.status()`: a plain dict with a one-line repr and an HTML card."""

    __slots__ = ()

    def __repr__(self) -> str:
        from projectx_lab.notebook.reprs import status_text

        return status_text(self)

    def _repr_html_(self) -> str:
        from projectx_lab.notebook.reprs import status_html

        return status_html(self)


async def _close(resource: Any) -> None:
    closer = getattr(resource, "aclose", None) or resource.close
    await closer()


async def create_trading_suite(
    instrument: str = "MNQ",
    project_x: ProjectX | None = None,
    jwt_token: str | None = None,
    account_id: int | None = None,
    timeframes: Iterable[str] = ("1min", "5min"),
    **options: Any,
) -> TradingSuite:
    """Same as `TradingSuite.create(...)`, with the product plan's argument order."""
    return await TradingSuite.create(
        instrument,
        project_x=project_x,
        jwt_token=jwt_token,
        account_id=account_id,
        timeframes=timeframes,
        **options,
    )


async def create_data_manager(
    instrument: str,
    project_x: ProjectX,
    realtime_client: ProjectXRealtimeClient,
    timeframes: Iterable[str] = ("1min",),
    **options: Any,
) -> RealtimeDataManager:
    """A RealtimeDataManager with history loaded and its live feed running."""
    manager = RealtimeDataManager(instrument, project_x, realtime_client, timeframes, **options)
    await manager.initialize()
    await manager.start_realtime_feed()
    return manager


async def create_order_manager(
    project_x: ProjectX, realtime_client: ProjectXRealtimeClient, account_id: int | None = None
) -> OrderManager:
    """An initialized OrderManager for the client's selected account (or `account_id`)."""
    manager = OrderManager(project_x, realtime_client, account_id)
    await manager.initialize()
    return manager


async def create_position_manager(
    project_x: ProjectX, realtime_client: ProjectXRealtimeClient, account_id: int | None = None
) -> PositionManager:
    """An initialized PositionManager for the client's selected account (or `account_id`)."""
    manager = PositionManager(project_x, realtime_client, account_id)
    await manager.initialize()
    return manager


async def create_orderbook(
    instrument: str, project_x: ProjectX, realtime_client: ProjectXRealtimeClient
) -> OrderBook:
    """A live OrderBook for `instrument`; stop it with `await book.feed.stop()`."""
    info = await project_x.get_instrument(instrument)
    book = OrderBook(info.id, float(info.tick_size))
    book.feed = BookFeed(book, realtime_client)
    await book.feed.start()
    return book
