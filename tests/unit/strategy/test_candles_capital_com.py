"""Capital.com candles without a venue: the bid/ask -> mid bar conversion, the API's time text, the routing of fx /
commodity / index assets to `strategy.candles.cfd_venue`, and the loader's checks of it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import msgspec
import pytest

from arb.config import load_settings
from arb.config.loader import ConfigError
from arb.connectors.capital_com.candles import CapitalComCandles, mid_candle
from arb.connectors.capital_com.client import api_time
from arb.connectors.capital_com.wire import PricePoint, Prices
from arb.strategy.candles import venue_routes

BAR = (
    b'{"snapshotTime": "2024-03-01T10:00:00", "snapshotTimeUTC": "2024-03-01T10:00:00",'
    b' "openPrice": {"bid": 1.08000, "ask": 1.08010}, "closePrice": {"bid": 1.08100, "ask": 1.08120},'
    b' "highPrice": {"bid": 1.08200, "ask": 1.08220}, "lowPrice": {"bid": 1.07900, "ask": 1.07904},'
    b' "lastTradedVolume": 1234}'
)


def test_a_bar_becomes_the_mid_of_bid_and_ask_at_its_utc_open_time() -> None:
    point = msgspec.json.decode(BAR, type=PricePoint)

    ts, o, h, lo, c, v = mid_candle(point, "EURUSD")

    assert ts == 1_709_287_200_000  # 2024-03-01T10:00:00Z
    assert o == pytest.approx(1.08005, abs=1e-12)
    assert h == pytest.approx(1.08210, abs=1e-12)
    assert lo == pytest.approx(1.07902, abs=1e-12)
    assert c == pytest.approx(1.08110, abs=1e-12)
    assert v == 1234.0


def test_a_bar_missing_a_side_or_with_an_unreadable_time_is_an_error_naming_it() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"ask.*\$\.prices\[0\]\.openPrice"):
        msgspec.json.decode(b'{"prices": [' + BAR.replace(b', "ask": 1.08010', b"") + b"]}", type=Prices)
    point = msgspec.json.decode(BAR.replace(b'UTC": "2024-03-01T10:00:00"', b'UTC": "yesterday"'), type=PricePoint)
    with pytest.raises(ValueError, match=r"EURUSD: bar time 'yesterday'"):
        mid_candle(point, "EURUSD")


def test_api_times_are_utc_text_and_a_naive_time_is_refused() -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    assert api_time(dt.datetime(2024, 3, 1, 11, 0, 5, tzinfo=paris)) == "2024-03-01T10:00:05"
    with pytest.raises(ValueError, match="no time zone"):
        api_time(dt.datetime(2024, 3, 1, 11))  # noqa: DTZ001 - the naive time under test


def test_only_the_1h_timeframe_is_offered() -> None:
    assert CapitalComCandles.parse_timeframe("1h") == 3600
    with pytest.raises(ValueError, match=r"timeframe '1d' not supported"):
        CapitalComCandles.parse_timeframe("1d")


def test_fx_commodity_and_index_assets_go_to_the_cfd_venue_and_crypto_to_the_ccxt_one() -> None:
    settings = load_settings(None)

    routes = venue_routes(settings, ["BTC/USD", "EUR/USD", "XAU/USD", "US500"])

    assert routes == {
        "binance": {"BTC/USD": "BTC/USDT"},
        "capital_com": {"EUR/USD": "EURUSD", "XAU/USD": "GOLD", "US500": "US500"},
    }


def test_an_fx_asset_with_no_cfd_venue_is_an_error_naming_it(tmp_path: Path) -> None:
    user = tmp_path / "user.yaml"
    user.write_text("strategy:\n  candles:\n    cfd_venue: null\n")
    settings = load_settings(user)

    with pytest.raises(ValueError, match=r"'EUR/USD' is fx: set strategy.candles.cfd_venue"):
        venue_routes(settings, ["BTC/USD", "EUR/USD"])


def test_the_loader_refuses_a_cfd_venue_that_is_not_one_and_fx_assets_without_it(tmp_path: Path) -> None:
    user = tmp_path / "user.yaml"
    user.write_text("strategy:\n  candles:\n    cfd_venue: binance\n")
    with pytest.raises(ConfigError) as info:
        load_settings(user)
    assert info.value.problems == [
        f"{user}:3: strategy.candles.cfd_venue: 'binance' is not a configured CFD venue "
        "(fx / commodity / index candles come from it)"
    ]

    user.write_text("strategy:\n  candles:\n    cfd_venue: null\n    assets: [BTC/USD, EUR/USD]\n")
    with pytest.raises(ConfigError) as info:
        load_settings(user)
    assert info.value.problems == [
        f"{user}:4: strategy.candles.assets.1: 'EUR/USD' is fx: set strategy.candles.cfd_venue to fetch it"
    ]
