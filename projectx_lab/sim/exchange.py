"""`Exchange`: owns the clock, catalogue, market models and broker; its pump task feeds the broker
and publishes quotes, trades and depth diffs of active contracts to the market sinks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from .book import Book
from .catalog import Catalog, ContractSpec
from .config import SimConfig
from .market import MarketModel, Trades
from .matching import Broker
from .stepping import SteppedClock
from .wire import iso

log = logging.getLogger("projectx_lab.sim")
T = TypeVar("T")

DOM_ASK, DOM_BID, DOM_BEST_ASK, DOM_BEST_BID, DOM_TRADE, DOM_RESET = 1, 2, 3, 4, 5, 6
DOM_NEW_BEST_BID, DOM_NEW_BEST_ASK = 9, 10
_TOP_TYPES = {DOM_ASK: (DOM_BEST_ASK, DOM_NEW_BEST_ASK), DOM_BID: (DOM_BEST_BID, DOM_NEW_BEST_BID)}
_CALL_TIMEOUT = 30.0  # seconds a cross-thread call waits for the simulator loop


class MarketSink(Protocol):
    """Receives market events (the market hub)."""

    def market_event(self, contract_id: str, target: str, data: object) -> None: ...


class UserSink(Protocol):
    """Receives user events (the user hub)."""

    def user_event(
        self, account_id: int, target: str, action: int, data: dict[str, Any]
    ) -> None: ...


class MarketSource(Protocol):
    """Where an exchange's markets come from instead of the seeded model (a recording)."""

    def catalog(self, today: datetime) -> Catalog: ...
    def market(self, spec: ContractSpec) -> MarketModel:  # any object with its interface
        ...


class _Prices(dict[int, float]):
    """Tick → wire price memo (prices revisit a narrow band; bounded by clearing)."""

    __slots__ = ("_to_price",)
    _LIMIT = 1 << 16

    def __init__(self, to_price: Callable[[int], float]) -> None:
        super().__init__()
        self._to_price = to_price

    def __missing__(self, ticks: int) -> float:
        if len(self) >= self._LIMIT:
            self.clear()
        price = self[ticks] = self._to_price(ticks)
        return price


class _Feed:
    """Pumping and publishing state of one active contract."""

    __slots__ = ("book", "cursor", "full_quote", "market", "prices", "quote", "spec")

    def __init__(self, market: MarketModel, now: int) -> None:
        self.market = market
        self.spec: ContractSpec = market.spec
        self.prices = _Prices(market.spec.to_price)
        self.cursor = now  # trades up to here have been pumped
        self.book: Book = market.book(now)  # the book as last published
        self.quote: dict[str, float | int] = {}  # quote fields as last published
        self.full_quote = True  # next quote goes out with every field


class Exchange:
    """The simulated venue. Loop-affine: mutate it from the simulator loop (see `call`).

    Markets are the seeded model, or come from `source` (a replayed recording); the clock is a
    `SteppedClock`, so lockstep runs can hold it and `step()` the pump by hand.
    """

    def __init__(self, config: SimConfig, source: MarketSource | None = None) -> None:
        self.config = config
        self.clock = SteppedClock(config.start, config.speed)
        self._origin_ns = self.clock.start_ns  # fixed: a speed change rebases the clock's start
        self.source = source
        self.catalog = (
            Catalog(self.clock.now()) if source is None else source.catalog(self.clock.now())
        )
        self.broker = Broker(config, self, self.clock, self._emit_user)
        self._markets: dict[str, MarketModel] = {}
        self._feeds: dict[str, _Feed] = {}
        self._interest: dict[str, int] = {}
        self._market_sinks: list[MarketSink] = []
        self._user_sinks: list[UserSink] = []
        self._wire_available = [spec.wire() for spec in self.catalog.available()]
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id: int | None = None
        self.steps = 0

    def __repr__(self) -> str:
        return (
            f"Exchange(now={iso(self.clock.now_ns())}, speed={self.clock.speed:g}, "
            f"active={sorted(self._feeds)})"
        )

    # ------------------------------------------------------------------ loop affinity

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in the simulator loop and return its result.

        Direct call when already on the loop thread or when no loop is running; otherwise the
        call is scheduled on the loop and this thread waits for it.
        """
        loop = self._loop
        if loop is None or threading.get_ident() == self._thread_id or not loop.is_running():
            return fn(*args)
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(_CALL_TIMEOUT)

    # ------------------------------------------------------------------ sinks and interest

    def add_market_sink(self, sink: MarketSink) -> None:
        self._market_sinks.append(sink)

    def add_user_sink(self, sink: UserSink) -> None:
        self._user_sinks.append(sink)

    def acquire(self, contract_id: str) -> None:
        """One more hub subscriber for `contract_id`: the contract becomes active."""
        count = self._interest.get(contract_id, 0)
        self._interest[contract_id] = count + 1
        feed = self._feeds.get(contract_id)
        if feed is None:
            feed = self._feed(contract_id)
        elif count == 0:  # a broker-only feed keeps no published book
            feed.book = feed.market.book(self.clock.now_ns())
        feed.full_quote = True

    def release(self, contract_id: str) -> None:
        count = self._interest.get(contract_id, 0) - 1
        if count > 0:
            self._interest[contract_id] = count
        else:
            self._interest.pop(contract_id, None)

    def known_contract(self, contract_id: str) -> bool:
        """True for contracts the market hub serves (active front months)."""
        spec = self.catalog.by_id(contract_id)
        return spec is not None and spec.active

    def depth_snapshot(self, contract_id: str) -> list[dict[str, Any]]:
        """A `Reset` item, then every level of the published book as type 1 / 2 items."""
        feed = self._feed(contract_id)
        stamp = iso(self.clock.now_ns())
        to_price = feed.prices.__getitem__
        items: list[dict[str, Any]] = [
            {"timestamp": stamp, "type": DOM_RESET, "price": 0, "volume": 0, "currentVolume": 0}
        ]
        for dom, levels in ((DOM_ASK, feed.book.asks), (DOM_BID, feed.book.bids)):
            items.extend(
                {
                    "timestamp": stamp,
                    "type": dom,
                    "price": to_price(p),
                    "volume": s,
                    "currentVolume": s,
                }
                for p, s in levels
            )
        return items

    def quote_snapshot(self, contract_id: str) -> dict[str, Any]:
        """A full GatewayQuote of the contract now, for a new quote subscriber only (the
        published baseline that partial quotes are diffed against is left alone)."""
        feed = self._feed(contract_id)
        data, _ = self._quote_data(feed, self.clock.now_ns(), None)
        assert data is not None  # a full quote always has content
        return data

    # ------------------------------------------------------------------ MarketsView (broker)

    def spec(self, contract_id: str) -> ContractSpec | None:
        """Contract spec by id, expired months included; None when unknown."""
        return self.catalog.by_id(contract_id)

    def market(self, contract_id: str) -> MarketModel:
        """The (lazily built) market model of a contract; KeyError when unknown."""
        model = self._markets.get(contract_id)
        if model is None:
            spec = self.catalog.by_id(contract_id)
            if spec is None:
                raise KeyError(contract_id)
            if self.source is not None:
                model = self.source.market(spec)
            else:
                model = MarketModel(spec, self.config.seed, self.config, start_ns=self._origin_ns)
            self._markets[contract_id] = model
        return model

    def book(self, contract_id: str, ts_ns: int | None = None) -> Book:
        """The depth book at ts_ns; with ts_ns None, the book as last published to market-hub
        subscribers (the model's current book when nobody subscribes)."""
        if ts_ns is None:
            feed = self._feeds.get(contract_id)
            if feed is not None and contract_id in self._interest:
                return feed.book
            ts_ns = self.clock.now_ns()
        return self.market(contract_id).book(ts_ns)

    def last_trade(self, contract_id: str, ts_ns: int) -> tuple[int, int] | None:
        return self.market(contract_id).last_trade(ts_ns)

    def tape(self, contract_id: str, start_ns: int, end_ns: int) -> Trades:
        """Every trade of the contract with start_ns < ts <= end_ns (history and live alike)."""
        return self.market(contract_id).trades(start_ns, end_ns)

    # ------------------------------------------------------------------ REST-facing reads

    def contract(self, contract_id: str) -> dict[str, Any] | None:
        spec = self.catalog.by_id(contract_id)
        return None if spec is None else spec.wire()

    def search_contracts(self, text: str, live: bool) -> list[dict[str, Any]]:
        """Fuzzy search, at most 20; `live=True` finds nothing (sim accounts have no live data)."""
        return [] if live else [spec.wire() for spec in self.catalog.search(text)]

    def available_contracts(self, live: bool) -> list[dict[str, Any]]:
        return [] if live else list(self._wire_available)

    def bars(
        self,
        contract_id: str,
        unit: int,
        unit_number: int,
        start_ns: int,
        end_ns: int,
        limit: int,
        include_partial: bool,
    ) -> list[dict[str, Any]]:
        """AggregateBarModel dicts, newest first; expired months have no intraday history."""
        spec = self.catalog.by_id(contract_id)
        if spec is None or not spec.active:
            return []
        now = self.clock.now_ns()
        rows = self.market(contract_id).bars(
            unit, unit_number, start_ns, end_ns, limit, include_partial, now
        )
        to_price = spec.to_price
        return [
            {
                "t": iso(t),
                "o": to_price(o),
                "h": to_price(h),
                "l": to_price(lo),
                "c": to_price(c),
                "v": v,
                "d": None,
                "k": None,
            }
            for t, o, h, lo, c, v in rows
        ]

    # ------------------------------------------------------------------ pump

    def start(self) -> None:
        """Bind to the running loop and start the pump task."""
        if self._task is not None:
            raise RuntimeError("exchange already started")
        self._loop = asyncio.get_running_loop()
        self._thread_id = threading.get_ident()
        self._task = self._loop.create_task(self._pump(), name="projectx-lab-sim-pump")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loop = None
        self._thread_id = None

    async def _pump(self) -> None:
        interval = self.config.pump_interval
        while True:
            try:
                self.step()
            except Exception:
                log.exception("simulator pump step failed")
            await asyncio.sleep(interval)

    def step(self) -> None:
        """One pump step: tape → broker → sinks for every active contract, up to `now`.

        Also run before every broker request (`RestApi`), so orders are cancelled, modified and
        closed against the market as of now, not as of the last pump step."""
        self.steps += 1
        now = self.clock.now_ns()
        feeds = self._feeds
        working = self.broker.working_contracts()
        for cid in [c for c in feeds if c not in self._interest and c not in working]:
            del feeds[cid]
        for cid, since in working.items():  # a new order: its tape from when it started working
            if cid not in feeds:
                self._feed(cid, min(since, now))
        for cid, feed in list(feeds.items()):
            start = feed.cursor
            if now <= start:
                continue
            trades = feed.market.trades(start, now)
            feed.cursor = now
            if len(trades):
                self.broker.on_tape(cid, trades)
            if cid in self._interest and self._market_sinks:
                self._publish(cid, feed, trades, start, now)

    def _feed(self, contract_id: str, now: int | None = None) -> _Feed:
        feed = self._feeds.get(contract_id)
        if feed is None:
            now = self.clock.now_ns() if now is None else now
            feed = self._feeds[contract_id] = _Feed(self.market(contract_id), now)
        return feed

    def _publish(self, cid: str, feed: _Feed, trades: Trades, start: int, now: int) -> None:
        symbol = feed.spec.symbol_id
        to_price = feed.prices.__getitem__
        n = len(trades)
        prices: list[float] = []
        stamps: list[str] = []
        sizes: list[int] = []
        if n:
            prices = [to_price(p) for p in trades.price.tolist()]
            stamps = [iso(t) for t in trades.ts_ns.tolist()]
            sizes = trades.size.tolist()
            tape = [
                {"symbolId": symbol, "price": p, "timestamp": t, "type": s, "volume": v}
                for p, t, s, v in zip(prices, stamps, trades.side.tolist(), sizes, strict=True)
            ]
            for sink in self._market_sinks:
                sink.market_event(cid, "GatewayTrade", tape)

        market = feed.market
        if n or feed.full_quote or market.quote_changed(start, now):
            self._publish_quote(cid, feed, now)

        depth: list[dict[str, Any]] = []
        ts = trades.ts_ns.tolist() if n else []
        i = 0
        for grid_ns in market.book_times(start, now):
            while i < n and ts[i] <= grid_ns:
                depth.append(_print(stamps[i], prices[i], sizes[i]))
                i += 1
            book = market.book(grid_ns)
            _diff(feed.book, book, iso(grid_ns), to_price, depth)
            feed.book = book
        while i < n:
            depth.append(_print(stamps[i], prices[i], sizes[i]))
            i += 1
        if depth:
            for sink in self._market_sinks:
                sink.market_event(cid, "GatewayDepth", depth)

    def _publish_quote(self, cid: str, feed: _Feed, now: int) -> None:
        data, fields = self._quote_data(feed, now, None if feed.full_quote else feed.quote)
        feed.full_quote = False
        feed.quote = fields
        if data is None:
            return
        for sink in self._market_sinks:
            sink.market_event(cid, "GatewayQuote", data)

    @staticmethod
    def _quote_data(
        feed: _Feed, now: int, since: dict[str, float | int] | None
    ) -> tuple[dict[str, Any] | None, dict[str, float | int]]:
        """(quote message, its fields): every field when `since` is None, else only the fields
        that differ from `since` (message None when nothing changed)."""
        quote = feed.market.quote(now)
        fields = quote.fields(feed.spec)
        if since is None:
            data: dict[str, Any] = {"symbol": feed.spec.symbol_id, "symbolName": feed.spec.name}
            data.update(fields)
        else:
            changed = {k: v for k, v in fields.items() if since.get(k) != v}
            if not changed:
                return None, fields
            data = {"symbol": feed.spec.symbol_id}
            data.update(changed)
        data["lastUpdated"] = iso(quote.last_ts if quote.last_ts is not None else now)
        data["timestamp"] = iso(now)
        return data, fields

    # ------------------------------------------------------------------ user events

    def _emit_user(self, account_id: int, target: str, action: int, data: dict[str, Any]) -> None:
        if target == "GatewayUserOrder":
            cid = data.get("contractId")
            if cid is not None and cid not in self._feeds and self._loop is not None:
                self._feed(cid)  # tape from the order's creation on reaches the broker
        for sink in self._user_sinks:
            sink.user_event(account_id, target, action, data)


def _print(stamp: str, price: float, size: int) -> dict[str, Any]:
    return {
        "timestamp": stamp,
        "type": DOM_TRADE,
        "price": price,
        "volume": size,
        "currentVolume": size,
    }


def _diff(
    old: Book, new: Book, stamp: str, to_price: Callable[[int], float], out: list[dict[str, Any]]
) -> None:
    """Append the depth items turning `old` into `new`: removals, level sizes, top-of-book."""
    for dom, before, after in ((DOM_ASK, old.asks, new.asks), (DOM_BID, old.bids, new.bids)):
        if before == after:
            continue
        prev = dict(before)
        keep = dict(after)
        for price, size in before:
            if price not in keep:
                out.append(
                    {
                        "timestamp": stamp,
                        "type": dom,
                        "price": to_price(price),
                        "volume": 0,
                        "currentVolume": -size,
                    }
                )
        for price, size in after:
            was = prev.get(price, 0)
            if size != was:
                out.append(
                    {
                        "timestamp": stamp,
                        "type": dom,
                        "price": to_price(price),
                        "volume": size,
                        "currentVolume": size - was,
                    }
                )
        best_old = before[0] if before else None
        best_new = after[0] if after else None
        if best_new is not None and best_new != best_old:
            price, size = best_new
            change = size - prev.get(price, 0)
            best, new_best = (
                (DOM_BEST_ASK, DOM_NEW_BEST_ASK)
                if dom == DOM_ASK
                else (DOM_BEST_BID, DOM_NEW_BEST_BID)
            )
            item = {
                "timestamp": stamp,
                "type": best,
                "price": to_price(price),
                "volume": size,
                "currentVolume": change,
            }
            out.append(item)
            if best_old is None or best_old[0] != price:
                out.append({**item, "type": new_best})
