"""Loading the configuration: layering order, and each class of bad config (FAULTS S12) names file, key, problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from arb.config import ConfigError, load_settings


def write(tmp_path: Path, text: str, name: str = "user.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(user_file: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(user_file)
    return info.value.problems


def test_shipped_config_loads_with_the_spec_universe() -> None:
    settings = load_settings()

    kinds = [v.kind for v in settings.venues.values()]
    assert kinds.count("cex") >= 16
    assert kinds.count("cfd") == 1
    assert kinds.count("dex") >= 4
    by_class: dict[str, int] = {}
    spot = [i for i in settings.instruments.values() if i.type == "spot"]
    for inst in spot:
        by_class[inst.asset_class] = by_class.get(inst.asset_class, 0) + 1
    assert by_class == {"crypto_major": 95, "crypto_alt": 248, "fx": 50, "commodity": 30, "index": 20}
    perps = {iid: i.underlying for iid, i in settings.instruments.items() if i.type == "perp"}
    assert perps == {f"{c}/USD-PERP": f"{c}/USD" for c in ("BTC", "ETH", "SOL", "XRP", "DOGE")}  # binance USD-M
    crypto = [i for i in spot if i.asset_class.startswith("crypto")]
    in_usd = [i.asset_class for i in crypto if i.quote == "USD"]
    assert (in_usd.count("crypto_major"), in_usd.count("crypto_alt")) == (50, 150), "the spec's crypto universe"
    multi = [i for i in settings.instruments.values() if sum(settings.venues[v].kind == "cex" for v in i.venues) >= 2]
    assert len(multi) >= 300, "the demo needs 300+ instruments that two CEX venues quote"
    assert settings.thresholds.min_net_spread == 0.001
    assert settings.thresholds.max_slippage == 0.0005
    assert settings.thresholds.min_volume_usd == 1000
    assert settings.thresholds.execution_timeout_s == 5
    assert settings.thresholds.max_latency_ms == 100
    assert (settings.coverage.min_exchanges, settings.coverage.min_instruments) == (15, 300)


def test_shipped_config_makes_quote_equivalence_explicit() -> None:
    settings = load_settings()

    usd = settings.quote_equivalence["USD"]
    assert usd["USD"] == 0.0
    assert usd["USDT"] > 0, "USDT must carry a haircut against USD, never be silently equal"


def test_user_file_overrides_shipped_and_env_overrides_user_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = write(tmp_path, "thresholds:\n  min_net_spread: 0.002\n  max_slippage: 0.0004\n")
    monkeypatch.setenv("ARB_THRESHOLDS__MAX_SLIPPAGE", "0.0003")

    settings = load_settings(user)

    assert settings.thresholds.min_net_spread == 0.002  # user file beats shipped 0.001
    assert settings.thresholds.max_slippage == 0.0003  # env beats user file
    assert settings.thresholds.min_volume_usd == 1000  # untouched keys keep shipped values
    assert settings.venues["binance"].fees.taker > 0  # deep merge kept the rest of the tree


def test_user_file_can_change_one_venue_fee_without_restating_the_venue(tmp_path: Path) -> None:
    user = write(tmp_path, "venues:\n  kraken:\n    fees: {taker: 0.0026, maker: 0.0016}\n")

    settings = load_settings(user)

    assert settings.venues["kraken"].fees.taker == 0.0026
    assert settings.venues["kraken"].ccxt_id == "kraken"


def test_negative_fee_is_refused_naming_file_line_and_key(tmp_path: Path) -> None:
    user = write(tmp_path, "venues:\n  binance:\n    fees:\n      taker: -0.001\n      maker: 0.001\n")

    problems = problems_of(user)

    assert len(problems) == 1
    assert problems[0].startswith(f"{user}:4: venues.binance.fees.taker: ")
    assert "greater than or equal to 0" in problems[0]
    assert "-0.001" in problems[0]


def test_wrong_type_is_refused_naming_the_key(tmp_path: Path) -> None:
    user = write(tmp_path, "thresholds:\n  execution_timeout_s: soon\n")

    problems = problems_of(user)

    assert problems == [
        f"{user}:2: thresholds.execution_timeout_s: "
        "Input should be a valid number, unable to parse string as a number (got 'soon')"
    ]


def test_wrong_type_from_env_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARB_THRESHOLDS__MAX_LATENCY_MS", "fast")

    with pytest.raises(ConfigError) as info:
        load_settings()

    [problem] = info.value.problems
    assert problem.startswith("environment variable ARB_THRESHOLDS__MAX_LATENCY_MS: thresholds.max_latency_ms:")


def test_unknown_key_is_refused_not_ignored(tmp_path: Path) -> None:
    user = write(tmp_path, "venues:\n  okx:\n    taker_fee: 0.001\n")

    problems = problems_of(user)

    assert problems == [f"{user}:3: venues.okx.taker_fee: unknown key"]


def test_unknown_venue_id_is_refused(tmp_path: Path) -> None:
    user = write(
        tmp_path,
        """
venues:
  binanse:
    kind: cex
    name: Typo Exchange
    region: asia
    ccxt_id: binanse
    fees: {taker: 0.001, maker: 0.001}
    quote_currencies: [USDT]
""",
    )

    problems = problems_of(user)

    assert problems == [f"{user}:7: venues.binanse.ccxt_id: unknown venue id 'binanse': ccxt.pro has no such exchange"]


def test_duplicate_instrument_key_is_refused_with_both_lines(tmp_path: Path) -> None:
    user = write(
        tmp_path,
        """
instruments:
  ZZZ/USD:
    {asset_class: crypto_alt, base: ZZZ, quote: USD, venues: {gate: ZZZ/USDT}}
  ZZZ/USD:
    {asset_class: crypto_alt, base: ZZZ, quote: USD, venues: {mexc: ZZZ/USDT}}
""",
    )

    problems = problems_of(user)

    assert problems == [f"{user}:5: instruments.ZZZ/USD: duplicate key (first defined at line 3)"]


def test_two_instruments_mapping_the_same_venue_symbol_are_refused(tmp_path: Path) -> None:
    user = write(
        tmp_path,
        """
instruments:
  XBT/USD: {asset_class: crypto_major, base: XBT, quote: USD, venues: {binance: BTC/USDT}}
""",
    )

    problems = problems_of(user)

    assert len(problems) == 1
    assert "instruments.XBT/USD.venues.binance: duplicate instrument: binance symbol 'BTC/USDT'" in problems[0]
    assert "already mapped by 'BTC/USD'" in problems[0]


def test_symbol_on_a_venue_that_is_not_configured_is_refused(tmp_path: Path) -> None:
    user = write(
        tmp_path,
        "instruments:\n  ZZZ/USD: {asset_class: crypto_alt, base: ZZZ, quote: USD, venues: {poloniex: ZZZ/USDT}}\n",
    )

    problems = problems_of(user)

    assert problems == [
        f"{user}:2: instruments.ZZZ/USD.venues.poloniex: symbol 'ZZZ/USDT' is mapped to venue 'poloniex', "
        "which is not configured"
    ]


def test_quote_currency_without_declared_equivalence_is_refused(tmp_path: Path) -> None:
    user = write(
        tmp_path,
        "instruments:\n  ZZZ/USD: {asset_class: crypto_alt, base: ZZZ, quote: USD, venues: {binance: ZZZ/EUR}}\n",
    )

    problems = problems_of(user)

    assert any("'EUR' is not declared equivalent to 'USD'" in p for p in problems)


def test_dex_symbol_with_unknown_token_is_refused(tmp_path: Path) -> None:
    user = write(
        tmp_path,
        "instruments:\n  ZZZ/USD: {asset_class: crypto_alt, base: ZZZ, quote: USD, venues: {uniswap_v2: ZZZ/USDC}}\n",
    )

    problems = problems_of(user)

    assert problems == [
        f"{user}:2: instruments.ZZZ/USD.venues.uniswap_v2: token 'ZZZ' is not in the token table of chain 'ethereum'"
    ]


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    user = write(tmp_path, "thresholds:\n  min_net_spread: -1\n  max_slippage: x\ncoverage:\n  min_exchangez: 3\n")

    problems = problems_of(user)

    assert [p.split(": ")[1] for p in problems] == [
        "thresholds.min_net_spread",
        "thresholds.max_slippage",
        "coverage.min_exchangez",
    ]


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    user = write(tmp_path, "thresholds:\n  min_net_spread: [0.1\n")

    problems = problems_of(user)

    assert len(problems) == 1
    assert problems[0].startswith(f"{user}:")
    assert "not valid YAML" in problems[0]


def test_missing_user_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read config file"):
        load_settings(tmp_path / "nope.yaml")


def test_redis_password_is_masked_in_repr_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARB_REDIS_URL", "redis://:hunter2-planted@127.0.0.1:6379/0")

    settings = load_settings()

    assert "hunter2-planted" not in repr(settings)
    assert settings.redis_url is not None
    assert "hunter2-planted" in settings.redis_url.get_secret_value()


def test_venue_missing_the_fields_its_kind_needs_is_refused(tmp_path: Path) -> None:
    user = write(
        tmp_path,
        """
venues:
  newdex:
    kind: dex
    name: New DEX
    region: eu
    fees: {taker: 0.003, maker: 0.003}
    quote_currencies: [USDC]
""",
    )

    problems = problems_of(user)

    assert problems == [
        f"{user}:3: venues.newdex: Value error, a dex venue needs chain, protocol, factory, router, gas_units_swap"
    ]


def test_dex_venue_on_an_unconfigured_chain_is_refused(tmp_path: Path) -> None:
    user = write(tmp_path, "venues:\n  sushiswap:\n    chain: arbitrum\n")

    problems = problems_of(user)

    assert f"{user}:3: venues.sushiswap.chain: chain 'arbitrum' is not configured under chains" in problems


def test_bad_router_address_is_refused(tmp_path: Path) -> None:
    user = write(tmp_path, "venues:\n  uniswap_v2:\n    router: '0x1234'\n")

    problems = problems_of(user)

    assert len(problems) == 1
    assert problems[0].startswith(f"{user}:3: venues.uniswap_v2.router: String should match pattern")


def test_strategy_candles_from_an_unknown_venue_or_asset_are_refused_naming_them(tmp_path: Path) -> None:
    user = write(
        tmp_path,
        "strategy:\n  candles:\n    assets: [BTC/USD, NOPE/USD]\n",
    )
    assert problems_of(user) == [f"{user}:3: strategy.candles.assets.1: unknown instrument 'NOPE/USD'"]

    user = write(tmp_path, "strategy:\n  candles:\n    venue: nowhere\n", "venue.yaml")
    (problem,) = problems_of(user)
    assert "strategy.candles.venue: 'nowhere' is not a configured CEX venue" in problem


def test_strategy_reward_weights_and_risk_caps_are_validated(tmp_path: Path) -> None:
    user = write(
        tmp_path,
        "strategy:\n  rl: {leverage: 5, reward: {gamma: -1}}\n  risk: {risk_per_trade: 0.05}\n",
    )
    problems = problems_of(user)
    assert any("strategy.rl.leverage" in p for p in problems)
    assert any("strategy.rl.reward.gamma" in p for p in problems)
    assert any("strategy.risk.risk_per_trade" in p for p in problems)
