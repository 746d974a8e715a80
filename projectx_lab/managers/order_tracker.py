"""Latest known state of every order of one account, merged from hub events and REST rows.

Hub order events carry the whole order (null price keys omitted), so each one replaces the
stored snapshot, unless it is older than what we hold: an update with an earlier
`updateTimestamp`, a terminal order going back to working, or a shrinking fill volume is
ignored (a REST row read during a reconnect must not undo a newer hub event, nor the reverse).
Suspended bracket children (status 8) are tracked from the stream because REST `searchOpen`
hides them (gotcha 13). Terminal orders are kept up to `max_terminal`, oldest dropped first.
Waiters (futures) are resolved on the event that satisfies them: no polling.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from datetime import datetime

from projectx_lab.client.models import Order, OrderStatus

WORKING = frozenset({OrderStatus.OPEN, OrderStatus.PENDING, OrderStatus.SUSPENDED,
                     OrderStatus.PENDING_CANCELLATION})  # fmt: skip
Predicate = Callable[[Order], bool]


def is_working(order: Order) -> bool:
    """Open, pending, suspended or pending cancellation: it may still trade."""
    return order.status in WORKING


class OrderTracker:
    """Order snapshots by id, with tag and parent → children indexes and one-shot waiters."""

    __slots__ = (
        "_by_tag",
        "_children",
        "_orders",
        "_terminal",
        "_waiters",
        "latest",
        "max_terminal",
    )

    def __init__(self, max_terminal: int = 5_000) -> None:
        self.max_terminal = max_terminal
        self._orders: dict[int, Order] = {}
        self._by_tag: dict[str, int] = {}
        self._children: dict[int, list[int]] = {}
        self._terminal: deque[int] = deque()
        self._waiters: dict[int | str, list[tuple[Predicate, asyncio.Future[Order]]]] = {}
        self.latest: datetime | None = None  # newest server timestamp seen (server clock)

    def __len__(self) -> int:
        return len(self._orders)

    def __repr__(self) -> str:
        working = sum(1 for o in self._orders.values() if is_working(o))
        return f"OrderTracker(orders={len(self._orders)}, working={working})"

    # -- queries ---------------------------------------------------------------------------

    def get(self, order_id: int) -> Order | None:
        return self._orders.get(order_id)

    def by_tag(self, tag: str) -> Order | None:
        order_id = self._by_tag.get(tag)
        return None if order_id is None else self._orders.get(order_id)

    def children(self, parent_id: int) -> list[Order]:
        """Bracket children of an entry (stop first when both are known), by id."""
        ids = self._children.get(parent_id, ())
        return [self._orders[i] for i in ids if i in self._orders]

    def working(self, contract_id: str | None = None) -> list[Order]:
        """Working orders, optionally of one contract, oldest id first."""
        return [
            o
            for o in self._orders.values()
            if o.status in WORKING and (contract_id is None or o.contract_id == contract_id)
        ]

    def all(self) -> list[Order]:
        return list(self._orders.values())

    # -- updates ---------------------------------------------------------------------------

    def apply(self, order: Order) -> tuple[bool, Order | None]:
        """Store `order` unless it is older than the held snapshot: `(accepted, previous)`."""
        previous = self._orders.get(order.id)
        if previous is not None and _is_stale(previous, order):
            return False, previous
        self._orders[order.id] = order
        stamp = order.update_timestamp or order.creation_timestamp
        if stamp is not None and (self.latest is None or stamp > self.latest):
            self.latest = stamp
        if previous is None:
            if order.custom_tag:
                self._by_tag[order.custom_tag] = order.id
            parent = order.parent_order_id
            if parent is not None:
                siblings = self._children.setdefault(parent, [])
                if order.id not in siblings:
                    siblings.append(order.id)
                    siblings.sort()
        if order.status not in WORKING and (previous is None or previous.status in WORKING):
            self._terminal.append(order.id)
            if len(self._terminal) > self.max_terminal:
                self._evict(self._terminal.popleft())
        self._resolve(order.id, order)
        if order.custom_tag:
            self._resolve(order.custom_tag, order)
        return True, previous

    def _evict(self, order_id: int) -> None:
        order = self._orders.get(order_id)
        if order is None or order.status in WORKING:
            return
        del self._orders[order_id]
        if order.custom_tag and self._by_tag.get(order.custom_tag) == order_id:
            del self._by_tag[order.custom_tag]
        self._children.pop(order_id, None)

    # -- waiters ---------------------------------------------------------------------------

    def waiter(self, key: int | str, predicate: Predicate) -> asyncio.Future[Order]:
        """A future resolved with the first order (by id, or by tag when `key` is a str) that
        satisfies `predicate`; already resolved when the held snapshot does."""
        future: asyncio.Future[Order] = asyncio.get_running_loop().create_future()
        held = self.by_tag(key) if isinstance(key, str) else self._orders.get(key)
        if held is not None and predicate(held):
            future.set_result(held)
        else:
            self._waiters.setdefault(key, []).append((predicate, future))
        return future

    def discard(self, key: int | str, future: asyncio.Future[Order]) -> None:
        """Forget a waiter (after a timeout or cancellation)."""
        waiters = self._waiters.get(key)
        if waiters is None:
            return
        waiters[:] = [w for w in waiters if w[1] is not future]
        if not waiters:
            del self._waiters[key]

    def _resolve(self, key: int | str, order: Order) -> None:
        waiters = self._waiters.get(key)
        if not waiters:
            return
        keep = []
        for predicate, future in waiters:
            if future.done():
                continue
            if predicate(order):
                future.set_result(order)
            else:
                keep.append((predicate, future))
        if keep:
            self._waiters[key] = keep
        else:
            del self._waiters[key]

    def close(self) -> None:
        """Cancel every pending waiter."""
        for waiters in self._waiters.values():
            for _, future in waiters:
                future.cancel()
        self._waiters.clear()


def _is_stale(held: Order, new: Order) -> bool:
    if held.status not in WORKING and new.status in WORKING:
        return True
    if new.fill_volume < held.fill_volume:
        return True
    old_ts, new_ts = held.update_timestamp, new.update_timestamp
    return old_ts is not None and new_ts is not None and new_ts < old_ts
