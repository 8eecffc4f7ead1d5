"""ccxt funding-rate structures -> the grid's FundingRate records, and which venues get a funding poller."""

from __future__ import annotations

from typing import Any

import pytest

from arb.config import load_settings
from arb.connectors.funding import funding_rate, interval_hours, pollers_for, venue_perps
from arb.grid.funding import FundingRate

NOW = 1_700_000_000_000_000_000
BINANCE: dict[str, Any] = {  # ccxt 4.5.90 binance.parse_funding_rate of a /fapi/v1/premiumIndex row
    "symbol": "BTC/USDT:USDT",
    "fundingRate": 6.3521e-4,
    "timestamp": 1_621_252_344_001,
    "fundingTimestamp": 1_621_267_200_000,
    "interval": None,
}


def test_a_binance_rate_keeps_the_venues_times_and_takes_the_interval_from_funding_info() -> None:
    record = funding_rate("binance", "BTC/USD-PERP", BINANCE, NOW, interval_h=4.0)

    assert record == FundingRate(
        venue="binance",
        instrument="BTC/USD-PERP",
        rate=6.3521e-4,
        interval_h=4.0,
        ts_ns=1_621_252_344_001_000_000,
        next_ts_ns=1_621_267_200_000_000_000,
    )


def test_cccxts_own_interval_wins_and_8h_is_assumed_only_when_nothing_says() -> None:
    assert funding_rate("okx", "P", {**BINANCE, "interval": "1h"}, NOW, interval_h=4.0).interval_h == 1.0  # type: ignore[union-attr]
    assert funding_rate("x", "P", BINANCE, NOW).interval_h == 8.0  # type: ignore[union-attr]


def test_a_rate_without_venue_times_is_stamped_with_the_poll_time() -> None:
    record = funding_rate("x", "P", {"fundingRate": "-0.0001", "timestamp": None, "fundingTimestamp": None}, NOW)

    assert record is not None
    assert (record.rate, record.ts_ns, record.next_ts_ns) == (-0.0001, NOW, 0)


@pytest.mark.parametrize("rate", [None, "NaN", float("inf"), "n/a", True])
def test_a_missing_or_non_finite_rate_gives_no_record_never_zero(rate: Any) -> None:
    assert funding_rate("binance", "P", {**BINANCE, "fundingRate": rate}, NOW) is None


@pytest.mark.parametrize(
    ("value", "hours"), [("8h", 8.0), ("4h", 4.0), (1, 1.0), ("0h", None), ("8", None), (None, None), (True, None)]
)
def test_interval_strings_and_numbers_become_hours(value: Any, hours: float | None) -> None:
    assert interval_hours(value) == hours


def test_the_shipped_config_polls_binance_perps_only() -> None:
    settings = load_settings()

    async def publish(rates: Any) -> None:  # never called here
        raise AssertionError

    pollers = pollers_for(settings, ["binance", "okx", "kraken"], publish)

    assert [p.venue_id for p in pollers] == ["binance"]
    assert pollers[0].perps == venue_perps(settings, "binance")
    assert pollers[0].perps["BTC/USDT:USDT"] == "BTC/USD-PERP"
    assert pollers[0].refresh_s == settings.scanner.funding_refresh_s == 60.0
