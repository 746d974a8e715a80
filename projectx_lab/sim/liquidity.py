"""Liquidity our own orders took from the model's book.

The model's book is derived from the tape, so without this a market order would find the full
book again an instant after another one emptied it, and splitting an order would fill better
than sending it whole. What was taken stays taken until the market's book changes (a new
sample or a new trade).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .book import Book

Levels = Sequence[tuple[int, int]]


@dataclass(slots=True)
class _Taken:
    bids: list[tuple[int, int]]  # the market's book the takes came out of
    asks: list[tuple[int, int]]
    from_bids: dict[int, int] = field(default_factory=dict)  # price → size taken
    from_asks: dict[int, int] = field(default_factory=dict)

    def same_book(self, bids: Levels, asks: Levels) -> bool:
        return self.bids == list(bids) and self.asks == list(asks)


class TakenLiquidity:
    """Per contract: the book our fills came out of and what they took from each level."""

    def __init__(self) -> None:
        self._by_contract: dict[str, _Taken] = {}

    def view(self, contract_id: str, bids: Levels, asks: Levels) -> Book | None:
        """The book less what was taken from it, or None when nothing was (use it as is).
        Emptied levels stay with size 0, so an order walking past them still prices there."""
        taken = self._by_contract.get(contract_id)
        if taken is None or not taken.same_book(bids, asks):
            return None
        return Book(_less(bids, taken.from_bids), _less(asks, taken.from_asks))

    def take(self, contract_id: str, bids: Levels, asks: Levels, buy: bool, fills: Levels) -> None:
        """Record `fills` taken from the asks (a buy) or the bids of the book given."""
        taken = self._by_contract.get(contract_id)
        if taken is None or not taken.same_book(bids, asks):
            taken = self._by_contract[contract_id] = _Taken(list(bids), list(asks))
        side = taken.from_asks if buy else taken.from_bids
        for price, qty in fills:
            side[price] = side.get(price, 0) + qty


def _less(levels: Levels, taken: dict[int, int]) -> list[tuple[int, int]]:
    return [(price, max(size - taken.get(price, 0), 0)) for price, size in levels]
