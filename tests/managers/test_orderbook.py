"""OrderBook: DomType rules one by one, reset/ghost/cross handling, bad input, bounded memory,
analytics on hand-built inputs, and equality with the simulator's own book over a real socket."""

from __future__ import annotations

import asyncio
import inspect
import math
import random
from datetime import UTC, datetime

import httpx
import orjson
import polars as pl
import pytest
import websockets

from projectx_lab.managers.orderbook import OrderBook

CID = "CON.F.US.MNQ.Z26"
TS = "2026-10-02T14:31:05.1234567+00:00"


def d(typ: int, price: float = 0.0, volume: float = 0, ts: str = TS) -> dict:
    """One GatewayDepth item as the wire carries it."""
    return {"timestamp": ts, "type": typ, "price": price, "volume": volume, "currentVolume": 0}


def tr(price: float, volume: int, side: int, ts: str = TS) -> dict:
    """One GatewayTrade item (side 0 buy aggressor, 1 sell)."""
    return {"symbolId": "F.US.MNQ", "price": price, "timestamp": ts, "type": side, "volume": volume}


def book_with(bids: dict[float, int], asks: dict[float, int], **kw) -> OrderBook:
    book = OrderBook(CID, 0.25, **kw)
    items = [d(6)] + [d(2, p, v) for p, v in bids.items()] + [d(1, p, v) for p, v in asks.items()]
    book.apply_depth(items)
    return book


def state(book: OrderBook) -> tuple:
    return (dict(book.bids), dict(book.asks), book.best_bid, book.best_ask, book.last_update)


# -- DomType rules ----------------------------------------------------------------------------


def test_reset_then_snapshot_builds_the_book() -> None:
    book = book_with({100.0: 5, 99.75: 3}, {100.25: 4, 100.5: 6})
    assert book.bids == {100.0: 5, 99.75: 3}
    assert book.asks == {100.25: 4, 100.5: 6}
    assert (book.best_bid, book.best_ask, book.spread, book.mid) == (100.0, 100.25, 0.25, 100.125)
    book.apply_depth([d(6)])
    assert book.bids == {} and book.asks == {}
    assert book.best_bid is None and book.best_ask is None and book.spread is None


def test_ask_and_bid_set_the_level_size_and_zero_removes() -> None:
    book = book_with({100.0: 5, 99.75: 3}, {100.25: 4})
    book.apply_depth([d(2, 99.75, 9), d(1, 100.25, 1), d(2, 99.5, 2)])
    assert book.bids == {100.0: 5, 99.75: 9, 99.5: 2} and book.asks == {100.25: 1}
    book.apply_depth([d(2, 100.0, 0), d(1, 100.25, 0), d(2, 42.0, 0)])  # 42: absent → no-op
    assert book.bids == {99.75: 9, 99.5: 2} and book.asks == {}
    assert book.best_bid == 99.75 and book.best_ask is None


def test_new_level_above_the_best_becomes_the_best() -> None:
    book = book_with({100.0: 5}, {101.0: 4})
    book.apply_depth([d(2, 100.5, 1), d(1, 100.75, 2)])
    assert (book.best_bid, book.best_ask) == (100.5, 100.75)


def test_best_bid_sets_level_and_drops_better_bids() -> None:
    book = book_with({100.0: 5, 99.75: 3, 99.5: 1}, {100.25: 4})
    book.apply_depth([d(4, 99.75, 7)])
    assert book.bids == {99.75: 7, 99.5: 1}
    assert book.best_bid == 99.75


def test_best_ask_sets_level_and_drops_better_asks() -> None:
    book = book_with({100.0: 5}, {100.25: 4, 100.5: 6, 100.75: 2})
    book.apply_depth([d(3, 100.5, 8)])
    assert book.asks == {100.5: 8, 100.75: 2}
    assert book.best_ask == 100.5


def test_new_best_bid_and_new_best_ask_move_the_top() -> None:
    book = book_with({100.0: 5, 99.75: 3}, {100.25: 4, 100.5: 6})
    book.apply_depth([d(9, 99.75, 3), d(10, 100.0, 2)])  # market ticks down
    assert book.bids == {99.75: 3} and book.asks == {100.0: 2, 100.25: 4, 100.5: 6}
    book.apply_depth([d(9, 100.25, 1), d(10, 100.5, 6)])  # and up two: new bid, asks gone
    assert book.bids == {100.25: 1, 99.75: 3} and book.asks == {100.5: 6}
    assert (book.best_bid, book.best_ask) == (100.25, 100.5)


def test_best_with_zero_volume_empties_that_price_and_above() -> None:
    book = book_with({100.0: 5, 99.75: 3, 99.5: 1}, {100.25: 4})
    book.apply_depth([d(4, 99.75, 0)])
    assert book.bids == {99.5: 1} and book.best_bid == 99.5


def test_trade_and_fill_prints_do_not_change_the_book() -> None:
    book = book_with({100.0: 5}, {100.25: 4})
    before = (dict(book.bids), dict(book.asks))
    book.apply_depth([d(5, 100.25, 2)])
    assert book.last_print == (100.25, 2)
    book.apply_depth([d(11, 100.0, 1)])
    assert book.last_print == (100.0, 1)
    assert (book.bids, book.asks) == before


def test_low_and_high_are_session_notifications() -> None:
    book = book_with({100.0: 5}, {100.25: 4})
    book.apply_depth([d(7, 95.5), d(8, 104.75)])
    assert (book.session_low, book.session_high) == (95.5, 104.75)
    assert book.bids == {100.0: 5} and book.asks == {100.25: 4}


def test_unknown_types_are_ignored_and_counted() -> None:
    book = book_with({100.0: 5}, {100.25: 4})
    book.apply_depth([d(0, 1.0, 1), d(12, 1.0, 1)])
    assert book.ignored_items == 2
    assert book.bids == {100.0: 5} and book.asks == {100.25: 4}


def test_a_single_dict_is_accepted_like_a_batch() -> None:
    book = book_with({100.0: 5}, {100.25: 4})
    book.apply_depth(d(2, 99.75, 3))
    assert book.bids == {100.0: 5, 99.75: 3}


def test_reset_item_in_the_middle_of_a_batch() -> None:
    book = book_with({100.0: 5}, {100.25: 4})
    book.apply_depth([d(2, 99.0, 1), d(6), d(2, 98.0, 2), d(1, 98.25, 3)])
    assert book.bids == {98.0: 2} and book.asks == {98.25: 3}
    assert (book.best_bid, book.best_ask) == (98.0, 98.25)


# -- crossed and ghost levels ------------------------------------------------------------------


def test_crossed_bid_drops_the_stale_asks() -> None:
    book = book_with({100.0: 5}, {100.25: 4, 100.5: 6, 100.75: 1})
    book.apply_depth([d(2, 100.5, 3)])  # the sender's asks at 100.25/100.5 must be gone
    assert book.asks == {100.75: 1}
    assert (book.best_bid, book.best_ask) == (100.5, 100.75)


def test_crossed_ask_drops_the_stale_bids() -> None:
    book = book_with({100.0: 5, 99.75: 3, 99.5: 2}, {100.25: 4})
    book.apply_depth([d(10, 99.75, 2)])
    assert book.bids == {99.5: 2}
    assert (book.best_bid, book.best_ask) == (99.5, 99.75)


def test_transient_cross_inside_a_batch_is_not_resolved_early() -> None:
    book = book_with({100.0: 5}, {100.25: 4, 100.5: 6})
    # the bid at 100.25 arrives before the ask removal at that price: same batch, no loss
    book.apply_depth([d(2, 100.25, 2), d(1, 100.25, 0), d(9, 100.25, 2), d(10, 100.5, 6)])
    assert book.bids == {100.25: 2, 100.0: 5} and book.asks == {100.5: 6}


def test_reset_on_reconnect_leaves_no_ghost_levels() -> None:
    book = book_with({100.0: 5, 99.75: 3, 90.0: 1}, {100.25: 4, 110.0: 9})
    book.apply_trades([tr(100.25, 1, 0)])
    book.reset()
    assert state(book) == ({}, {}, None, None, None)
    assert book.trade_count == 1  # the tape is history, not book state
    book.apply_depth([d(6), d(2, 101.0, 2), d(1, 101.25, 7)])
    assert book.bids == {101.0: 2} and book.asks == {101.25: 7}


def test_removing_the_best_recomputes_lazily() -> None:
    book = book_with({100.0: 5, 99.75: 3, 99.0: 1}, {100.25: 4, 101.0: 1})
    book.apply_depth([d(2, 100.0, 0), d(1, 100.25, 0)])
    assert (book.best_bid, book.best_ask) == (99.75, 101.0)
    book.apply_depth([d(2, 99.75, 0), d(2, 99.0, 0)])
    assert book.best_bid is None


def _sender_stream(seed: int, steps: int, levels: int, shuffle: bool):
    """A seeded random-walk book published per our contract; yields (batch, sender bids, asks)."""
    rng = random.Random(seed)
    mid = 4000
    bids = {mid - i: rng.randint(1, 40) for i in range(levels)}
    asks = {mid + 1 + i: rng.randint(1, 40) for i in range(levels)}
    px = lambda t: t * 0.25  # noqa: E731
    yield (
        [d(6)]
        + [d(2, px(p), v) for p, v in bids.items()]
        + [d(1, px(p), v) for p, v in asks.items()],
        bids,
        asks,
    )
    for _ in range(steps):
        mid += rng.choice((-2, -1, 0, 0, 0, 1, 2))
        spread = rng.choice((1, 1, 2))
        depth_b, depth_a = rng.randint(1, levels), rng.randint(1, levels)
        nb = {p: bids.get(p) or rng.randint(1, 40) for p in range(mid - depth_b + 1, mid + 1)}
        na = {
            p: asks.get(p) or rng.randint(1, 40)
            for p in range(mid + spread, mid + spread + depth_a)
        }
        for side in (nb, na):
            for p in rng.sample(sorted(side), min(2, len(side))):
                side[p] = rng.randint(1, 60)
        batch = []
        for typ, old, new in ((2, bids, nb), (1, asks, na)):
            batch += [d(typ, px(p), 0) for p in old.keys() - new.keys()]
            batch += [d(typ, px(p), v) for p, v in new.items() if old.get(p) != v]
        bb, ba = max(nb), min(na)
        if bb != max(bids):
            batch.append(d(9, px(bb), nb[bb]))
        batch.append(d(4, px(bb), nb[bb]))
        if ba != min(asks):
            batch.append(d(10, px(ba), na[ba]))
        batch.append(d(3, px(ba), na[ba]))
        if shuffle:
            rng.shuffle(batch)
        bids, asks = nb, na
        yield batch, bids, asks


@pytest.mark.parametrize("shuffle", [False, True])
def test_book_equals_the_senders_book_after_every_batch(shuffle: bool) -> None:
    book = OrderBook(CID, 0.25, max_levels=50)
    for batch, bids, asks in _sender_stream(3, 3000, 12, shuffle):
        book.apply_depth(batch)
        assert book.bids == {p * 0.25: v for p, v in bids.items()}
        assert book.asks == {p * 0.25: v for p, v in asks.items()}
        assert book.best_bid == max(bids) * 0.25 and book.best_ask == min(asks) * 0.25


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch", "error", "match"),
    [
        ([d(2, 99.0, 1), {"type": 2, "volume": 1}], ValueError, "item 1: 'price'"),
        ([d(2, math.nan, 1)], ValueError, "'price' must be a finite number"),
        ([d(1, math.inf, 1)], ValueError, "'price' must be a finite number"),
        ([d(2, 99.0, -1)], ValueError, "'volume' must be a number >= 0"),
        ([d(2, "99.0", 1)], ValueError, "'price'"),
        ([{**d(2, 99.0, 1), "type": True}], ValueError, "'type' must be an int DomType"),
        ([d(2, 99.0, 1), "oops"], TypeError, "item 1 must be a dict"),
        ([d(7, None)], ValueError, "'price'"),
        ("not a batch", TypeError, "list of dicts or one dict"),
    ],
)
def test_bad_depth_raises_and_changes_nothing(batch, error, match) -> None:
    book = book_with({100.0: 5}, {100.25: 4})
    fired: list[object] = []
    book.on_update.append(fired.append)
    before = state(book)
    with pytest.raises(error, match=match):
        book.apply_depth(batch)
    assert state(book) == before and fired == [] and book.depth_items == 3


@pytest.mark.parametrize(
    ("batch", "match"),
    [
        ([tr(100.0, 1, 0), tr(math.nan, 1, 0)], "item 1: 'price'"),
        ([tr(100.0, -2, 0)], "'volume' must be a number >= 0"),
        ([tr(100.0, 1, 2)], "'type' must be 0 \\(buy\\) or 1 \\(sell\\)"),
        ([{**tr(100.0, 1, 0), "timestamp": None}], "'timestamp'"),
    ],
)
def test_bad_trades_raise_and_record_nothing(batch, match) -> None:
    book = book_with({100.0: 5}, {100.25: 4})
    with pytest.raises(ValueError, match=match):
        book.apply_trades(batch)
    assert book.trade_count == 0 and book.last_trade is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"contract_id": "", "tick_size": 0.25}, "contract_id"),
        ({"contract_id": CID, "tick_size": 0}, "tick_size"),
        ({"contract_id": CID, "tick_size": 0.25, "max_levels": 0}, "max_levels"),
        ({"contract_id": CID, "tick_size": 0.25, "max_trades": 2.5}, "max_trades"),
        ({"contract_id": CID, "tick_size": 0.25, "iceberg_tolerance": 1.5}, "iceberg_tolerance"),
    ],
)
def test_bad_construction_is_rejected(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        OrderBook(**kwargs)


def test_bad_query_arguments_are_rejected() -> None:
    book = book_with({100.0: 5}, {100.25: 4})
    with pytest.raises(ValueError, match="levels"):
        book.get_orderbook_snapshot(levels=0)
    with pytest.raises(ValueError, match="bucket_ticks"):
        book.get_volume_profile(bucket_ticks=0)
    with pytest.raises(ValueError, match="seconds"):
        book.get_trade_flow(seconds=-1)
    with pytest.raises(ValueError, match="k must be"):
        book.get_liquidity_levels(k=0)
    with pytest.raises(TypeError, match="GatewayQuote"):
        book.apply_quote([1, 2])


# -- events ------------------------------------------------------------------------------------


def test_callbacks_fire_once_per_batch_and_failures_are_contained(caplog) -> None:
    book = OrderBook(CID, 0.25)
    updates: list[tuple] = []
    trades: list[int] = []

    def boom(_book: OrderBook) -> None:
        raise RuntimeError("callback bug")

    book.on_update.append(boom)
    book.on_update.append(lambda b: updates.append((b.best_bid, b.best_ask)))
    book.on_trade.append(lambda b, items: trades.append(len(items)))
    book.apply_depth([d(6), d(2, 100.0, 5), d(1, 100.25, 4), d(2, 99.75, 1)])
    book.apply_depth([])
    book.apply_trades([tr(100.25, 1, 0), tr(100.0, 2, 1)])
    assert updates == [(100.0, 100.25)] and trades == [2]
    assert "on_update callback failed" in caplog.text


def test_quotes_merge_partially_and_do_not_touch_the_book() -> None:
    book = book_with({100.0: 5}, {100.25: 4})
    book.apply_quote({"symbol": "F.US.MNQ", "lastPrice": 100.0, "bestBid": 100.0, "volume": 10})
    book.apply_quote({"bestBid": 99.0, "timestamp": TS})
    q = book.quote
    assert q["lastPrice"] == 100.0 and q["bestBid"] == 99.0 and q["volume"] == 10
    assert book.best_bid == 100.0


def test_repr_shows_only_the_top_of_book() -> None:
    book = book_with({100.0: 5}, {100.25: 4})
    assert repr(book) == f"OrderBook('{CID}', bid=100.0, ask=100.25)"


# -- bounded memory ----------------------------------------------------------------------------


def test_memory_stays_bounded_over_millions_of_updates() -> None:
    """A trending sender that never deletes far levels; trades hit the top all along."""
    book = OrderBook(CID, 0.25, max_levels=40, max_trades=1000)
    rng = random.Random(5)
    sizes = [rng.randint(1, 9) for _ in range(4096)]
    steps = [1 if rng.random() < 0.6 else -1 for _ in range(4096)]
    far = [0.25 * rng.randint(1, 30) for _ in range(4096)]
    mid = 40_000
    items = 0
    i = 0
    while items < 2_000_000:
        i = (i + 1) & 4095
        mid += steps[i]
        b, a = mid * 0.25, (mid + 1) * 0.25
        batch = [
            d(2, b, sizes[i]),
            d(1, a, sizes[i - 1]),
            d(2, b - far[i], sizes[i - 2]),
            d(1, a + far[i - 1], sizes[i - 3]),
            d(4, b, sizes[i - 4]),
            d(3, a, sizes[i - 5]),
        ]
        book.apply_depth(batch)
        book.apply_trades([tr(b, 1, 1), tr(a, 1, 0)])
        items += 6
        if len(book.bids) > 50 or len(book.asks) > 50:
            pytest.fail(f"book grew to {len(book.bids)}/{len(book.asks)} levels")
    assert len(book._ice_bids) <= 80 and len(book._ice_asks) <= 80
    assert book.trade_count == 1000 and len(book._tp) == 1000
    assert book.best_bid == mid * 0.25 and book.best_ask == (mid + 1) * 0.25
    assert book.get_orderbook_bids(levels=None).height <= 50


# -- snapshots and analytics -------------------------------------------------------------------


@pytest.fixture
def hand_book() -> OrderBook:
    return book_with({100.0: 5, 99.75: 3, 99.5: 10}, {100.25: 4, 100.5: 6})


def test_snapshot_has_frames_and_top_of_book(hand_book: OrderBook) -> None:
    snap = hand_book.get_orderbook_snapshot(levels=2)
    assert snap["bids"].to_dicts() == [
        {"price": 100.0, "size": 5, "cumulative_size": 5},
        {"price": 99.75, "size": 3, "cumulative_size": 8},
    ]
    assert snap["asks"].to_dicts() == [
        {"price": 100.25, "size": 4, "cumulative_size": 4},
        {"price": 100.5, "size": 6, "cumulative_size": 10},
    ]
    assert (snap["best_bid"], snap["best_ask"], snap["spread"], snap["mid"]) == (
        100.0,
        100.25,
        0.25,
        100.125,
    )
    assert snap["imbalance"] == pytest.approx((8 - 10) / 18)
    assert (snap["bid_levels"], snap["ask_levels"]) == (3, 2)
    assert snap["timestamp"] == datetime(2026, 10, 2, 14, 31, 5, 123456, tzinfo=UTC)
    assert hand_book.get_orderbook_bids(levels=None)["price"].to_list() == [100.0, 99.75, 99.5]
    assert hand_book.get_orderbook_asks(levels=1)["cumulative_size"].to_list() == [4]


def test_snapshot_of_an_empty_book() -> None:
    snap = OrderBook(CID, 0.25).get_orderbook_snapshot()
    assert snap["bids"].height == 0 and snap["bids"].columns == ["price", "size", "cumulative_size"]
    assert snap["imbalance"] is None and snap["mid"] is None and snap["timestamp"] is None


def test_spread_and_mid_are_rounded_to_the_tick() -> None:
    book = OrderBook("CON.F.US.CLE.Z26", 0.01)
    book.apply_depth([d(2, 65.42, 1), d(1, 65.43, 1)])
    assert book.spread == 0.01 and book.mid == 65.425


def test_cumulative_depth_and_imbalance(hand_book: OrderBook) -> None:
    depth = hand_book.get_cumulative_depth(levels=3)
    assert depth.columns == ["side", "level", "price", "size", "cumulative_size"]
    assert depth.filter(pl.col("side") == "bid")["cumulative_size"].to_list() == [5, 8, 18]
    assert depth.filter(pl.col("side") == "ask")["level"].to_list() == [1, 2]
    assert hand_book.get_imbalance(levels=1) == pytest.approx((5 - 4) / 9)
    assert hand_book.get_imbalance(levels=None) == pytest.approx((18 - 10) / 28)


def test_liquidity_levels(hand_book: OrderBook) -> None:
    # sizes 5, 3, 10, 4, 6 → median 5; k=2 keeps size >= 10
    rows = hand_book.get_liquidity_levels(k=2.0).to_dicts()
    assert rows == [{"side": "bid", "price": 99.5, "size": 10, "ratio": 2.0}]
    assert hand_book.get_liquidity_levels(k=1.2)["price"].to_list() == [99.5, 100.5]


def test_volume_profile_by_tick_and_by_bucket() -> None:
    book = OrderBook(CID, 0.25)
    book.apply_trades([tr(100.0, 2, 0), tr(100.0, 3, 1), tr(100.25, 5, 0), tr(99.75, 1, 1)])
    assert book.get_volume_profile().to_dicts() == [
        {"price": 99.75, "buy_volume": 0, "sell_volume": 1, "total_volume": 1, "delta": -1},
        {"price": 100.0, "buy_volume": 2, "sell_volume": 3, "total_volume": 5, "delta": -1},
        {"price": 100.25, "buy_volume": 5, "sell_volume": 0, "total_volume": 5, "delta": 5},
    ]
    by2 = book.get_volume_profile(bucket_ticks=2)  # ticks 399 → 398, 400 and 401 → 400
    assert by2.select("price", "buy_volume", "sell_volume").rows() == [(99.5, 0, 1), (100.0, 7, 3)]
    assert book.get_volume_profile(last_n=1)["price"].to_list() == [99.75]
    assert OrderBook(CID, 0.25).get_volume_profile().height == 0


def test_trade_flow_over_last_trades_and_seconds() -> None:
    book = OrderBook(CID, 0.25)
    book.apply_trades(
        [
            tr(100.0, 4, 1, "2026-10-02T14:31:00.0000000+00:00"),
            tr(100.0, 6, 0, "2026-10-02T14:31:05.5000000Z"),
            tr(100.25, 2, 1, "2026-10-02T14:31:09.0000000+00:00"),
            tr(100.25, 8, 0, "2026-10-02T14:31:10.0000000+00:00"),
        ]
    )
    assert book.get_trade_flow() == {
        "trades": 4,
        "buy_volume": 14,
        "sell_volume": 6,
        "imbalance": pytest.approx(8 / 20),
    }
    assert book.get_trade_flow(last_n=2) == {
        "trades": 2,
        "buy_volume": 8,
        "sell_volume": 2,
        "imbalance": pytest.approx(0.6),
    }
    assert book.get_trade_flow(seconds=5)["trades"] == 3  # 14:31:05.5 and later
    assert book.get_trade_flow(seconds=0.5)["buy_volume"] == 8
    assert OrderBook(CID, 0.25).get_trade_flow()["imbalance"] is None


def test_tape_ring_wraps_in_order() -> None:
    book = OrderBook(CID, 0.25, max_trades=3)
    for i in range(5):
        book.apply_trades(
            tr(100.0 + i * 0.25, i + 1, i % 2, f"2026-10-02T14:31:0{i}.0000000+00:00")
        )
    assert book.trade_count == 3
    recent = book.get_recent_trades(last_n=None)
    assert recent["price"].to_list() == [100.5, 100.75, 101.0]
    assert recent["volume"].to_list() == [3, 4, 5] and recent["side"].to_list() == [0, 1, 0]
    assert recent["timestamp"][0] == datetime(2026, 10, 2, 14, 31, 2, tzinfo=UTC)
    last = book.last_trade
    assert last is not None and (last.price, last.size, last.side) == (101.0, 5, 0)
    assert last.ts_ns == int(datetime(2026, 10, 2, 14, 31, 4, tzinfo=UTC).timestamp()) * 10**9
    assert book.get_recent_trades(last_n=2)["price"].to_list() == [100.75, 101.0]


def test_iceberg_refills_are_detected() -> None:
    book = book_with({100.0: 10, 99.75: 5}, {100.25: 8})
    for i in range(3):  # hit for 8, shown 2, refilled to 10: three times
        book.apply_trades([tr(100.0, 8, 1)])
        book.apply_depth([d(2, 100.0, 2)])
        book.apply_depth([d(4, 100.0, 10, ts=f"2026-10-02T14:32:0{i}.0000000+00:00")])
    # the ask is hit once and refilled once; depth update before the trade this time
    book.apply_depth([d(1, 100.25, 1)])
    book.apply_trades([tr(100.25, 7, 0)])
    book.apply_depth([d(1, 100.25, 8)])
    # a bid that grows without being traded against is no refill
    book.apply_depth([d(2, 99.75, 2), d(2, 99.75, 5)])
    found = book.detect_iceberg_orders(min_refills=2)
    assert found.to_dicts() == [
        {
            "side": "bid",
            "price": 100.0,
            "refills": 3,
            "hidden_volume": 24,
            "clip_size": 10,
            "traded_volume": 24,
            "visible_size": 10,
            "last_refill": "2026-10-02T14:32:02.0000000+00:00",
        }
    ]
    once = book.detect_iceberg_orders(min_refills=1)
    assert once.select("side", "price", "refills", "hidden_volume").rows() == [
        ("bid", 100.0, 3, 24),
        ("ask", 100.25, 1, 7),
    ]


def test_a_refill_far_from_the_clip_size_is_no_iceberg() -> None:
    book = book_with({100.0: 10}, {100.25: 8})
    book.apply_trades([tr(100.0, 10, 1)])
    book.apply_depth([d(2, 100.0, 0)])
    book.apply_depth([d(2, 100.0, 50)])  # a new big order, not the clip coming back
    assert book.detect_iceberg_orders(min_refills=1).height == 0
    book.reset()
    assert book.detect_iceberg_orders(min_refills=1).height == 0


# -- against the simulator's own book over a real market-hub socket ------------------------------

try:
    from projectx_lab.sim.server import Simulator
except ImportError as exc:  # the simulator is written in parallel; its exchange may not exist yet
    Simulator = None  # type: ignore[assignment,misc]
    SIM_MISSING = f"projectx_lab.sim is not importable yet ({exc})"
else:
    SIM_MISSING = ""

RS = "\x1e"


class _MarketHub:
    """A bare SignalR JSON client on one WebSocket: handshake, invoke, depth batches."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.pending: list[dict] = []
        self.buffer = ""
        self.next_id = 0

    @classmethod
    async def connect(cls, url: str) -> _MarketHub:
        hub = cls(await websockets.connect(url, max_size=None))
        await hub.ws.send('{"protocol":"json","version":1}' + RS)
        assert await hub._message() == {}, "handshake refused"
        return hub

    async def _message(self) -> dict:
        while not self.pending:
            self.buffer += await self.ws.recv()
            *records, self.buffer = self.buffer.split(RS)
            self.pending.extend(orjson.loads(r) for r in records)
        return self.pending.pop(0)

    async def invoke(self, target: str, *args: object) -> None:
        self.next_id += 1
        msg = {"type": 1, "invocationId": str(self.next_id), "target": target, "arguments": args}
        await self.ws.send(orjson.dumps(msg).decode() + RS)

    async def depth(self, contract_id: str) -> list | dict:
        """The next GatewayDepth data for `contract_id` (completions and pings skipped)."""
        while True:
            msg = await self._message()
            if msg.get("type") == 3 and msg.get("error"):
                raise AssertionError(f"hub invocation failed: {msg['error']}")
            if msg.get("type") == 1 and msg.get("target") == "GatewayDepth":
                cid, data = msg["arguments"]
                if cid == contract_id:
                    return data

    async def close(self) -> None:
        await self.ws.close()


def _ticks(book: OrderBook) -> tuple[list, list]:
    """Our book as the simulator keeps its own: (price_ticks, size) best first per side."""
    t = book.tick_size
    bids = sorted(((round(p / t), s) for p, s in book.bids.items()), reverse=True)
    asks = sorted((round(p / t), s) for p, s in book.asks.items())
    return bids, asks


async def _sim_book(sim, contract_id: str) -> tuple[list, list]:
    got = sim.exchange.book(contract_id)
    if inspect.isawaitable(got):
        got = await got
    return [tuple(x) for x in got.bids], [tuple(x) for x in got.asks]


async def _converge(hub: _MarketHub, book: OrderBook, sim, cid: str) -> None:
    """Apply depth batches until our book equals the (frozen) simulator's book, within 5 s."""

    async def until_equal() -> None:
        while _ticks(book) != await _sim_book(sim, cid):
            book.apply_depth(await hub.depth(cid))

    try:
        async with asyncio.timeout(5):
            await until_equal()
    except TimeoutError:
        pytest.fail(f"book differs: ours {_ticks(book)} vs sim {await _sim_book(sim, cid)}")


@pytest.mark.skipif(Simulator is None, reason=SIM_MISSING)
async def test_book_equals_the_simulators_book_over_the_market_hub() -> None:
    async with Simulator(seed=7, speed=60) as sim:
        async with httpx.AsyncClient(base_url=sim.api_url, timeout=10) as http:
            login = {"userName": sim.username, "apiKey": sim.api_key}
            token = (await http.post("/api/Auth/loginKey", json=login)).json()["token"]
            reply = await http.post(
                "/api/Contract/available",
                json={"live": False},
                headers={"Authorization": f"Bearer {token}"},
            )
        mnq = next(c for c in reply.json()["contracts"] if c["symbolId"] == "F.US.MNQ")
        cid = mnq["id"]
        book = OrderBook(cid, mnq["tickSize"])
        url = sim.market_hub_url.replace("http", "ws", 1) + "?access_token=" + token

        hub = await _MarketHub.connect(url)
        try:
            await hub.invoke("SubscribeContractMarketDepth", cid)
            snapshot = await hub.depth(cid)
            assert snapshot[0]["type"] == 6, "the first depth batch must start with Reset"
            book.apply_depth(snapshot)
            for _ in range(60):  # a stream of diffs at 60× speed
                book.apply_depth(await hub.depth(cid))
            assert book.best_bid is not None and book.best_ask is not None
            sim.clock.speed = 1e-9  # freeze the market, then the book must match exactly
            await _converge(hub, book, sim, cid)
        finally:
            await hub.close()

        # reconnect: the suite resets the book, the new subscription's snapshot rebuilds it
        sim.clock.speed = 60
        book.reset()
        hub = await _MarketHub.connect(url)
        try:
            await hub.invoke("SubscribeContractMarketDepth", cid)
            for _ in range(30):
                book.apply_depth(await hub.depth(cid))
            sim.clock.speed = 1e-9
            await _converge(hub, book, sim, cid)
        finally:
            await hub.close()
        bids, asks = _ticks(book)
        assert bids[0][0] < asks[0][0], "crossed book"
