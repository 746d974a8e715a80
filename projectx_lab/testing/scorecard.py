"""The fault scorecard: every scenario run once, its figures on one line.

`drops 20/20 recovered · subscriptions lost 0 · duplicate bars 0 · bars mismatched 0 ·
duplicate orders 0 · bad inputs 50/50 clear · secrets leaked 0 · soak memory 1.1×`
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import bad_inputs, market, rest, secrets, soak, trading
from .rig import Rig, RigOptions


@dataclass(slots=True)
class Scorecard:
    """Headline figures plus every scenario's full report (for `--verbose`)."""

    drops: int = 0
    recovered: int = 0
    subscriptions_lost: int = 0
    duplicate_bars: int = 0
    bars_mismatched: int = 0
    duplicate_orders: int = 0
    bad_inputs_clear: int = 0
    bad_inputs_total: int = 0
    secrets_leaked: int = 0
    soak_ratio: float | None = None
    reports: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        soak_text = "not run" if self.soak_ratio is None else f"{self.soak_ratio:.2f}×"
        return " · ".join(
            (
                f"drops {self.recovered}/{self.drops} recovered",
                f"subscriptions lost {self.subscriptions_lost}",
                f"duplicate bars {self.duplicate_bars}",
                f"bars mismatched {self.bars_mismatched}",
                f"duplicate orders {self.duplicate_orders}",
                f"bad inputs {self.bad_inputs_clear}/{self.bad_inputs_total} clear",
                f"secrets leaked {self.secrets_leaked}",
                f"soak memory {soak_text}",
            )
        )


async def run_scorecard(
    *,
    drops: int = 20,
    soak_events: int = 1_000_000,
    progress: Callable[[str], None] | None = None,
) -> Scorecard:
    """Run scenarios 1–10 (`soak_events=0` skips the soak) and collect the figures."""
    card = Scorecard()
    say = progress or (lambda _: None)

    say("market drops")
    async with Rig() as rig:
        drop = await market.market_drops(rig, drops)
    card.drops, card.recovered = drop.drops, drop.recovered
    card.subscriptions_lost, card.duplicate_bars = drop.subscriptions_lost, drop.duplicate_bars
    card.bars_mismatched = drop.bars_mismatched
    card.reports["drops"] = drop

    say("gap across a bar boundary")
    async with Rig() as rig:
        gap_bars = await market.gap_across_bar_boundary(rig)
    card.bars_mismatched += gap_bars
    card.reports["gap bars mismatched"] = gap_bars

    say("user hub outage during a bracket")
    async with Rig() as rig:
        card.reports["user hub gap"] = await trading.user_hub_gap(rig)

    say("frozen market stream")
    async with Rig(RigOptions(stale_after=0.8)) as rig:
        frozen = await market.frozen_market(rig)
    card.bars_mismatched += frozen.bars_mismatched
    card.reports["frozen"] = frozen

    say("429 storm and 5xx bursts")
    async with Rig(RigOptions(client={"timeout": 2.0})) as rig:
        storm = await rest.rate_limit_storm(rig)
    card.duplicate_orders += storm.orders_after_429
    card.reports["storm"] = storm

    say("token expiry")
    async with Rig(RigOptions(token_ttl=2.0)) as rig:
        card.reports["token expiry"] = await rest.token_expiry(rig)

    say("swallowed responses")
    async with Rig(RigOptions(client={"timeout": 0.5})) as rig:
        swallowed = await trading.swallowed_mutations(rig)
    card.duplicate_orders += swallowed.duplicate_orders
    card.reports["swallowed"] = swallowed

    say("malformed frames")
    async with Rig() as rig:
        card.reports["malformed"] = await market.malformed_stream(rig)

    say("bad inputs")
    async with Rig() as rig:
        catalogue = await bad_inputs.run_catalogue(rig)
    card.bad_inputs_clear, card.bad_inputs_total = catalogue.clear, catalogue.total
    card.reports["bad inputs"] = catalogue

    say("secrets")
    scan = await secrets.secret_scan()
    card.secrets_leaked = scan.leaked
    card.reports["secrets"] = scan

    if soak_events:
        say(f"soak ({soak_events:,} events)")
        soaked = await soak.soak(soak_events)
        card.soak_ratio = soaked.ratio
        card.reports["soak"] = soaked
    return card
