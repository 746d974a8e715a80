"""Wire formatting shared by the simulator's REST routes and hubs."""

from __future__ import annotations

from datetime import UTC, datetime

NS = 1_000_000_000


def iso(ts_ns: int) -> str:
    """ISO-8601 UTC with 7 fractional digits and `+00:00`, as the real gateway sends."""
    secs, rem = divmod(ts_ns, NS)
    base = datetime.fromtimestamp(secs, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{rem // 100:07d}+00:00"


def parse_iso(text: str) -> int:
    """Parse an ISO-8601 timestamp (offset, `Z` or naive = UTC) into ns since the epoch."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    frac_ns = 0
    if "." in value:
        head, _, tail = value.partition(".")
        digits = ""
        rest = ""
        for i, ch in enumerate(tail):
            if not ch.isdigit():
                rest = tail[i:]
                break
            digits += ch
        frac_ns = int((digits + "000000000")[:9]) if digits else 0
        value = head + rest
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * NS + frac_ns
