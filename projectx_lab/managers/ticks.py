"""Trade ticks from the market hub: fast timestamp parsing and the `Tick` record users stream."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

NS = 1_000_000_000
_SECOND_CACHE: dict[str, int] = {}
_CACHE_LIMIT = 4096


def parse_ts_ns(text: str) -> int:
    """ISO-8601 (offset `+00:00`, `Z` or naive = UTC; any fraction length) → ns since the epoch.

    The per-second prefix is cached, so a stream of trades costs one dict lookup and one int().
    """
    head = text[:19]
    secs = _SECOND_CACHE.get(head)
    if secs is None:
        secs = int(datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp())
        if len(_SECOND_CACHE) >= _CACHE_LIMIT:
            _SECOND_CACHE.clear()
        _SECOND_CACHE[head] = secs
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
