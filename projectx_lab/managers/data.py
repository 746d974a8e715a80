"""RealtimeDataManager: history per timeframe, then bars built live from the trade tape.

The tape (`GatewayTrade`, never quote volume: gotcha 24) feeds every timeframe's `BarSeries`;
DataFrames are built only when asked. Hot path: a batch whose trades all fall in every series'
forming bar (nearly every batch) is folded once per series, and the newest trades go to a
preallocated `TickRing`, so no object is kept per trade. Bars that missed trades (the one
forming at start-up, the one the stream starts in, any that overlapped a dropped connection) are
re-read from `History/retrieveBars` once closed, and a reconnect backfills the gap, so closed
bars always equal the gateway's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from projectx_lab.managers.bars import (
    FORMING_MOVES,
    BarSeries,
    common_forming_window,
    fold_forming,
)
from projectx_lab.managers.ticks import SECOND_CACHE, Tick, TickRing, parse_ts_ns
from projectx_lab.managers.timeframes import Timeframe
from projectx_lab.realtime.dispatch import CallbackTasks, Event
from projectx_lab.realtime.supervisor import ConnectionState
from projectx_lab.realtime.transport import RealtimeError

logger = logging.getLogger("projectx_lab.data")
NS = 1_000_000_000
_AHEAD = timedelta(days=3650)  # "up to the server's now", whatever its clock says
_INF = float("inf")
_UTC = "+00:00"
_UNIT_NAME = {1: "second", 2: "minute", 3: "hour", 4: "day", 5: "week", 6: "month"}


class RealtimeDataManager:
    """Multi-timeframe OHLCV for one instrument, live from the tape, in bounded memory."""

    def __init__(
        self,
        instrument: str,
        project_x: Any,
        realtime_client: Any,
        timeframes: Iterable[str] = ("1min",),
        *,
        max_bars: int = 10_000,
        timezone: str = "America/Chicago",
        initial_bars: int = 500,
        max_ticks: int = 10_000,
    ) -> None:
        labels = [timeframes] if isinstance(timeframes, str) else list(timeframes)
        if not labels:
            raise ValueError("give at least one timeframe, e.g. timeframes=['1min', '5min']")
        parsed = [Timeframe.parse(label) for label in labels]
        self.instrument_symbol = instrument
        self.project_x = project_x
        self.realtime = realtime_client
        self.timezone = timezone
        self.initial_bars = initial_bars
        self.timeframes: dict[str, Timeframe] = {tf.label: tf for tf in parsed}
        self._series: dict[str, BarSeries] = {
            tf.label: BarSeries(tf, capacity=max_bars) for tf in parsed
        }
        self._series_list = list(self._series.values())
        self._dirty: dict[str, set[int]] = {label: set() for label in self._series}
        self._gap_start_ns: int | None = None  # last trade before a dropped market hub
        self._first_live: set[str] = set()  # series whose first bucket since (re)connect is unknown
        self._ticks = TickRing(max_ticks)
        self._tasks = CallbackTasks()
        self._refetches: set[asyncio.Task[Any]] = set()
        # `on_new_bar` announces each closed bar once, in order, with its final values: while
        # the market hub is down or a re-read is pending, closed bars wait in the series.
        self._announced: dict[str, int] = {}  # open of the newest announced (or loaded) bar
        self._rereads: dict[str, int] = {label: 0 for label in self._series}
        self._hub_down = False
        self.on_tick: Event[Tick, str] = Event("tick", self._tasks)
        self.on_new_bar: Event[str, dict[str, Any]] = Event("new_bar", self._tasks)
        self.contract_id: str | None = None
        self.instrument: Any = None
        self.last_price: float | None = None
        self.last_trade_ns: int | None = None
        self.trades_seen = 0
        self._window = (0, 0)  # common_forming_window of the series, cached
        self._window_moves = -1  # FORMING_MOVES when it was computed
        self._running = False

    # -- lifecycle ------------------------------------------------------------------------

    async def initialize(self, initial_bars: int | None = None) -> None:
        """Resolve the instrument and load recent history for every timeframe."""
        self.instrument = await self.project_x.get_instrument(self.instrument_symbol)
        self.contract_id = self.instrument.id
        count = initial_bars or self.initial_bars
        await asyncio.gather(*(self._load_history(label, count) for label in self._series))

    async def start_realtime_feed(self) -> None:
        """Subscribe to the contract's trades (after history, so nothing is counted twice)."""
        if self.contract_id is None:
            await self.initialize()
        for label, series in self._series.items():  # trades before the subscription are missing
            if series.forming_bucket is not None:
                self._dirty[label].add(series.forming_bucket)
        self._first_live.update(self._series)  # and so may the start of the first live bar
        for label, series in self._series.items():
            closed = series.last_closed()
            self._announced[label] = closed[0] if closed is not None else -1
        self.on_tick.open_streams()
        self.on_new_bar.open_streams()
        self.realtime.trade_event += self._on_trades
        self.realtime.state_event += self._on_state
        await self.realtime.subscribe_market(
            self.contract_id, quotes=False, trades=True, depth=False, owner=self
        )
        self._running = True

    async def stop_realtime_feed(self) -> None:
        """Stop listening and release this manager's trade subscription; bars stay available."""
        if not self._running:
            return
        self._running = False
        self.realtime.trade_event -= self._on_trades
        self.realtime.state_event -= self._on_state
        for task in list(self._refetches):
            task.cancel()
        self.on_tick.close_streams()
        self.on_new_bar.close_streams()
        await self._tasks.close(grace=0.2)
        with contextlib.suppress(RealtimeError):  # the connection may be going away too
            await self.realtime.unsubscribe_market(
                self.contract_id, quotes=False, trades=True, depth=False, owner=self
            )

    # -- queries --------------------------------------------------------------------------

    def series(self, timeframe: str) -> BarSeries:
        """The live `BarSeries` of a timeframe ("1m" and "1min" name the same one)."""
        label = Timeframe.parse(timeframe).label
        try:
            return self._series[label]
        except KeyError:
            known = ", ".join(self._series)
            raise ValueError(
                f"timeframe {timeframe!r} is not tracked; this manager has {known}. "
                "Pass it in timeframes=[...] when creating the manager."
            ) from None

    async def get_data(self, timeframe: str = "1min", bars: int | None = None) -> pl.DataFrame:
        """Bars of `timeframe` (the newest `bars`, or all kept), oldest first, forming bar last."""
        if bars is not None and (not isinstance(bars, int) or bars < 1):
            raise ValueError(f"bars must be a positive int, got {bars!r}")
        return self.series(timeframe).to_frame(bars, self.timezone)

    async def get_bars(self, timeframe: str = "1min", bars: int = 100) -> pl.DataFrame:
        """Same as `get_data(timeframe, bars)`."""
        return await self.get_data(timeframe, bars)

    async def get_current_price(self) -> float | None:
        """Last traded price (from the tape, or the newest bar's close before any trade)."""
        if self.last_price is not None:
            return self.last_price
        for series in self._series_list:
            if series.last_price is not None:
                return series.last_price
        return None

    async def wait_until_backfilled(self, timeout: float = 10.0) -> None:
        """Wait until every pending re-read of gap or start-up bars has been merged."""
        async with asyncio.timeout(timeout):
            while self._refetches:
                await asyncio.wait(set(self._refetches))

    def recent_ticks(self, count: int = 100) -> list[Tick]:
        """The newest `count` trades seen live (bounded buffer)."""
        return self._ticks.ticks(count, self.contract_id or "")

    async def stream_ticks(self, maxsize: int = 10_000) -> AsyncIterator[Tick]:
        """`async for tick in manager.stream_ticks()`: every live trade from now on."""
        async with self.on_tick.stream(maxsize) as stream:
            async for tick, _ in stream:
                yield tick

    async def stream_bars(
        self, timeframe: str = "1min", maxsize: int = 1_000
    ) -> AsyncIterator[dict]:
        """`async for bar in manager.stream_bars("1min")`: each bar of `timeframe` as it closes."""
        label = self.series(timeframe).timeframe.label
        async with self.on_new_bar.stream(maxsize) as stream:
            async for tf, bar in stream:
                if tf == label:
                    yield bar

    # -- hot path -------------------------------------------------------------------------

    def _on_trades(self, contract_id: str, data: Any) -> None:
        if contract_id != self.contract_id:
            return
        items = data if isinstance(data, list) else (data,)
        if len(self.on_tick) or not self._fold_batch(items):
            self._fold_each(items, contract_id)
        self.trades_seen += len(items)

    def _fold_batch(self, items: list | tuple) -> bool:
        """Fast path for a batch nobody needs tick by tick: when every trade falls in every
        series' forming bar (nearly always), fold the batch's high/low/close/volume into each
        series at once. False when a trade is malformed or opens a bar: then nothing changed
        but tick-buffer slots past the last commit, which `_fold_each` rewrites."""
        if self._first_live:
            return False
        moves = FORMING_MOVES[0]
        if moves != self._window_moves:
            self._window = common_forming_window(self._series_list)
            self._window_moves = moves
        lo, hi = self._window
        cache = SECOND_CACHE
        ring = self._ticks
        ring_ts, ring_price, ring_size, ring_side = ring.ts, ring.price, ring.size, ring.side
        slots = len(ring_ts)
        i = ring.next
        high, low, volume = -_INF, _INF, 0
        price = 0.0
        ts = 0
        for item in items:
            try:
                text = item["timestamp"]
                secs = cache.get(text[:19])
                if secs is not None and len(text) == 33 and text[19] == "." and text[27:] == _UTC:
                    ts = secs * NS + int(text[20:27]) * 100  # parse_ts_ns's fast path, inline
                else:
                    ts = parse_ts_ns(text)
                price = float(item["price"])
                size = int(item["volume"])
                ring_ts[i] = ts
            except (KeyError, TypeError, ValueError, OverflowError):
                return False
            if not lo <= ts < hi:
                return False
            if price > high:
                high = price
            if price < low:
                low = price
            volume += size
            ring_price[i] = price
            ring_size[i] = size
            ring_side[i] = item.get("type", 0)
            i += 1
            if i == slots:
                i = 0
        if items:
            count = len(items)
            fold_forming(self._series_list, high, low, price, volume, count)
            ring.next = i
            ring.total += count
            self.last_price = price
            self.last_trade_ns = ts
        return True

    def _fold_each(self, items: list | tuple, contract_id: str) -> None:
        """Trade by trade: opens and closes bars, emits ticks, skips malformed trades."""
        series_list = self._series_list
        want_ticks = len(self.on_tick) > 0
        ring = self._ticks
        for item in items:
            try:
                ts = parse_ts_ns(item["timestamp"])
                price = float(item["price"])
                size = int(item["volume"])
                ring.ts[ring.next] = ts
            except (KeyError, TypeError, ValueError, OverflowError):
                logger.warning("skipping a malformed trade for %s", contract_id)
                continue
            for series in series_list:
                if series.add_trade(ts, price, size):
                    self._bar_closed(series)
            if self._first_live:
                self._mark_first_live()
            side = item.get("type", 0)
            i = ring.next
            ring.price[i], ring.size[i], ring.side[i] = price, size, side
            ring.commit(1)
            if want_ticks:
                self.on_tick.emit(Tick(ts, price, size, side, contract_id), contract_id)
            self.last_price = price
            self.last_trade_ns = ts

    def _mark_first_live(self) -> None:
        """The bar the stream (re)starts in may have begun before it: re-read it once closed."""
        for label in self._first_live:
            bucket = self._series[label].forming_bucket
            if bucket is not None:
                self._dirty[label].add(bucket)
        self._first_live.clear()

    def _bar_closed(self, series: BarSeries) -> None:
        closed = series.last_closed()
        if closed is None:
            return
        label = series.timeframe.label
        dirty = self._dirty[label]
        if dirty and min(dirty) < series.forming_bucket:
            stale = sorted(b for b in dirty if b < series.forming_bucket)
            dirty.difference_update(stale)
            self._spawn_refetch(label, stale[0], series.forming_bucket)
        if not self._hub_down and not self._rereads[label]:
            self._announce(label)

    def _announce(self, label: str) -> None:
        """Emit `on_new_bar` for every closed bar of `label` not announced yet, oldest first."""
        bars = self._series[label].closed_after(self._announced.get(label, -1))
        if not bars:
            return
        self._announced[label] = bars[-1][0]
        if not len(self.on_new_bar):
            return
        for t, o, h, low, c, v in bars:
            bar = {
                "timestamp": datetime.fromtimestamp(t / NS, tz=UTC),
                "open": o,
                "high": h,
                "low": low,
                "close": c,
                "volume": v,
            }
            self.on_new_bar.emit(label, bar)

    # -- history and gaps -----------------------------------------------------------------

    async def _load_history(self, label: str, count: int) -> None:
        tf = self.timeframes[label]
        now = self.project_x.gateway_time()
        start = now - timedelta(microseconds=tf.approx_ns * (count + 2) / 1000) - timedelta(days=3)
        frame = await self._fetch(tf, start, now + _AHEAD, partial=True, limit=count)
        self._upsert(label, frame, last_is_partial=True)

    async def _fetch(
        self, tf: Timeframe, start: datetime, end: datetime, *, partial: bool, limit: int = 20_000
    ) -> pl.DataFrame:
        return await self.project_x.get_bars(
            self.contract_id,
            interval=tf.number,
            unit=_UNIT_NAME[tf.gateway_unit],
            start_time=start,
            end_time=end,
            limit=limit,
            partial=partial,
            use_cache=False,
        )

    def _upsert(self, label: str, frame: pl.DataFrame, *, last_is_partial: bool) -> None:
        if frame.is_empty():
            return
        t = frame["timestamp"].dt.epoch("ns").to_numpy()
        cols = [frame[name].to_numpy() for name in ("open", "high", "low", "close", "volume")]
        self._series[label].upsert(t, *cols, last_is_partial=last_is_partial)

    def _spawn_refetch(self, label: str, start_ns: int, end_ns: int | None) -> None:
        task = asyncio.get_running_loop().create_task(self._refetch(label, start_ns, end_ns))
        self._refetches.add(task)
        self._rereads[label] += 1
        task.add_done_callback(self._refetches.discard)
        task.add_done_callback(lambda _: self._reread_done(label))

    def _reread_done(self, label: str) -> None:
        """A re-read ended (replaced, failed or cancelled): announce what waited for it."""
        self._rereads[label] -= 1
        if self._running and not self._hub_down and not self._rereads[label]:
            self._announce(label)

    async def _refetch(self, label: str, start_ns: int, end_ns: int | None) -> None:
        """Replace closed bars from `start_ns` (to `end_ns`, or all closed) with the gateway's."""
        tf = self.timeframes[label]
        start = datetime.fromtimestamp(start_ns / NS, tz=UTC)
        if end_ns is None:
            end = self.project_x.gateway_time() + _AHEAD  # closed bars up to the server's now
        else:
            end = datetime.fromtimestamp(end_ns / NS, tz=UTC) - timedelta(microseconds=1)
        try:
            frame = await self._fetch(tf, start, end, partial=False)
        except Exception:
            logger.exception("could not re-read %s bars after a gap; they may be incomplete", label)
            return
        self._upsert(label, frame, last_is_partial=False)

    def _on_state(self, hub: str, state: Any) -> None:
        """Market hub down: remember where the gap starts. Back up: backfill it everywhere.

        The gap start is taken when the stream breaks, so trades of the new connection that
        arrive before the "reconnected" event cannot move it past the bar where the drop happened.
        """
        if hub != "market":
            return
        if state in (ConnectionState.RECONNECTING, ConnectionState.DISCONNECTED):
            self._hub_down = True
        elif state == ConnectionState.RECONNECTED:
            self._hub_down = False
        known = self._known_until()
        if known is None:
            return
        if state in (ConnectionState.RECONNECTING, ConnectionState.DISCONNECTED):
            if self._gap_start_ns is None:
                self._gap_start_ns = known
            self._first_live.update(self._series)  # the first bar after the gap may lack its start
            return
        if state != ConnectionState.RECONNECTED:
            return
        gap_start = self._gap_start_ns if self._gap_start_ns is not None else known
        self._gap_start_ns = None
        self._first_live.update(self._series)
        for label, series in self._series.items():
            if series.forming_bucket is not None:
                self._dirty[label].add(series.forming_bucket)
            self._spawn_refetch(label, series.timeframe.bucket(gap_start), None)

    def _known_until(self) -> int | None:
        """The last live trade's time; before any, the open of the newest bar loaded (a drop in
        a quiet market must still be backfilled from where the bars end)."""
        if self.last_trade_ns is not None:
            return self.last_trade_ns
        opens = []
        for series in self._series_list:
            if series.forming_bucket is not None:
                opens.append(series.forming_bucket)
            elif (closed := series.last_closed()) is not None:
                opens.append(closed[0])
        return max(opens, default=None)

    def __repr__(self) -> str:
        tfs = ", ".join(self._series)
        return f"RealtimeDataManager({self.instrument_symbol!r}, timeframes=[{tfs}])"
