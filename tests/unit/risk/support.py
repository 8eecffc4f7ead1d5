"""A calm account and a plain order, each test changing only what it is about."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from arb.config.schema import RiskSettings
from arb.model import Side
from arb.risk import OrderIntent, OrderRequest, RiskContext, RiskLimits

NOW = 1_700_000_000_000_000_000
"""Fixed 'now' (UTC ns) for the pure check."""
SETTINGS = RiskSettings()
"""The shipped defaults: order 1,000 / instrument 2,500 / venue 5,000 / exposure 2,500 USD, 2 executions, 1,000 ms
quotes, 5 orders/s, daily loss 100 USD, drawdown 5 %, reducing tolerance 5 %."""
LIMITS = RiskLimits.from_settings(SETTINGS)


def context(**changes: Any) -> RiskContext:
    """Healthy binance and okx, 10,000 USDT and 1 BTC on each, nothing open, PnL known and inside every limit."""
    ctx = RiskContext(
        balances={
            ("binance", "USDT"): Decimal("10000"),
            ("binance", "BTC"): Decimal("1"),
            ("okx", "USDT"): Decimal("10000"),
            ("okx", "BTC"): Decimal("1"),
        },
        venue_state={"binance": "connected", "okx": "connected"},
        realized_pnl_today_usd=Decimal("0"),
        equity_usd=Decimal("10000"),
        peak_equity_usd=Decimal("10000"),
    )
    for name, value in changes.items():
        setattr(ctx, name, value)
    return ctx


def order(**changes: Any) -> OrderRequest:
    """Buy 0.01 BTC at 60,000 USDT on binance (600 USD), priced off a 50 ms old quote, a new execution e1."""
    base = OrderRequest(
        venue="binance",
        instrument="BTC/USD",
        symbol="BTC/USDT",
        base="BTC",
        quote="USDT",
        side=Side.BUY,
        amount=Decimal("0.01"),
        price=Decimal("60000"),
        notional_usd=600.0,
        intent=OrderIntent.OPEN,
        quote_age_ms=50.0,
        execution_id="e1",
        client_id="c1",
    )
    return msgspec.structs.replace(base, **changes)


def sized(notional_usd: float, **changes: Any) -> OrderRequest:
    """`order` with amount/price consistent with `notional_usd` (price 1 USDT, amount = notional)."""
    return order(amount=Decimal(str(notional_usd)), price=Decimal(1), notional_usd=notional_usd, **changes)
