"""The executor's money arithmetic: cash flows of fills (fees in the quote or in the base), USD values of venue
currencies (quote equivalence with its haircut) and the scanner's edge scaled to the size actually executed."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from arb.config import load_settings
from arb.executor.engine import _cash, predicted_edge, usd_per_currency
from arb.model import Fill, Opportunity, Side


def fill(side: Side, fee: str, fee_currency: str, symbol: str = "BTC/USDT") -> Fill:
    return Fill(
        trade_id="1", client_id="c", venue="binance", symbol=symbol, side=side, price=D("65000"), amount=D("0.01"),
        fee=D(fee), fee_currency=fee_currency, ts=1,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("side", "fee", "currency", "cash"),
    [
        (Side.BUY, "0.65", "USDT", D("-650.65")),
        (Side.SELL, "0.65", "USDT", D("649.35")),
        (Side.BUY, "0.00001", "BTC", D("-650.65")),  # a fee in the base costs its value at the fill's price
        (Side.SELL, "0", "", D("650.00")),
    ],
)
def test_a_fill_moves_cash_by_price_times_amount_less_its_fee_wherever_it_was_charged(
    side: Side, fee: str, currency: str, cash: D
) -> None:
    assert _cash(fill(side, fee, currency)) == cash


def test_a_perp_fill_is_valued_in_its_settlement_currency() -> None:
    assert _cash(fill(Side.SELL, "0.65", "USDT", symbol="BTC/USDT:USDT")) == D("649.35")


def test_venue_currencies_are_worth_their_canonical_currency_less_the_haircut() -> None:
    settings = load_settings()
    usd = usd_per_currency(settings)

    assert usd["USD"] == 1.0
    assert usd["USDT"] == pytest.approx(1 - settings.quote_equivalence["USD"]["USDT"])
    assert usd["EUR"] == settings.scanner.usd_per_quote["EUR"]


def opp(**over: float) -> Opportunity:
    fields: dict[str, object] = {
        "id": "o", "instrument": "BTC/USD", "buy_venue": "a", "sell_venue": "b", "size": 1.0, "vwap_buy": 100.0,
        "vwap_sell": 100.4, "gross_spread": 0.005, "fee_buy": 0.001, "fee_sell": 0.001, "gas": 0.0002,
        "haircut": 0.0, "slippage": 0.001, "net_edge": 0.0018, "expected_profit": 0.18, "liquidity_score": 1.0,
        "execution_time_s": 0.1, "risk_factor": 1.0, "priority": 1.0, "buy_quote_age_ms": 1.0,
        "sell_quote_age_ms": 1.0,
    }  # fmt: skip
    fields.update(over)
    return Opportunity(**fields)  # type: ignore[arg-type]


def test_the_predicted_edge_at_full_size_is_the_scanners_net_edge() -> None:
    assert predicted_edge(opp(), 1.0) == pytest.approx(0.0018)
    assert predicted_edge(opp(), 2.0) == pytest.approx(0.0018)  # never more than its own size


def test_a_smaller_execution_pays_less_slippage_and_more_gas_per_unit() -> None:
    half = predicted_edge(opp(), 0.5)

    assert half == pytest.approx(0.005 - 0.0005 - 0.002 - 0.0004)


def test_nothing_executed_falls_back_to_the_scanners_edge() -> None:
    assert predicted_edge(opp(), 0.0) == 0.0018
