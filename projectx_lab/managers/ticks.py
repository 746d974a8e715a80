"""Trade ticks from the market hub: fast timestamp parsing and the `Tick` record users stream."""

from __future__ import annotations

from array import array
from datetime import UTC, datetime
from typing import Any, NamedTuple

NS = 1_000_000_000
# "YYYY-MM-DDTHH:MM:SS" → epoch seconds; shared with the data manager's inline fast path.
SECOND_CACHE: dict[str, int] = {}
_CACHE_LIMIT = 1024  # distinct seconds kept (17 minutes of a live tape)


def parse_ts_ns(text: str) -> int:
    """ISO-8601 (offset `+00:00`, `Z` or naive = UTC; any fraction length) → ns since the epoch.

    The per-second prefix is cached, so a stream of trades costs one dict lookup and one int().
    """
    head = text[:19]
    secs = SECOND_CACHE.get(head)
    if secs is None:
        secs = int(datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp())
        if len(SECOND_CACHE) >= _CACHE_LIMIT:
            SECOND_CACHE.clear()
        SECOND_CACHE[head] = secs
    if len(text) == 33 and text[19] == "." and text[27:] == "+00:00":
        return secs * NS + int(text[20:27]) * 100  # the gateway's own format, fast path
    rest = text[19:]
    frac = 0
    if rest.startswith("."):
        end = 1
        n = len(rest)
        while end < n and rest[end].isdigit():
            end += 1
        digits = rest[1:end]
        frac = int((digits + "000000000")[:9]) if digits else 0
        rest = rest[end:]
    if rest and rest not in ("Z", "z", "+00:00", "+0000"):
        sign = -1 if rest[0] == "-" else 1
        hours, _, minutes = rest[1:].partition(":")
        secs -= sign * (int(hours) * 3600 + int(minutes or 0) * 60)
    return secs * NS + frac


class Tick(NamedTuple):
    """One trade print: time (ns, UTC), price, size and aggressor side (0 buy, 1 sell)."""

    ts_ns: int
    price: float
    size: int
    side: int
    contract_id: str

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.ts_ns / NS, tz=UTC)


class TickRing:
    """The newest `capacity` trades in preallocated columns: no object is kept per trade.

    Writer protocol (the data manager's hot path): store trade k of a batch at position
    `(next + k) % len(ts)` of `ts`, `price`, `size`, `side`, then `commit(count)` (or set
    `next` and add to `total` the same way).
    """

    __slots__ = ("capacity", "next", "price", "side", "size", "total", "ts")

    def __init__(self, capacity: int) -> None:
        if not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"max_ticks must be a non-negative int, got {capacity!r}")
        self.capacity = capacity
        slots = max(1, capacity)  # 0 keeps nothing, but writers still need a slot to write
        self.ts = array("q", bytes(8 * slots))  # ns since the epoch, UTC
        self.price = array("d", bytes(8 * slots))
        self.size: list[Any] = [0] * slots
        self.side: list[Any] = [0] * slots
        self.next = 0  # position of the next write
        self.total = 0  # trades ever committed

    def commit(self, count: int) -> None:
        """Publish `count` trades written from position `next` on."""
        self.next = (self.next + count) % max(1, self.capacity)
        self.total += count

    def __len__(self) -> int:
        return min(self.total, self.capacity)

    def ticks(self, count: int, contract_id: str) -> list[Tick]:
        """`[-count:]` of the kept trades, oldest first, as `Tick`s."""
        kept = len(self)
        slots = max(1, self.capacity)
        start = self.next - kept
        return [
            Tick(self.ts[i], self.price[i], self.size[i], self.side[i], contract_id)
            for i in ((start + k) % slots for k in range(kept)[-count:])
        ]
