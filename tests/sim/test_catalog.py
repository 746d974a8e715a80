"""Contract catalogue: §8 ids and tick specs, front-month rolls, fuzzy search, expired ids."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from projectx_lab.sim.catalog import Catalog

AUG_2026 = date(2026, 8, 19)

# §8.2 of gateway-api.md: live Contract/available in Aug 2026.
TABLE = {
    "MNQ": ("CON.F.US.MNQ.U26", "MNQU6", "0.25", "0.5"),
    "MES": ("CON.F.US.MES.U26", "MESU6", "0.25", "1.25"),
    "MYM": ("CON.F.US.MYM.U26", "MYMU6", "1", "0.5"),
    "M2K": ("CON.F.US.M2K.U26", "M2KU6", "0.1", "0.5"),
    "MGC": ("CON.F.US.MGC.Z26", "MGCZ6", "0.1", "1"),
    "MCL": ("CON.F.US.MCLE.V26", "MCLV6", "0.01", "1"),
    "NQ": ("CON.F.US.ENQ.U26", "NQU6", "0.25", "5"),
    "ES": ("CON.F.US.EP.U26", "ESU6", "0.25", "12.5"),
    "YM": ("CON.F.US.YM.U26", "YMU6", "1", "5"),
    "RTY": ("CON.F.US.RTY.U26", "RTYU6", "0.1", "5"),
    "GC": ("CON.F.US.GCE.Z26", "GCZ6", "0.1", "10"),
    "CL": ("CON.F.US.CLE.V26", "CLV6", "0.01", "10"),
    "SIL": ("CON.F.US.SIL.U26", "SILU6", "0.005", "5"),
    "MNG": ("CON.F.US.MNG.U26", "MNGU6", "0.001", "1"),
    "MHG": ("CON.F.US.MHG.U26", "MHGU6", "0.0005", "1.25"),
    "MBT": ("CON.F.US.MBT.Q26", "MBTQ6", "5", "0.5"),
    "MET": ("CON.F.US.GMET.Q26", "METQ6", "0.5", "0.05"),
    "6E": ("CON.F.US.EU6.U26", "6EU6", "0.00005", "6.25"),
    "ZN": ("CON.F.US.TYA.U26", "ZNU6", "0.015625", "15.625"),
    "ZB": ("CON.F.US.USA.U26", "ZBU6", "0.03125", "31.25"),
}


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return Catalog(AUG_2026)


def test_available_matches_live_table(cat: Catalog) -> None:
    specs = cat.available()
    assert [s.contract_id for s in specs] == sorted(s.contract_id for s in specs)
    assert len({s.root for s in specs}) == len(specs) == len(TABLE)
    for spec in specs:
        cid, name, tick, value = TABLE[spec.root]
        assert (spec.contract_id, spec.name) == (cid, name)
        assert (spec.tick_size, spec.tick_value) == (Decimal(tick), Decimal(value))
        assert spec.active
        assert spec.symbol_id == "F.US." + cid.split(".")[3]
        assert spec.fee_per_side > 0 and spec.commission_per_side > 0 and spec.annual_vol > 0
    mnq = cat.by_symbol("MNQ")
    assert mnq is not None
    assert mnq.description == "Micro E-mini Nasdaq-100: September 2026"
    assert cat.by_symbol("MGC").description == "Micro Gold: December 2026"
    assert cat.by_symbol("MCL").description == "Micro WTI Crude Oil: October 2026"


@pytest.mark.parametrize(
    ("day", "symbol", "month"),
    [
        (date(2026, 9, 9), "MNQ", "U26"),  # third Friday 18 Sep, roll 8 days earlier
        (date(2026, 9, 10), "MNQ", "Z26"),
        (date(2026, 12, 31), "ES", "H27"),
        (date(2026, 8, 11), "MCL", "U26"),  # energy rolls monthly
        (date(2026, 8, 12), "MCL", "V26"),
        (date(2026, 12, 20), "CL", "G27"),
        (date(2026, 7, 25), "GC", "Q26"),  # gold skips V: Q26 -> Z26
        (date(2026, 7, 26), "GC", "Z26"),
        (date(2026, 11, 26), "MGC", "G27"),
        (date(2026, 8, 20), "MBT", "U26"),  # last Friday 28 Aug, roll 8 days earlier
        (date(2026, 9, 6), "6E", "U26"),
        (date(2026, 9, 7), "6E", "Z26"),
    ],
)
def test_front_month_rolls(day: date, symbol: str, month: str) -> None:
    spec = Catalog(day).by_symbol(symbol)
    assert spec is not None and spec.contract_id.endswith("." + month)


def test_catalog_date_accepts_datetimes_and_is_fixed() -> None:
    late = datetime(2026, 9, 10, 1, 0, tzinfo=UTC)
    assert Catalog(late).by_symbol("MNQ").contract_id == "CON.F.US.MNQ.Z26"
    assert Catalog(late).available() == Catalog(date(2026, 9, 10)).available()
    with pytest.raises(TypeError):
        Catalog("2026-09-10")  # type: ignore[arg-type]


def test_search_is_fuzzy_exact_first_and_capped(cat: Catalog) -> None:
    ids = [s.contract_id for s in cat.search("NQ")]
    assert ids[0] == "CON.F.US.ENQ.U26"  # exact symbol first
    assert "CON.F.US.MNQ.U26" in ids
    assert [s.name for s in cat.search("mnqu6")] == ["MNQU6"]
    assert {s.root for s in cat.search("gold")} == {"GC", "MGC"}
    assert {s.root for s in cat.search("micro e-mini")} == {"MNQ", "MES", "MYM", "M2K"}
    assert cat.search("CON.F.US.EP.U26")[0].root == "ES"
    assert cat.search("no such thing") == []
    everything = cat.search("")
    assert len(everything) == 20 and all(s.active for s in everything)
    assert len(cat.search("M", limit=3)) == 3
    assert len(cat.search("", limit=500)) == 20
    with pytest.raises(ValueError):
        cat.search("NQ", limit=0)


def test_by_id_front_expired_and_unknown(cat: Catalog) -> None:
    front = cat.by_id("CON.F.US.MNQ.U26")
    assert front is cat.by_symbol("MNQ")
    old = cat.by_id("CON.F.US.MNQ.M26")
    assert old is not None and not old.active
    assert (old.name, old.description) == ("MNQM6", "Micro E-mini Nasdaq-100: June 2026")
    assert (old.tick_size, old.tick_value, old.symbol_id) == (
        front.tick_size,
        front.tick_value,
        front.symbol_id,
    )
    assert old.wire()["activeContract"] is False
    assert cat.by_id("CON.F.US.ENQ.Z24").name == "NQZ4"
    assert cat.by_id("con.f.us.mnq.u26") is front
    for unknown in (
        "CON.F.US.MNQ.Z26",  # later month: not listed here
        "CON.F.US.MNQ.K26",  # not in the quarterly cycle
        "CON.F.US.MGC.V26",  # gold cycle skips V
        "CON.F.US.NQ.U26",  # exchange symbol is not the gateway root
        "CON.F.US.XXX.U26",
        "F.US.MNQ",
        "CON.F.US.MNQ.U2X",
        "",
    ):
        assert cat.by_id(unknown) is None, unknown


def test_by_symbol_accepts_symbol_and_gateway_root(cat: Catalog) -> None:
    assert cat.by_symbol("mnq").root == "MNQ"
    assert cat.by_symbol("ENQ").root == "NQ"
    assert cat.by_symbol(" NQ ").root == "NQ"
    assert cat.by_symbol("NOPE") is None


def test_wire_contract_model(cat: Catalog) -> None:
    wire = cat.by_symbol("MNQ").wire()
    assert wire == {
        "id": "CON.F.US.MNQ.U26",
        "name": "MNQU6",
        "description": "Micro E-mini Nasdaq-100: September 2026",
        "tickSize": 0.25,
        "tickValue": 0.5,
        "activeContract": True,
        "symbolId": "F.US.MNQ",
    }
    assert orjson.loads(orjson.dumps(cat.by_symbol("MYM").wire()))["tickSize"] == 1
    assert cat.by_symbol("ZN").wire()["tickSize"] == 0.015625


def test_prices_and_ticks(cat: Catalog) -> None:
    mnq = cat.by_symbol("MNQ")
    assert mnq.decimals == 2
    assert mnq.to_ticks(21450.25) == 85801
    assert mnq.to_ticks(21450.250000001) == 85801
    assert mnq.to_ticks(21450.24999999) == 85801
    assert mnq.to_ticks(21450.26) is None
    assert mnq.to_ticks(Decimal("21450.50")) == 85802
    assert mnq.to_ticks("21450.75") == 85803
    assert mnq.to_ticks(21450) == 85800
    for bad in ("abc", float("nan"), float("inf"), True, None):
        assert mnq.to_ticks(bad) is None  # type: ignore[arg-type]
    assert mnq.to_price(85801) == 21450.25
    assert mnq.point_value == 2
    e6 = cat.by_symbol("6E")
    assert e6.decimals == 5 and e6.to_price(22101) == 1.10505
    assert e6.to_ticks(1.1 + 2e-17) == 22000
    zn = cat.by_symbol("ZN")
    assert zn.decimals == 6 and zn.to_price(7073) == 110.515625
    assert zn.to_ticks(110.515625) == 7073 and zn.to_ticks(110.52) is None


@given(st.integers(min_value=1, max_value=10_000_000), st.sampled_from(sorted(TABLE)))
def test_price_tick_roundtrip(ticks: int, symbol: str) -> None:
    spec = Catalog(AUG_2026).by_symbol(symbol)
    price = spec.to_price(ticks)
    assert spec.to_ticks(price) == ticks
    assert round(price, spec.decimals) == price


def test_spec_is_frozen_and_validated(cat: Catalog) -> None:
    spec = cat.by_symbol("ES")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.tick_size = Decimal("1")  # type: ignore[misc]
    with pytest.raises(ValueError):
        dataclasses.replace(spec, tick_size=Decimal("0"))
    assert dataclasses.replace(spec, tick_size=Decimal("0.5")).decimals == 1
