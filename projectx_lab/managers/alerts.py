"""One-shot price and P&L alerts for the PositionManager.

An alert fires once, the first time its condition holds, then is disarmed: its callback (sync,
or async run as a task) gets `(alert, value)`. Checks are plain float comparisons so they can run
on every quote.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from projectx_lab.client.errors import ValidationError
from projectx_lab.realtime.dispatch import CallbackTasks, Event

_ids = itertools.count(1)


def _level(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real | Decimal):
        raise ValidationError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValidationError(f"{name} must be finite, got {value!r}")
    return number


@dataclass(eq=False, slots=True)
class PriceAlert:
    """Fires when the last price of `contract_id` reaches `above` (>=) or `below` (<=)."""

    contract_id: str
    above: float | None
    below: float | None
    id: int = field(default_factory=lambda: next(_ids))
    fired: bool = False
    fired_value: float | None = None

    def hit(self, price: float) -> bool:
        return (self.above is not None and price >= self.above) or (
            self.below is not None and price <= self.below
        )

    def __repr__(self) -> str:
        cond = " or ".join(
            f"{op} {v}" for op, v in ((">=", self.above), ("<=", self.below)) if v is not None
        )
        state = f"fired at {self.fired_value}" if self.fired else "armed"
        return f"PriceAlert(#{self.id} {self.contract_id} {cond}, {state})"


@dataclass(eq=False, slots=True)
class PnLAlert:
    """Fires when P&L (the account's total, or one contract's unrealized) crosses `threshold`:
    a positive threshold when P&L >= it, a negative one when P&L <= it."""

    threshold: float
    contract_id: str | None = None
    id: int = field(default_factory=lambda: next(_ids))
    fired: bool = False
    fired_value: float | None = None

    def hit(self, pnl: float) -> bool:
        return pnl >= self.threshold if self.threshold > 0 else pnl <= self.threshold

    def __repr__(self) -> str:
        scope = self.contract_id or "account"
        op = ">=" if self.threshold > 0 else "<="
        state = f"fired at {self.fired_value:.2f}" if self.fired else "armed"
        return f"PnLAlert(#{self.id} {scope} P&L {op} {self.threshold}, {state})"


Alert = PriceAlert | PnLAlert


def price_alert(contract_id: str, above: Any, below: Any) -> PriceAlert:
    """A validated price alert (at least one of `above` / `below`)."""
    hi, lo = _level(above, "above"), _level(below, "below")
    if hi is None and lo is None:
        raise ValidationError("a price alert needs above= and/or below=")
    if hi is not None and lo is not None and lo >= hi:
        raise ValidationError(f"below ({lo}) must be under above ({hi})")
    return PriceAlert(contract_id, hi, lo)


def pnl_alert(threshold: Any, contract_id: str | None) -> PnLAlert:
    """A validated P&L alert (non-zero threshold in dollars)."""
    value = _level(threshold, "threshold")
    if value is None or value == 0:
        raise ValidationError(
            "threshold must be a non-zero dollar amount (positive: profit target, "
            f"negative: loss limit), got {threshold!r}"
        )
    return PnLAlert(value, contract_id)


class AlertBook:
    """Armed alerts and their callbacks; `on_alert(alert, value)` fires for every alert too."""

    def __init__(self, tasks: CallbackTasks) -> None:
        self._tasks = tasks
        self.on_alert: Event[Alert, float] = Event("alert", tasks)
        self._price: dict[str, list[PriceAlert]] = {}
        self._pnl: list[PnLAlert] = []
        self._callbacks: dict[int, Event[Alert, float]] = {}

    def __len__(self) -> int:
        return sum(map(len, self._price.values())) + len(self._pnl)

    def __repr__(self) -> str:
        return f"AlertBook(price={sum(map(len, self._price.values()))}, pnl={len(self._pnl)})"

    @property
    def has_pnl(self) -> bool:
        return bool(self._pnl)

    def armed(self) -> list[Alert]:
        return [a for alerts in self._price.values() for a in alerts] + list(self._pnl)

    def add(self, alert: Alert, callback: Callable[[Any, float], Any] | None) -> Alert:
        if callback is not None:
            event: Event[Alert, float] = Event(f"alert#{alert.id}", self._tasks)
            event += callback
            self._callbacks[alert.id] = event
        if isinstance(alert, PriceAlert):
            self._price.setdefault(alert.contract_id, []).append(alert)
        else:
            self._pnl.append(alert)
        return alert

    def remove(self, alert: Alert) -> bool:
        """Disarm an alert; False if it was not armed."""
        self._callbacks.pop(alert.id, None)
        if isinstance(alert, PriceAlert):
            alerts = self._price.get(alert.contract_id, [])
            if alert in alerts:
                alerts.remove(alert)
                if not alerts:
                    del self._price[alert.contract_id]
                return True
            return False
        if alert in self._pnl:
            self._pnl.remove(alert)
            return True
        return False

    def check_price(self, contract_id: str, price: float) -> None:
        alerts = self._price.get(contract_id)
        if alerts:
            for alert in [a for a in alerts if a.hit(price)]:
                self._fire(alert, price)

    def check_pnl(self, total: float, by_contract: dict[str, float]) -> None:
        for alert in list(self._pnl):
            value = total if alert.contract_id is None else by_contract.get(alert.contract_id)
            if value is not None and alert.hit(value):
                self._fire(alert, value)

    def _fire(self, alert: Alert, value: float) -> None:
        callback = self._callbacks.get(alert.id)
        self.remove(alert)
        alert.fired, alert.fired_value = True, value
        if callback is not None:
            callback.emit(alert, value)
        self.on_alert.emit(alert, value)
