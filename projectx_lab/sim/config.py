"""Settings of the local gateway simulator: one dataclass, every knob in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(slots=True)
class AccountConfig:
    """One paper account the simulator serves."""

    name: str
    balance: float = 50_000.0
    can_trade: bool = True
    simulated: bool = True
    active: bool = True
    # "auto_oco" accepts API brackets; "position" rejects them like the real gateway does.
    bracket_mode: str = "auto_oco"


def _default_accounts() -> list[AccountConfig]:
    return [
        AccountConfig("PRAC-V2-SIM-1", 50_000.0),
        AccountConfig("50KTC-V2-SIM-2", 50_000.0),
        AccountConfig("PRAC-V2-SIM-LOCKED", 25_000.0, can_trade=False),
    ]


@dataclass(slots=True)
class SimConfig:
    """Everything that shapes a simulator run; defaults mimic the real gateway."""

    seed: int = 7
    speed: float = 1.0
    start: datetime | None = None  # simulated clock start (UTC); None means "now"
    username: str = "demo"
    api_key: str = field(default="sim-demo-key", repr=False)
    accounts: list[AccountConfig] = field(default_factory=_default_accounts)
    token_ttl: float = 24 * 3600.0  # seconds of *real* time a token stays valid
    history_rate: tuple[int, float] = (50, 30.0)  # requests, window seconds
    rest_rate: tuple[int, float] = (200, 60.0)
    ping_interval: float = 15.0  # SignalR keep-alive from the server, seconds
    client_timeout: float | None = 30.0  # hubs drop a client silent this long (None: never)
    pump_interval: float = 0.02  # real seconds between market pump steps
    trade_rate: float = 3.0  # mean trades per simulated second per contract
    book_levels: int = 10
    book_interval_ms: int = 250  # simulated ms between depth-book samples
    history_days: int = 400  # how far back history exists before the clock start
    bracket_min_ticks: int = 4
    fill_on_touch: bool = (
        False  # resting limits fill when the tape touches (True) or trades through
    )
    max_frame_bytes: int = 16_384  # hubs pack records into frames up to this size
