"""Market model: determinism, bars == aggregation of trades, bar rules, continuity, book vs tape."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from projectx_lab.sim.catalog import Catalog
from projectx_lab.sim.config import SimConfig
from projectx_lab.sim.market import MarketModel, Trades

NS = 1_000_000_000
MIN = 60 * NS
HOUR = 60 * MIN
DAY = 24 * HOUR
START = datetime(2026, 10, 2, 14, 30, tzinfo=UTC)
START_NS = int(START.timestamp()) * NS
NOW = START_NS + 37 * MIN + 37_500_000_000  # mid-minute, mid-hour
CAT = Catalog(START)


def model(symbol: str = "MNQ", seed: int = 7, **overrides: object) -> MarketModel:
    cfg = SimConfig(start=START, **{"trade_rate": 0.5, "history_days": 20, **overrides})
    return MarketModel(CAT.by_symbol(symbol), seed, cfg)


@pytest.fixture(scope="module")
def mnq() -> MarketModel:
    return model()


def same(a: Trades, b: Trades) -> bool:
    return all(
        np.array_equal(getattr(a, f), getattr(b, f)) for f in ("ts_ns", "price", "size", "side")
    )


# --- independent reference aggregation --------------------------------------------------------


def _calendar_start(day_ns: int, unit: int) -> int:
    day = datetime.fromtimestamp(day_ns // NS, tz=UTC)
    if unit == 5:
        day -= timedelta(days=day.weekday())
    else:
        day = day.replace(day=1)
    return int(day.timestamp()) * NS


def reference_bars(trades: Trades, unit: int, number: int) -> list[tuple[int, ...]]:
    ts = trades.ts_ns
    if unit in (1, 2, 3, 4):
        width = {1: NS, 2: MIN, 3: HOUR, 4: DAY}[unit] * number
        starts = ts - ts % width
    else:
        assert number == 1
        days, inverse = np.unique(ts - ts % DAY, return_inverse=True)
        starts = np.array([_calendar_start(int(d), unit) for d in days], dtype=np.int64)[inverse]
    keys, first = np.unique(starts, return_index=True)
    last = np.append(first[1:], len(ts)) - 1
    price = trades.price
    out = zip(
        keys.tolist(),
        price[first].tolist(),
        np.maximum.reduceat(price, first).tolist(),
        np.minimum.reduceat(price, first).tolist(),
        price[last].tolist(),
        np.add.reduceat(trades.size.astype(np.int64), first).tolist(),
        strict=True,
    )
    return list(out)[::-1]


@pytest.mark.parametrize(
    ("unit", "number", "span"),
    [
        (1, 1, 20 * MIN),
        (1, 7, 30 * MIN),
        (1, 120, 3 * HOUR),  # whole minutes: served from minute aggregates
        (2, 1, 3 * HOUR),
        (2, 7, 6 * HOUR),
        (3, 1, 2 * DAY),
        (3, 5, 2 * DAY),
        (4, 1, 5 * DAY),
        (5, 1, 15 * DAY),
        (6, 1, 50 * DAY),  # reaches back past the history start
    ],
)
def test_bars_equal_aggregation_of_trades(
    mnq: MarketModel, unit: int, number: int, span: int
) -> None:
    start = NOW - span
    got = mnq.bars(unit, number, start, NOW + DAY, 10**6, True, NOW)
    want = [b for b in reference_bars(mnq.trades(start - 1, NOW), unit, number) if b[0] >= start]
    assert got == want
    assert len(got) > 1


def test_bars_limit_order_partial_and_window(mnq: MarketModel) -> None:
    full = mnq.bars(2, 1, NOW - 3 * HOUR, NOW + HOUR, 10**6, True, NOW)
    times = [b[0] for b in full]
    assert times == sorted(times, reverse=True) and len(set(times)) == len(times)
    newest = full[0]
    assert newest[0] <= NOW < newest[0] + MIN  # the partial bar ...
    partial = reference_bars(mnq.trades(newest[0] - 1, NOW), 2, 1)
    assert [newest] == partial  # ... aggregates exactly the trades up to now
    assert mnq.bars(2, 1, NOW - 3 * HOUR, NOW + HOUR, 10**6, False, NOW) == full[1:]
    assert mnq.bars(2, 1, NOW - 3 * HOUR, NOW + HOUR, 10, True, NOW) == full[:10]
    assert mnq.bars(2, 1, NOW - 3 * HOUR, full[5][0], 10**6, True, NOW) == full[6:]  # end excl.
    assert mnq.bars(2, 1, full[-3][0], NOW + HOUR, 10**6, True, NOW) == full[:-2]  # start incl.
    earlier = NOW - HOUR - 17 * NS
    assert all(b[0] <= earlier for b in mnq.bars(2, 1, NOW - 3 * HOUR, NOW, 100, True, earlier))
    assert mnq.bars(2, 1, NOW + MIN, NOW + HOUR, 100, True, NOW) == []
    assert mnq.bars(2, 1, 0, mnq.history_start_ns, 100, True, NOW) == []


def test_bars_limit_walks_back_over_long_windows(mnq: MarketModel) -> None:
    window = (mnq.history_start_ns - 5 * DAY, NOW + DAY)
    full = mnq.bars(2, 5, *window, 10**6, True, NOW)
    assert full[-1][0] >= mnq.history_start_ns
    assert mnq.bars(2, 5, *window, 700, True, NOW) == full[:700]
    assert (
        mnq.bars(1, 30, NOW - 2 * HOUR, NOW, 50, False, NOW)
        == (mnq.bars(1, 30, NOW - 2 * HOUR, NOW, 10**6, False, NOW)[:50])
    )


def test_same_seed_same_market_other_seed_or_product_differs() -> None:
    a, b = model(trade_rate=3.0), model(trade_rate=3.0)
    b.bars(2, 1, b.history_start_ns, NOW, 10**6, True, NOW)  # warm b's caches in another order
    first_a = a.trades(START_NS, START_NS + HOUR)
    first_b = b.trades(START_NS, START_NS + HOUR)
    assert len(first_a) >= 1000
    assert same(first_a, first_b)
    bars_a = a.bars(3, 1, a.history_start_ns, NOW, 10**6, True, NOW)
    assert bars_a == b.bars(3, 1, b.history_start_ns, NOW, 10**6, True, NOW)
    assert a.book(NOW) == b.book(NOW)
    other_seed = model(seed=8, trade_rate=3.0).trades(START_NS, START_NS + HOUR)
    assert not np.array_equal(first_a.price[:1000], other_seed.price[:1000])
    other_product = model("ES", trade_rate=3.0).trades(START_NS, START_NS + HOUR)
    assert not np.array_equal(first_a.ts_ns[:1000], other_product.ts_ns[:1000])


def test_trades_windows_concatenate(mnq: MarketModel) -> None:
    a, c = START_NS - DAY // 2 - 3 * HOUR, START_NS  # spans midnight and many hour chunks
    whole = mnq.trades(a, c)
    cuts = sorted({a, c, *np.random.default_rng(1).integers(a, c, 25).tolist(), a + 3 * HOUR})
    pieces = Trades.concat([mnq.trades(x, y) for x, y in itertools.pairwise(cuts)])
    assert same(whole, pieces)
    assert np.all(np.diff(whole.ts_ns) > 0)
    assert whole.ts_ns[0] > a and whole.ts_ns[-1] <= c
    exact = mnq.trades(whole.ts_ns[9], whole.ts_ns[20])  # (start, end]
    assert np.array_equal(exact.ts_ns, whole.ts_ns[10:21])
    assert len(mnq.trades(c, c)) == 0
    with pytest.raises(ValueError):
        mnq.trades(c, a)


def test_price_path_is_continuous(mnq: MarketModel) -> None:
    trades = mnq.trades(START_NS - 3 * DAY, START_NS)
    rel = np.abs(np.diff(trades.price)) / trades.price[1:]
    assert rel.max() < 0.003  # no jumps at chunk or day boundaries
    days = mnq.bars(4, 1, START_NS - 10 * DAY, START_NS, 100, False, START_NS)[::-1]
    gaps = [abs(nxt[1] - prev[4]) / prev[4] for prev, nxt in itertools.pairwise(days)]
    assert max(gaps) < 0.003  # each day opens where the previous one closed


@pytest.mark.parametrize("seed", [7, 11])
def test_the_tape_walks_to_its_extremes_without_lone_prints(seed: int) -> None:
    # A minute's high and low are reached by the path, not printed by one trade that stands
    # far beyond both neighbours: such a print fires stops at prices nothing traded around.
    trades = model(seed=seed, trade_rate=3.0).trades(START_NS - DAY, START_NS)
    p = trades.price.astype(np.int64)
    before, after = p[1:-1] - p[:-2], p[1:-1] - p[2:]
    lone = np.where(np.sign(before) == np.sign(after), np.minimum(abs(before), abs(after)), 0)
    assert len(p) > 100_000 and lone.max() < 12, f"a lone print {lone.max()} ticks out"


@pytest.mark.parametrize("seed", [7, 11])
def test_single_prints_move_a_few_ticks(seed: int) -> None:
    # The tape walks to each minute's high and low over as many trades as it takes, so one
    # print never jumps through many levels of the book (a stop there would fill far through).
    trades = model(seed=seed, trade_rate=3.0).trades(START_NS - DAY, START_NS)
    move = np.abs(np.diff(trades.price.astype(np.int64)))
    assert len(move) > 100_000 and move.max() < 12, f"a print {move.max()} ticks from the last"
    assert (move >= 10).sum() < 30, f"{(move >= 10).sum()} prints of 10+ ticks"


def test_prices_are_on_the_tick_grid() -> None:
    for symbol in ("MNQ", "6E", "ZN", "MCL", "MBT"):
        m = model(symbol)
        spec = m.spec
        trades = m.trades(START_NS - HOUR, START_NS)
        assert trades.price.dtype == np.int64 and trades.price.min() > 0
        assert trades.ts_ns.dtype == np.int64
        assert (trades.size.dtype, trades.side.dtype) == (np.int32, np.int8)
        for ticks in trades.price[:200].tolist():
            assert spec.to_ticks(spec.to_price(ticks)) == ticks
        fields = m.quote(START_NS).fields(spec)
        for key in ("lastPrice", "bestBid", "bestAsk", "open", "high", "low", "change"):
            assert spec.to_ticks(fields[key]) is not None, (symbol, key, fields[key])


def test_trades_print_at_the_book(mnq: MarketModel) -> None:
    levels = mnq.config.book_levels
    trades = mnq.trades(START_NS, START_NS + 10 * MIN)
    assert len(trades) > 100
    for ts, price, side in zip(
        trades.ts_ns.tolist(), trades.price.tolist(), trades.side.tolist(), strict=True
    ):
        book = mnq.book(ts)
        assert (book.best_ask if side == 0 else book.best_bid) == price
        assert len(book.bids) == len(book.asks) == levels
        assert book.best_bid < book.best_ask
        assert [p for p, _ in book.asks] == list(range(book.best_ask, book.best_ask + levels))
        assert [p for p, _ in book.bids] == list(range(book.best_bid, book.best_bid - levels, -1))
        assert min(s for _, s in book.bids + book.asks) >= 1


def test_book_constant_between_grid_points_without_trades(mnq: MarketModel) -> None:
    step = mnq.config.book_interval_ms * 1_000_000
    grid = mnq.book_times(START_NS, START_NS + 5 * MIN)
    assert grid[0] > START_NS and grid[-1] <= START_NS + 5 * MIN
    assert all(b - a == step for a, b in itertools.pairwise(grid))
    assert mnq.book_times(grid[0], grid[0]) == []
    assert mnq.book_times(grid[0] - 1, grid[0]) == [grid[0]]
    checked = changed = 0
    for g in grid[:-1]:
        a, b = g + 1, g + step - 1
        if len(mnq.trades(a - 1, b)) == 0:
            assert mnq.book(a) == mnq.book(b)
            checked += 1
        changed += mnq.book(g - 1) != mnq.book(g)
    assert checked > 50 and changed > 50


def test_last_trade_and_quote(mnq: MarketModel) -> None:
    day_start = NOW - NOW % DAY
    today = mnq.trades(day_start - 1, NOW)
    assert mnq.last_trade(NOW) == (int(today.ts_ns[-1]), int(today.price[-1]))
    ts = int(today.ts_ns[500])
    assert mnq.last_trade(ts) == (ts, int(today.price[500]))
    assert mnq.last_trade(ts - 1) == (int(today.ts_ns[499]), int(today.price[499]))
    q = mnq.quote(NOW)
    prev = mnq.last_trade(day_start - 1)
    assert (q.last_ts, q.last) == mnq.last_trade(NOW)
    assert q.open == today.price[0] and q.high == today.price.max() and q.low == today.price.min()
    assert q.volume == int(today.size.sum())
    assert q.prev_close == prev[1] and q.change == q.last - prev[1]
    assert q.change_percent == pytest.approx(100 * q.change / prev[1])
    book = mnq.book(NOW)
    assert (q.bid, q.ask) == (book.best_bid, book.best_ask)
    fields = q.fields(mnq.spec)
    assert set(fields) == {
        "lastPrice", "bestBid", "bestAsk", "open", "high", "low", "volume", "change",
        "changePercent",
    }  # fmt: skip
    assert fields["lastPrice"] == mnq.spec.to_price(q.last)
    first = mnq.quote(day_start + 1)  # nothing traded yet today
    assert (first.open, first.volume, first.change) == (None, 0, 0)


def test_history_starts_history_days_before_clock_start(mnq: MarketModel) -> None:
    hist = mnq.history_start_ns
    assert hist == START_NS - START_NS % DAY - 20 * DAY
    assert len(mnq.trades(hist - DAY, hist)) == 0
    assert mnq.trades(hist - DAY, hist + HOUR).ts_ns[0] > hist
    assert mnq.last_trade(hist - 1) is None
    assert mnq.quote(hist - 1).last is None
    assert mnq.book(hist - 1).best_bid is not None
    assert mnq.bars(4, 1, 0, NOW, 10**6, True, NOW)[-1][0] == hist


def test_sparse_tape_last_trade_scans_back() -> None:
    sparse = model(trade_rate=0.0005)
    trades = sparse.trades(START_NS - 2 * DAY, START_NS)
    assert 5 < len(trades) < 500
    for probe in (START_NS, int(trades.ts_ns[-3]) + 1, int(trades.ts_ns[2])):
        before = trades.ts_ns <= probe
        i = int(np.flatnonzero(before)[-1])
        assert sparse.last_trade(probe) == (int(trades.ts_ns[i]), int(trades.price[i]))
    b = sparse.bars(2, 1, START_NS - 2 * DAY, START_NS, 10, False, START_NS)
    assert b == reference_bars(trades, 2, 1)[:10]


def test_market_looks_like_the_product() -> None:
    m = model("MNQ", trade_rate=1.0, history_days=400)
    days = m.bars(4, 1, 0, START_NS, 10**6, False, START_NS)[::-1]
    closes = np.array([b[4] for b in days], dtype=float)
    realised = np.diff(np.log(closes)).std() * np.sqrt(365.25)
    assert 0.7 * m.spec.annual_vol < realised < 1.4 * m.spec.annual_vol

    minutes = m.bars(2, 1, START_NS - 10 * DAY, START_NS, 10**6, False, START_NS)
    by_hour = np.zeros(24)
    for t, *_, v in minutes:
        by_hour[(t % DAY) // HOUR] += v
    assert by_hour[14:20].mean() > 2.5 * by_hour[0:6].mean()  # US session busier than Asia

    trades = m.trades(START_NS - DAY, START_NS)
    assert 0.6 < len(trades) / 86_400 / m.config.trade_rate < 1.6
    assert np.mean(trades.size <= 3) > 0.85 and trades.size.max() >= 15
    up = np.diff(trades.price) > 0
    down = np.diff(trades.price) < 0
    assert np.mean(trades.side[1:][up] == 0) > 0.8 and np.mean(trades.side[1:][down] == 1) > 0.8
    spreads = [
        m.book(t).best_ask - m.book(t).best_bid for t in m.book_times(START_NS - 5 * MIN, START_NS)
    ]
    assert np.mean(np.array(spreads) == 1) > 0.85


def test_bad_input_is_rejected(mnq: MarketModel) -> None:
    for unit, number, limit in ((0, 1, 10), (7, 1, 10), (2, 0, 10), (2, 1, 0)):
        with pytest.raises(ValueError):
            mnq.bars(unit, number, NOW - HOUR, NOW, limit, True, NOW)
    with pytest.raises(ValueError):
        model(trade_rate=0.0)
    with pytest.raises(ValueError):
        model(book_levels=0)
