"""Client pieces that need no gateway: settings, wire models, error tables, bar frames, limiter
arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import polars as pl
import pytest

from projectx_lab import (
    ClientSettings,
    InstrumentNotFoundError,
    Order,
    OrderNotFoundError,
    OrderRejectedError,
    OrderStatus,
    Position,
    PositionNotFoundError,
    ProjectX,
    Quote,
    Trade,
    ValidationError,
)
from projectx_lab.client import TOPSTEPX, Endpoints, Instrument
from projectx_lab.client import bars as bars_mod
from projectx_lab.client.errors import AuthenticationError, RequestRejectedError, envelope_error
from projectx_lab.client.models import parse_timestamp
from projectx_lab.client.ratelimit import ARRIVAL_SLACK, _bucket


def test_timestamps_in_every_gateway_form_become_utc():
    expected = datetime(2026, 8, 19, 20, 49, 25, 393833, tzinfo=UTC)
    for text in (
        "2026-08-19T20:49:25.3938333+00:00",
        "2026-08-19T20:49:25.393833Z",
        "2026-08-19T20:49:25.393833",
        "2026-08-19T22:49:25.393833+02:00",
    ):
        got = parse_timestamp(text)
        assert got == expected and got.utcoffset() == timedelta(0), text
    assert parse_timestamp(None) is None


def test_order_tolerates_unknown_keys_absent_prices_and_unknown_enums():
    wire = {
        "id": 3500000001,
        "accountId": 26000001,
        "contractId": "CON.F.US.MNQ.Z26",
        "creationTimestamp": "2026-10-02T14:31:05.1234567+00:00",
        "status": 42,  # not in the table
        "type": 2,
        "side": 0,
        "size": 1,
        "fillVolume": 1,
        "filledPrice": 21450.25,
        "customTag": "lab-7f3a",
        "contractDisplayName": "MNQZ26",  # unknown extra
    }
    order = Order.from_wire(wire)
    assert order.status == 42 and order.limit_price is None and order.update_timestamp is None
    assert order.filled_price == Decimal("21450.25")
    assert not order.is_terminal


def test_prices_are_exact_decimals():
    inst = Instrument.from_wire(
        {
            "id": "CON.F.US.EU6.Z26",
            "name": "6EZ6",
            "description": "Euro FX",
            "tickSize": 0.00005,
            "tickValue": 6.25,
            "activeContract": True,
            "symbolId": "F.US.EU6",
        }
    )
    assert inst.tick_size == Decimal("0.00005") and inst.point_value == Decimal("125000")
    assert inst.symbol == "6E" and inst.root == "EU6"
    trade = Trade.from_wire(
        {"id": 1, "accountId": 2, "contractId": "c", "price": 0.1, "fees": 0.37, "side": 1}
    )
    assert trade.price + trade.fees == Decimal("0.47") and trade.profit_and_loss is None


def test_position_signed_size():
    short = Position.from_wire({"id": 1, "accountId": 2, "contractId": "c", "type": 2, "size": 3})
    assert short.signed_size == -3


def test_partial_quotes_merge_without_inventing_zeros():
    base = Quote.from_wire({"symbol": "F.US.MNQ", "lastPrice": 21000.5, "bestBid": 21000.25})
    update = Quote.from_wire({"bestAsk": 21000.75, "timestamp": "2026-10-01T14:30:00Z"})
    merged = base.merged(update)
    assert merged.last_price == Decimal("21000.5") and merged.best_ask == Decimal("21000.75")
    assert update.last_price is None and merged.best_bid == Decimal("21000.25")


def test_bar_frame_is_sorted_deduplicated_and_tz_aware():
    rows = [  # newest first, one duplicate, three timestamp forms
        {"t": "2026-10-01T14:32:00+00:00", "o": 3, "h": 3, "l": 3, "c": 3, "v": 30},
        {"t": "2026-10-01T14:31:00Z", "o": 2.5, "h": 2.75, "l": 2.25, "c": 2.5, "v": 20},
        {"t": "2026-10-01T14:31:00.0000000+00:00", "o": 2.5, "h": 2.75, "l": 2.25, "c": 2.5},
        {"t": "2026-10-01T14:30:00", "o": 1, "h": 1, "l": 1, "c": 1, "v": 10, "d": None, "k": None},
    ]
    collected: dict = {}
    oldest = bars_mod.collect(rows, collected)
    frame = bars_mod.to_frame(collected, "America/Chicago")
    assert oldest == bars_mod.epoch_ns("2026-10-01T14:30:00Z")
    assert frame.columns == ["timestamp", "open", "high", "low", "close", "volume"]
    assert frame.schema["timestamp"] == pl.Datetime("ns", "America/Chicago")
    assert frame["volume"].to_list() == [10, 20, 30]  # first row seen wins
    assert frame["timestamp"][0].hour == 9  # 14:30 UTC = 09:30 CDT
    assert bars_mod.to_frame(collected, "UTC", limit=2)["close"].to_list() == [2.5, 3.0]


def test_error_codes_are_mapped_per_endpoint():
    def err(endpoint, code, message=None, **extra):
        return envelope_error(
            endpoint, {"success": False, "errorCode": code, "errorMessage": message, **extra}
        )

    place = err("/api/Order/place", 2, "Invalid limit price.", orderId=9)
    assert isinstance(place, OrderRejectedError) and place.order_id == 9
    assert place.error_name == "OrderRejected" and "Invalid limit price." in str(place)
    assert isinstance(err("/api/Order/cancel", 2), OrderNotFoundError)
    assert isinstance(err("/api/Position/closeContract", 2), PositionNotFoundError)
    partial = err("/api/Position/partialCloseContract", 5)
    assert isinstance(partial, OrderRejectedError) and partial.error_name == "InvalidCloseSize"
    assert isinstance(err("/api/History/retrieveBars", 1), InstrumentNotFoundError)
    assert type(err("/api/History/retrieveBars", 4)) is RequestRejectedError
    login = err("/api/Auth/loginKey", 3)
    assert isinstance(login, AuthenticationError) and login.error_name == "InvalidCredentials"


def test_settings_validate_and_hide_the_key():
    settings = ClientSettings(username="u", api_key="k-123-secret")
    assert "k-123-secret" not in repr(settings)
    with pytest.raises(ValidationError, match="api_url"):
        ClientSettings(api_url="ftp://x")
    with pytest.raises(ValidationError, match="rest_rate"):
        ClientSettings(rest_rate=(0, 60))
    with pytest.raises(ValidationError, match="unknown client setting"):
        settings.replace(bogus=1)


def test_from_env_reads_projectx_variables_and_defaults_to_topstepx():
    env = {"PROJECTX_USERNAME": "me", "PROJECTX_API_KEY": "key", "PROJECTX_ACCOUNT_NAME": "PRAC"}
    settings = ClientSettings.from_env(env)
    assert (settings.username, settings.account_name) == ("me", "PRAC")
    assert settings.api_url == TOPSTEPX.api_url == "https://api.topstepx.com"
    with pytest.raises(ValidationError, match="PROJECTX_API_KEY"):
        ClientSettings.from_env({"PROJECTX_USERNAME": "me"}).require_credentials()


def test_firm_urls_are_settings():
    firm = Endpoints.for_firm("alphaticks")
    assert firm.api_url == "https://api.alphaticks.projectx.com"
    assert firm.market_hub_url == "https://rtc.alphaticks.projectx.com/hubs/market"
    legacy = Endpoints.for_firm("blusky", legacy=True)
    assert legacy.user_hub_url == "https://gateway-rtc-blusky.s2f.projectx.com/hubs/user"
    client = ProjectX(username="u", api_key="k", **firm._asdict())
    assert client.settings.api_url == firm.api_url


def test_credentials_are_keyword_only_and_required():
    with pytest.raises(TypeError):
        ProjectX("user", "key")  # type: ignore[misc]
    with pytest.raises(ValidationError, match="username"):
        ProjectX(api_key="k")


def test_bucket_never_admits_more_than_the_gateway_window():
    limiter = _bucket((200, 60.0), 0.5)
    capacity, drain = limiter.max_rate, limiter.max_rate / limiter.time_period
    # at most N in any window even when arrivals bunch by up to ARRIVAL_SLACK seconds
    assert capacity == 100 and capacity + drain * (60.0 + ARRIVAL_SLACK) == pytest.approx(200)
    assert capacity + drain * 60.0 < 200
    history = _bucket((50, 30.0), 0.5)
    per_second = history.max_rate / history.time_period
    assert history.max_rate + per_second * (30.0 + ARRIVAL_SLACK) == pytest.approx(50)
    assert OrderStatus.FILLED.name == "FILLED"
