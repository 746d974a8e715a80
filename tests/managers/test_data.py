"""RealtimeDataManager against the simulator: live bars equal the gateway's own, history joins
live without gaps or duplicates, a dropped market hub is backfilled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from projectx_lab import ProjectX, create_realtime_client
from projectx_lab.managers.data import RealtimeDataManager
from projectx_lab.managers.timeframes import Timeframe
from projectx_lab.sim import Simulator

from ..conftest import sim_options, wait_until

TIMEOUT = 20.0
FAST_RT = {"keepalive_interval": 0.2, "reconnect_initial": 0.05, "reconnect_max": 0.3}


@pytest.fixture
async def rig() -> AsyncIterator[tuple[Simulator, ProjectX, object]]:
    async with Simulator(**sim_options(speed=60.0, trade_rate=4.0)) as sim:
        async with ProjectX.for_simulator(sim) as client:
            await client.authenticate()
            async with create_realtime_client(client, **FAST_RT) as rt:
                yield sim, client, rt


def sim_bars(sim: Simulator, contract_id: str, tf: Timeframe, start_ns: int, end_ns: int):
    """The simulator's own closed bars in [start, end), oldest first, as price floats."""
    spec = sim.exchange.spec(contract_id)
    rows = sim.exchange.market(contract_id).bars(
        tf.gateway_unit, tf.number, start_ns, end_ns, 20_000, False, sim.clock.now_ns()
    )
    px = spec.to_price
    return [(t, px(o), px(h), px(lo), px(c), v) for t, o, h, lo, c, v in reversed(rows)]


def closed_bars(dm: RealtimeDataManager, label: str):
    t, o, h, low, c, v = (col.tolist() for col in dm.series(label).arrays())
    return list(zip(t, o, h, low, c, v, strict=True))[:-1]  # the forming bar is last


async def wait_bars(dm: RealtimeDataManager, label: str, count: int) -> None:
    label = Timeframe.parse(label).label  # events carry the canonical name ("15s" → "15sec")
    seen = asyncio.Event()
    closed: list[dict] = []

    def on_bar(tf: str, bar: dict) -> None:
        if tf == label:
            closed.append(bar)
            if len(closed) >= count:
                seen.set()

    dm.on_new_bar += on_bar
    try:
        await asyncio.wait_for(seen.wait(), TIMEOUT)
    finally:
        dm.on_new_bar -= on_bar


async def test_live_bars_equal_the_simulators_and_join_history(rig) -> None:
    sim, client, rt = rig
    dm = RealtimeDataManager("MNQ", client, rt, ["15s", "1min", "5min"], initial_bars=50)
    await dm.initialize()
    history_len = len(dm.series("1min"))
    assert history_len >= 50
    await dm.start_realtime_feed()
    await wait_bars(dm, "1min", 3)
    await dm.wait_until_backfilled()
    for label in ("15s", "1min", "5min"):
        tf = Timeframe.parse(label)
        ours = closed_bars(dm, label)
        theirs = sim_bars(sim, dm.contract_id, tf, ours[0][0], ours[-1][0] + 1)
        assert ours == theirs, label  # same bars: no gap, no duplicate, same OHLCV
    frame = await dm.get_data("1m", bars=10)
    assert frame.height == 10 and frame["timestamp"].is_sorted()
    assert await dm.get_current_price() == frame["close"][-1]
    await dm.stop_realtime_feed()


async def test_dropped_market_hub_is_backfilled(rig) -> None:
    sim, client, rt = rig
    dm = RealtimeDataManager("MNQ", client, rt, ["15s", "1min"], initial_bars=20)
    await dm.initialize()
    await dm.start_realtime_feed()
    await wait_bars(dm, "15s", 2)
    sim.faults.drop_hub("market", "abort")
    await wait_bars(dm, "1min", 3)
    await dm.wait_until_backfilled()
    for label in ("15s", "1min"):
        ours = closed_bars(dm, label)
        theirs = sim_bars(sim, dm.contract_id, Timeframe.parse(label), ours[0][0], ours[-1][0] + 1)
        assert ours == theirs, label
    await dm.stop_realtime_feed()


def all_bars(dm: RealtimeDataManager, label: str):
    return list(zip(*(col.tolist() for col in dm.series(label).arrays()), strict=True))


@pytest.mark.parametrize("traded_before_drop", [True, False])
async def test_gap_in_a_quiet_market_is_backfilled(rig, traded_before_drop: bool) -> None:
    """The market hub drops, trades go on unseen, and no trade arrives after the reconnect (a
    halt): the backfill alone must bring every bar the gap hid, whether or not a live trade had
    been seen before the drop; the bar forming at the drop is closed with the gateway's values."""
    sim, client, rt = rig
    states: list[tuple[str, str]] = []
    changed = asyncio.Event()
    rt.state_event += lambda hub, state: (states.append((hub, state.value)), changed.set())

    async def state(want: str) -> None:
        async with asyncio.timeout(TIMEOUT):
            while ("market", want) not in states:
                changed.clear()
                await changed.wait()

    dm = RealtimeDataManager("MNQ", client, rt, ["15s"], initial_bars=20)
    await dm.initialize()
    if not traded_before_drop:
        sim.faults.halt_market()
    await dm.start_realtime_feed()
    if traded_before_drop:
        await wait_bars(dm, "15s", 2)
    sim.faults.block_hub("market")
    sim.faults.drop_hub("market", "abort")
    await state("reconnecting")
    sim.faults.resume_market()
    gap_from = sim.clock.now_ns()
    await wait_until(lambda: sim.clock.now_ns() > gap_from + 90 * 10**9, TIMEOUT)  # 6 buckets
    sim.faults.halt_market()  # nothing trades after the reconnect
    sim.faults.unblock_hub("market")
    await state("reconnected")
    await dm.wait_until_backfilled()
    ours = all_bars(dm, "15s")
    assert ours[-1][0] >= gap_from + 60 * 10**9, "the gap's bars never arrived"
    theirs = sim_bars(sim, dm.contract_id, Timeframe.parse("15s"), ours[0][0], ours[-1][0] + 1)
    assert ours == theirs  # every bar, with the gateway's values; none left "forming"
    assert dm.series("15s").forming_bucket is None
    assert traded_before_drop or dm.trades_seen == 0  # bars came from the backfill alone
    await dm.stop_realtime_feed()


async def test_new_bar_events_cover_a_gap_once_in_order_with_final_values(rig) -> None:
    """A strategy fed by `on_new_bar` across a market-hub outage gets every bar exactly once,
    oldest first, with the gateway's values: bars the gap hid (announced after the backfill)
    and the bars around it (held until their re-read), never the incomplete live version."""
    sim, client, rt = rig
    states: list[tuple[str, str]] = []
    changed = asyncio.Event()
    rt.state_event += lambda hub, state: (states.append((hub, state.value)), changed.set())
    dm = RealtimeDataManager("MNQ", client, rt, ["15s"], initial_bars=20)
    await dm.initialize()
    announced: list[tuple] = []
    dm.on_new_bar += lambda tf, b: announced.append(
        (int(b["timestamp"].timestamp() * 10**9), b["open"], b["high"], b["low"], b["close"],
         b["volume"])
    )  # fmt: skip
    await dm.start_realtime_feed()
    await wait_bars(dm, "15s", 2)
    sim.faults.block_hub("market")
    sim.faults.drop_hub("market", "abort")
    async with asyncio.timeout(TIMEOUT):
        while ("market", "reconnecting") not in states:
            changed.clear()
            await changed.wait()
    gap_from = sim.clock.now_ns()
    await wait_until(lambda: sim.clock.now_ns() > gap_from + 60 * 10**9, TIMEOUT)  # 4+ buckets
    sim.faults.unblock_hub("market")
    await dm.wait_until_backfilled()
    await wait_until(lambda: announced and announced[-1][0] > gap_from + 90 * 10**9, TIMEOUT)
    theirs = sim_bars(sim, dm.contract_id, Timeframe.parse("15s"), announced[0][0],
                      announced[-1][0] + 1)  # fmt: skip
    assert announced == theirs
    await dm.stop_realtime_feed()


async def test_unknown_timeframe_is_a_clear_error(rig) -> None:
    _, client, rt = rig
    dm = RealtimeDataManager("MNQ", client, rt, ["1min"])
    with pytest.raises(ValueError, match="not tracked"):
        await dm.get_data("5min")
    with pytest.raises(ValueError, match="unknown timeframe"):
        RealtimeDataManager("MNQ", client, rt, ["7 parsecs"])
