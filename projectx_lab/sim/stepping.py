"""`SteppedClock`: the virtual clock, plus the ability to hold simulated time still and step it.

Free-running (the default) it is exactly `VirtualClock`. Held, `now_ns()` stays where it was put
until `advance_to()` moves it; `release()` lets it run on from there at `speed`. Lockstep runs
(deterministic paper trading, maximum-speed replay) drive the exchange this way.
"""

from __future__ import annotations

from datetime import datetime

from .clock import VirtualClock


class SteppedClock(VirtualClock):
    """A `VirtualClock` that can be held at an instant and moved forward in explicit steps."""

    def __init__(self, start: datetime | None = None, speed: float = 1.0) -> None:
        super().__init__(start, speed)
        self._held: int | None = None

    @property
    def held(self) -> bool:
        """True while simulated time only moves by `advance_to`."""
        return self._held is not None

    def now_ns(self) -> int:
        held = self._held
        return super().now_ns() if held is None else held

    def hold(self, at: int | None = None) -> int:
        """Stop simulated time where it is now, or at `at` (ns; any instant: only for setting
        the start before the simulator serves anything); returns the held instant."""
        if at is not None:
            if not isinstance(at, int) or isinstance(at, bool):
                raise TypeError(f"at must be an int (ns since the epoch), got {at!r}")
            self._held = at
        elif self._held is None:
            self._held = super().now_ns()
        return self._held

    def advance_to(self, ts_ns: int) -> None:
        """Move held time forward to `ts_ns` (never backwards)."""
        held = self._held
        if held is None:
            raise RuntimeError("the clock is running; hold() it before stepping it")
        if not isinstance(ts_ns, int) or isinstance(ts_ns, bool):
            raise TypeError(f"ts_ns must be an int (ns since the epoch), got {ts_ns!r}")
        if ts_ns < held:
            raise ValueError(f"cannot step the clock back from {held} to {ts_ns}")
        self._held = ts_ns

    def release(self) -> None:
        """Let simulated time run on from the held instant at the current speed."""
        if self._held is None:
            return
        self.speed = self.speed  # rebases the real-time mapping at the held instant
        self._held = None
