"""The IPython magics of projectx_lab: connect, bracket orders, flatten, cancel, positions,
orders, arming, doctor. Each parses its line first (a bad line is a `UsageError` and sends
nothing), then runs its coroutine as `magics.py` describes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class

from projectx_lab.client.errors import ProjectXError, ValidationError

from . import magic_args as args
from .doctor import diagnose
from .loop import background_loop
from .magic_args import MagicUsageError
from .magic_session import MagicSession
from .magics import MagicCall, print_error

T = TypeVar("T")


async def _guarded(coro: Coroutine[Any, Any, T]) -> T:
    """Expected failures become IPython `UsageError`s: one clear line, no traceback."""
    try:
        return await coro
    except (MagicUsageError, ValidationError) as exc:  # bad input, refused: nothing was sent
        raise UsageError(str(exc)) from None
    except ProjectXError as exc:  # the gateway refused, or could not be reached
        raise UsageError(f"{type(exc).__name__}: {exc}") from None


def _parsed(parse: Callable[..., T], *line: str) -> T:
    try:
        return parse(*line)
    except MagicUsageError as exc:
        raise UsageError(str(exc)) from None


@magics_class
class ProjectXMagics(Magics):
    """`%px_connect`, `%bracket` / `%%bracket`, `%flatten`, `%positions`, `%orders`, `%cancel`,
    `%px_arm`, `%px_disarm`, `%px_doctor`, `%px_disconnect`."""

    def __init__(self, shell: Any, session: MagicSession | None = None) -> None:
        super().__init__(shell)
        self.session = session or MagicSession()
        self._closing: set[asyncio.Task[Any]] = set()

    # -- running ---------------------------------------------------------------------------

    def _run(self, name: str, coro: Coroutine[Any, Any, Any]) -> Any:
        guarded = _guarded(coro)
        session = self.session
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        bridge = background_loop() if running is None else None
        target = running if bridge is None else bridge.loop
        if session.connected and session.loop is not target:
            if name in ("px_connect", "px_disconnect"):
                self._release_elsewhere()
            else:
                guarded.close()
                coro.close()
                raise UsageError(
                    "the connection belongs to another event loop; run %px_connect again here"
                )
        if bridge is not None:
            return bridge.run(guarded)
        return MagicCall(name, guarded, running, print_error)

    def _release_elsewhere(self) -> None:
        """Close a connection made on another loop: there if that loop still runs (on another
        thread), else forget it (its loop is gone, and its sockets with it)."""
        session, loop = self.session, self.session.loop
        if loop is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(session.disconnect(quiet=True), loop).result(30)
        else:
            session.forget()

    def close(self) -> None:
        """Disconnect (extension unload): on the sync bridge it blocks until closed; on a loop
        running in this thread it schedules the disconnect."""
        session = self.session
        loop = session.loop
        if not session.connected or loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is running:
            task = loop.create_task(session.disconnect(quiet=True))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        elif running is None and loop.is_running():
            asyncio.run_coroutine_threadsafe(session.disconnect(quiet=True), loop).result(30)

    # -- connection ------------------------------------------------------------------------

    @line_magic
    def px_connect(self, line: str) -> Any:
        """Connect the magics; returns the `TradingSuite` (`suite = %px_connect`).

        %px_connect [--symbol MNQ] [--speed 1.0] [--seed 7] [--account NAME]
                    [--timeframes 1min,5min]     start the embedded simulator on this loop
        %px_connect --sim NAME [...]             use a running Simulator from the namespace
        %px_connect --env [--account NAME]       the real gateway from PROJECTX_* variables

        Re-running replaces the previous connection (dropping every arm) once the new one is
        up; a line or connection that fails leaves the previous one as it was.
        """
        request = _parsed(args.parse_connect, line)
        return self._run("px_connect", self.session.connect(request, self.shell.user_ns))

    @line_magic
    def px_disconnect(self, line: str) -> Any:
        """Close the suite, the client and the embedded simulator; drop every arm."""
        _parsed(args.parse_none, "%px_disconnect", line)
        return self._run("px_disconnect", self.session.disconnect())

    # -- orders ----------------------------------------------------------------------------

    @line_cell_magic
    def bracket(self, line: str, cell: str | None = None) -> Any:
        """Bracket orders: a market (or --limit) entry with an OCO stop loss / take profit.

        %bracket MNQ buy 1 --stop 8t --target 16t [--limit PRICE] [--tag TAG]

        Legs are ticks with a `t` suffix (8t) or absolute prices (21440.25). As a cell magic,
        one order per line; the `%%bracket` line may give default legs:

        %%bracket --stop 8t --target 16t
        MNQ buy 1
        MES sell 2 --stop 6t

        Every line is checked (symbol, size, legs on the right side, arming) before any order
        is sent. Prints each bracket's entry, stop and target ids and the entry's fill; returns
        the `BracketOrderResult`s.
        """
        if cell is None:
            requests = [_parsed(args.parse_bracket, line)]
        else:
            requests = _parsed(args.parse_bracket_cell, line, cell)
        return self._run("bracket", self._bracket(requests, single=cell is None))

    async def _bracket(self, requests: list[args.BracketRequest], single: bool) -> Any:
        results = await self.session.bracket(requests)
        return results[0] if single else results

    @line_magic
    def flatten(self, line: str) -> Any:
        """Close the position and cancel the working orders (bracket legs included).

        %flatten [SYMBOL]     one symbol, or every contract with a position or working order
        """
        symbol = _parsed(args.parse_symbol, args.FLATTEN, line)
        return self._run("flatten", self.session.flatten(symbol))

    @line_magic
    def cancel(self, line: str) -> Any:
        """Cancel orders: %cancel ID [ID ...]   or   %cancel all [SYMBOL]"""
        request = _parsed(args.parse_cancel, line)
        return self._run("cancel", self.session.cancel(request))

    @line_magic
    def positions(self, line: str) -> Any:
        """Open positions with average price, last price and unrealized P&L."""
        _parsed(args.parse_none, "%positions", line)
        return self._run("positions", self.session.positions())

    @line_magic
    def orders(self, line: str) -> Any:
        """Working orders (suspended bracket legs included): %orders [SYMBOL]"""
        symbol = _parsed(args.parse_symbol, args.ORDERS, line)
        return self._run("orders", self.session.orders(symbol))

    # -- safety ----------------------------------------------------------------------------

    @line_magic
    def px_arm(self, line: str) -> Any:
        """Allow the order magics on a non-paper account: %px_arm ACCOUNT --max-size N

        Paper accounts (simulated accounts of the embedded simulator) need no arming. Anything
        else — a `simulated: false` account, or any account reached with --env — is refused
        until armed. N caps each order's size and the position it can leave on a contract.
        """
        request = _parsed(args.parse_arm, line)
        return self._run("px_arm", self.session.arm(request))

    @line_magic
    def px_disarm(self, line: str) -> None:
        """Withdraw arming: %px_disarm [ACCOUNT]   (all accounts without a name)"""
        self.session.disarm(_parsed(args.parse_disarm, line))

    @line_magic
    def px_doctor(self, line: str) -> None:
        """Report the notebook stack (ipykernel, plotly, anywidget, ipywidgets, frontend, loop
        patches, connection) and warn about each known trap found."""
        _parsed(args.parse_none, "%px_doctor", line)
        facts, warnings = self.session.doctor_facts()
        print(diagnose(shell=self.shell, connection=facts, connection_warnings=warnings))
