"""Depth book: contiguous levels around the best bid/ask, sizes hashed from (seed, grid, price).

Sizes depend only on the resample grid step and the level price, so the book is constant between
grid points except for the best prices, which the market model takes from the last trade.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@dataclass(frozen=True, slots=True)
class Book:
    """Depth in force at one instant: (price_ticks, size) levels, best first on each side."""

    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]

    @property
    def best_bid(self) -> int | None:
        return self.bids[0][0] if self.bids else None

    @property
    def best_ask(self) -> int | None:
        return self.asks[0][0] if self.asks else None


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser over a uint64 array: a cheap, well-spread, stateless hash."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def level_sizes(key: int, grid: int, prices: np.ndarray, side: int) -> np.ndarray:
    """Resting size per level: a floor plus an exponential part, both growing with depth."""
    depth = np.arange(len(prices))
    salt = np.uint64((key * 1_000_003 + grid * 2 + side) & 0xFFFF_FFFF_FFFF_FFFF)
    bits = mix64(mix64(prices.astype(np.uint64) ^ salt) + salt)
    uniform = ((bits >> np.uint64(11)).astype(np.float64) + 1.0) / float(1 << 53)  # (0, 1]
    scale = 8.0 + 3.0 * depth  # liquid products rarely show a 1-lot best level
    return (1 + np.floor(scale * (0.25 - np.log(uniform)))).astype(np.int64)


def build_book(key: int, grid: int, bid: int, ask: int, levels: int) -> Book:
    """`levels` contiguous ticks each side from the given best prices, sizes fixed per grid step."""
    bid_prices = bid - np.arange(levels, dtype=np.int64)
    bid_prices = bid_prices[bid_prices >= 1]
    ask_prices = ask + np.arange(levels, dtype=np.int64)
    bid_sizes = level_sizes(key, grid, bid_prices, 0)
    ask_sizes = level_sizes(key, grid, ask_prices, 1)
    return Book(
        bids=list(zip(bid_prices.tolist(), bid_sizes.tolist(), strict=True)),
        asks=list(zip(ask_prices.tolist(), ask_sizes.tolist(), strict=True)),
    )
