"""Field checks of hub event items before any manager sees them (gotchas 1–3, 27).

An item that lacks a field the managers rely on, or carries one of the wrong JSON type, is
dropped (the caller logs the first one per event and counts them all); unknown extra fields
pass untouched. Lists are returned as they came unless an item must go, so the common case
allocates nothing.
"""

from __future__ import annotations

from typing import Any

NUM, INT, STR = 0, 1, 2
Schema = tuple[tuple[str, int, bool], ...]  # (field, kind, required)

_PRICE_FIELDS = ("lastPrice", "bestBid", "bestAsk", "open", "high", "low", "volume", "change")
SCHEMAS: dict[str, Schema] = {
    "GatewayTrade": (
        ("price", NUM, True),
        ("volume", NUM, True),
        ("timestamp", STR, True),
        ("type", INT, True),
    ),
    "GatewayQuote": (
        *((name, NUM, False) for name in (*_PRICE_FIELDS, "changePercent")),
        ("lastUpdated", STR, False),
        ("timestamp", STR, False),
    ),
    "GatewayUserOrder": (
        ("id", INT, True),
        ("accountId", INT, True),
        ("contractId", STR, True),
        ("status", INT, True),
        ("type", INT, False),
        ("side", INT, False),
        ("size", INT, False),
        ("fillVolume", INT, False),
        ("limitPrice", NUM, False),
        ("stopPrice", NUM, False),
        ("filledPrice", NUM, False),
        ("trailPrice", NUM, False),
        ("creationTimestamp", STR, False),
        ("updateTimestamp", STR, False),
        ("customTag", STR, False),
        ("parentOrderId", INT, False),
        ("linkedOrderId", INT, False),
    ),
    "GatewayUserPosition": (
        ("id", INT, True),
        ("accountId", INT, True),
        ("contractId", STR, True),
        ("type", INT, True),
        ("size", INT, True),
        ("averagePrice", NUM, False),
        ("creationTimestamp", STR, False),
    ),
    "GatewayUserTrade": (
        ("id", INT, True),
        ("accountId", INT, True),
        ("contractId", STR, True),
        ("price", NUM, False),
        ("size", INT, False),
        ("profitAndLoss", NUM, False),
        ("fees", NUM, False),
        ("commissions", NUM, False),
        ("creationTimestamp", STR, False),
    ),
    "GatewayUserAccount": (("id", INT, True), ("balance", NUM, False), ("name", STR, False)),
}
_DEPTH_BOOK = frozenset((1, 2, 3, 4, 9, 10))  # price and volume required
_DEPTH_PRINT = frozenset((5, 7, 8, 11))  # price required, volume optional


def _fits(value: Any, kind: int) -> bool:
    cls = value.__class__
    if kind == STR:
        return cls is str
    if kind == INT:
        return cls is int
    return (cls is float or cls is int) and value - value == 0  # finite, not bool


def item_ok(schema: Schema, item: Any) -> bool:
    """True when `item` is a dict whose fields in `schema` are present (if required) and of
    the right JSON type (null allowed for optional ones)."""
    if item.__class__ is not dict:
        return False
    get = item.get
    for name, kind, required in schema:
        value = get(name)
        if value is None:
            if required:
                return False
        elif not _fits(value, kind):
            return False
    return True


def depth_item_ok(item: Any) -> bool:
    """A `GatewayDepth` item the order book can apply (unknown DomTypes pass: the book
    ignores them)."""
    if item.__class__ is not dict:
        return False
    kind = item.get("type")
    if kind.__class__ is not int:
        return False
    if kind in _DEPTH_BOOK:
        volume = item.get("volume")
        return _fits(item.get("price"), NUM) and _fits(volume, NUM) and volume >= 0
    if kind in _DEPTH_PRINT:
        volume = item.get("volume")
        return _fits(item.get("price"), NUM) and (volume is None or _fits(volume, NUM))
    return True


def clean_items(target: str, items: list[Any]) -> tuple[list[Any], Any]:
    """`(kept, first_bad)`: `items` itself when all pass (first_bad None), else the passing
    ones and the first rejected item."""
    schema = SCHEMAS.get(target)
    first_bad = -1
    for index in range(len(items)):
        item = items[index]
        if not (depth_item_ok(item) if schema is None else item_ok(schema, item)):
            first_bad = index
            break
    if first_bad < 0:
        return items, None
    kept = items[:first_bad]
    for rest in items[first_bad + 1 :]:
        if depth_item_ok(rest) if schema is None else item_ok(schema, rest):
            kept.append(rest)
    return kept, items[first_bad]
