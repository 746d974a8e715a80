"""Keeps an `OrderBook` current from the market hub, and clears it when the stream breaks.

A reconnect must never leave ghost levels: the book is cleared the moment the market hub goes
down and rebuilt from the snapshot and updates that follow the re-subscription.
"""

from __future__ import annotations

import contextlib
from typing import Any

from projectx_lab.managers.orderbook import OrderBook
from projectx_lab.realtime.dispatch import CallbackTasks, Event
from projectx_lab.realtime.supervisor import ConnectionState
from projectx_lab.realtime.transport import RealtimeError

_BROKEN = (ConnectionState.RECONNECTING, ConnectionState.DISCONNECTED)


class BookFeed:
    """Routes one contract's depth, trades and quotes from a real-time client into a book."""

    def __init__(self, book: OrderBook, realtime_client: Any) -> None:
        self.book = book
        self.realtime = realtime_client
        self.resets = 0
        self._running = False
        # fires nothing; its streams end when the feed stops or its connection closes, which is
        # how live widgets on the book learn that it no longer updates
        self.ended_event: Event[str, str] = Event("book_feed", CallbackTasks())

    async def start(self) -> None:
        """Subscribe the contract's depth, trades and quotes (shared connection)."""
        if self._running:
            return
        rt = self.realtime
        rt.depth_event += self._on_depth
        rt.trade_event += self._on_trades
        rt.quote_event += self._on_quote
        rt.state_event += self._on_state
        self._running = True
        self.ended_event.open_streams()
        await rt.subscribe_market(self.book.contract_id, owner=self)

    async def stop(self) -> None:
        """Stop routing events and release this feed's subscriptions (the book keeps its last
        state)."""
        if not self._running:
            return
        self._running = False
        rt = self.realtime
        rt.depth_event -= self._on_depth
        rt.trade_event -= self._on_trades
        rt.quote_event -= self._on_quote
        rt.state_event -= self._on_state
        self.ended_event.close_streams()
        with contextlib.suppress(RealtimeError):  # the connection may be going away too
            await rt.unsubscribe_market(self.book.contract_id, owner=self)

    def _on_depth(self, contract_id: str, items: Any) -> None:
        if contract_id == self.book.contract_id:
            self.book.apply_depth(items)

    def _on_trades(self, contract_id: str, items: Any) -> None:
        if contract_id == self.book.contract_id:
            self.book.apply_trades(items)

    def _on_quote(self, contract_id: str, quote: Any) -> None:
        if contract_id == self.book.contract_id:
            self.book.apply_quote(quote)

    def _on_state(self, hub: str, state: Any) -> None:
        if hub == "market" and state in _BROKEN:
            self.book.reset()
            self.resets += 1
        if state == ConnectionState.DISCONNECTED:  # the connection closed for good
            self.ended_event.close_streams()

    def __repr__(self) -> str:
        return f"BookFeed({self.book.contract_id!r}, running={self._running})"
