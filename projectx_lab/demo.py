"""`projectx-lab demo`: a guided run of the SDK against the embedded gateway simulator.

Starts the simulator, opens a `TradingSuite` on one symbol, shows live bars and the top of the
book, places a bracket order, follows its fill and the P&L, flattens and exits cleanly. In a
terminal the view is a `rich` live table; otherwise (CI logs, pipes) plain periodic lines.
Ctrl-C (or SIGTERM) skips to the clean-up: flatten, summary, exit code 130.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from projectx_lab.client import ProjectX
from projectx_lab.client.errors import InstrumentNotFoundError
from projectx_lab.client.models import Order, Position
from projectx_lab.sim import Simulator
from projectx_lab.suite import TradingSuite, create_trading_suite

MIN_SECONDS = 3.0
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
FRAME_S = 0.25  # live table refresh
PLAIN_EVERY_S = 2.0  # plain-text status line period
BARS_SHOWN = 6  # closed 1-min bars plus the forming one
RATE_WINDOW_S = 3.0  # trades/s is measured over this many real seconds
WAIT_S = 15.0  # longest wait for a fill or a position change


class DemoUsageError(ValueError):
    """Options the demo cannot run with (bad duration, unknown symbol, ...)."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What the demo runs: symbol, real-time duration, simulator speed and seed, bracket legs.

    `live=None` picks the rich live table when stdout is a terminal, plain lines otherwise.
    """

    symbol: str = "MNQ"
    seconds: float = 30.0
    speed: float = 10.0
    seed: int = 7
    stop_ticks: int = 60
    target_ticks: int = 60
    live: bool | None = None

    def check(self) -> None:
        """Raise `DemoUsageError` with a clear message for options the demo cannot run with."""
        if not isinstance(self.symbol, str) or not self.symbol.strip():
            raise DemoUsageError("symbol must be a non-empty string, e.g. MNQ")
        if not (math.isfinite(self.seconds) and self.seconds >= MIN_SECONDS):
            raise DemoUsageError(
                f"seconds must be a number >= {MIN_SECONDS:g}, got {self.seconds:g}"
            )
        if not (math.isfinite(self.speed) and self.speed > 0):
            raise DemoUsageError(f"speed must be a finite number > 0, got {self.speed:g}")
        for name in ("stop_ticks", "target_ticks"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 4:
                raise DemoUsageError(f"{name} must be a whole number of ticks >= 4, got {value!r}")


# -- what is on screen --------------------------------------------------------------------


Bar = tuple[datetime, float, float, float, float, int]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One frame of the demo: market, book, flow and account state."""

    elapsed: float
    sim_time: datetime
    last: float | None
    bars: list[Bar]  # oldest first, forming bar last
    bid: float | None
    ask: float | None
    spread: float | None
    imbalance: float | None
    trades_per_s: float
    position: int  # signed size
    average: Decimal | None
    unrealized: Decimal | None
    realized_net: Decimal


class Monitor:
    """Reads a `Snapshot` from the suite; keeps the short history trades/s needs."""

    def __init__(self, suite: TradingSuite, sim: Simulator) -> None:
        self.suite = suite
        self.sim = sim
        self.contract_id = suite.instrument.id
        self.started = time.monotonic()
        self._samples: deque[tuple[float, int]] = deque()

    def _rate(self, now: float) -> float:
        samples = self._samples
        samples.append((now, self.suite.data.trades_seen))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW_S:
            samples.popleft()
        (t0, n0), (t1, n1) = samples[0], samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    async def snapshot(self) -> Snapshot:
        """The current frame (the 1-min bars come from the data manager's cached frame)."""
        suite = self.suite
        now = time.monotonic()
        frame = await suite.data.get_bars("1min", BARS_SHOWN)
        book = suite.orderbook
        pnl = await suite.positions.get_portfolio_pnl()
        mine = next((p for p in pnl.positions if p.contract_id == self.contract_id), None)
        return Snapshot(
            elapsed=now - self.started,
            sim_time=self.sim.clock.now(),
            last=await suite.data.get_current_price(),
            bars=[(t.astimezone(UTC), *rest) for t, *rest in frame.iter_rows()],
            bid=book.best_bid if book else None,
            ask=book.best_ask if book else None,
            spread=book.spread if book else None,
            imbalance=book.get_imbalance(levels=5) if book else None,
            trades_per_s=self._rate(now),
            position=mine.signed_size if mine else 0,
            average=mine.average_price if mine else None,
            unrealized=mine.unrealized if mine else None,
            realized_net=pnl.net_realized,
        )


class Formats:
    """Number formatting for one instrument (prices at its tick's decimals)."""

    def __init__(self, tick_size: Decimal) -> None:
        self.decimals = max(0, -int(tick_size.normalize().as_tuple().exponent))

    def price(self, value: float | Decimal | None) -> str:
        return "—" if value is None else f"{float(value):,.{self.decimals}f}"

    @staticmethod
    def money(value: Decimal | None) -> str:
        return "—" if value is None else f"{value:+,.2f}"

    @staticmethod
    def ratio(value: float | None) -> str:
        return "—" if value is None else f"{value:+z.2f}"

    @staticmethod
    def position(size: int) -> str:
        return "flat" if size == 0 else (f"long {size}" if size > 0 else f"short {-size}")


def render_table(snap: Snapshot, name: str, speed: float, fmt: Formats) -> Group:
    """The live view: top of book and flow, the newest 1-min bars, the position and P&L."""
    top = Table(
        title=f"{name} · simulated {snap.sim_time:%H:%M:%S} UTC · {speed:g}x",
        title_justify="left",
        expand=False,
    )
    for column in ("last", "bid", "ask", "spread", "imbalance (5 lv)", "trades/s"):
        top.add_column(column, justify="right")
    top.add_row(
        fmt.price(snap.last),
        fmt.price(snap.bid),
        fmt.price(snap.ask),
        fmt.price(snap.spread),
        fmt.ratio(snap.imbalance),
        f"{snap.trades_per_s:,.1f}",
    )
    bars = Table(title="1-min bars (UTC)", title_justify="left")
    for column in ("bar", "open", "high", "low", "close", "volume"):
        bars.add_column(column, justify="right")
    for i, (t, o, h, low, c, v) in enumerate(snap.bars):
        label = f"{t:%H:%M}" + (" forming" if i == len(snap.bars) - 1 else "")
        style = "bold" if i == len(snap.bars) - 1 else None
        bars.add_row(label, *map(fmt.price, (o, h, low, c)), f"{v:,}", style=style)
    account = Table(title="position and P&L", title_justify="left")
    for column in ("position", "average", "unrealized", "realized (net)"):
        account.add_column(column, justify="right")
    account.add_row(
        fmt.position(snap.position),
        fmt.price(snap.average),
        fmt.money(snap.unrealized),
        fmt.money(snap.realized_net),
    )
    return Group(top, bars, account)


def plain_line(snap: Snapshot, fmt: Formats) -> str:
    """One status line for logs: time, top of book, flow, forming bar, position and P&L."""
    parts = [
        f"[{snap.elapsed:5.1f}s] {snap.sim_time:%H:%M:%S}Z",
        f"last {fmt.price(snap.last)}",
        f"bid {fmt.price(snap.bid)} ask {fmt.price(snap.ask)} spread {fmt.price(snap.spread)}",
        f"imbalance {fmt.ratio(snap.imbalance)}",
        f"{snap.trades_per_s:.1f} trades/s",
    ]
    if snap.bars:
        t, o, h, low, c, v = snap.bars[-1]
        ohlc = " ".join(f"{k} {fmt.price(x)}" for k, x in zip("OHLC", (o, h, low, c), strict=True))
        parts.append(f"1m {t:%H:%M} {ohlc} V {v}")
    position = f"position {fmt.position(snap.position)}"
    if snap.position:
        position += f" @ {fmt.price(snap.average)} unrealized {fmt.money(snap.unrealized)}"
    parts.append(f"{position} realized {fmt.money(snap.realized_net)}")
    return " | ".join(parts)


class View:
    """Where the demo writes: a rich `Live` table (terminal) or plain periodic lines."""

    def __init__(self, out: TextIO, live: bool, title: str, speed: float, fmt: Formats):
        self.out = out
        self.fmt = fmt
        self.title = title
        self.speed = speed
        self._console = Console(file=out, force_terminal=live, highlight=False) if live else None
        self._live: Live | None = None
        self._last_plain = -PLAIN_EVERY_S

    def __enter__(self) -> View:
        if self._console is not None:
            self._live = Live(console=self._console, auto_refresh=False, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def note(self, text: str) -> None:
        """An event line (kept above the live table in a terminal)."""
        if self._live is not None:
            self._live.console.print(text, markup=False)
        else:
            print(text, file=self.out, flush=True)

    def show(self, snap: Snapshot, force: bool = False) -> None:
        """Redraw the table, or print a status line every `PLAIN_EVERY_S` (always if `force`)."""
        if self._live is not None:
            self._live.update(render_table(snap, self.title, self.speed, self.fmt), refresh=True)
        elif force or snap.elapsed - self._last_plain >= PLAIN_EVERY_S:
            self._last_plain = snap.elapsed
            print(plain_line(snap, self.fmt), file=self.out, flush=True)


# -- the tour -----------------------------------------------------------------------------


class Tour:
    """The scripted run on an open suite: watch, bracket, P&L, flatten, summary."""

    def __init__(
        self, suite: TradingSuite, sim: Simulator, view: View, stop: asyncio.Event, opt: DemoOptions
    ) -> None:
        self.suite = suite
        self.sim = sim
        self.view = view
        self.stop = stop
        self.opt = opt
        self.fmt = view.fmt
        self.monitor = Monitor(suite, sim)
        self.contract_id = suite.instrument.id
        self.roles: dict[int, str] = {}
        self.fills: list[str] = []
        self._held: list[tuple[Order, int]] | None = None  # fills seen while a bracket is placed
        self.bars_closed = 0
        self.sim_start = sim.clock.now()

    async def run(self) -> None:
        """All phases in turn; after Ctrl-C only the clean-up and the summary run."""
        suite = self.suite
        suite.orders.on_fill += self._on_fill
        suite.data.on_new_bar += self._on_bar
        try:
            budget = self.opt.seconds
            await self._watch(0.35 * budget)
            if not self.stop.is_set():
                await self._bracket()
                await self._watch(0.45 * budget)
            await self._flatten()
            await self._watch(budget - self._elapsed())
            await self._summary()
        finally:
            suite.orders.on_fill -= self._on_fill
            suite.data.on_new_bar -= self._on_bar

    def _elapsed(self) -> float:
        return time.monotonic() - self.monitor.started

    async def _watch(self, seconds: float) -> None:
        """Refresh the view for `seconds` (less if Ctrl-C)."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set():
            self.view.show(await self.monitor.snapshot())
            left = deadline - time.monotonic()
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), min(FRAME_S, left))

    async def _bracket(self) -> None:
        """Buy 1 at market with a stop loss and a take profit; wait for the entry's fill."""
        opt, cid = self.opt, self.contract_id
        name = self.suite.instrument.name
        self.view.note(
            f"Placing a bracket: BUY 1 {name} at market, stop loss {opt.stop_ticks} ticks, "
            f"take profit {opt.target_ticks} ticks"
        )
        self._held = []
        try:
            result = await self.suite.orders.place_bracket_order(
                cid, "buy", 1, stop_loss_ticks=opt.stop_ticks, take_profit_ticks=opt.target_ticks
            )
        finally:
            held, self._held = self._held, None
        self.roles = {result.entry_order_id: "entry"}
        if result.stop_order_id is not None:
            self.roles[result.stop_order_id] = "stop loss"
        if result.target_order_id is not None:
            self.roles[result.target_order_id] = "take profit"
        self.view.note(
            f"bracket placed: entry #{result.entry_order_id}, stop loss #{result.stop_order_id}, "
            f"take profit #{result.target_order_id}"
        )
        for order, quantity in held:
            self._on_fill(order, quantity)
        entry = await self.suite.orders.wait_for_fill(result.entry_order_id, timeout=WAIT_S)
        self.view.note(f"entry #{entry.id} filled at {self.fmt.price(entry.filled_price)}")
        position = await self._position_where(lambda p: p is not None, WAIT_S)
        size = position.signed_size if position is not None else 0
        average = position.average_price if position is not None else None
        self.view.note(
            f"position: {self.fmt.position(size)} @ {self.fmt.price(average)}; "
            "watching the P&L move"
        )

    async def _flatten(self) -> None:
        """Close whatever is open on the contract and cancel what still works on it."""
        orders = self.suite.orders
        position = await self.suite.positions.get_position(self.contract_id)
        if position is None and not orders.working_orders(self.contract_id):
            if self.roles:
                self.view.note("position: flat (a bracket leg closed it)")
            return
        self.view.note("Flattening: close the position at market, cancel the leftover orders")
        result = await orders.flatten(self.contract_id)
        cancelled = ", ".join(f"#{i}" for i in result.cancelled.cancelled) or "none"
        self.view.note(f"flatten: position closed={result.closed}, orders cancelled: {cancelled}")
        await self._position_where(lambda p: p is None, WAIT_S)
        self.view.note("position: flat")

    async def _position_where(
        self, predicate: Callable[[Position | None], bool], timeout: float
    ) -> Position | None:
        """The contract's position once `predicate` holds (woken by position events)."""
        changed = asyncio.Event()
        positions = self.suite.positions

        def on_update(position: Position, previous: Position | None) -> None:
            changed.set()

        positions.on_position_update += on_update
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed.clear()
                    position = await positions.get_position(self.contract_id)
                    if predicate(position):
                        return position
                    await changed.wait()
        finally:
            positions.on_position_update -= on_update

    def _on_fill(self, order: Order, quantity: int) -> None:
        if self._held is not None:  # roles are known once the placement returns
            self._held.append((order, quantity))
            return
        role = self.roles.get(order.id, "close")
        price = self.fmt.price(order.filled_price)
        self.fills.append(f"#{order.id} {role} {quantity} @ {price}")
        if role != "entry":  # the entry's fill is reported by `_bracket`
            self.view.note(f"fill: order #{order.id} ({role}) {quantity} at {price}")

    def _on_bar(self, timeframe: str, bar: dict[str, Any]) -> None:
        if timeframe == "1min":
            self.bars_closed += 1

    async def _summary(self) -> None:
        suite, fmt = self.suite, self.fmt
        snap = await self.monitor.snapshot()
        self.view.show(snap, force=True)
        pnl = await suite.positions.get_portfolio_pnl()
        position = await suite.positions.get_position(self.contract_id)
        working = suite.orders.working_orders(self.contract_id)
        elapsed = self._elapsed()
        lines = [
            "Summary",
            f"  simulated   {self.sim_start:%H:%M:%S} → {snap.sim_time:%H:%M:%S} UTC "
            f"({self.opt.speed:g}x, {elapsed:.1f} s real)",
            f"  tape        {suite.data.trades_seen:,} trades, {self.bars_closed} 1-min bars "
            f"closed live",
            f"  fills       {'; '.join(self.fills) or 'none'}",
            f"  P&L         realized {fmt.money(pnl.realized)}, fees+commissions "
            f"{pnl.fees + pnl.commissions:,.2f}, net {fmt.money(pnl.net_realized)}",
            f"  end state   position {fmt.position(position.signed_size if position else 0)}, "
            f"working orders {len(working)}",
        ]
        self.view.note("\n".join(lines))


# -- running it ---------------------------------------------------------------------------


@contextlib.contextmanager
def _interrupts(stop: asyncio.Event, view_note: Callable[[str], None]) -> Iterator[None]:
    """First Ctrl-C / SIGTERM: finish early through the clean-up; second Ctrl-C: abort."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    installed: list[int] = []

    def on_signal() -> None:
        if stop.is_set():
            if task is not None:
                task.cancel()
            return
        stop.set()
        view_note("Interrupted: cleaning up (press Ctrl-C again to abort)")

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def run_demo(opt: DemoOptions, out: TextIO | None = None) -> int:
    """Run the demo on a fresh simulator; returns the exit code (0, or 130 after Ctrl-C)."""
    opt.check()
    out = out or sys.stdout
    live = opt.live if opt.live is not None else out.isatty()
    stop = asyncio.Event()
    print(
        f"Starting the ProjectX gateway simulator (seed {opt.seed}, speed {opt.speed:g}x)…",
        file=out,
        flush=True,
    )
    async with Simulator(seed=opt.seed, speed=opt.speed) as sim, ProjectX.for_simulator(sim) as px:
        account = await px.authenticate()
        try:
            info = await px.get_instrument(opt.symbol)
        except InstrumentNotFoundError as exc:
            raise DemoUsageError(str(exc)) from None
        print(
            f"Simulator on {sim.api_url} · account {account.name} · {info.name} ({info.id}), "
            f"tick {info.tick_size} = ${info.tick_value:.2f}",
            file=out,
            flush=True,
        )
        suite = await create_trading_suite(
            info.id, project_x=px, timeframes=["1min", "5min"], initial_bars=120
        )
        async with suite:
            fmt = Formats(info.tick_size)
            with View(out, live, info.name, opt.speed, fmt) as view, _interrupts(stop, view.note):
                await Tour(suite, sim, view, stop, opt).run()
    print("Simulator stopped.", file=out, flush=True)
    return EXIT_INTERRUPTED if stop.is_set() else EXIT_OK


def main(opt: DemoOptions, out: TextIO | None = None, debug: bool = False) -> int:
    """Entry point of `projectx-lab demo`: run, then check that no thread was left behind.

    Failures print one line (the traceback too with `debug`); exit codes: 0 done, 1 failed,
    2 bad options, 130 interrupted.
    """
    out = out or sys.stdout
    before = set(threading.enumerate())
    try:
        code = asyncio.run(run_demo(opt, out))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("Demo aborted.", file=out, flush=True)
        code = EXIT_INTERRUPTED
    except DemoUsageError as exc:
        print(f"projectx-lab demo: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        if debug:
            raise
        print(f"projectx-lab demo failed: {type(exc).__name__}: {exc} (--debug shows the "
              "traceback)", file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    left = [t for t in threading.enumerate() if t not in before]
    for thread in left:
        thread.join(2.0)
    left = [t.name for t in left if t.is_alive()]
    print(f"Threads left behind: {', '.join(left) if left else 'none'}", file=out, flush=True)
    return code if not left else EXIT_FAILED
