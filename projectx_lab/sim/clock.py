"""Virtual clock: simulated UTC time that runs `speed` times faster than the wall clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime

NS = 1_000_000_000


class VirtualClock:
    """Maps monotonic real time to simulated UTC time in integer nanoseconds.

    Changing `speed` rebases the mapping so simulated time never jumps.
    """

    def __init__(self, start: datetime | None = None, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed!r}")
        start = start or datetime.now(UTC)
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self._base_sim_ns = int(start.timestamp() * NS)
        self._base_real_ns = time.monotonic_ns()
        self._speed = float(speed)

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        if value <= 0:
            raise ValueError(f"speed must be > 0, got {value!r}")
        now = self.now_ns()
        self._base_real_ns = time.monotonic_ns()
        self._base_sim_ns = now
        self._speed = float(value)

    @property
    def start_ns(self) -> int:
        return self._base_sim_ns

    def now_ns(self) -> int:
        """Simulated time as integer nanoseconds since the Unix epoch (UTC)."""
        elapsed = time.monotonic_ns() - self._base_real_ns
        return self._base_sim_ns + int(elapsed * self._speed)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ns() / NS, tz=UTC)

    def real_seconds_until(self, sim_ns: int) -> float:
        """Wall-clock seconds until the simulated clock reaches `sim_ns` (0 if past)."""
        return max(0.0, (sim_ns - self.now_ns()) / NS / self._speed)
