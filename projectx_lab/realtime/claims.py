"""Who holds which hub subscriptions: the hub carries the union, each holder releases its own.

Managers sharing one connection (a data manager and an order book on the same contract, the
order and position managers on one account) claim the kinds they need under their own owner
key. A kind is unsubscribed on the hub only when its last holder lets go, so stopping one
manager never silences another.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

DIRECT = "direct"  # the owner of subscriptions made straight on the real-time client


class Claims(Generic[K]):
    """Kinds claimed per key (account id or contract id) and per owner."""

    def __init__(self) -> None:
        self._held: dict[K, dict[Hashable, frozenset[str]]] = {}

    def __bool__(self) -> bool:
        return bool(self._held)

    def add(self, key: K, owner: Hashable, kinds: frozenset[str]) -> Callable[[], None]:
        """Claim `kinds` for `owner`; returns an undo restoring the owner's previous claim."""
        before = self._held.get(key, {}).get(owner, frozenset())
        self._set(key, owner, before | kinds)
        return lambda: self._set(key, owner, before)

    def remove(self, key: K, owner: Hashable, kinds: frozenset[str]) -> None:
        """Release `kinds` held by `owner` (kinds it does not hold are ignored)."""
        self._set(key, owner, self._held.get(key, {}).get(owner, frozenset()) - kinds)

    def kinds(self, key: K) -> frozenset[str]:
        """Every kind some owner holds for `key`."""
        return frozenset().union(*self._held.get(key, {}).values())

    def union(self) -> dict[K, frozenset[str]]:
        """Key → kinds the hub must carry."""
        return {key: self.kinds(key) for key in self._held}

    def _set(self, key: K, owner: Hashable, kinds: frozenset[str]) -> None:
        owners = self._held.setdefault(key, {})
        if kinds:
            owners[owner] = kinds
        else:
            owners.pop(owner, None)
            if not owners:
                del self._held[key]
