"""RiskGuard: opt-in account limits in the style of prop-firm evaluation rules, for one suite.

```python
guard = await RiskGuard(suite, daily_loss_limit=500, max_position_size=3,
                        trailing_drawdown=2000, auto_flatten=True).start()
guard.on_breach += lambda breach, guard: display(breach)
await suite.orders.place_market_order("MNQ", "buy", 5)   # RiskLimitError, nothing sent
await guard.flatten_all()
```

Rules (equity = balance + unrealized P&L, as the suite's `PositionManager` marks it):

* `daily_loss_limit`: equity falls `limit` below its value at the start of the trading day
  (the guard's start, then every `day_start` in `timezone`, 17:00 Chicago by default, by the
  gateway's clock: the baseline is the last equity the guard saw before that instant).
  Locks new orders until the next trading day.
* `trailing_drawdown`: equity falls `limit` below its highest value since the guard started
  (intraday trailing). Locks new orders until `reset()`.
* `max_position_size`: an order that would take the account past `limit` contracts (net per
  contract, summed over contracts, counting working entry orders on the same side as filled)
  is refused; orders that reduce exposure always pass. Positions and working orders are read
  by REST at each check (the stream may not show an order placed a moment ago yet); two
  placements racing each other are checked independently. A position found above the limit
  (say resting orders filled) is reported as a breach but does not lock.

Blocking happens in `suite.orders`' pre-placement checks: a blocked order raises
`RiskLimitError` naming the limit and sends nothing. Growing a working order with
`suite.orders.modify_order(size=...)` is checked as a placement of the added contracts (and is
blocked while locked); shrinking it or moving its price always passes. Closing through
`flatten_all()` or `suite.positions.close_position` is never blocked. Orders sent around the
suite's `OrderManager` (raw `client.place_order`, `client.modify_order`) are not seen by the
guard.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from projectx_lab.client.errors import ValidationError
from projectx_lab.client.models import OrderSide
from projectx_lab.managers.order_tracker import is_working
from projectx_lab.managers.placement import PlaceRequest
from projectx_lab.realtime.dispatch import CallbackTasks, Event

logger = logging.getLogger("projectx_lab.risk")
DAILY, TRAILING, POSITION = "daily_loss_limit", "trailing_drawdown", "max_position_size"


@dataclass(frozen=True, slots=True)
class Breach:
    """A limit that was hit: which, its value, what was measured, when, and what it means."""

    rule: str
    limit: float
    value: float
    time: datetime
    message: str

    def __str__(self) -> str:
        return self.message


class RiskLimitError(ValidationError):
    """An order the risk guard refused; nothing was sent. `rule` names the limit."""

    def __init__(self, message: str, *, rule: str, limit: float, value: float) -> None:
        super().__init__(message)
        self.rule = rule
        self.limit = limit
        self.value = value


def _limit(name: str, value: Any, integer: bool = False) -> float | None:
    if value is None:
        return None
    kinds = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
        kind = "a positive int" if integer else "a positive number"
        raise ValueError(f"{name} must be {kind} or None, got {value!r}")
    return float(value)


class RiskGuard:
    """Account limits for `suite` (see the module docstring). `start()` (or `async with`)
    arms it; events: `on_breach(breach, guard)`."""

    def __init__(
        self,
        suite: Any,
        *,
        daily_loss_limit: float | None = None,
        max_position_size: int | None = None,
        trailing_drawdown: float | None = None,
        auto_flatten: bool = False,
        day_start: time = time(17, 0),
        timezone: str = "America/Chicago",
    ) -> None:
        self.daily_loss_limit = _limit(DAILY, daily_loss_limit)
        self.trailing_drawdown = _limit(TRAILING, trailing_drawdown)
        size = _limit(POSITION, max_position_size, integer=True)
        self.max_position_size = None if size is None else int(size)
        if self.daily_loss_limit is None and self.trailing_drawdown is None and size is None:
            raise ValueError(
                "give at least one limit: daily_loss_limit, max_position_size, trailing_drawdown"
            )
        if not isinstance(day_start, time):
            raise TypeError(f"day_start must be a datetime.time, got {day_start!r}")
        self.suite = suite
        self.auto_flatten = bool(auto_flatten)
        self.day_start = day_start
        self.zone = ZoneInfo(timezone)
        self._tasks = CallbackTasks()
        self.on_breach: Event[Breach, RiskGuard] = Event("breach", self._tasks)
        self.breaches: list[Breach] = []
        self.lock: Breach | None = None  # the breach that blocks new orders
        self.day_base: float | None = None
        self.peak: float | None = None
        self._day_end: datetime | None = None  # when the current trading day ends
        self._last: float | None = None  # the equity at the last evaluation
        self._net: dict[str, int] = {}  # signed position per contract, from the suite's stream
        self._flattening: asyncio.Task[Any] | None = None
        self._hooks: list[tuple[Any, Any]] = []
        self._started = False
        self._closed = False

    def __repr__(self) -> str:
        limits = ", ".join(
            f"{name}={value:g}"
            for name, value in (
                (DAILY, self.daily_loss_limit),
                (POSITION, self.max_position_size),
                (TRAILING, self.trailing_drawdown),
            )
            if value is not None
        )
        state = "closed" if self._closed else ("LOCKED" if self.lock else "armed")
        return f"RiskGuard({limits}, {state}, breaches={len(self.breaches)})"

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> RiskGuard:
        """Arm the guard: baseline equity now, hook the suite's placement path and P&L events."""
        if self._started:
            return self
        if self._closed:
            raise RuntimeError("this RiskGuard is closed; create a new one")
        positions = self.suite.positions
        for position in await positions.get_positions():
            self._net[position.contract_id] = position.signed_size
        equity = self.equity
        self.day_base = self.peak = self._last = equity
        self._day_end = self._trading_day_end()
        self.suite.orders.pre_place_checks.append(self._check)
        self._hook(positions.prices.on_price, self._on_price)
        self._hook(self.suite.realtime.account_event, self._on_account)
        self._hook(positions.on_position_update, self._on_position)
        self._started = True
        return self

    async def close(self) -> None:
        """Disarm: orders are no longer checked (limits already hit stay in `breaches`)."""
        if self._closed:
            return
        self._closed = True
        checks = self.suite.orders.pre_place_checks
        if self._check in checks:
            checks.remove(self._check)
        for event, handler in self._hooks:
            event -= handler
        self._hooks.clear()
        task = self._flattening
        if task is not None and not task.done():
            await asyncio.gather(task, return_exceptions=True)
        await self._tasks.close(grace=0.5)

    async def __aenter__(self) -> RiskGuard:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- state ----------------------------------------------------------------------------

    @property
    def equity(self) -> float | None:
        """Balance plus unrealized P&L, as the suite's position manager marks it."""
        return self.suite.positions.equity.value

    @property
    def daily_pnl(self) -> float | None:
        """Equity change since the start of the trading day (None before a balance is known)."""
        equity = self.equity
        return None if equity is None or self.day_base is None else equity - self.day_base

    @property
    def drawdown(self) -> float | None:
        """Fall of equity from its peak since the guard started (>= 0)."""
        equity = self.equity
        return None if equity is None or self.peak is None else max(self.peak - equity, 0.0)

    def status(self) -> dict[str, Any]:
        """Limits, current measures and the lock, for a notebook cell."""
        return {
            "locked": self.lock is not None,
            "lock_reason": None if self.lock is None else self.lock.message,
            "equity": self.equity,
            "daily_pnl": self.daily_pnl,
            DAILY: self.daily_loss_limit,
            "drawdown": self.drawdown,
            TRAILING: self.trailing_drawdown,
            "contracts": self._contracts(),
            POSITION: self.max_position_size,
            "breaches": len(self.breaches),
        }

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td>{'' if v is None else v}</td></tr>"
            for k, v in self.status().items()
        )
        return f"<table><caption>{self!r}</caption>{rows}</table>"

    def reset(self) -> None:
        """Lift the lock and restart the daily baseline and the trailing peak from now."""
        self.lock = None
        self.day_base = self.peak = self._last = self.equity
        self._day_end = self._trading_day_end()

    # -- actions --------------------------------------------------------------------------

    async def flatten_all(self) -> dict[str, Any]:
        """Cancel every working order, then close every open position (never blocked)."""
        cancelled = await self.suite.orders.cancel_all_orders()
        closed = await self.suite.positions.close_all_positions()
        return {"cancelled": cancelled, "closed": closed}

    # -- checks ---------------------------------------------------------------------------

    async def _check(self, request: PlaceRequest) -> None:
        """Pre-placement check: refuse while locked or when the size limit would be passed."""
        self._evaluate()
        lock = self.lock
        if lock is not None:
            until = "the next trading day" if lock.rule == DAILY else "guard.reset()"
            raise RiskLimitError(
                f"RiskGuard blocked the order: {lock.rule} hit ({lock.message}); new orders are "
                f"blocked until {until}. Nothing was sent.",
                rule=lock.rule,
                limit=lock.limit,
                value=lock.value,
            )
        limit = self.max_position_size
        if limit is None:
            return
        orders = self.suite.orders  # by REST: the stream may not show a just-placed order yet
        rows = await self.suite.client.search_open_positions(account_id=orders.account_id)
        net = {p.contract_id: p.signed_size for p in rows}
        cid = request.instrument.id
        delta = request.size if request.side == OrderSide.BUY else -request.size
        pending = sum(  # same-side entries still working would add to the position as well
            s for s in await self._working_entries(cid) if (s > 0) == (delta > 0)
        )
        held = net.get(cid, 0) + pending
        after = held + delta
        if abs(after) <= abs(held):
            return  # reduces (or keeps) exposure: always allowed
        total = sum(abs(v) for c, v in net.items() if c != cid) + abs(after)
        if total > limit:
            raise RiskLimitError(
                f"RiskGuard blocked the order: max_position_size {limit} would be exceeded "
                f"({cid}: position {net.get(cid, 0):+d}, working {pending:+d}, this order "
                f"{delta:+d} → {total} contracts in all). Nothing was sent.",
                rule=POSITION,
                limit=float(limit),
                value=float(total),
            )

    async def _working_entries(self, contract_id: str) -> list[int]:
        out = []
        for order in await self.suite.orders.search_open_orders(contract_id):
            if order.parent_order_id is not None or not is_working(order):
                continue
            left = order.size - order.fill_volume
            out.append(left if order.side == OrderSide.BUY else -left)
        return out

    def _contracts(self) -> int:
        return sum(abs(v) for v in self._net.values())

    # -- evaluation (hot path: every price) -----------------------------------------------

    def _on_price(self, contract_id: str, price: float) -> None:
        self._evaluate()

    def _on_account(self, data: dict[str, Any], action: int | None) -> None:
        self._evaluate()

    def _on_position(self, position: Any, previous: Any) -> None:
        if position.signed_size:
            self._net[position.contract_id] = position.signed_size
        else:
            self._net.pop(position.contract_id, None)
        limit = self.max_position_size
        if limit is None:
            return
        total = self._contracts()
        if total > limit:
            self._breach(
                POSITION,
                float(limit),
                float(total),
                f"{total} contracts held, limit {limit}",
                lock=False,
            )

    def _evaluate(self) -> None:
        self._roll_day()
        equity = self.equity
        if equity is None:
            return
        self._last = equity
        if self.day_base is None or self.peak is None:
            return
        if equity > self.peak:
            self.peak = equity
        if self.lock is not None:
            return
        daily = self.daily_loss_limit
        if daily is not None and self.day_base - equity >= daily:
            loss = self.day_base - equity
            self._breach(DAILY, daily, loss, f"down {loss:.2f} today, limit {daily:.2f}")
            return
        trailing = self.trailing_drawdown
        if trailing is not None and self.peak - equity >= trailing:
            fall = self.peak - equity
            self._breach(
                TRAILING, trailing, fall, f"{fall:.2f} below the peak of {self.peak:.2f}, "
                f"limit {trailing:.2f}"
            )  # fmt: skip

    def _breach(
        self, rule: str, limit: float, value: float, detail: str, lock: bool = True
    ) -> None:
        when = self.suite.client.gateway_time()  # simulated time under the simulator
        breach = Breach(rule, limit, value, when, f"{rule}: {detail}")
        self.breaches.append(breach)
        if lock:
            self.lock = breach
        logger.warning("risk limit hit: %s", breach.message)
        self.on_breach.emit(breach, self)
        if self.auto_flatten and (self._flattening is None or self._flattening.done()):
            self._flattening = asyncio.get_running_loop().create_task(
                self._auto_flatten(), name="risk-flatten"
            )

    async def _auto_flatten(self) -> None:
        try:
            await self.flatten_all()
        except Exception:
            logger.exception("RiskGuard could not flatten the account after a breach")

    # -- trading day ----------------------------------------------------------------------

    def _trading_day_end(self) -> datetime:
        """When the trading day the gateway clock is in ends (`day_start` local time)."""
        now = self.suite.client.gateway_time().astimezone(self.zone)
        day = now.date() + timedelta(days=1) if now.time() >= self.day_start else now.date()
        return datetime.combine(day, self.day_start, tzinfo=self.zone)

    def _roll_day(self) -> None:
        """On the first evaluation past `day_start`, rebase on the last equity seen before it
        (exact while prices flow; the equity now would hide the losses since the boundary)."""
        end = self._day_end
        if end is None or self.suite.client.gateway_time() < end:
            return
        self._day_end = self._trading_day_end()
        self.day_base = self._last
        if self.lock is not None and self.lock.rule == DAILY:
            self.lock = None

    def _hook(self, event: Any, handler: Any) -> None:
        event += handler
        self._hooks.append((event, handler))
