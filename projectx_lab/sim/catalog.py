"""Built-in contract catalogue: tick specs, front-month ids derived from a date, fuzzy search."""

from __future__ import annotations

import calendar
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

MONTH_CODES = "FGHJKMNQUVXZ"
SEARCH_CAP = 20
_OFF_GRID_TOLERANCE = Decimal("0.000001")  # in ticks: absorbs float noise like 21450.250000001


def _number(value: Decimal) -> int | float:
    """A Decimal as a JSON number: int when integral, float otherwise."""
    return int(value) if value == value.to_integral_value() else float(value)


@dataclass(frozen=True, slots=True)
class ContractSpec:
    """One contract month: wire identity, tick spec and the market model's parameters."""

    root: str  # exchange symbol, e.g. "NQ"
    gateway_root: str  # root used in gateway ids, e.g. "ENQ"
    contract_id: str  # CON.F.US.<gateway_root>.<M><YY>
    name: str  # <root><M><Y>, e.g. "NQZ6"
    description: str
    tick_size: Decimal
    tick_value: Decimal
    symbol_id: str  # F.US.<gateway_root>
    active: bool
    ref_price: Decimal  # level the simulated price mean-reverts to
    annual_vol: float  # annualised volatility of log returns
    fee_per_side: Decimal  # exchange + clearing fees per contract per side
    commission_per_side: Decimal  # commission per contract per side
    decimals: int = field(init=False, repr=False, compare=False)
    _tick: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.tick_size <= 0 or self.tick_value <= 0:
            raise ValueError(f"{self.contract_id}: tick size and value must be > 0")
        exponent = self.tick_size.normalize().as_tuple().exponent
        object.__setattr__(self, "decimals", max(0, -int(exponent)))
        object.__setattr__(self, "_tick", float(self.tick_size))

    @property
    def point_value(self) -> Decimal:
        """Dollars per full point of price per contract."""
        return self.tick_value / self.tick_size

    def to_price(self, ticks: int) -> float:
        """Integer ticks -> wire price, rounded to the tick's decimals."""
        return round(ticks * self._tick, self.decimals)

    def to_ticks(self, price: float | int | Decimal | str) -> int | None:
        """Price -> integer ticks, or None when the price is off the tick grid or not a number."""
        if isinstance(price, bool):
            return None
        if isinstance(price, float) and not math.isfinite(price):
            return None
        try:
            exact = Decimal(price) / self.tick_size
        except (InvalidOperation, TypeError, ValueError):
            return None
        if not exact.is_finite():
            return None
        nearest = exact.to_integral_value()
        if abs(exact - nearest) > _OFF_GRID_TOLERANCE:
            return None
        return int(nearest)

    def wire(self) -> dict[str, object]:
        """The ContractModel dict of the gateway (§4.2)."""
        return {
            "id": self.contract_id,
            "name": self.name,
            "description": self.description,
            "tickSize": _number(self.tick_size),
            "tickValue": _number(self.tick_value),
            "activeContract": self.active,
            "symbolId": self.symbol_id,
        }


# --- roll rules: the date a contract month stops being the front month --------------------------


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    last = date(year, month, calendar.monthrange(year, month)[1])
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _equity_roll(year: int, month: int) -> date:
    """Quarterly index futures roll 8 days before the third-Friday expiry."""
    return _nth_weekday(year, month, calendar.FRIDAY, 3) - timedelta(days=8)


def _fx_roll(year: int, month: int) -> date:
    """Currency futures roll about a week before the Monday preceding the third Wednesday."""
    return _nth_weekday(year, month, calendar.WEDNESDAY, 3) - timedelta(days=9)


def _crypto_roll(year: int, month: int) -> date:
    """Monthly crypto futures roll 8 days before their last-Friday expiry."""
    return _last_weekday(year, month, calendar.FRIDAY) - timedelta(days=8)


def _prior_month(day: int) -> Callable[[int, int], date]:
    """Physically delivered products roll on `day` of the month before the contract month."""

    def roll(year: int, month: int) -> date:
        prev_year, prev_month = (year, month - 1) if month > 1 else (year - 1, 12)
        return date(prev_year, prev_month, day)

    return roll


@dataclass(frozen=True, slots=True)
class _Product:
    root: str
    gateway_root: str
    title: str
    tick_size: Decimal
    tick_value: Decimal
    months: str  # listed month codes of the trading cycle
    roll: Callable[[int, int], date]
    ref_price: Decimal
    annual_vol: float
    fee: Decimal
    commission: Decimal


_QUARTERLY = "HMUZ"
_MONTHLY = MONTH_CODES
_D = Decimal

_PRODUCTS: tuple[_Product, ...] = (
    _Product("MNQ", "MNQ", "Micro E-mini Nasdaq-100", _D("0.25"), _D("0.5"), _QUARTERLY,
             _equity_roll, _D("21450"), 0.22, _D("0.36"), _D("0.25")),
    _Product("MES", "MES", "Micro E-mini S&P 500", _D("0.25"), _D("1.25"), _QUARTERLY,
             _equity_roll, _D("6050"), 0.17, _D("0.37"), _D("0.25")),
    _Product("MYM", "MYM", "Micro E-mini Dow $0.50", _D("1"), _D("0.5"), _QUARTERLY,
             _equity_roll, _D("44100"), 0.15, _D("0.37"), _D("0.25")),
    _Product("M2K", "M2K", "Micro E-mini Russell 2000", _D("0.1"), _D("0.5"), _QUARTERLY,
             _equity_roll, _D("2310"), 0.23, _D("0.37"), _D("0.25")),
    _Product("MGC", "MGC", "Micro Gold", _D("0.1"), _D("1"), "GJMQZ",
             _prior_month(26), _D("3350"), 0.16, _D("0.62"), _D("0.25")),
    _Product("MCL", "MCLE", "Micro WTI Crude Oil", _D("0.01"), _D("1"), _MONTHLY,
             _prior_month(12), _D("68.5"), 0.34, _D("0.51"), _D("0.25")),
    _Product("NQ", "ENQ", "E-mini NASDAQ-100", _D("0.25"), _D("5"), _QUARTERLY,
             _equity_roll, _D("21450"), 0.22, _D("1.40"), _D("0.50")),
    _Product("ES", "EP", "E-Mini S&P 500", _D("0.25"), _D("12.5"), _QUARTERLY,
             _equity_roll, _D("6050"), 0.17, _D("1.40"), _D("0.50")),
    _Product("YM", "YM", "E-mini Dow ($5)", _D("1"), _D("5"), _QUARTERLY,
             _equity_roll, _D("44100"), 0.15, _D("1.40"), _D("0.50")),
    _Product("RTY", "RTY", "E-mini Russell 2000", _D("0.1"), _D("5"), _QUARTERLY,
             _equity_roll, _D("2310"), 0.23, _D("1.40"), _D("0.50")),
    _Product("GC", "GCE", "Gold", _D("0.1"), _D("10"), "GJMQZ",
             _prior_month(26), _D("3350"), 0.16, _D("1.55"), _D("0.50")),
    _Product("CL", "CLE", "Crude Light", _D("0.01"), _D("10"), _MONTHLY,
             _prior_month(12), _D("68.5"), 0.34, _D("1.50"), _D("0.50")),
    _Product("SIL", "SIL", "Micro Silver", _D("0.005"), _D("5"), "HKNUZ",
             _prior_month(26), _D("36.5"), 0.28, _D("1.05"), _D("0.25")),
    _Product("MNG", "MNG", "Micro Henry Hub Natural Gas", _D("0.001"), _D("1"), _MONTHLY,
             _prior_month(21), _D("3.2"), 0.55, _D("0.60"), _D("0.25")),
    _Product("MHG", "MHG", "Micro Copper", _D("0.0005"), _D("1.25"), "HKNUZ",
             _prior_month(26), _D("4.6"), 0.24, _D("0.55"), _D("0.25")),
    _Product("MBT", "MBT", "Micro Bitcoin", _D("5"), _D("0.5"), _MONTHLY,
             _crypto_roll, _D("95000"), 0.55, _D("2.10"), _D("0.25")),
    _Product("MET", "GMET", "Micro Ether", _D("0.5"), _D("0.05"), _MONTHLY,
             _crypto_roll, _D("3500"), 0.70, _D("0.30"), _D("0.25")),
    _Product("6E", "EU6", "Euro FX", _D("0.00005"), _D("6.25"), _QUARTERLY,
             _fx_roll, _D("1.1050"), 0.07, _D("1.60"), _D("0.50")),
    _Product("ZN", "TYA", "10-Year T-Note", _D("0.015625"), _D("15.625"), _QUARTERLY,
             _prior_month(25), _D("110.5"), 0.06, _D("0.85"), _D("0.50")),
    _Product("ZB", "USA", "30-Year T-Bond", _D("0.03125"), _D("31.25"), _QUARTERLY,
             _prior_month(25), _D("116.0"), 0.11, _D("0.92"), _D("0.50")),
)  # fmt: skip


def _spec(product: _Product, year: int, month: int, active: bool) -> ContractSpec:
    code = MONTH_CODES[month - 1]
    return ContractSpec(
        root=product.root,
        gateway_root=product.gateway_root,
        contract_id=f"CON.F.US.{product.gateway_root}.{code}{year % 100:02d}",
        name=f"{product.root}{code}{year % 10}",
        description=f"{product.title}: {calendar.month_name[month]} {year}",
        tick_size=product.tick_size,
        tick_value=product.tick_value,
        symbol_id=f"F.US.{product.gateway_root}",
        active=active,
        ref_price=product.ref_price,
        annual_vol=product.annual_vol,
        fee_per_side=product.fee,
        commission_per_side=product.commission,
    )


def _front_month(product: _Product, today: date) -> tuple[int, int]:
    """First (year, month) of the product's cycle whose roll date is still ahead of `today`."""
    for year in range(today.year - 1, today.year + 3):
        for code in product.months:
            month = MONTH_CODES.index(code) + 1
            if product.roll(year, month) > today:
                return year, month
    raise AssertionError(f"no front month for {product.root} on {today}")  # cycles are never empty


def _as_date(value: date | datetime) -> date:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.date()
    if isinstance(value, date):
        return value
    raise TypeError(f"Catalog needs a date or datetime, got {type(value).__name__}")


class Catalog:
    """The simulator's tradable products with front months fixed for the catalogue's date."""

    def __init__(self, today: date | datetime) -> None:
        self.date = _as_date(today)
        self._fronts: dict[str, tuple[_Product, int, int]] = {}
        specs: list[ContractSpec] = []
        for product in _PRODUCTS:
            year, month = _front_month(product, self.date)
            self._fronts[product.gateway_root] = (product, year, month)
            specs.append(_spec(product, year, month, active=True))
        self._available = sorted(specs, key=lambda s: s.contract_id)
        self._by_id = {s.contract_id: s for s in specs}
        self._by_symbol = {s.root: s for s in specs} | {s.gateway_root: s for s in specs}

    def available(self) -> list[ContractSpec]:
        """One front contract per product, sorted by contract id."""
        return list(self._available)

    def by_symbol(self, symbol: str) -> ContractSpec | None:
        """Front contract of a product by exchange symbol ("NQ") or gateway root ("ENQ")."""
        return self._by_symbol.get(symbol.strip().upper())

    def by_id(self, contract_id: str) -> ContractSpec | None:
        """Front contract, or an expired earlier month (active=False); None when unknown."""
        key = contract_id.strip().upper()
        if key in self._by_id:
            return self._by_id[key]
        prefix, _, tail = key.rpartition(".")
        if not prefix.startswith("CON.F.US.") or len(tail) != 3 or not tail[1:].isdigit():
            return None
        front = self._fronts.get(prefix.removeprefix("CON.F.US."))
        if front is None or tail[0] not in MONTH_CODES:
            return None
        product, front_year, front_month = front
        year, month = 2000 + int(tail[1:]), MONTH_CODES.index(tail[0]) + 1
        if tail[0] not in product.months or (year, month) >= (front_year, front_month):
            return None
        return _spec(product, year, month, active=False)

    def search(self, text: str, limit: int = SEARCH_CAP) -> list[ContractSpec]:
        """Fuzzy search over active contracts like the gateway: exact matches first, at most 20."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        needle = text.strip().upper()
        ranked: list[tuple[int, str, ContractSpec]] = []
        for spec in self._available:
            rank = _rank(spec, needle)
            if rank is not None:
                ranked.append((rank, spec.contract_id, spec))
        ranked.sort(key=lambda item: (item[0], item[1]))
        return [spec for _, _, spec in ranked[: min(limit, SEARCH_CAP)]]


def _rank(spec: ContractSpec, needle: str) -> int | None:
    """Match quality of a search text (0 best), None when the contract does not match."""
    if not needle:
        return 3
    codes = (spec.root, spec.gateway_root, spec.name, spec.contract_id)
    if needle in codes:
        return 0
    if any(code.startswith(needle) for code in codes[:3]):
        return 1
    if any(needle in code for code in codes):
        return 2
    haystack = " ".join((*codes, spec.description.upper()))
    if all(word in haystack for word in needle.split()):
        return 3
    return None
