"""Strategies: events in, orders out, the same object on paper and on the real gateway.

```python
class Breakout(Strategy):
    timeframes = ("5min",)

    async def on_bar(self, suite, timeframe, bar):
        if bar.close > self.level and not self.long:
            await suite.orders.place_market_order(suite.instrument, "buy", 1)

await Breakout().run(suite)                         # live, until strategy.stop()
result = await run_paper(Breakout(), "MNQ", source=synthetic(seed=7))   # on the simulator
```

Hooks (override what you need; `async def` or plain `def`): `on_start(suite)`,
`on_bar(suite, timeframe, bar)` for each closed bar of `timeframes`, `on_tick(suite, tick)` for
each trade print (only subscribed when overridden), `on_fill(suite, order)` when one of the
account's orders fills (partly or fully), `on_stop(suite)`. Hooks run one at a time, in event
order, on a single worker task: a hook never races another hook of the same strategy. Orders go
out through `suite.orders` (and `suite.positions` for closes), exactly as in a notebook.

A bar closes when the first trade of the next bar arrives (the data manager's `on_new_bar`) or,
in lockstep paper runs, as soon as simulated time passes its end (`close_due_bars`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from projectx_lab.client.models import Order, OrderSide
from projectx_lab.managers.ticks import Tick
from projectx_lab.managers.timeframes import Timeframe

logger = logging.getLogger("projectx_lab.strategy")
NS = 1_000_000_000
_NEVER = -(2**62)


@dataclass(frozen=True, slots=True)
class Bar:
    """One closed OHLCV bar; `timestamp` is its open time (UTC)."""

    timeframe: str
    timestamp: datetime
    open: float
    high: float
    low: float
    close: float
    volume: int


class Strategy:
    """Base class of a strategy: override the hooks you need; `timeframes` are the bar series
    it wants (the suite must track them; `run_paper` builds its suite with them)."""

    timeframes: tuple[str, ...] = ("1min",)

    async def on_start(self, suite: Any) -> None:
        """Called once, before any other hook."""

    async def on_bar(self, suite: Any, timeframe: str, bar: Bar) -> None:
        """A bar of one of `timeframes` closed."""

    async def on_tick(self, suite: Any, tick: Tick) -> None:
        """A trade print on the suite's instrument (only delivered when overridden)."""

    async def on_fill(self, suite: Any, order: Order) -> None:
        """One of the account's orders filled (partly or completely); `order` is its new state."""

    async def on_stop(self, suite: Any) -> None:
        """Called once at the end (stop, cancellation or the end of a paper run)."""

    @property
    def wants_ticks(self) -> bool:
        """True when `on_tick` is overridden (ticks are only routed then)."""
        return type(self).on_tick is not Strategy.on_tick

    def stop(self) -> None:
        """Ask a running `run()` to finish (it calls `on_stop` and returns)."""
        runtime = getattr(self, "_runtime", None)
        if runtime is not None:
            runtime.request_stop()

    async def run(self, suite: Any) -> None:
        """Run on `suite` (live or paper) until `stop()` is called or the task is cancelled;
        a hook that raises stops the run and the error is raised here."""
        runtime = StrategyRuntime(self, suite)
        await runtime.start()
        try:
            await runtime.wait_stopped()
        finally:
            await runtime.close()
        runtime.raise_failure()


def timeframes_of(strategy: Strategy) -> list[str]:
    """The strategy's bar timeframes as canonical labels (a single string is accepted)."""
    frames = strategy.timeframes
    labels = [Timeframe.parse(tf).label for tf in ([frames] if isinstance(frames, str) else frames)]
    if not labels:
        raise ValueError(f"{type(strategy).__name__} needs at least one timeframe")
    return labels


class StrategyError(RuntimeError):
    """A strategy hook raised; the original exception is the cause."""


class StrategyRuntime:
    """Connects a `Strategy` to a suite: event hooks in, one worker running hooks in order.

    `emit_from_ns` drops bars that opened before it (paper runs start strategies on live bars
    only, so a run does not depend on how much history the gateway had). Pending ticks are
    bounded by `max_pending_ticks` (ticks arriving beyond it are dropped and counted in
    `dropped_ticks`); bars and fills are never dropped.
    """

    def __init__(
        self,
        strategy: Strategy,
        suite: Any,
        *,
        emit_from_ns: int | None = None,
        max_pending_ticks: int = 100_000,
    ) -> None:
        if not isinstance(strategy, Strategy):
            raise TypeError(f"strategy must be a Strategy, got {type(strategy).__name__}")
        self.timeframes = {tf.label: tf for tf in map(Timeframe.parse, timeframes_of(strategy))}
        tracked = set(suite.data.timeframes)
        missing = sorted(set(self.timeframes) - tracked)
        if missing:
            raise ValueError(
                f"the suite does not track {missing} (it has {sorted(tracked)}); create it with "
                f"timeframes={sorted(self.timeframes)}"
            )
        self.strategy = strategy
        self.suite = suite
        self.emit_from_ns = _NEVER if emit_from_ns is None else emit_from_ns
        self.max_pending_ticks = max_pending_ticks
        self.dropped_ticks = 0
        self._last_bar = dict.fromkeys(self.timeframes, _NEVER)
        self._queue: deque[tuple[str, Any, Any]] = deque()
        self._ticks_pending = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopped = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._hooks: list[tuple[Any, Any]] = []
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self._worker else "not started")
        return (
            f"StrategyRuntime({type(self.strategy).__name__}, {state}, "
            f"pending={len(self._queue)}, timeframes={list(self.timeframes)})"
        )

    async def start(self) -> None:
        """Hook the suite's events, call `on_start`, start the worker."""
        if self._worker is not None or self._closed:
            raise RuntimeError("a StrategyRuntime starts once")
        self.strategy._runtime = self  # type: ignore[attr-defined]
        data = self.suite.data
        self._hook(data.on_new_bar, self._on_new_bar)
        if self.strategy.wants_ticks:
            self._hook(data.on_tick, self._on_tick)
        self._hook(self.suite.orders.on_fill, self._on_fill)
        try:
            await _call(self.strategy.on_start(self.suite))
        except Exception as exc:
            self._unhook()
            self._closed = True
            self.strategy._runtime = None  # type: ignore[attr-defined]
            raise StrategyError(f"{type(self.strategy).__name__}.on_start failed: {exc!r}") from exc
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="strategy")

    @property
    def stopping(self) -> bool:
        """True once `request_stop()` was called or a hook failed."""
        return self._stopped.is_set()

    @property
    def failed(self) -> bool:
        """True once a hook has raised (the runtime then stops handling events)."""
        return self._failure is not None

    def request_stop(self) -> None:
        """Ask `run()` / a paper run to finish (what is queued is still handled)."""
        self._stopped.set()

    async def wait_stopped(self) -> None:
        """Until `request_stop()` or a failing hook."""
        await self._stopped.wait()

    async def idle(self) -> None:
        """Until every queued event has been handled."""
        while not self._idle.is_set():
            await self._idle.wait()

    def close_due_bars(self, now_ns: int) -> None:
        """Queue the forming bar of each timeframe whose end is at or before `now_ns` (lockstep
        runs: the clock is known to have passed it, no need to wait for the next trade)."""
        for label, tf in self.timeframes.items():
            series = self.suite.data.series(label)
            bucket = series.forming_bucket
            if bucket is None or bucket <= self._last_bar[label] or tf.next_bucket(bucket) > now_ns:
                continue
            t, o, h, low, c, v = (col[-1] for col in series.tail(0))
            self._bar(label, int(t), float(o), float(h), float(low), float(c), int(v))

    async def close(self, grace: float = 10.0) -> None:
        """Unhook, finish the queued events (for up to `grace` s), call `on_stop` (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._unhook()
        worker = self._worker
        if worker is not None:
            if self._failure is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.idle(), grace)
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        try:
            await _call(self.strategy.on_stop(self.suite))
        finally:
            self.strategy._runtime = None  # type: ignore[attr-defined]

    def raise_failure(self) -> None:
        """Raise `StrategyError` if a hook failed."""
        if self._failure is not None:
            raise StrategyError(
                f"{type(self.strategy).__name__} failed: {self._failure!r}"
            ) from self._failure

    # -- event intake (sync, on the loop) -------------------------------------------------

    def _hook(self, event: Any, handler: Any) -> None:
        event += handler
        self._hooks.append((event, handler))

    def _unhook(self) -> None:
        for event, handler in self._hooks:
            event -= handler
        self._hooks.clear()

    def _put(self, kind: str, a: Any, b: Any) -> None:
        if self._closed or self._failure is not None:
            return
        self._queue.append((kind, a, b))
        self._idle.clear()
        self._wake.set()

    def _on_new_bar(self, label: str, bar: dict[str, Any]) -> None:
        if label not in self.timeframes:
            return
        stamp: datetime = bar["timestamp"]
        t = int(stamp.timestamp()) * NS + stamp.microsecond * 1000
        self._bar(label, t, bar["open"], bar["high"], bar["low"], bar["close"], bar["volume"])

    def _bar(self, label: str, t: int, o: float, h: float, low: float, c: float, v: int) -> None:
        if t <= self._last_bar[label] or t < self.emit_from_ns:
            return
        self._last_bar[label] = t
        secs, rem = divmod(t, NS)
        stamp = datetime.fromtimestamp(secs, UTC).replace(microsecond=rem // 1000)
        self._put("bar", label, Bar(label, stamp, o, h, low, c, v))

    def _on_tick(self, tick: Tick, contract_id: str) -> None:
        if self._ticks_pending >= self.max_pending_ticks:
            self.dropped_ticks += 1
            return
        self._ticks_pending += 1
        self._put("tick", tick, None)

    def _on_fill(self, order: Order, quantity: int) -> None:
        self._put("fill", order, quantity)

    # -- worker ---------------------------------------------------------------------------

    async def _work(self) -> None:
        strategy, suite, queue = self.strategy, self.suite, self._queue
        while True:
            if not queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            kind, a, b = queue.popleft()
            try:
                if kind == "bar":
                    await _call(strategy.on_bar(suite, a, b))
                elif kind == "tick":
                    self._ticks_pending -= 1
                    await _call(strategy.on_tick(suite, a))
                else:
                    await _call(strategy.on_fill(suite, a))
            except Exception as exc:
                logger.exception("%s.on_%s failed; stopping", type(strategy).__name__, kind)
                self._failure = exc
                queue.clear()
                self._idle.set()
                self._stopped.set()
                return


async def _call(result: Any) -> None:
    if inspect.isawaitable(result):
        await result


class SmaCross(Strategy):
    """Example: long when the fast SMA of closes crosses above the slow one, short when it
    crosses below, always `size` contracts in the market once the slow SMA is warm.

    Deterministic: decisions depend only on the closes of its own live bars (no history, no
    wall clock), and it trades with market orders at bar closes. Orders go through
    `suite.orders`; the position is read from `suite.positions`.
    """

    def __init__(self, fast: int = 5, slow: int = 20, size: int = 1, timeframe: str = "1min"):
        if not (isinstance(fast, int) and isinstance(slow, int)) or not 0 < fast < slow:
            raise ValueError(f"need integer periods with 0 < fast < slow, got {fast}, {slow}")
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive int, got {size!r}")
        self.fast, self.slow, self.size = fast, slow, size
        self.timeframes = (Timeframe.parse(timeframe).label,)
        self.closes: deque[float] = deque(maxlen=slow + 1)
        self.signals: list[tuple[datetime, str]] = []

    def __repr__(self) -> str:
        return f"SmaCross(fast={self.fast}, slow={self.slow}, size={self.size})"

    async def on_start(self, suite: Any) -> None:
        self.closes.clear()
        self.signals.clear()

    async def on_bar(self, suite: Any, timeframe: str, bar: Bar) -> None:
        closes = self.closes
        closes.append(bar.close)
        if len(closes) <= self.slow:
            return
        values = list(closes)
        was = _mean(values[-self.fast - 1 : -1]) - _mean(values[-self.slow - 1 : -1])
        now = _mean(values[-self.fast :]) - _mean(values[-self.slow :])
        if was <= 0 < now:
            await self._target(suite, self.size, bar)
        elif was >= 0 > now:
            await self._target(suite, -self.size, bar)

    async def _target(self, suite: Any, target: int, bar: Bar) -> None:
        position = await suite.positions.get_position(suite.instrument.id)
        current = 0 if position is None else position.signed_size
        delta = target - current
        if delta == 0:
            return
        side = OrderSide.BUY if delta > 0 else OrderSide.SELL
        self.signals.append((bar.timestamp, "buy" if delta > 0 else "sell"))
        await suite.orders.place_market_order(suite.instrument, side, abs(delta))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)
