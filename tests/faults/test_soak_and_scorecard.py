"""A short soak (the full one is `bench/soak.py`): bounded memory under a stream with drops;
and the scorecard line's format."""

from __future__ import annotations

from projectx_lab.testing import soak
from projectx_lab.testing.scorecard import Scorecard


async def test_short_soak_memory_stays_within_1_2x() -> None:
    report = await soak.soak(150_000, drops=3)
    assert report.events >= 150_000 and report.recovered >= 3
    assert report.ratio <= 1.2, report


def test_scorecard_line_names_every_figure() -> None:
    card = Scorecard(drops=20, recovered=20, bad_inputs_clear=50, bad_inputs_total=50,
                     soak_ratio=1.08)  # fmt: skip
    assert card.line() == (
        "drops 20/20 recovered · subscriptions lost 0 · duplicate bars 0 · bars mismatched 0 · "
        "duplicate orders 0 · bad inputs 50/50 clear · secrets leaked 0 · soak memory 1.08×"
    )
