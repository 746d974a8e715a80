"""The stale-stream verdict on synthetic clocks: a frozen stream is caught, a thin one settles
on a threshold that fits its gaps (no rebuild every `stale_after`), a busy one comes back to
the base threshold."""

from __future__ import annotations

import random

from projectx_lab.realtime.staleness import StaleWatch

S = 1_000_000_000
TICK = S // 10  # the supervisor looks every 100 ms or so


def run(watch: StaleWatch, arrivals: list[int], until: int, start: int = 0) -> list[int]:
    """Feed data arrival times; returns when verdicts fell (a verdict reconnects: restart)."""
    verdicts, last, pending = [], start, iter(sorted(arrivals))
    upcoming = next(pending, None)
    watch.connected(start)
    for now in range(start, until, TICK):
        while upcoming is not None and upcoming <= now:
            last, upcoming = upcoming, next(pending, None)
        if watch.check(now, last) is not None:
            verdicts.append(now)
            watch.connected(now)
    return verdicts


def test_a_frozen_stream_is_caught_at_the_threshold() -> None:
    watch = StaleWatch(1.0)
    verdicts = run(watch, [i * TICK for i in range(20)], until=4 * S)  # data for 2 s, then none
    assert verdicts and 3 * S <= verdicts[0] <= 3 * S + 2 * TICK
    assert watch.factor == 2 and watch.threshold_s == 2.0


def test_a_thin_stream_settles_instead_of_churning() -> None:
    rng = random.Random(3)
    t, arrivals = 0, []
    while t < 600 * S:  # ten minutes of trades 4 s apart on average (exponential gaps)
        t += int(rng.expovariate(1 / 4.0) * S)
        arrivals.append(t)
    watch = StaleWatch(2.0)
    verdicts = run(watch, arrivals, until=600 * S)
    assert len(verdicts) <= 5, f"the watchdog kept rebuilding a healthy thin stream: {verdicts}"
    assert not [v for v in verdicts if v > 300 * S], "still rebuilding after five minutes"
    assert watch.factor >= 4


def test_a_busy_stream_comes_back_to_the_base_threshold() -> None:
    watch = StaleWatch(1.0)
    watch.factor = 8  # after a run of verdicts
    busy = [i * TICK for i in range(1, 2_000)]
    assert run(watch, busy, until=200 * S) == []
    assert watch.factor == 1
    (caught,) = run(watch, [], until=202 * S, start=200 * S)  # a freeze is caught at 1 s again
    assert caught <= 201 * S + 2 * TICK
