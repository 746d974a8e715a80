"""The lifecycle the per-account managers share: resolve the account, hook the user hub's
events, subscribe, load by REST, and undo it all on close.

Subclasses say what they listen to (`_attach`/`_detach`), what they load (`_load`) and what
they release (`_release`); the order, the idempotence and the closed-state error live here.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from typing import Any, Self

from projectx_lab.realtime.dispatch import CallbackTasks
from projectx_lab.realtime.transport import RealtimeError

from .prices import LivePrices


class AccountStream(abc.ABC):
    """Base of `OrderManager` and `PositionManager`: one account's user-hub subscription."""

    def __init__(self, project_x: Any, realtime_client: Any, account_id: int | None, prices: Any):
        self.project_x = project_x
        self.realtime = realtime_client
        self.account_id: int | None = account_id
        self._tasks = CallbackTasks()
        if isinstance(prices, LivePrices):  # shared with a sibling manager: not ours to close
            self.prices, self._own_prices = prices, False
        else:
            self.prices = LivePrices(realtime_client, self._tasks, prices)
            self._own_prices = True
        self._started = False
        self._closed = False
        self._start_lock = asyncio.Lock()

    @property
    def _state(self) -> str:
        return "closed" if self._closed else ("running" if self._started else "not started")

    async def initialize(self) -> None:
        """Subscribe the account's user events and load its current state (idempotent)."""
        if self._closed:
            raise RuntimeError(
                f"this {type(self).__name__} is closed (it or its TradingSuite was closed); "
                "create a new one"
            )
        if self._started:
            return
        async with self._start_lock:
            if self._started:
                return
            if self.account_id is None:  # the client's selected account (logs in if needed)
                account = self.project_x.account_info or await self.project_x.authenticate()
                self.account_id = account.id
            self._attach()
            self.prices.start()
            await self.realtime.subscribe_user(self.account_id, owner=self)
            await self._load()
            self._started = True

    async def close(self) -> None:
        """Stop listening, release this manager's account subscription, waiters and callback
        tasks (orders and positions on the gateway are untouched)."""
        if self._closed:
            return
        self._closed = True
        self._detach()
        if self.account_id is not None:
            with contextlib.suppress(RealtimeError):  # the connection may be going away too
                await self.realtime.unsubscribe_user(self.account_id, owner=self)
        await self._release()
        if self._own_prices:
            await self.prices.close()
        await self._tasks.close(grace=0.2)

    async def __aenter__(self) -> Self:
        await self.initialize()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @abc.abstractmethod
    def _attach(self) -> None:
        """Hook this manager's handlers onto the real-time client's events."""

    @abc.abstractmethod
    def _detach(self) -> None:
        """Unhook what `_attach` hooked (safe if it never ran)."""

    @abc.abstractmethod
    async def _load(self) -> None:
        """Load the account's current state by REST."""

    @abc.abstractmethod
    async def _release(self) -> None:
        """Cancel this manager's own background work and waiters, close its event streams."""
