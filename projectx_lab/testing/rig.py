"""`Rig`: a simulator, a `ProjectX` client and a `TradingSuite` on it with test-speed timings,
plus what the scenarios compare against the simulator (bars, book, orders, positions, hub
subscriptions) and an event-driven waiter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from projectx_lab.client import ProjectX
from projectx_lab.managers.timeframes import Timeframe
from projectx_lab.realtime import ConnectionState
from projectx_lab.sim import Simulator
from projectx_lab.suite import TradingSuite

SIM_START = datetime(2026, 10, 1, 14, 30, tzinfo=UTC)  # a Thursday, US session
_FROZEN = 1e-9  # clock speed that stops simulated time for a comparison
_MARKET_KINDS = {"quotes": "GatewayQuote", "trades": "GatewayTrade", "depth": "GatewayDepth"}


@dataclass(frozen=True, slots=True)
class RigOptions:
    """Knobs of one rig: simulator, client and real-time settings (test speed by default)."""

    speed: float = 60.0
    trade_rate: float = 4.0
    seed: int = 7
    token_ttl: float = 24 * 3600.0
    ping_interval: float = 0.5
    timeframes: tuple[str, ...] = ("15sec", "1min")
    initial_bars: int = 20
    stale_after: float | None = 5.0
    transport: str = "signalrcore"
    client: dict[str, Any] = field(default_factory=dict)
    sim: dict[str, Any] = field(default_factory=dict)

    def simulator(self) -> Simulator:
        options = {
            "seed": self.seed,
            "speed": self.speed,
            "start": SIM_START,
            "trade_rate": self.trade_rate,
            "token_ttl": self.token_ttl,
            "ping_interval": self.ping_interval,
            "history_rate": (2_000, 30.0),  # gap backfills must not queue behind client pacing
            "rest_rate": (2_000, 60.0),
        }
        return Simulator(**{**options, **self.sim})

    def client_settings(self) -> dict[str, Any]:
        fast = {"retry_initial_wait": 0.01, "retry_max_wait": 0.05, "order_lookup_timeout": 2.0}
        return {**fast, **self.client}

    def realtime(self) -> dict[str, Any]:
        return {
            "keepalive_interval": 0.2,
            "server_timeout": 3.0,
            "stale_after": self.stale_after,
            "invoke_timeout": 3.0,
            "reconnect_initial": 0.05,
            "reconnect_max": 0.3,
        }


class Changes:
    """A callback for any event; `until(predicate)` re-checks on every call (no polling)."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def __call__(self, *_: object) -> None:
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], within: float = 10.0) -> bool:
        """True once `predicate()` holds; False after `within` seconds."""
        try:
            async with asyncio.timeout(within):
                while not predicate():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return predicate()
        return True

    async def quiet(self, period: float, within: float = 10.0) -> bool:
        """True once no call came for `period` seconds; False after `within` seconds."""
        try:
            async with asyncio.timeout(within):
                while True:
                    self._changed.clear()
                    try:
                        await asyncio.wait_for(self._changed.wait(), period)
                    except TimeoutError:
                        return True
        except TimeoutError:
            return False


class StateLog:
    """Connection state events of a real-time client, per hub, with waits on counts."""

    def __init__(self, realtime: Any) -> None:
        self.events: list[tuple[str, ConnectionState]] = []
        self.changes = Changes()
        realtime.state_event += self._on_state

    def _on_state(self, hub: str, state: ConnectionState) -> None:
        self.events.append((hub, state))
        self.changes()

    def count(self, hub: str, state: ConnectionState) -> int:
        return sum(1 for h, s in self.events if h == hub and s == state)

    async def wait_count(
        self, hub: str, state: ConnectionState, count: int, within: float = 10.0
    ) -> bool:
        return await self.changes.until(lambda: self.count(hub, state) >= count, within)


class Rig:
    """`async with Rig(RigOptions(...)) as rig:` → `rig.sim`, `rig.client`, `rig.suite`."""

    def __init__(self, options: RigOptions | None = None) -> None:
        self.options = options or RigOptions()
        self.sim = self.options.simulator()
        self.client: ProjectX | None = None
        self.suite: TradingSuite | None = None
        self.states: StateLog | None = None
        self.scratch: dict[str, Any] = {}  # ids a scenario sets up for later steps

    async def __aenter__(self) -> Rig:
        await self.sim.start()
        try:
            self.client = await ProjectX.for_simulator(
                self.sim, **self.options.client_settings()
            ).__aenter__()
            await self.client.authenticate()
            self.suite = await TradingSuite.create(
                "MNQ",
                project_x=self.client,
                timeframes=self.options.timeframes,
                initial_bars=self.options.initial_bars,
                realtime_options=self.options.realtime(),
                transport=self.options.transport,
            )
            self.suite.orders.child_timeout = 0.5
            self.states = StateLog(self.suite.realtime)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.suite is not None:
            await self.suite.close()
        if self.client is not None:
            await self.client.aclose()
        await self.sim.stop()

    # -- accessors (typed, non-optional once entered) -------------------------------------

    @property
    def contract_id(self) -> str:
        return self.the_suite.instrument.id

    @property
    def the_suite(self) -> TradingSuite:
        if self.suite is None:
            raise RuntimeError("use the rig inside `async with`")
        return self.suite

    @property
    def the_client(self) -> ProjectX:
        if self.client is None:
            raise RuntimeError("use the rig inside `async with`")
        return self.client

    @property
    def account_id(self) -> int:
        return self.the_client.account_info.id  # type: ignore[union-attr]

    # -- simulated time -------------------------------------------------------------------

    def freeze_clock(self) -> None:
        """Stop simulated time (so live state can be compared with the simulator's)."""
        self.sim.clock.speed = _FROZEN

    def resume_clock(self) -> None:
        self.sim.clock.speed = self.options.speed

    async def trades(self, batches: int, within: float = 10.0) -> bool:
        """Wait until `batches` more trade messages reached the suite."""
        seen = [0]
        changes = Changes()

        def on_trades(contract_id: str, _: Any) -> None:
            seen[0] += 1
            changes()

        realtime = self.the_suite.realtime
        realtime.trade_event += on_trades
        try:
            return await changes.until(lambda: seen[0] >= batches, within)
        finally:
            realtime.trade_event -= on_trades

    async def bars_closed(self, timeframe: str, count: int, within: float = 15.0) -> bool:
        """Wait until `count` more bars of `timeframe` closed on the suite's data manager."""
        label = Timeframe.parse(timeframe).label
        closed = [0]
        changes = Changes()

        def on_bar(tf: str, _: Any) -> None:
            if tf == label:
                closed[0] += 1
                changes()

        data = self.the_suite.data
        data.on_new_bar += on_bar
        try:
            return await changes.until(lambda: closed[0] >= count, within)
        finally:
            data.on_new_bar -= on_bar

    # -- what the simulator says ----------------------------------------------------------

    def sim_bars(self, timeframe: str, start_ns: int, end_ns: int) -> list[tuple[Any, ...]]:
        """The simulator's closed bars in [start, end), oldest first, prices as floats."""
        tf = Timeframe.parse(timeframe)
        cid = self.contract_id
        spec = self.sim.exchange.spec(cid)
        rows = self.sim.exchange.market(cid).bars(
            tf.gateway_unit, tf.number, start_ns, end_ns, 20_000, False, self.sim.clock.now_ns()
        )
        px = spec.to_price  # type: ignore[union-attr]
        return [(t, px(o), px(h), px(lo), px(c), v) for t, o, h, lo, c, v in reversed(rows)]

    def sim_book(self) -> tuple[dict[float, float], dict[float, float]]:
        """The depth book as the simulator last published it, as {price: size} per side."""
        cid = self.contract_id
        spec = self.sim.exchange.spec(cid)
        book = self.sim.exchange.book(cid)
        bids = {spec.to_price(p): float(s) for p, s in book.bids}  # type: ignore[union-attr]
        asks = {spec.to_price(p): float(s) for p, s in book.asks}  # type: ignore[union-attr]
        return bids, asks

    def sim_orders(self) -> dict[int, dict[str, Any]]:
        """Every order of the rig's account on the simulator (wire dicts by id)."""
        _, _, rows = self.sim.exchange.broker.search_orders(self.account_id)
        return {row["id"]: row for row in rows or ()}

    def sim_positions(self) -> dict[str, tuple[int, float]]:
        """Open positions on the simulator: contract → (signed size, average price)."""
        _, _, rows = self.sim.exchange.broker.open_positions(self.account_id)
        out = {}
        for row in rows or ():
            sign = 1 if row["type"] == 1 else -1
            out[row["contractId"]] = (sign * row["size"], float(row["averagePrice"]))
        return out

    def hub_subscriptions(self, hub: str) -> list[frozenset[tuple[str, Any]]]:
        """What the simulator holds, one set per live connection of `hub`."""
        return [c.subscriptions for c in self.sim.app.hubs.connections(hub)]

    def expected_market_subscriptions(self) -> set[tuple[str, str]]:
        """What the suite's real-time registry says the market hub should hold."""
        wanted = set()
        for cid, kinds in self.the_suite.realtime.market_subscriptions.items():
            wanted.update((_MARKET_KINDS[k], cid) for k in kinds)
        return wanted

    def mutation_requests(self) -> int:
        """REST mutations received by the simulator so far (place/modify/cancel/close)."""
        counts = self.sim.request_counts()
        return sum(n for path, n in counts.items() if _is_mutation(path))

    def total_requests(self) -> int:
        return sum(self.sim.request_counts().values())

    # -- what the suite shows -------------------------------------------------------------

    def closed_bars(self, timeframe: str) -> list[tuple[Any, ...]]:
        """The suite's closed bars of `timeframe` (the forming bar left out), oldest first."""
        t, o, h, low, c, v = (
            col.tolist() for col in self.the_suite.data.series(timeframe).arrays()
        )
        return list(zip(t, o, h, low, c, v, strict=True))[:-1]

    def book(self) -> tuple[dict[float, float], dict[float, float]]:
        book = self.the_suite.orderbook
        assert book is not None
        return dict(book.bids), dict(book.asks)

    async def book_matches(self, within: float = 5.0) -> bool:
        """With simulated time stopped: does the suite's book become the simulator's?"""
        changes = Changes()
        book = self.the_suite.orderbook
        assert book is not None
        book.on_update.append(changes)
        self.freeze_clock()
        try:
            return await changes.until(lambda: self.book() == self.sim_book(), within)
        finally:
            book.on_update.remove(changes)
            self.resume_clock()

    async def bars_report(self) -> tuple[int, int]:
        """(bars differing from the simulator's, duplicate bar timestamps) over every timeframe,
        after pending backfills; simulated time is stopped while comparing."""
        data = self.the_suite.data
        await data.wait_until_backfilled()
        self.freeze_clock()
        try:
            await data.wait_until_backfilled()
            mismatched = duplicates = 0
            for label in data.timeframes:
                ours = self.closed_bars(label)
                stamps = [bar[0] for bar in ours]
                duplicates += len(stamps) - len(set(stamps))
                frame = await data.get_data(label)
                duplicates += frame.height - frame["timestamp"].n_unique()
                if not ours:
                    continue
                theirs = {bar[0]: bar for bar in self.sim_bars(label, ours[0][0], ours[-1][0] + 1)}
                mine = {bar[0]: bar for bar in ours}
                mismatched += sum(
                    1 for t in theirs.keys() | mine.keys() if theirs.get(t) != mine.get(t)
                )
            return mismatched, duplicates
        finally:
            self.resume_clock()


def _is_mutation(path: str) -> bool:
    lowered = path.lower()
    return lowered.startswith(("/api/order/", "/api/position/")) and lowered.rsplit("/", 1)[-1] in (
        "place",
        "modify",
        "cancel",
        "closecontract",
        "partialclosecontract",
    )
