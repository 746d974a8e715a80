"""Lockstep: drive an in-process simulator's clock in explicit steps and wait, after each one,
until a suite has received everything the simulator published and its strategy has reacted.

With the clock held, a strategy acts at exact simulated instants whatever the machine's speed
or latency, so paper runs are deterministic and a replay can go as fast as the stack absorbs
(back-pressure instead of a clock that outruns the consumer).

How "received everything" is known, without sleeping: a sink on the simulator notes the last
message it published per (contract, target) the suite's connection subscribes to, and the
suite's own real-time events note the last one received; market traffic has caught up when
they agree (snapshots a hub adds on subscribe do not disturb this). User-hub events (no
snapshots) are counted per account instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from projectx_lab.sim import Simulator

_KIND = {"GatewayTrade": "trades", "GatewayQuote": "quotes", "GatewayDepth": "depth"}
_USER_KIND = {
    "GatewayUserOrder": "orders",
    "GatewayUserPosition": "positions",
    "GatewayUserTrade": "trades",
    "GatewayUserAccount": "accounts",
}


class LockstepTimeout(TimeoutError):
    """The suite did not catch up with the simulator in time (connection lost or stuck)."""


def _key(target: str, data: Any) -> Any:
    """Identity of a market message: its timestamp (quotes) or its last item (lists)."""
    if target == "GatewayQuote":
        return data.get("timestamp") if data.__class__ is dict else None
    if data.__class__ is list and data:
        last = data[-1]
        if last.__class__ is dict:
            return (last.get("timestamp"), last.get("type"), last.get("price"), last.get("volume"))
    return None


class _Published:
    """Simulator-side sink: what the suite's connection is owed (runs on the sim loop)."""

    def __init__(self, realtime: Any) -> None:
        self.active = True
        self.last: dict[tuple[str, str], Any] = {}
        self.user = 0
        self.market = 0
        self.follow(realtime)

    def follow(self, realtime: Any) -> None:
        """Take the client's current subscriptions as what its connection receives."""
        self.market_subs: dict[str, frozenset[str]] = realtime.market_subscriptions
        user: dict[int, frozenset[str]] = realtime.user_subscriptions
        self.user_kinds = user
        self.all_accounts = any("accounts" in kinds for kinds in user.values())

    def market_event(self, contract_id: str, target: str, data: object) -> None:
        if not self.active:
            return
        kinds = self.market_subs.get(contract_id)
        if kinds is not None and _KIND.get(target) in kinds:
            self.last[(contract_id, target)] = _key(target, data)
            self.market += 1

    def user_event(self, account_id: int, target: str, action: int, data: dict[str, Any]) -> None:
        if not self.active:
            return
        kind = _USER_KIND.get(target)
        if kind == "accounts":
            if self.all_accounts:
                self.user += 1
        elif kind in self.user_kinds.get(account_id, ()):
            self.user += 1


class Lockstep:
    """Steps `sim`'s clock for `suite` (both in this process; the simulator in this loop or in
    its background thread). `idle`, when given, is awaited after traffic settles (e.g. a
    strategy runtime's `idle`), and settling repeats until nothing new was published meanwhile.
    """

    def __init__(
        self,
        sim: Simulator,
        suite: Any,
        *,
        idle: Callable[[], Awaitable[None]] | None = None,
        timeout: float = 30.0,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.sim = sim
        self.suite = suite
        self.idle = idle
        self.timeout = timeout
        self.steps = 0
        self._published: _Published | None = None
        self._received: dict[tuple[str, str], Any] = {}
        self._user_received = 0
        self._changed = asyncio.Event()
        self._hooks: list[tuple[Any, Any]] = []

    def __repr__(self) -> str:
        return f"Lockstep(now={self.now_ns}, steps={self.steps}, attached={self.attached})"

    @property
    def attached(self) -> bool:
        """True between `start()` and `close()`."""
        return self._published is not None and self._published.active

    @property
    def now_ns(self) -> int:
        """The simulator's (held) time."""
        return self.sim.clock.now_ns()

    async def start(self) -> int:
        """Hold the clock, attach the counters; returns the held instant (ns)."""
        if self._published is not None:
            raise RuntimeError("this Lockstep was already started")
        rt = self.suite.realtime
        published = _Published(rt)
        exchange = self.sim.exchange

        def attach() -> int:
            now = self.sim.clock.hold()
            exchange.add_market_sink(published)
            exchange.add_user_sink(published)
            return now

        now = exchange.call(attach)
        self._published = published
        for event, target in (
            (rt.trade_event, "GatewayTrade"),
            (rt.quote_event, "GatewayQuote"),
            (rt.depth_event, "GatewayDepth"),
        ):
            self._hook(event, self._market_handler(target))
        for event in (rt.order_event, rt.position_event, rt.user_trade_event, rt.account_event):
            self._hook(event, self._on_user)
        await self.settle()
        return now

    def close(self, *, release: bool = True) -> None:
        """Detach; with `release`, let the clock run on from where it stands."""
        for event, handler in self._hooks:
            event -= handler
        self._hooks.clear()
        published = self._published
        if published is not None:
            published.active = False
        if release:
            self.sim.exchange.call(self.sim.clock.release)

    async def advance_to(self, ts_ns: int) -> None:
        """Move the clock to `ts_ns`, publish the market up to it, and settle."""
        published = self._published
        if published is None:
            raise RuntimeError("start() the Lockstep first")
        exchange = self.sim.exchange
        published.follow(self.suite.realtime)  # subscriptions made since the last step

        def step() -> None:
            self.sim.clock.advance_to(ts_ns)
            exchange.step()

        exchange.call(step)
        self.steps += 1
        await self.settle()

    async def settle(self) -> None:
        """Wait until the suite has every message published so far and `idle` has returned,
        repeating while that work publishes more (orders placed by a strategy)."""
        published = self._published
        assert published is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            seen = (published.market, published.user)
            await self._caught_up(deadline)
            if self.idle is not None:
                try:
                    await asyncio.wait_for(self.idle(), max(deadline - loop.time(), 0.001))
                except TimeoutError:
                    raise LockstepTimeout(
                        f"the strategy did not go idle within {self.timeout:g}s"
                    ) from None
            if (published.market, published.user) == seen and self._done():
                return

    # -- internals ------------------------------------------------------------------------

    def _done(self) -> bool:
        published = self._published
        assert published is not None
        if self._user_received < published.user:
            return False
        received = self._received
        return all(received.get(k) == v for k, v in list(published.last.items()))

    async def _caught_up(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while not self._done():
            self._changed.clear()
            remaining = deadline - loop.time()
            try:
                await asyncio.wait_for(self._changed.wait(), max(remaining, 0.001))
            except TimeoutError:
                published = self._published
                assert published is not None
                behind = [k for k, v in published.last.items() if self._received.get(k) != v]
                raise LockstepTimeout(
                    f"the suite did not catch up with the simulator within {self.timeout:g}s "
                    f"(user events {self._user_received}/{published.user}; market streams "
                    f"behind: {behind})"
                ) from None

    def _hook(self, event: Any, handler: Any) -> None:
        event += handler
        self._hooks.append((event, handler))

    def _market_handler(self, target: str) -> Callable[[str, Any], None]:
        received = self._received
        changed = self._changed

        def handler(contract_id: str, data: Any) -> None:
            received[(contract_id, target)] = _key(target, data)
            changed.set()

        return handler

    def _on_user(self, data: dict[str, Any], action: int | None) -> None:
        self._user_received += 1
        self._changed.set()
