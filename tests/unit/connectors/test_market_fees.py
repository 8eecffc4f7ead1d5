"""Taker fees from ccxt market data: only usable numbers are kept (else the configured fee stands)."""

from __future__ import annotations

import math

from arb.connectors.ccxt_pro import market_taker_fees


def test_only_finite_fees_in_zero_to_one_are_kept_by_instrument() -> None:
    markets = {
        "BTC/USDT": {"taker": 0.001},
        "ETH/USDT": {"taker": None},
        "SOL/USDT": {"taker": -0.0001},
        "XRP/USDT": {"taker": math.nan},
        "ADA/USDT": {"taker": "0.001"},
        "DOT/USDT": {"taker": 0},
    }
    instruments = {s: s.replace("USDT", "USD") for s in [*markets, "NOPE/USDT"]}

    assert market_taker_fees(markets, instruments) == {"BTC/USD": 0.001, "DOT/USD": 0.0}
