"""`Broker`: the simulator's matching engine over paper accounts (no I/O).

Validates and books orders with the gateway's per-endpoint codes and messages, fills them against
the depth book and the tape, runs Auto-OCO brackets, and queues user-hub events that it hands to
`emit` only after each operation's state change is complete.

Choices where the gateway is silent (gateway-api.md §11 "choice"):

* StopLimit (3) is placeable with `stopPrice` and `limitPrice`; when the tape trades at/through
  the stop it becomes a limit: it takes the book up to `limitPrice`, the rest rests.
* JoinBid (6) / JoinAsk (7) are limits at the current best bid / ask whatever `side` says.
* Stops and trailing stops fill like a market order against the book in force at the triggering
  trade; resting limits fill their whole remaining size at the limit price when a trade goes
  through (`fill_on_touch`: at) the limit.
* A stop placed at/through the last trade is rejected (`Invalid stop price`), on place as on modify.
* A market order walks the book; what the book cannot absorb fills at its last level (at the last
  trade when that side is empty); with no price at all it is rejected (`Invalid symbol`).
* Cancelling a terminal order is code 3 (Rejected); a suspended bracket child cannot be modified
  (code 3) but can be cancelled. Cancelling an entry that has not (fully) filled cancels its
  still-suspended children; resizing it resizes them.
* Children activate when the entry is completely filled, priced from the entry's average fill
  rounded to the nearest tick. A fill of either child cancels the other.
* Realized P&L is FIFO; a fill through zero books a closing and an opening half-trade, and the
  new position gets a new id. Fees and commissions are charged per contract per side.
* `customTag` stays taken for the life of the account (rejected orders do not take it);
  `linkedOrderId` on place is ignored.
* Order events use action 1, or 2 once the order is terminal; trades 0; positions 1 (2 when flat);
  accounts 1. Per fill the order event comes first, then trade, position, account.
* `Order/v2/query`: statuses default to every status but Suspended (8); `pageSize` default 100;
  `pageOffset` counts rows; sort defaults to creation time, newest first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from math import isfinite
from operator import attrgetter
from typing import Any, Protocol

import numpy as np

from .accounts import FIRST_ACCOUNT_ID, Event, PaperAccount
from .clock import VirtualClock
from .config import SimConfig
from .liquidity import TakenLiquidity
from .orders import (
    BUY,
    LIMIT_LIKE,
    SELL,
    TERMINAL,
    ContractInfo,
    ContractSpecView,
    IdSource,
    Order,
    OrderStatus,
    OrderType,
)
from .wire import parse_iso

MAX_TRAIL_TICKS = 1000
POSITION_BRACKETS_MESSAGE = (
    "Brackets cannot be used with Position Brackets. You must enable Auto OCO Brackets."
)
_TYPE_NAMES = {
    0: "Unknown",
    1: "Limit",
    2: "Market",
    3: "StopLimit",
    4: "Stop",
    5: "TrailingStop",
    6: "JoinBid",
    7: "JoinAsk",
}
_STATUS_NAMES = {2: "Filled", 3: "Cancelled", 4: "Expired", 5: "Rejected"}
_PLACEABLE = frozenset(range(1, 8))
_V2_DEFAULT_STATUSES = frozenset(range(0, 8))
_V2_DEFAULT_PAGE = 100
_WIRE_NS = 100  # wire timestamps carry 7 fractional digits; record times at that resolution

Emit = Callable[[int, str, int, dict[str, Any]], None]
Fills = list[tuple[int, int]]  # (price ticks, quantity)


class BookView(Protocol):
    """Depth book at one instant: `(price_ticks, size)` levels, best first."""

    @property
    def bids(self) -> Sequence[tuple[int, int]]: ...
    @property
    def asks(self) -> Sequence[tuple[int, int]]: ...


class TradesView(Protocol):
    """A batch of tape trades in time order (numpy int64 arrays of equal length); `side` is
    the aggressor (0 buy: the ask is at the price after it, 1 sell), None when unknown."""

    @property
    def ts_ns(self) -> np.ndarray: ...
    @property
    def price(self) -> np.ndarray: ...
    @property
    def side(self) -> np.ndarray | None: ...


class MarketsView(Protocol):
    """What the broker needs from the market side (the `Exchange` provides it)."""

    def spec(self, contract_id: str) -> ContractSpecView | None:
        """Contract spec by id (expired contracts included), None when unknown."""
        ...

    def book(self, contract_id: str, ts_ns: int) -> BookView:
        """Depth book in force at `ts_ns`."""
        ...

    def last_trade(self, contract_id: str, ts_ns: int) -> tuple[int, int] | None:
        """`(ts_ns, price_ticks)` of the last trade at or before `ts_ns`, None if none."""
        ...


class _Reject(Exception):
    """Validation failure carrying the endpoint's error code and message."""

    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class _Bracket:
    type: int
    ticks: int


@dataclass(slots=True)
class _PlacePlan:
    account: PaperAccount
    info: ContractInfo
    now: int
    type: int
    side: int
    size: int
    tag: str | None
    limit: int | None = None
    stop: int | None = None
    trail: int | None = None
    extreme: int | None = None
    sl: _Bracket | None = None
    tp: _Bracket | None = None
    fills: Fills | None = None
    rejection: str | None = None


def _int(value: Any) -> int | None:
    """`value` if it is a real int (bools excluded), else None."""
    return value if type(value) is int else None


def _take(
    levels: Sequence[tuple[int, int]], qty: int, buy: bool, limit: int | None
) -> tuple[Fills, int, int | None]:
    """Walk book levels best first up to `limit`; returns fills, unfilled qty, last level seen."""
    fills: Fills = []
    left = qty
    last = None
    for price, avail in levels:
        if limit is not None and (price > limit if buy else price < limit):
            break
        last = price
        if avail <= 0:
            continue
        take = avail if avail < left else left
        fills.append((price, take))
        left -= take
        if not left:
            break
    return fills, left, last


def _market_fills(
    levels: Sequence[tuple[int, int]], qty: int, buy: bool, fallback: int | None
) -> Fills | None:
    """Market-order fills: walk the book, put what it cannot absorb at the last level
    (or `fallback` when the side is empty); None when there is no price at all."""
    fills, left, last = _take(levels, qty, buy, None)
    if left:
        price = last if last is not None else fallback
        if price is None:
            return None
        if fills and fills[-1][0] == price:
            fills[-1] = (price, fills[-1][1] + left)
        else:
            fills.append((price, left))
    return fills


class Broker:
    """Paper broker: orders, brackets, fills, positions and balances of the configured accounts."""

    def __init__(
        self, config: SimConfig, markets: MarketsView, clock: VirtualClock, emit: Emit
    ) -> None:
        self._markets = markets
        self._liquidity = TakenLiquidity()
        self._clock = clock
        self._emit = emit
        self._touch = config.fill_on_touch
        self._min_sl = config.bracket_min_ticks
        self._ids = IdSource()
        self._accounts: dict[int, PaperAccount] = {}
        for i, acfg in enumerate(config.accounts):
            self._accounts[FIRST_ACCOUNT_ID + i] = PaperAccount(FIRST_ACCOUNT_ID + i, acfg)
        self._orders: dict[int, Order] = {}
        self._by_account: dict[int, list[Order]] = {a: [] for a in self._accounts}
        self._tags: dict[int, set[str]] = {a: set() for a in self._accounts}
        self._working: dict[str, list[Order]] = {}
        self._infos: dict[str, ContractInfo] = {}
        self._out: list[Event] = []
        self._halted: set[str | None] = set()  # contract ids out of session; None = all

    def __repr__(self) -> str:
        return f"Broker(accounts={len(self._accounts)}, orders={len(self._orders)})"

    # ------------------------------------------------------------------ lookups

    def _account(self, account_id: Any) -> PaperAccount | None:
        key = _int(account_id)
        return None if key is None else self._accounts.get(key)

    def _contract(self, contract_id: Any) -> tuple[ContractSpecView, ContractInfo] | None:
        if not isinstance(contract_id, str):
            return None
        spec = self._markets.spec(contract_id)
        if spec is None:
            return None
        info = self._infos.get(contract_id)
        if info is None:
            info = self._infos[contract_id] = ContractInfo(spec)
        return spec, info

    def _order_of(self, account: PaperAccount, order_id: Any) -> Order | None:
        key = _int(order_id)
        order = None if key is None else self._orders.get(key)
        return order if order is not None and order.account_id == account.id else None

    def _now(self) -> int:
        """Simulated now at wire resolution, so timestamps read back filter exactly."""
        return self._clock.now_ns() // _WIRE_NS * _WIRE_NS

    def _last(self, contract_id: str, now: int) -> int | None:
        last = self._markets.last_trade(contract_id, now)
        return None if last is None else int(last[1])

    @staticmethod
    def _ticks(info: ContractInfo, value: Any, what: str, code: int) -> int:
        """Tick index of a request price, or a `_Reject` with the gateway's message."""
        if (
            value is None
            or isinstance(value, bool)
            or not isinstance(value, int | float | Decimal)
            or (isinstance(value, float) and not isfinite(value))
        ):
            raise _Reject(code, f"Invalid {what} price")
        ticks = info.spec.to_ticks(value)
        if ticks is None:
            raise _Reject(code, f"Invalid {what} price. Price is not aligned to tick size.")
        return ticks

    @staticmethod
    def _check_stop_side(side: int, stop: int, last: int | None, code: int) -> None:
        if last is not None and (stop <= last if side == BUY else stop >= last):
            raise _Reject(code, "Invalid stop price")

    # ------------------------------------------------------------------ event queue

    def _queue_order(self, order: Order) -> None:
        action = 2 if order.status in TERMINAL else 1
        self._out.append((order.account_id, "GatewayUserOrder", action, order.wire(hub=True)))

    def _flush(self) -> None:
        out = self._out
        if not out:
            return
        self._out = []
        emit = self._emit
        for account_id, target, action, data in out:
            emit(account_id, target, action, data)

    # ------------------------------------------------------------------ working set

    def _work(self, order: Order) -> None:
        self._working.setdefault(order.contract_id, []).append(order)

    def _unwork(self, order: Order) -> None:
        lst = self._working.get(order.contract_id)
        if lst is not None and order in lst:
            lst.remove(order)
            if not lst:
                del self._working[order.contract_id]

    def working_contracts(self) -> dict[str, int]:
        """Contracts with at least one working (tape-driven) order → the earliest time one of
        them started working (the tape from there on concerns them)."""
        return {cid: min(o.active_ns for o in orders) for cid, orders in self._working.items()}

    # ------------------------------------------------------------------ accounts

    def accounts(self, only_active: bool = False) -> list[dict[str, Any]]:
        """TradingAccountModel dicts, optionally only active accounts."""
        return [a.wire() for a in self._accounts.values() if a.active or not only_active]

    # ------------------------------------------------------------------ trading halts

    def halt(self, contract_id: str | None, halted: bool) -> None:
        """Take `contract_id` (None = every contract) out of session, or back in: new orders
        answer OutsideTradingHours, closes are rejected and resting orders do not fill."""
        if halted:
            self._halted.add(contract_id)
        elif contract_id is None:
            self._halted.clear()
        else:
            self._halted.discard(contract_id)

    def _is_halted(self, contract_id: str) -> bool:
        halted = self._halted
        return bool(halted) and (None in halted or contract_id in halted)

    # ------------------------------------------------------------------ place

    def place(self, body: dict[str, Any]) -> tuple[int, str | None, int | None]:
        """`Order/place`: (PlaceOrderErrorCode, message, orderId)."""
        try:
            plan = self._plan_place(body)
        except _Reject as exc:
            return exc.code, exc.message, None
        try:
            return self._commit_place(plan)
        finally:
            self._flush()

    def _plan_place(self, body: Any) -> _PlacePlan:
        """Validate a place request without touching state; fetch the market data it needs."""
        if not isinstance(body, dict):
            raise _Reject(2, "Invalid order request: the body must be an object.")
        account = self._account(body.get("accountId"))
        if account is None:
            raise _Reject(1)
        if not account.can_trade:
            raise _Reject(10)
        found = self._contract(body.get("contractId"))
        if found is None:
            raise _Reject(8)
        spec, info = found
        if not spec.active:
            raise _Reject(9)
        if self._is_halted(info.contract_id):
            raise _Reject(5)
        otype = _int(body.get("type"))
        if otype not in _PLACEABLE:
            raise _Reject(2, f"Invalid order type ({body.get('type')!r}).")
        side = _int(body.get("side"))
        if side not in (BUY, SELL):
            raise _Reject(
                2, f"Invalid order side ({body.get('side')!r}). Side must be 0 (buy) or 1 (sell)."
            )
        size = _int(body.get("size"))
        if size is None or size <= 0:
            raise _Reject(
                2, f"Invalid order size ({body.get('size')!r}). Size must be greater than zero."
            )
        tag = body.get("customTag")
        if tag is not None and not isinstance(tag, str):
            raise _Reject(2, "Invalid custom tag: it must be a string.")
        tag = tag or None
        tags = self._tags[account.id]
        if tag is not None and tag in tags:
            raise _Reject(2, f"Invalid custom tag ({tag}). It must be unique within the account.")

        cid = info.contract_id
        now = self._now()
        plan = _PlacePlan(account, info, now, otype, side, size, tag)
        book = None
        if otype in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            plan.limit = self._ticks(info, body.get("limitPrice"), "limit", 2)
        if otype in (OrderType.STOP, OrderType.STOP_LIMIT):
            plan.stop = self._ticks(info, body.get("stopPrice"), "stop", 2)
            self._check_stop_side(side, plan.stop, self._last(cid, now), 2)
        elif otype == OrderType.TRAILING_STOP:
            level = body.get("trailPrice")
            if level is None:
                raise _Reject(2, "Trail Distance not set.")
            level = self._ticks(info, level, "trail", 2)
            last = self._last(cid, now)
            if last is None:
                raise _Reject(2, "Cannot trail without a last price")
            distance = abs(last - level)
            if distance > MAX_TRAIL_TICKS:
                raise _Reject(2, f"Trail Distance exceeds maximum ({MAX_TRAIL_TICKS})")
            plan.trail, plan.extreme = distance, last
            plan.stop = last + distance if side == BUY else last - distance
        elif otype in (OrderType.JOIN_BID, OrderType.JOIN_ASK):
            book = self._book(cid, now)
            levels = book.bids if otype == OrderType.JOIN_BID else book.asks
            if not levels:
                which = "bid" if otype == OrderType.JOIN_BID else "ask"
                raise _Reject(2, f"Cannot join the {which}: the book has no {which}s.")
            plan.limit = int(levels[0][0])

        sl_raw, tp_raw = body.get("stopLossBracket"), body.get("takeProfitBracket")
        if sl_raw is not None or tp_raw is not None:
            if account.bracket_mode != "auto_oco":
                plan.rejection = POSITION_BRACKETS_MESSAGE
                return plan
            self._plan_brackets(plan, sl_raw, tp_raw, tags)

        if otype == OrderType.MARKET:
            book = self._book(cid, now)
            levels = book.asks if side == BUY else book.bids
            fallback = None if levels else self._last(cid, now)
            plan.fills = _market_fills(levels, size, side == BUY, fallback)
            if plan.fills is None:
                raise _Reject(2, "Invalid symbol")
        elif otype in LIMIT_LIKE:
            book = book or self._book(cid, now)
            levels = book.asks if side == BUY else book.bids
            plan.fills = _take(levels, size, side == BUY, plan.limit)[0]
        return plan

    def _plan_brackets(self, plan: _PlacePlan, sl_raw: Any, tp_raw: Any, tags: set[str]) -> None:
        """Bracket rules of gateway-api §4.3: leg types, signed ticks, minimum stop distance."""
        sl = self._bracket(sl_raw, "stop loss")
        tp = self._bracket(tp_raw, "take profit")
        if sl is not None and sl.type not in (OrderType.STOP, OrderType.TRAILING_STOP):
            raise _Reject(2, f"Invalid stop loss type ({_TYPE_NAMES.get(sl.type, sl.type)})")
        if tp is not None and tp.type != OrderType.LIMIT:
            raise _Reject(2, f"Invalid take profit type ({_TYPE_NAMES.get(tp.type, tp.type)})")
        longing = plan.side == BUY
        minimum = self._min_sl
        if sl is not None:
            head = f"Invalid stop loss ticks ({sl.ticks})."
            if longing and sl.ticks >= 0:
                raise _Reject(2, f"{head} Ticks should be less than zero when longing.")
            if abs(sl.ticks) < minimum or (not longing and sl.ticks < 0):
                raise _Reject(2, f"{head} Stop loss tick value should be at least {minimum} ticks.")
        if tp is not None:
            head = f"Invalid take profit ticks ({tp.ticks})."
            if longing and tp.ticks <= 0:
                raise _Reject(2, f"{head} Ticks should be greater than zero when longing.")
            if not longing and tp.ticks >= 0:
                raise _Reject(2, f"{head} Ticks should be less than zero when going short.")
        if plan.tag is not None:
            for suffix, leg in (("-SL", sl), ("-TP", tp)):
                if leg is not None and plan.tag + suffix in tags:
                    raise _Reject(
                        2,
                        f"Invalid custom tag ({plan.tag + suffix}). "
                        "It must be unique within the account.",
                    )
        plan.sl, plan.tp = sl, tp

    @staticmethod
    def _bracket(raw: Any, what: str) -> _Bracket | None:
        if raw is None:
            return None
        ticks = _int(raw.get("ticks")) if isinstance(raw, dict) else None
        kind = _int(raw.get("type")) if isinstance(raw, dict) else None
        if ticks is None or kind is None:
            raise _Reject(2, f"Invalid {what} bracket: it needs integer `ticks` and `type`.")
        return _Bracket(kind, ticks)

    def _commit_place(self, plan: _PlacePlan) -> tuple[int, str | None, int | None]:
        account, info, now = plan.account, plan.info, plan.now
        if plan.rejection is not None:
            order = Order(
                self._ids.orders(1), account.id, info, now, plan.type, plan.side, plan.size,
                OrderStatus.REJECTED, plan.tag, plan.limit, plan.stop, now,
            )  # fmt: skip
            self._record(order, tag=False)
            self._queue_order(order)
            return 2, plan.rejection, order.id
        sl, tp = plan.sl, plan.tp
        first = self._ids.orders(1 + (sl is not None) + (tp is not None))
        entry_id = first + (sl is not None)
        immediate = plan.type == OrderType.MARKET or bool(plan.fills)
        entry = Order(
            entry_id, account.id, info, now, plan.type, plan.side, plan.size,
            OrderStatus.PENDING if immediate else OrderStatus.OPEN, plan.tag, plan.limit,
            plan.stop, now, active_ns=now, trail_distance=plan.trail, trail_ticks=plan.trail,
            extreme=plan.extreme,
        )  # fmt: skip
        family = [entry]
        if sl is not None:
            entry.sl_id = first
            family.insert(0, self._child(entry, first, sl, "-SL", None))
        if tp is not None:
            entry.tp_id = entry_id + 1
            family.append(self._child(entry, entry_id + 1, tp, "-TP", entry.sl_id))
        if sl is not None and tp is not None:
            family[0].oco_id, family[2].oco_id = family[2].id, family[0].id
        for order in family:
            self._record(order)
            self._queue_order(order)
        if plan.fills:
            self._execute(entry, plan.fills, now, now)
        else:
            self._work(entry)
        return 0, None, entry_id

    def _child(
        self, entry: Order, oid: int, leg: _Bracket, suffix: str, linked: int | None
    ) -> Order:
        return Order(
            oid, entry.account_id, entry.info, entry.created_ns, leg.type, 1 - entry.side,
            entry.size, OrderStatus.SUSPENDED,
            None if entry.custom_tag is None else entry.custom_tag + suffix,
            updated_ns=entry.created_ns, trail_distance=leg.ticks, parent_id=entry.id,
            linked_id=linked, bracket_ticks=leg.ticks,
        )  # fmt: skip

    def _record(self, order: Order, tag: bool = True) -> None:
        self._orders[order.id] = order
        self._by_account[order.account_id].append(order)
        if tag and order.custom_tag is not None:
            self._tags[order.account_id].add(order.custom_tag)

    # ------------------------------------------------------------------ fills and lifecycle

    def _book(self, contract_id: str, ts_ns: int) -> BookView:
        """The market's book at `ts_ns` less the liquidity our own fills took from it."""
        book = self._markets.book(contract_id, ts_ns)
        return self._liquidity.view(contract_id, book.bids, book.asks) or book

    def _execute(self, order: Order, fills: Fills, ts: int, book_ts: int | None = None) -> None:
        """Apply fills to `order` and its account, then run OCO and bracket activation;
        `book_ts` says the fills were taken from the book at that instant."""
        if book_ts is not None:
            book = self._markets.book(order.contract_id, book_ts)
            self._liquidity.take(order.contract_id, book.bids, book.asks, order.side == BUY, fills)
        for price, qty in fills:
            order.fill_volume += qty
            order.filled_cost += price * qty
        order.updated_ns = ts
        if order.fill_volume >= order.size:
            order.status = OrderStatus.FILLED
            self._unwork(order)
        elif order.status != OrderStatus.OPEN:
            order.status = OrderStatus.OPEN
            self._work(order)
        self._queue_order(order)
        account = self._accounts[order.account_id]
        out = self._out
        for price, qty in fills:
            account.apply_fill(order.info, order.side, qty, price, ts, order.id, self._ids, out)
        out.append((account.id, "GatewayUserAccount", 1, account.wire()))
        if order.oco_id is not None:
            self._oco(self._orders[order.oco_id], sum(qty for _, qty in fills), order, ts)
        if order.status == OrderStatus.FILLED and (order.sl_id or order.tp_id):
            self._activate_children(order, ts)

    def _oco(self, sibling: Order, filled: int, leg: Order, ts: int) -> None:
        """One bracket leg filled `filled` lots: a full fill cancels the other leg (§7 rule 5);
        a partial one shrinks it by as much, so the rest of the position stays protected."""
        if sibling.status in TERMINAL:
            return
        if leg.status == OrderStatus.FILLED or sibling.size - filled <= sibling.fill_volume:
            self._cancel_order(sibling, ts)
            return
        sibling.size -= filled
        sibling.updated_ns = ts
        self._queue_order(sibling)

    def _activate_children(self, entry: Order, ts: int) -> None:
        vol = entry.fill_volume
        base = (2 * entry.filled_cost + vol) // (2 * vol)  # average fill, nearest tick
        for child_id in (entry.tp_id, entry.sl_id):
            if child_id is None:
                continue
            child = self._orders[child_id]
            if child.status != OrderStatus.SUSPENDED:
                continue
            offset = child.bracket_ticks or 0
            if child.type == OrderType.LIMIT:
                child.limit_ticks = base + offset
            else:
                child.stop_ticks = base + offset
                if child.type == OrderType.TRAILING_STOP:
                    child.trail_ticks, child.extreme = abs(offset), base
            child.status = OrderStatus.OPEN
            child.updated_ns = child.active_ns = ts
            self._work(child)
            self._queue_order(child)

    def _cancel_order(self, order: Order, ts: int) -> None:
        order.status = OrderStatus.CANCELLED
        order.updated_ns = ts
        self._unwork(order)
        self._queue_order(order)
        for child_id in (order.sl_id, order.tp_id):
            if child_id is not None and self._orders[child_id].status == OrderStatus.SUSPENDED:
                self._cancel_order(self._orders[child_id], ts)

    # ------------------------------------------------------------------ modify / cancel

    def modify(self, body: dict[str, Any]) -> tuple[int, str | None, None]:
        """`Order/modify`: (ModifyOrderErrorCode, message, None)."""
        if not isinstance(body, dict):
            return 3, "Invalid modify request: the body must be an object.", None
        account = self._account(body.get("accountId"))
        if account is None:
            return 1, None, None
        order = self._order_of(account, body.get("orderId"))
        if order is None:
            return 2, None, None
        try:
            changes = self._plan_modify(account, order, body)
        except _Reject as exc:
            return exc.code, exc.message, None
        try:
            self._commit_modify(order, *changes)
        finally:
            self._flush()
        return 0, None, None

    def _plan_modify(
        self, account: PaperAccount, order: Order, body: dict[str, Any]
    ) -> tuple[int, int | None, int | None, int | None, int | None, int | None, Fills]:
        if not account.can_trade:
            raise _Reject(6)
        found = self._contract(order.contract_id)
        if found is None:
            raise _Reject(7)
        info = found[1]
        if order.status in TERMINAL:
            raise _Reject(
                3, f"Cannot modify order {order.id}: it is already {_STATUS_NAMES[order.status]}."
            )
        if order.status == OrderStatus.SUSPENDED:
            raise _Reject(
                3, f"Cannot modify order {order.id}: it is suspended until its entry fills."
            )
        kind = _TYPE_NAMES[order.type]
        size = body.get("size")
        if size is not None:
            size = _int(size)
            if size is None or size <= 0:
                raise _Reject(
                    3, f"Invalid order size ({body.get('size')!r}). Size must be greater than zero."
                )
            if size <= order.fill_volume:
                raise _Reject(
                    3,
                    f"Invalid order size ({size}). "
                    f"Size must be greater than the filled volume ({order.fill_volume}).",
                )
        now = self._now()
        cid = order.contract_id
        limit = stop = trail = extreme = None
        if body.get("limitPrice") is not None:
            if order.type not in LIMIT_LIKE and order.type != OrderType.STOP_LIMIT:
                raise _Reject(3, f"limitPrice does not apply to a {kind} order.")
            limit = self._ticks(info, body["limitPrice"], "limit", 3)
        if body.get("stopPrice") is not None:
            if order.type not in (OrderType.STOP, OrderType.STOP_LIMIT):
                raise _Reject(3, f"stopPrice does not apply to a {kind} order.")
            stop = self._ticks(info, body["stopPrice"], "stop", 3)
            if not order.triggered:
                self._check_stop_side(order.side, stop, self._last(cid, now), 3)
        if body.get("trailPrice") is not None:
            if order.type != OrderType.TRAILING_STOP:
                raise _Reject(3, f"trailPrice does not apply to a {kind} order.")
            level = self._ticks(info, body["trailPrice"], "trail", 3)
            extreme = self._last(cid, now)
            if extreme is None:
                raise _Reject(3, "Cannot trail without a last price")
            trail = abs(extreme - level)
        fills: Fills = []
        rests_as_limit = order.type in LIMIT_LIKE or (
            order.type == OrderType.STOP_LIMIT and order.triggered
        )
        halted = self._is_halted(cid)  # out of session: the change is kept, nothing fills
        if rests_as_limit and (limit is not None or size is not None) and not halted:
            book = self._book(cid, now)
            buy = order.side == BUY
            remaining = (size or order.size) - order.fill_volume
            price = limit if limit is not None else order.limit_ticks
            fills = _take(book.asks if buy else book.bids, remaining, buy, price)[0]
        return now, size, limit, stop, trail, extreme, fills

    def _commit_modify(
        self,
        order: Order,
        now: int,
        size: int | None,
        limit: int | None,
        stop: int | None,
        trail: int | None,
        extreme: int | None,
        fills: Fills,
    ) -> None:
        if size is not None:
            order.size = size
            for child_id in (order.sl_id, order.tp_id):
                child = None if child_id is None else self._orders[child_id]
                if child is not None and child.status == OrderStatus.SUSPENDED:
                    child.size, child.updated_ns = size, now
                    self._queue_order(child)
        if limit is not None:
            order.limit_ticks = limit
        if stop is not None:
            order.stop_ticks = stop
        if trail is not None and extreme is not None:
            order.trail_ticks, order.extreme = trail, extreme
            order.stop_ticks = extreme + trail if order.side == BUY else extreme - trail
            if order.parent_id is None:
                order.trail_distance = trail
        order.updated_ns = order.active_ns = now
        self._queue_order(order)
        if fills:
            self._execute(order, fills, now, now)

    def cancel(self, account_id: int, order_id: int) -> tuple[int, str | None, None]:
        """`Order/cancel`: (CancelOrderErrorCode, message, None)."""
        account = self._account(account_id)
        if account is None:
            return 1, None, None
        if not account.simulated:
            return 6, "Live accounts not supported", None
        order = self._order_of(account, order_id)
        if order is None:
            return 2, None, None
        if order.status in TERMINAL:
            name = _STATUS_NAMES[order.status]
            return 3, f"Cannot cancel order {order.id}: it is already {name}.", None
        try:
            self._cancel_order(order, self._now())
        finally:
            self._flush()
        return 0, None, None

    # ------------------------------------------------------------------ positions

    def close_position(self, account_id: int, contract_id: str) -> tuple[int, str | None, None]:
        """`Position/closeContract`: flatten with a market order (ClosePositionErrorCode)."""
        return self._flatten(account_id, contract_id, None, partial=False)

    def partial_close(
        self, account_id: int, contract_id: str, size: int
    ) -> tuple[int, str | None, None]:
        """`Position/partialCloseContract`: reduce by `size` (PartialClosePositionErrorCode)."""
        return self._flatten(account_id, contract_id, size, partial=True)

    def _flatten(
        self, account_id: Any, contract_id: Any, size: Any, partial: bool
    ) -> tuple[int, str | None, None]:
        """Shared body of close / partial close; codes differ by endpoint (§4.4)."""
        account = self._account(account_id)
        if account is None:
            return 1, None, None
        if partial and not account.simulated:
            return 9, "Live accounts not supported", None
        if not account.can_trade:
            return (9 if partial else 8), None, None
        found = self._contract(contract_id)
        if found is None:
            return 3, None, None
        spec, info = found
        if not spec.active:
            return 4, None, None
        pos = account.positions.get(info.contract_id)
        if pos is None:
            return 2, None, None
        if self._is_halted(info.contract_id):  # out of session: rejected with no message
            return (6 if partial else 5), None, None
        qty = pos.size
        if partial:
            qty = _int(size)
            if qty is None or qty <= 0 or qty > pos.size:
                return 5, None, None
        now = self._now()
        side = SELL if pos.long else BUY
        book = self._book(info.contract_id, now)
        levels = book.asks if side == BUY else book.bids
        fallback = None if levels else self._last(info.contract_id, now)
        fills = _market_fills(levels, qty, side == BUY, fallback)
        if fills is None:
            return (6 if partial else 5), None, None
        order = Order(
            self._ids.orders(1), account.id, info, now, OrderType.MARKET, side, qty,
            OrderStatus.PENDING, None, updated_ns=now, active_ns=now,
        )  # fmt: skip
        try:
            self._record(order)
            self._queue_order(order)
            self._execute(order, fills, now, now)
        finally:
            self._flush()
        return 0, None, None

    def open_positions(
        self, account_id: int
    ) -> tuple[int, str | None, list[dict[str, Any]] | None]:
        """`Position/searchOpen`: PositionModel rows (code 1 when the account is unknown)."""
        account = self._account(account_id)
        if account is None:
            return 1, None, None
        return 0, None, [p.wire() for p in account.positions.values()]

    # ------------------------------------------------------------------ searches

    def search_orders(
        self, account_id: int, start_ns: int | None = None, end_ns: int | None = None
    ) -> tuple[int, str | None, list[dict[str, Any]] | None]:
        """`Order/search`: every order created in [start, end], oldest first, children included."""
        if self._account(account_id) is None:
            return 1, None, None
        rows = [
            o.wire()
            for o in self._by_account[account_id]
            if (start_ns is None or o.created_ns >= start_ns)
            and (end_ns is None or o.created_ns <= end_ns)
        ]
        return 0, None, rows

    def search_open_orders(
        self, account_id: int
    ) -> tuple[int, str | None, list[dict[str, Any]] | None]:
        """`Order/searchOpen`: Open (1) orders only; suspended children and pending excluded."""
        if self._account(account_id) is None:
            return 1, None, None
        rows = [o.wire() for o in self._by_account[account_id] if o.status == OrderStatus.OPEN]
        return 0, None, rows

    def order_by_id(
        self, account_id: int, order_id: int
    ) -> tuple[int, str | None, dict[str, Any] | None]:
        """`Order/searchById`: code 1 (OrderNotFound) for unknown ids or other accounts' orders."""
        account = self._account(account_id)
        order = None if account is None else self._order_of(account, order_id)
        if order is None:
            return 1, None, None
        return 0, None, order.wire()

    def query_orders_v2(self, body: dict[str, Any]) -> tuple[int, str | None, dict[str, Any]]:
        """`Order/v2/query`: filtered, sorted, paged orders; payload `{orders, totalCount}`.

        Raises ValueError on malformed input (the REST layer answers those with HTTP 400).
        """
        filt = body.get("filter") if isinstance(body, dict) else None
        if not isinstance(filt, dict):
            raise ValueError("filter is required and must be an object")
        account = self._account(filt.get("accountId"))
        statuses = filt.get("statuses")
        if statuses is not None and (
            not isinstance(statuses, list) or any(_int(s) is None for s in statuses)
        ):
            raise ValueError("filter.statuses must be a list of integers")
        wanted = _V2_DEFAULT_STATUSES if not statuses else frozenset(statuses)
        contract_id = filt.get("contractId")
        after = _ns_or_none(filt.get("createdAfter"), "filter.createdAfter")
        before = _ns_or_none(filt.get("createdBefore"), "filter.createdBefore")
        page_size = _opt_int(body, "pageSize", _V2_DEFAULT_PAGE, 1, 1000)
        offset = _opt_int(body, "pageOffset", 0, 0, 2**31 - 1)
        sort_by = _opt_int(body, "sortBy", 0, 0, 1)
        descending = _opt_int(body, "sortDirection", 1, 0, 1) == 1
        if account is None:
            return 1, None, {"orders": None, "totalCount": None}
        rows = [
            o
            for o in self._by_account[account.id]
            if o.status in wanted
            and (contract_id is None or o.contract_id == contract_id)
            and (after is None or o.created_ns >= after)
            and (before is None or o.created_ns <= before)
        ]
        key = attrgetter("id") if sort_by == 1 else attrgetter("created_ns", "id")
        rows.sort(key=key, reverse=descending)
        page = [o.wire() for o in rows[offset : offset + page_size]]
        total = len(rows) if body.get("includeTotalCount") else None
        return 0, None, {"orders": page, "totalCount": total}

    def search_trades(
        self, account_id: int, start_ns: int | None = None, end_ns: int | None = None
    ) -> tuple[int, str | None, list[dict[str, Any]] | None]:
        """`Trade/search`: half-trades in [start, end], newest first as in live captures."""
        account = self._account(account_id)
        if account is None:
            return 1, None, None
        rows = [
            t.wire()
            for t in reversed(account.trades)
            if (start_ns is None or t.ts_ns >= start_ns) and (end_ns is None or t.ts_ns <= end_ns)
        ]
        return 0, None, rows

    # ------------------------------------------------------------------ tape

    def on_tape(self, contract_id: str, trades: TradesView) -> None:
        """Run a batch of tape trades (time order) against the contract's working orders."""
        if contract_id not in self._working or self._is_halted(contract_id):
            return
        prices = trades.price
        n = len(prices)
        if not n:
            return
        try:
            self._run_tape(contract_id, prices, trades.ts_ns, trades.side, n)
        finally:
            self._flush()

    def _run_tape(
        self, cid: str, prices: np.ndarray, stamps: np.ndarray, sides: np.ndarray | None, n: int
    ) -> None:
        """Event loop over one batch: find the earliest trade that acts on any working order,
        process every order it hits, move trailing stops up to it, continue after it."""
        start = 0
        moved: list[Order] = []
        while start < n:
            working = self._working.get(cid)
            if not working:
                break
            rest = prices[start:]
            low, high = int(rest.min()), int(rest.max())
            snapshot = [o for o in working if self._in_reach(o, low, high)]
            best, hits = n, []
            for order in snapshot:
                i = self._first_hit(order, prices, stamps, sides, start, n)
                if i < best:
                    best, hits = i, [order]
                elif i == best and i < n:
                    hits.append(order)
            for order in snapshot:
                if order.type == OrderType.TRAILING_STOP:
                    end = best if order in hits else min(best + 1, n)
                    if self._follow(order, prices, stamps, start, end) and order not in moved:
                        moved.append(order)
            if best >= n:
                break
            price, stamp = int(prices[best]), int(stamps[best])
            for order in sorted(hits, key=attrgetter("id")):
                if order.status == OrderStatus.OPEN:
                    self._trigger(order, price, stamp)
            start = best + 1
        for order in moved:
            if order.status == OrderStatus.OPEN:
                self._queue_order(order)

    def _in_reach(self, order: Order, low: int, high: int) -> bool:
        """Whether trades within [low, high] could fill, trigger or move `order` (cheap filter)."""
        buy = order.side == BUY
        kind = order.type
        if kind in LIMIT_LIKE or (kind == OrderType.STOP_LIMIT and order.triggered):
            lim = order.limit_ticks or 0  # a print at the price may lock the book onto it
            return low <= lim if buy else high >= lim
        if kind == OrderType.TRAILING_STOP:
            ext, dist = order.extreme or 0, order.trail_ticks or 0
            return (low < ext or high >= ext + dist) if buy else (high > ext or low <= ext - dist)
        stop = order.stop_ticks or 0
        return high >= stop if buy else low <= stop

    @staticmethod
    def _from(order: Order, stamps: np.ndarray, start: int) -> int:
        """First index >= start of a trade the order may see (not older than the order)."""
        if order.active_ns > stamps[start]:
            return max(start, int(np.searchsorted(stamps, order.active_ns, side="left")))
        return start

    def _first_hit(
        self,
        order: Order,
        prices: np.ndarray,
        stamps: np.ndarray,
        sides: np.ndarray | None,
        start: int,
        n: int,
    ) -> int:
        """Index of the first trade at/after `start` that fills or triggers `order`, else n.

        Without fill-on-touch a limit fills on a print through its price, or on a print at it
        that moved the other side of the book onto it (a buy lifting the offer down to our
        bid): the book would be locked otherwise."""
        lo = self._from(order, stamps, start)
        if lo >= n:
            return n
        seg = prices[lo:]
        buy = order.side == BUY
        kind = order.type
        if kind in LIMIT_LIKE or (kind == OrderType.STOP_LIMIT and order.triggered):
            lim = order.limit_ticks
            if buy:
                cond = seg <= lim if self._touch else seg < lim
            else:
                cond = seg >= lim if self._touch else seg > lim
            if not self._touch and sides is not None:
                cond |= (seg == lim) & (sides[lo:] == (0 if buy else 1))
        elif kind == OrderType.TRAILING_STOP:
            ext, dist = order.extreme, order.trail_ticks or 0
            prev = np.empty_like(seg)
            prev[0] = ext
            if buy:
                np.minimum(np.minimum.accumulate(seg)[:-1], ext, out=prev[1:])
                cond = seg >= prev + dist
            else:
                np.maximum(np.maximum.accumulate(seg)[:-1], ext, out=prev[1:])
                cond = seg <= prev - dist
        else:
            stop = order.stop_ticks
            cond = seg >= stop if buy else seg <= stop
        k = int(cond.argmax())
        return lo + k if cond[k] else n

    def _follow(
        self, order: Order, prices: np.ndarray, stamps: np.ndarray, start: int, end: int
    ) -> bool:
        """Move a trailing stop with the favourable extreme of trades [start, end)."""
        if start >= end:
            return False
        lo = self._from(order, stamps, start)
        if lo >= end:
            return False
        seg = prices[lo:end]
        dist = order.trail_ticks or 0
        ext = order.extreme
        if order.side == BUY:
            low = int(seg.min())
            if ext is not None and low >= ext:
                return False
            order.extreme, order.stop_ticks = low, low + dist
        else:
            high = int(seg.max())
            if ext is not None and high <= ext:
                return False
            order.extreme, order.stop_ticks = high, high - dist
        return True

    def _trigger(self, order: Order, price: int, stamp: int) -> None:
        """Fill a limit at its price, or fire a stop at the book the triggering trade (at
        `stamp`, exact) left behind; the fill is recorded at wire resolution."""
        ts = stamp // _WIRE_NS * _WIRE_NS
        kind = order.type
        if kind in LIMIT_LIKE or (kind == OrderType.STOP_LIMIT and order.triggered):
            self._execute(order, [(order.limit_ticks or price, order.remaining)], ts)
            return
        buy = order.side == BUY
        book = self._book(order.contract_id, stamp)
        levels = book.asks if buy else book.bids
        if kind == OrderType.STOP_LIMIT:
            order.triggered = True
            fills = _take(levels, order.remaining, buy, order.limit_ticks)[0]
            if fills:
                self._execute(order, fills, ts, stamp)
            return
        fills = _market_fills(levels, order.remaining, buy, price) or [(price, order.remaining)]
        self._execute(order, fills, ts, stamp)


def _ns_or_none(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if _int(value) is not None:
        return value
    if isinstance(value, str):
        try:
            return parse_iso(value)
        except ValueError:
            pass
    raise ValueError(f"{name} must be an ISO-8601 timestamp")


def _opt_int(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if _int(value) is None or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}]")
    return value
