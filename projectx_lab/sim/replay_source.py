"""A recorded session as the simulator's market: `ReplaySource` feeds an `Exchange` from a
recording instead of the seeded model, so REST bars, hub streams, the matching engine and fills
all see the recorded market, at any speed of the virtual clock.

A recording is a directory written by `projectx_lab.research.recorder` (format in
docs/architecture.md, "Session recordings"): `manifest.json` plus `part-NNNNN.parquet` files of
raw wire payloads, one row per hub message. Each recorded contract becomes a `ReplayMarket` with
the `MarketModel` interface, built from the payloads' own timestamps and prices:

* tape: every `GatewayTrade` item (time order; prices to ticks);
* book: `GatewayDepth` items applied with the SDK order book's rules (6 Reset; 1/2 set a level,
  volume 0 removes it; 3/4/9/10 set the best level and drop better ones on that side; a crossed
  book is uncrossed in favour of the side set last). The book changes at the items' timestamps,
  which are the `book_times()` grid;
* quote: `GatewayQuote` partials merged (a missing field means unchanged) as of their `timestamp`.

Contracts that were not recorded are silent (no trades, empty book). The catalogue keeps the
simulator's products for the recording's date with each recorded contract in place of its
product's front month, so a recording of the real gateway replays under its real contract id.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl

from .bars import Atoms, Bar, BarArrays, Buckets, aggregate
from .book import Book
from .catalog import SEARCH_CAP, Catalog, ContractSpec
from .tape import Trades
from .wire import parse_iso

# The recording format (written by projectx_lab.research.recorder; kept in step by hand).
FORMAT = "projectx-lab-recording"
VERSION = 1
MANIFEST = "manifest.json"
EVENT_SCHEMA = {
    "seq": pl.Int64,
    "recv_ns": pl.Int64,
    "target": pl.String,
    "contract_id": pl.String,
    "action": pl.Int64,
    "snapshot": pl.Boolean,
    "payload": pl.String,
}

_WIRE_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%:z"
_BOOK_KINDS = (1, 2, 3, 4, 6, 9, 10)
_CHECKPOINT_GROUPS = 512  # book snapshots kept every this many change points (random access)
_MAX_LEVELS = 200  # per side; farther levels are trimmed (real feeds remove levels themselves)
_QUOTE_FIELDS = (
    "lastPrice",
    "bestBid",
    "bestAsk",
    "open",
    "high",
    "low",
    "volume",
    "change",
    "changePercent",
)
_TRADE_DTYPE = pl.List(
    pl.Struct({"price": pl.Float64, "timestamp": pl.String, "type": pl.Int64, "volume": pl.Int64})
)
_DEPTH_DTYPE = pl.List(
    pl.Struct({"timestamp": pl.String, "type": pl.Int64, "price": pl.Float64, "volume": pl.Float64})
)
_QUOTE_DTYPE = pl.Struct(
    {name: pl.Float64 for name in _QUOTE_FIELDS}
    | {"lastUpdated": pl.String, "timestamp": pl.String}
)


class RecordingError(ValueError):
    """The path is not a readable session recording."""


# --------------------------------------------------------------------------- reading


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of the recording at `path` (a directory), checked for format and version."""
    root = Path(path)
    file = root / MANIFEST
    if not file.is_file():
        raise RecordingError(f"{root} is not a session recording (no {MANIFEST})")
    try:
        manifest = orjson.loads(file.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise RecordingError(f"{file} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RecordingError(f"{file} is not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise RecordingError(
            f"{file} has format version {manifest.get('version')!r}; this build reads {VERSION}"
        )
    return manifest


def part_paths(path: str | Path, manifest: dict[str, Any]) -> list[Path]:
    """The part files the manifest lists, checked to exist."""
    root = Path(path)
    parts = [root / str(name) for name in manifest.get("parts", [])]
    missing = [p.name for p in parts if not p.is_file()]
    if missing:
        raise RecordingError(f"{root}: part files listed in the manifest are missing: {missing}")
    return parts


def read_events(path: str | Path, manifest: dict[str, Any] | None = None) -> pl.DataFrame:
    """Every recorded message (the parts listed in the manifest), in arrival order."""
    parts = part_paths(path, manifest or read_manifest(path))
    if not parts:
        return pl.DataFrame(schema=EVENT_SCHEMA)
    return pl.concat([pl.read_parquet(p) for p in parts], how="vertical").sort("seq")


def parse_times(stamps: pl.Series) -> np.ndarray:
    """Wire timestamps → int64 ns since the epoch (UTC); unparseable or missing → -1."""
    if stamps.len() == 0:
        return np.empty(0, np.int64)
    parsed = stamps.str.to_datetime(_WIRE_FORMAT, time_unit="ns", strict=False)
    ns = parsed.dt.epoch("ns").fill_null(-1).to_numpy().astype(np.int64, copy=True)
    for i in np.flatnonzero(ns < 0).tolist():  # other ISO forms: `Z`, naive, other offsets
        text = stamps[i]
        if isinstance(text, str):
            try:
                ns[i] = parse_iso(text)
            except ValueError:
                ns[i] = -1
    return ns


def _fill_forward(ts: np.ndarray) -> np.ndarray:
    """Replace -1 (unknown) times by the previous known one and make the series non-decreasing
    (a late item never moves replayed time backwards); leading unknowns take the first known."""
    if not len(ts):
        return ts
    known = ts >= 0
    if not known.any():
        return np.zeros_like(ts)
    first = ts[np.argmax(known)]
    out = np.where(known, ts, first)
    return np.maximum.accumulate(out)


def _market_rows(events: pl.DataFrame, target: str, contract_id: str) -> pl.DataFrame:
    return events.filter((pl.col("target") == target) & (pl.col("contract_id") == contract_id))


def _to_ticks(prices: np.ndarray, tick: float) -> np.ndarray:
    return np.rint(prices / tick).astype(np.int64)


# --------------------------------------------------------------------------- book


class _DepthTape:
    """Recorded depth items → the book in force at any time (forward replay is incremental;
    going back restores the nearest checkpoint and replays from there)."""

    def __init__(self, ts: np.ndarray, seq: np.ndarray, kind: np.ndarray, price: np.ndarray,
                 size: np.ndarray) -> None:  # fmt: skip
        n = len(ts)
        self._kind, self._price, self._size = kind, price, size
        if n:
            new = np.empty(n, dtype=bool)
            new[0] = True
            new[1:] = (seq[1:] != seq[:-1]) | (ts[1:] != ts[:-1])
            starts = np.flatnonzero(new)
        else:
            starts = np.empty(0, np.int64)
        self.group_ts = ts[starts] if n else np.empty(0, np.int64)
        self.times = np.unique(self.group_ts)
        self._bounds = np.append(starts, n).astype(np.int64)
        self._bids: dict[int, int] = {}
        self._asks: dict[int, int] = {}
        self._applied = 0  # groups [0, applied) are in the state
        self._checkpoints: list[tuple[dict[int, int], dict[int, int]]] = [({}, {})]
        self._book: Book | None = None

    def book_at(self, ts_ns: int) -> Book:
        target = int(np.searchsorted(self.group_ts, ts_ns, side="right"))
        if target != self._applied:
            if target < self._applied:
                k = target // _CHECKPOINT_GROUPS
                bids, asks = self._checkpoints[k]
                self._bids, self._asks = dict(bids), dict(asks)
                self._applied = k * _CHECKPOINT_GROUPS
            self._apply_until(target)
            self._book = None
        book = self._book
        if book is None:
            book = self._book = Book(
                bids=sorted(self._bids.items(), reverse=True), asks=sorted(self._asks.items())
            )
        return book

    def _apply_until(self, target: int) -> None:
        g = self._applied
        lo, hi = int(self._bounds[g]), int(self._bounds[target])
        kinds = self._kind[lo:hi].tolist()
        prices = self._price[lo:hi].tolist()
        sizes = self._size[lo:hi].tolist()
        ends = (self._bounds[g + 1 : target + 1] - lo).tolist()
        bids, asks = self._bids, self._asks
        checkpoints = self._checkpoints
        i = 0
        for end in ends:
            top = 0
            while i < end:
                k, p, v = kinds[i], prices[i], sizes[i]
                i += 1
                if k == 2:
                    if v > 0:
                        bids[p] = v
                        top = 2
                    else:
                        bids.pop(p, None)
                elif k == 1:
                    if v > 0:
                        asks[p] = v
                        top = 1
                    else:
                        asks.pop(p, None)
                elif k == 4 or k == 9:
                    for q in [q for q in bids if q > p]:
                        del bids[q]
                    if v > 0:
                        bids[p] = v
                    else:
                        bids.pop(p, None)
                    top = 2
                elif k == 3 or k == 10:
                    for q in [q for q in asks if q < p]:
                        del asks[q]
                    if v > 0:
                        asks[p] = v
                    else:
                        asks.pop(p, None)
                    top = 1
                elif k == 6:
                    bids.clear()
                    asks.clear()
                    top = 0
            if bids and asks:
                best_bid, best_ask = max(bids), min(asks)
                if best_bid >= best_ask:
                    if top == 1:
                        for q in [q for q in bids if q >= best_ask]:
                            del bids[q]
                    else:
                        for q in [q for q in asks if q <= best_bid]:
                            del asks[q]
            if len(bids) > _MAX_LEVELS:
                for q in sorted(bids)[: len(bids) - _MAX_LEVELS]:
                    del bids[q]
            if len(asks) > _MAX_LEVELS:
                for q in sorted(asks)[_MAX_LEVELS:]:
                    del asks[q]
            g += 1
            if g % _CHECKPOINT_GROUPS == 0 and g // _CHECKPOINT_GROUPS == len(checkpoints):
                checkpoints.append((dict(bids), dict(asks)))
        self._applied = target


# --------------------------------------------------------------------------- quote


@dataclass(frozen=True, slots=True)
class ReplayQuote:
    """The merged recorded quote at one instant: `fields(spec)` gives its GatewayQuote numbers
    (only those known), `last_ts` the recorded `lastUpdated`."""

    ts_ns: int
    last_ts: int | None
    values: tuple[tuple[str, float | int], ...]

    def fields(self, spec: ContractSpec) -> dict[str, float | int]:
        return dict(self.values)


class _QuoteTape:
    """Recorded (partial) quotes merged forward: the field values in force at any time."""

    def __init__(self, rows: pl.DataFrame) -> None:
        decoded = rows.select(pl.col("payload").str.json_decode(_QUOTE_DTYPE).alias("q")).unnest(
            "q"
        )
        stamp = parse_times(decoded["timestamp"])
        updated = parse_times(decoded["lastUpdated"])
        stamp = np.where(stamp >= 0, stamp, updated)
        self.ts = _fill_forward(stamp)
        self.last_updated = np.maximum.accumulate(updated) if len(updated) else updated
        filled = decoded.select([pl.col(f).forward_fill() for f in _QUOTE_FIELDS])
        self._columns = [
            (name, filled[name].fill_null(math.nan).to_numpy().astype(np.float64))
            for name in _QUOTE_FIELDS
        ]

    def __len__(self) -> int:
        return len(self.ts)

    def at(self, ts_ns: int) -> ReplayQuote | None:
        i = int(np.searchsorted(self.ts, ts_ns, side="right")) - 1
        if i < 0:
            return None
        values: list[tuple[str, float | int]] = []
        for name, column in self._columns:
            value = float(column[i])
            if value == value:  # not NaN
                values.append((name, int(value) if name == "volume" else value))
        last = int(self.last_updated[i])
        return ReplayQuote(ts_ns, last if last >= 0 else None, tuple(values))

    def changed(self, start_ns: int, end_ns: int) -> bool:
        lo = int(np.searchsorted(self.ts, start_ns, side="right"))
        return lo < len(self.ts) and int(self.ts[lo]) <= end_ns


# --------------------------------------------------------------------------- markets


class ReplayMarket:
    """One recorded contract with the `MarketModel` interface (prices in ticks, times in ns)."""

    def __init__(self, spec: ContractSpec, events: pl.DataFrame, start_ns: int) -> None:
        self.spec = spec
        self.history_start_ns = start_ns
        tick = float(spec.tick_size)
        cid = spec.contract_id
        self._tape = _load_tape(_market_rows(events, "GatewayTrade", cid), tick)
        self._depth = _load_depth(_market_rows(events, "GatewayDepth", cid), tick)
        self._quotes = _QuoteTape(_market_rows(events, "GatewayQuote", cid))

    def __repr__(self) -> str:
        return (
            f"ReplayMarket({self.spec.contract_id}, trades={len(self._tape)}, "
            f"book_changes={len(self._depth.times)}, quotes={len(self._quotes)})"
        )

    def trades(self, start_ns: int, end_ns: int) -> Trades:
        """Recorded trades with start_ns < ts <= end_ns, in time order (views)."""
        if end_ns < start_ns:
            raise ValueError(f"end ({end_ns}) is before start ({start_ns})")
        return self._tape.window(start_ns, end_ns)

    def last_trade(self, ts_ns: int) -> tuple[int, int] | None:
        i = int(np.searchsorted(self._tape.ts_ns, ts_ns, side="right")) - 1
        if i < 0:
            return None
        return int(self._tape.ts_ns[i]), int(self._tape.price[i])

    def book(self, ts_ns: int) -> Book:
        """The recorded book in force at ts_ns."""
        return self._depth.book_at(ts_ns)

    def book_times(self, start_ns: int, end_ns: int) -> list[int]:
        """Instants in (start_ns, end_ns] at which the recorded book changed."""
        times = self._depth.times
        lo = int(np.searchsorted(times, start_ns, side="right"))
        hi = int(np.searchsorted(times, end_ns, side="right"))
        return times[lo:hi].tolist()

    def quote(self, ts_ns: int) -> ReplayQuote:
        """The recorded quote at ts_ns; before the first one, last/bid/ask from tape and book."""
        quote = self._quotes.at(ts_ns)
        if quote is not None:
            return quote
        spec = self.spec
        values: list[tuple[str, float | int]] = []
        last = self.last_trade(ts_ns)
        if last is not None:
            values.append(("lastPrice", spec.to_price(last[1])))
        book = self.book(ts_ns)
        if book.bids:
            values.append(("bestBid", spec.to_price(book.bids[0][0])))
        if book.asks:
            values.append(("bestAsk", spec.to_price(book.asks[0][0])))
        return ReplayQuote(ts_ns, last[0] if last else None, tuple(values))

    def quote_changed(self, start_ns: int, end_ns: int) -> bool:
        """Whether a recorded quote update falls in (start_ns, end_ns]."""
        return self._quotes.changed(start_ns, end_ns)

    def bars(
        self,
        unit: int,
        unit_number: int,
        start_ns: int,
        end_ns: int,
        limit: int,
        include_partial: bool,
        now_ns: int,
    ) -> list[Bar]:
        """Bars of the recorded tape opening in [start_ns, end_ns) and not after now_ns, newest
        first, at most `limit` (same rules as `MarketModel.bars`)."""
        buckets = Buckets(unit, unit_number)
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        top = min(end_ns - 1, now_ns)
        if top < start_ns or top < self.history_start_ns:
            return []
        hi_id = buckets.id_of(top)
        if hi_id == buckets.id_of(now_ns) and not include_partial:
            hi_id -= 1
        lo_id = buckets.id_of(start_ns)
        if buckets.start_of(lo_id) < start_ns:
            lo_id += 1
        if lo_id > hi_id:
            return []
        lower = buckets.start_of(lo_id)
        upper = min(buckets.start_of(hi_id + 1), now_ns + 1)
        window = self._tape.window(lower - 1, upper - 1)
        if not len(window):
            return []
        price = window.price
        atoms = Atoms(window.ts_ns, price, price, price, price, window.size.astype(np.int64))
        arrays: BarArrays = aggregate(atoms, buckets)
        return arrays.newest_first(limit)


class SilentMarket:
    """A contract the recording does not cover: no trades, no book, no quote."""

    def __init__(self, spec: ContractSpec, start_ns: int) -> None:
        self.spec = spec
        self.history_start_ns = start_ns

    def trades(self, start_ns: int, end_ns: int) -> Trades:
        return Trades.empty()

    def last_trade(self, ts_ns: int) -> tuple[int, int] | None:
        return None

    def book(self, ts_ns: int) -> Book:
        return Book(bids=[], asks=[])

    def book_times(self, start_ns: int, end_ns: int) -> list[int]:
        return []

    def quote(self, ts_ns: int) -> ReplayQuote:
        return ReplayQuote(ts_ns, None, ())

    def quote_changed(self, start_ns: int, end_ns: int) -> bool:
        return False

    def bars(self, unit: int, unit_number: int, start_ns: int, end_ns: int, limit: int,
             include_partial: bool, now_ns: int) -> list[Bar]:  # fmt: skip
        Buckets(unit, unit_number)  # same argument checks as a real market
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        return []


def _items(rows: pl.DataFrame, dtype: pl.DataType) -> pl.DataFrame:
    return (
        rows.select("seq", pl.col("payload").str.json_decode(dtype).alias("item"))
        .explode("item")
        .drop_nulls("item")
        .unnest("item")
    )


def _load_tape(rows: pl.DataFrame, tick: float) -> Trades:
    items = _items(rows, _TRADE_DTYPE).drop_nulls(["price"])
    if items.height == 0:
        return Trades.empty()
    ts = _fill_forward(parse_times(items["timestamp"]))
    order = np.argsort(ts, kind="stable")
    return Trades(
        ts[order],
        _to_ticks(items["price"].to_numpy(), tick)[order],
        items["volume"].fill_null(0).to_numpy().astype(np.int32)[order],
        items["type"].fill_null(0).to_numpy().astype(np.int8)[order],
    )


def _load_depth(rows: pl.DataFrame, tick: float) -> _DepthTape:
    items = _items(rows, _DEPTH_DTYPE).filter(pl.col("type").is_in(_BOOK_KINDS))
    ts = _fill_forward(parse_times(items["timestamp"]))
    prices = items["price"].fill_null(0.0).to_numpy()
    return _DepthTape(
        ts,
        items["seq"].to_numpy(),
        items["type"].to_numpy().astype(np.int8),
        _to_ticks(prices, tick),
        np.rint(items["volume"].fill_null(0.0).to_numpy()).astype(np.int64),
    )


# --------------------------------------------------------------------------- catalogue


def spec_from_wire(wire: dict[str, Any], base: Catalog) -> ContractSpec:
    """A recorded ContractModel as a spec; fees and commissions come from the simulator's product
    of the same root (zero for products it does not know)."""
    try:
        cid = str(wire["id"])
        tick_size = Decimal(str(wire["tickSize"]))
        tick_value = Decimal(str(wire["tickValue"]))
    except (KeyError, ArithmeticError, ValueError) as exc:
        raise RecordingError(f"recorded contract {wire!r} lacks id/tickSize/tickValue") from exc
    known = base.by_id(cid)
    if known is not None and known.tick_size == tick_size and known.tick_value == tick_value:
        return known if known.active else dataclasses.replace(known, active=True)
    parts = cid.split(".")
    symbol_id = str(wire.get("symbolId") or ".".join(parts[1:4]))
    gateway_root = symbol_id.rsplit(".", 1)[-1]
    product = base.by_symbol(gateway_root)
    name = str(wire.get("name") or cid)
    return ContractSpec(
        root=product.root if product else gateway_root,
        gateway_root=gateway_root,
        contract_id=cid,
        name=name,
        description=str(wire.get("description") or name),
        tick_size=tick_size,
        tick_value=tick_value,
        symbol_id=symbol_id,
        active=True,
        ref_price=product.ref_price if product else Decimal(1),
        annual_vol=product.annual_vol if product else 0.2,
        fee_per_side=product.fee_per_side if product else Decimal(0),
        commission_per_side=product.commission_per_side if product else Decimal(0),
    )


class ReplayCatalog(Catalog):
    """The simulator's catalogue for the recording's date, with each recorded contract as its
    product's front (and only active) month."""

    def __init__(self, today: date | datetime, recorded: Sequence[dict[str, Any]]) -> None:
        super().__init__(today)
        base = Catalog(today)
        specs = [spec_from_wire(wire, base) for wire in recorded]
        self.recorded: dict[str, ContractSpec] = {s.contract_id: s for s in specs}
        self._roots = {s.gateway_root: s for s in specs} | {s.root: s for s in specs}

    def available(self) -> list[ContractSpec]:
        """One contract per product: the recorded ones, the simulator's fronts for the rest."""
        base = [s for s in super().available() if s.gateway_root not in self._roots]
        return sorted(base + list(self.recorded.values()), key=lambda s: s.contract_id)

    def by_symbol(self, symbol: str) -> ContractSpec | None:
        return self._roots.get(symbol.strip().upper()) or super().by_symbol(symbol)

    def by_id(self, contract_id: str) -> ContractSpec | None:
        """Recorded contracts first; the simulator's own front of a recorded product is None."""
        key = contract_id.strip().upper()
        found = self.recorded.get(key)
        if found is not None:
            return found
        spec = super().by_id(contract_id)
        if spec is not None and spec.active and spec.gateway_root in self._roots:
            return None  # the simulator's own front month of a recorded product: not replayed
        return spec

    def search(self, text: str, limit: int = SEARCH_CAP) -> list[ContractSpec]:
        """The simulator's fuzzy search with recorded contracts in place of their products'."""
        needle = text.strip().upper()
        out: list[ContractSpec] = []
        for spec in super().search(text, SEARCH_CAP):
            out.append(self._roots.get(spec.gateway_root, spec))
        for spec in self.recorded.values():
            codes = (spec.root, spec.gateway_root, spec.name, spec.contract_id, spec.description)
            if spec not in out and all(w in " ".join(codes).upper() for w in needle.split()):
                out.append(spec)
        exact = [s for s in out if needle in (s.root, s.gateway_root, s.name, s.contract_id)]
        ranked = exact + [s for s in out if s not in exact]
        return ranked[: min(limit, SEARCH_CAP)]


# --------------------------------------------------------------------------- source


class ReplaySource:
    """A recording as an `Exchange` market source: `Simulator(replay=path)` builds one.

    `start_ns` / `end_ns` bound the recorded market. The recorded contracts' markets are built
    when the catalogue is (their payloads decoded into arrays once; the raw rows are then
    dropped); other contracts get a silent market.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        contracts = self.manifest.get("contracts") or {}
        if not isinstance(contracts, dict):
            raise RecordingError(f"{self.path}: manifest 'contracts' must be an object")
        self.contracts: dict[str, dict[str, Any]] = contracts
        start, end = self.manifest.get("start_ns"), self.manifest.get("end_ns")
        if not isinstance(start, int) or not isinstance(end, int) or end < start:
            raise RecordingError(f"{self.path}: manifest start_ns/end_ns are missing or invalid")
        self.start_ns: int = start
        self.end_ns: int = end
        self.complete = bool(self.manifest.get("complete"))
        self._parts = part_paths(self.path, self.manifest)
        self._markets: dict[str, ReplayMarket | SilentMarket] = {}

    def __repr__(self) -> str:
        return (
            f"ReplaySource({str(self.path)!r}, contracts={sorted(self.contracts)}, "
            f"complete={self.complete})"
        )

    def catalog(self, today: date | datetime) -> ReplayCatalog:
        """The catalogue a replaying exchange serves; builds the recorded markets."""
        catalog = ReplayCatalog(today, list(self.contracts.values()))
        columns = ("seq", "target", "contract_id", "payload")
        if self._parts:
            events = (
                pl.scan_parquet(self._parts)
                .filter(pl.col("target").is_in(["GatewayTrade", "GatewayQuote", "GatewayDepth"]))
                .select(columns)
                .sort("seq")
                .collect()
            )
        else:
            events = pl.DataFrame(schema={k: EVENT_SCHEMA[k] for k in columns})
        for spec in catalog.recorded.values():
            self._markets[spec.contract_id] = ReplayMarket(spec, events, self.start_ns)
        return catalog

    def market(self, spec: ContractSpec) -> ReplayMarket | SilentMarket:
        """The replayed market of one contract (silent when it was not recorded)."""
        held = self._markets.get(spec.contract_id)
        if held is None:
            held = self._markets[spec.contract_id] = SilentMarket(spec, self.start_ns)
        return held
