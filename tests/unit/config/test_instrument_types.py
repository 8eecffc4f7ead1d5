"""Instrument types: a perp names its spot underlying (checked); cross pairs quoted in a crypto load as plain spot."""

from __future__ import annotations

from pathlib import Path

import pytest

from arb.config import ConfigError, load_settings

PERP = """
instruments:
  BTC/USD-PERP:
    asset_class: crypto_major
    base: BTC
    quote: USD
    type: perp
    underlying: {underlying}
    venues: {{binance: "{symbol}", okx: "BTC/USDT:USDT"}}
"""


def problems_of(tmp_path: Path, text: str) -> list[str]:
    user = tmp_path / "user.yaml"
    user.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(user)
    return info.value.problems


def test_a_linear_perp_on_a_spot_underlying_loads(tmp_path: Path) -> None:
    user = tmp_path / "user.yaml"
    user.write_text(PERP.format(underlying="BTC/USD", symbol="BTC/USDT:USDT"))

    settings = load_settings(user)

    perp = settings.instruments["BTC/USD-PERP"]
    assert (perp.type, perp.underlying) == ("perp", "BTC/USD")
    assert settings.instruments["BTC/USD"].type == "spot"  # the default


@pytest.mark.parametrize(
    ("underlying", "problem"),
    [
        ("SOL/USD", "underlying 'SOL/USD' is SOL/USD, the perp is BTC/USD: they must have the same base and quote"),
        ("BTC/XYZ", "underlying 'BTC/XYZ' is not a configured instrument"),
        ("BTC/USD-PERP", "underlying 'BTC/USD-PERP' must be a spot instrument, not a perp"),
    ],
)
def test_a_perp_whose_underlying_is_not_its_spot_pair_is_refused_naming_the_key(
    tmp_path: Path, underlying: str, problem: str
) -> None:
    problems = problems_of(tmp_path, PERP.format(underlying=underlying, symbol="BTC/USDT:USDT"))

    assert problems == [f"{tmp_path / 'user.yaml'}:8: instruments.BTC/USD-PERP.underlying: {problem}"]


def test_a_perp_without_an_underlying_is_refused(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, PERP.format(underlying="null", symbol="BTC/USDT:USDT"))

    assert len(problems) == 1
    assert "instruments.BTC/USD-PERP: Value error, a perp instrument needs `underlying`" in problems[0]


@pytest.mark.parametrize("symbol", ["BTC/USDT:BTC", "BTC/USDC"], ids=["inverse", "spot"])
def test_an_inverse_or_spot_symbol_for_a_perp_is_refused(tmp_path: Path, symbol: str) -> None:
    problems = problems_of(tmp_path, PERP.format(underlying="BTC/USD", symbol=symbol))

    assert problems == [
        f"{tmp_path / 'user.yaml'}:9: instruments.BTC/USD-PERP.venues.binance: {symbol!r} is not a linear perpetual "
        "symbol (BASE/QUOTE:QUOTE, settled in its quote currency)"
    ]


def test_a_swap_symbol_on_a_spot_instrument_is_refused(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, 'instruments:\n  BTC/USD:\n    venues: {okx: "BTC/USDT:USDT"}\n')

    assert len(problems) == 1
    assert "instruments.BTC/USD.venues.okx: 'BTC/USDT:USDT' is a derivative symbol: declare" in problems[0]


def test_a_cross_pair_quoted_in_btc_loads_once_btc_is_a_declared_quote_currency(tmp_path: Path) -> None:
    user = tmp_path / "user.yaml"
    user.write_text(
        "venues:\n  binance: {quote_currencies: [USDT, USDC, EUR, BTC]}\n"
        "quote_equivalence:\n  BTC: {BTC: 0.0}\n"
        "scanner:\n  kinds: [spot, triangular]\n  usd_per_quote: {USD: 1.0, BTC: 60000.0}\n"
        "instruments:\n  ETH/BTC: {asset_class: crypto_major, base: ETH, quote: BTC, venues: {binance: ETH/BTC}}\n"
    )

    settings = load_settings(user)

    assert settings.instruments["ETH/BTC"].quote == "BTC"
    assert settings.scanner.kinds == ["spot", "triangular"]
