"""Paper runs: a `Strategy` on the embedded simulator over a synthetic or recorded session.

```python
result = await run_paper(SmaCross(5, 20), "MNQ",
                         source=synthetic(seed=7, start=datetime(2026, 10, 1, 13, 30, tzinfo=UTC),
                                          duration="4h"))
result.trades, result.equity, result.pnl, result.figure()
result = await run_paper(SmaCross(5, 20), "MNQ", source=recording("sessions/mnq-1001"))
```

The run talks to the simulator like any notebook does: a `ProjectX` client over HTTP and a
`TradingSuite` over the hubs, so the strategy object is the one that later runs live.

Two clocks:

* `speed=None` (default), lockstep: simulated time is held and stepped (every `step`, default
  the strategy's shortest bar, or one second when it overrides `on_tick`, so an order placed
  on a tick fills at most a second later) and each step waits until the suite has every
  message and the strategy has reacted. Decisions happen at exact simulated instants, so a run is
  deterministic and as fast as the stack allows; bars close the moment time passes their end.
* `speed=20.0`: the virtual clock runs freely at that speed (watch it live); results then
  depend on timing like a live session does.

Strategies start on live bars only (bars opening before the run's start are not passed to
`on_bar`), so a run does not depend on how much history the source holds; `strategy.stop()`
ends the run early. With
`flatten_at_end` (default) the position is closed and working orders cancelled after `on_stop`,
so `result.pnl` is fully realized and equals the simulator account's balance change.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from projectx_lab.client import ProjectX
from projectx_lab.managers.timeframes import Timeframe
from projectx_lab.sim import Simulator
from projectx_lab.suite import create_trading_suite

from .backtest_report import PaperResult, equity_curve, fills_frame, round_trips
from .lockstep import Lockstep
from .recorder import SessionRecorder
from .strategy import Strategy, StrategyRuntime, timeframes_of

NS = 1_000_000_000
_DAY_NS = 86_400 * NS
_TICK_STEP_NS = NS  # default lockstep step of a strategy with `on_tick`


@dataclass(frozen=True, slots=True)
class SyntheticSource:
    """The simulator's seeded market from `start` for `duration` (see `synthetic`)."""

    seed: int
    start: datetime
    duration: timedelta
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordingSource:
    """A session recording replayed between `start` and `end` (default: all of it)."""

    path: Path
    start: datetime | None = None
    end: datetime | None = None


def _duration(value: timedelta | str) -> timedelta:
    if isinstance(value, timedelta):
        span = value
    elif isinstance(value, str):
        tf = Timeframe.parse(value)
        if tf.fixed_ns is None:
            raise ValueError(f"duration {value!r} must be a fixed length (e.g. '90min', '4h')")
        span = timedelta(microseconds=tf.fixed_ns // 1000)
    else:
        raise TypeError(f"duration must be a timedelta or a string like '4h', got {value!r}")
    if span <= timedelta(0):
        raise ValueError(f"duration must be positive, got {value!r}")
    return span


def _aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def synthetic(
    seed: int = 7,
    start: datetime | None = None,
    duration: timedelta | str = "1h",
    **sim_options: Any,
) -> SyntheticSource:
    """A seeded simulator session; `start` defaults to now (to the minute), `sim_options` are
    `SimConfig` fields (e.g. `trade_rate=5.0`)."""
    when = datetime.now(UTC).replace(second=0, microsecond=0) if start is None else start
    return SyntheticSource(seed, _aware(when, "start"), _duration(duration), dict(sim_options))


def recording(
    path: str | Path, start: datetime | None = None, end: datetime | None = None
) -> RecordingSource:
    """A recorded session (a `SessionRecorder` directory), optionally a window of it."""
    return RecordingSource(
        Path(path),
        None if start is None else _aware(start, "start"),
        None if end is None else _aware(end, "end"),
    )


def _ns(value: datetime) -> int:
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS + delta.microseconds * 1000


def _utc(ts_ns: int) -> datetime:
    secs, rem = divmod(ts_ns, NS)
    return datetime.fromtimestamp(secs, UTC).replace(microsecond=rem // 1000)


def _steps(start_ns: int, end_ns: int, step_ns: int) -> Iterator[int]:
    """Epoch-aligned step instants after `start_ns`, ending exactly at `end_ns`."""
    t = (start_ns // step_ns + 1) * step_ns
    while t < end_ns:
        yield t
        t += step_ns
    if end_ns > start_ns:
        yield end_ns


def _step_ns(strategy: Strategy, step: timedelta | str | None) -> int:
    if step is not None:
        return int(_duration(step).total_seconds() * NS)
    lengths = [Timeframe.parse(tf).fixed_ns or _DAY_NS for tf in timeframes_of(strategy)]
    return min([*lengths, _TICK_STEP_NS if strategy.wants_ticks else _DAY_NS])


async def run_paper(
    strategy: Strategy,
    symbol: str = "MNQ",
    source: SyntheticSource | RecordingSource | None = None,
    *,
    speed: float | None = None,
    step: timedelta | str | None = None,
    account: str | int | None = None,
    record: str | Path | None = None,
    flatten_at_end: bool = True,
    initial_bars: int = 100,
    transport: str = "native",
    timeout: float = 30.0,
) -> PaperResult:
    """Run `strategy` on `symbol` over `source` on a fresh embedded simulator; see the module
    docstring for the clocks. `record` also records the session (e.g. to replay it later);
    `account` picks a simulator account by name or id; `timeout` bounds each lockstep wait."""
    if not isinstance(strategy, Strategy):
        raise TypeError(f"strategy must be a Strategy, got {type(strategy).__name__}")
    if speed is not None and not (isinstance(speed, int | float) and speed > 0):
        raise ValueError(f"speed must be None (lockstep) or a positive number, got {speed!r}")
    source = source or synthetic()
    step_ns = _step_ns(strategy, step)
    if isinstance(source, SyntheticSource):
        sim = Simulator(seed=source.seed, start=source.start, speed=speed or 1.0, **source.options)
        start_ns = _ns(source.start)
        end_ns = start_ns + int(source.duration.total_seconds() * NS)
    elif isinstance(source, RecordingSource):
        sim = Simulator(replay=source.path, start=source.start, speed=speed or 1.0)
        assert sim.replay is not None
        start_ns = _ns(source.start) if source.start else sim.replay.start_ns
        end_ns = _ns(source.end) if source.end else sim.replay.end_ns
    else:
        raise TypeError(f"source must be synthetic(...) or recording(...), got {source!r}")
    if end_ns <= start_ns:
        raise ValueError("the source's window is empty (end is not after start)")
    lockstep = speed is None
    if lockstep:
        sim.clock.hold(at=start_ns)
    mode = "lockstep" if lockstep else f"speed {speed:g}"
    async with sim, ProjectX.for_simulator(sim) as client:
        await client.authenticate()
        if account is not None:
            await client.select_account(account)
        info = client.account_info
        start_balance = info.balance if info.balance is not None else Decimal(0)
        suite = await create_trading_suite(
            symbol,
            project_x=client,
            timeframes=timeframes_of(strategy),
            initial_bars=initial_bars,
            transport=transport,
        )
        async with suite, contextlib.AsyncExitStack() as cleanup:
            if record is not None:
                recorder = SessionRecorder(suite, record)
                cleanup.push_async_callback(lambda: recorder.close(end=end_ns))
            runtime = StrategyRuntime(strategy, suite, emit_from_ns=start_ns)
            lock = Lockstep(sim, suite, idle=runtime.idle, timeout=timeout) if lockstep else None
            await runtime.start()
            try:
                if lock is not None:
                    await lock.start()
                    for t in _steps(start_ns, end_ns, step_ns):
                        await lock.advance_to(t)
                        runtime.close_due_bars(t)
                        await lock.settle()
                        if runtime.stopping:
                            break
                else:
                    await _run_until(sim, runtime, end_ns)
                end_ns = min(end_ns, sim.clock.now_ns())  # earlier when the strategy stopped
            finally:
                await runtime.close()
            if flatten_at_end and not runtime.failed:
                await suite.orders.flatten(suite.instrument)
            if lock is not None:
                await lock.settle()
                lock.close(release=False)
            runtime.raise_failure()
            await cleanup.aclose()  # the recording is complete before the report is read
            window = (start_ns, end_ns, max(end_ns, sim.clock.now_ns()))
            result = await _report(strategy, client, suite, window, start_balance, mode, record)
    return result


async def _run_until(sim: Simulator, runtime: StrategyRuntime, end_ns: int) -> None:
    """Free-running clock: until simulated time reaches `end_ns` (re-measured, so a speed
    change on the way is honoured) or the strategy stops or fails."""
    while (wait := sim.clock.real_seconds_until(end_ns)) > 0 and not runtime.stopping:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.wait_stopped(), min(wait, 1.0) + 0.001)


async def _report(
    strategy: Strategy,
    client: ProjectX,
    suite: Any,
    window: tuple[int, int, int],
    start_balance: Decimal,
    mode: str,
    record: str | Path | None,
) -> PaperResult:
    """Read the run back from the simulator: fills, balance, bars; `window` is (start, end,
    final) where final (>= end) includes the closing flatten of a free-running run."""
    instrument = suite.instrument
    start, end, final = (_utc(ns) for ns in window)
    margin = timedelta(seconds=1)
    fills = await client.search_trades(start - margin, final + margin)
    accounts = await client.list_accounts(only_active=False)
    account_id = client.account_info.id
    end_balance = next(
        (a.balance for a in accounts if a.id == account_id and a.balance is not None),
        start_balance,
    )
    bars = await client.get_bars(
        instrument, interval=1, unit="minute", start_time=start, end_time=end, use_cache=False
    )
    point_value = instrument.tick_value / instrument.tick_size
    position = None
    with contextlib.suppress(Exception):
        position = await suite.positions.get_position(instrument.id)
    live = [f for f in fills if not f.voided]
    custom_repr = type(strategy).__repr__ is not object.__repr__
    return PaperResult(
        strategy=repr(strategy) if custom_repr else type(strategy).__name__,
        contract_id=instrument.id,
        start=start,
        end=end,
        mode=mode,
        fills=fills_frame(live),
        trades=round_trips(live, {instrument.id: point_value}),
        equity=equity_curve(live, bars, start_balance, point_value, final),
        bars=bars,
        start_balance=start_balance,
        end_balance=end_balance,
        gross_pnl=sum((f.profit_and_loss or Decimal(0) for f in live), Decimal(0)),
        fees=sum((f.fees or Decimal(0) for f in live), Decimal(0)),
        commissions=sum((f.commissions or Decimal(0) for f in live), Decimal(0)),
        open_position=0 if position is None else position.signed_size,
        recording=None if record is None else str(record),
    )
