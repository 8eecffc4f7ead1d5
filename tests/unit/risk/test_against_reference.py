"""The fast check and the naive reference (`arb.risk.reference`) decide alike: same approval, same first reason, same
escalation, over random accounts and orders that land on and around every limit (property test)."""

from __future__ import annotations

import math
from collections import deque
from decimal import Decimal
from typing import TypeVar

from hypothesis import event, given, settings
from hypothesis import strategies as st

from arb.model import Side
from arb.risk import Approved, Denied, OrderIntent, OrderRequest, RiskContext, TradingState, check
from arb.risk.checks import HEALTHY, ORDER_RATE_WINDOW_NS
from arb.risk.reference import reference_check

from .support import LIMITS, NOW, SETTINGS

VENUES = ("binance", "okx")
ASSETS = ("BTC", "ETH", "USDT")
# Whole numbers around the limits (1,000 / 2,500 / 5,000 USD, 5 %, 100 USD): exact in float and Decimal, so a
# disagreement is a real difference in the rules, not a rounding tie. Most draws are a sound account and an opening
# order, so that every later limit in the sequence is reached too, not only the first few.
usd = st.integers(0, 5000).map(float)
signed_usd = st.integers(-2000, 2000).map(float)
money = st.integers(0, 1500).map(Decimal)
T = TypeVar("T")


def mostly(usual: T, *rare: T) -> st.SearchStrategy[T]:
    """`usual` eight times in ten, else one of `rare`."""
    return st.integers(0, 9).flatmap(lambda n: st.just(usual) if n < 8 else st.sampled_from(rare))


@st.composite
def requests(draw: st.DrawFn) -> OrderRequest:
    base, quote = draw(st.sampled_from([("BTC", "USDT"), ("ETH", "USDT"), ("ETH", "BTC")]))
    notional = float(draw(st.integers(-1, 1100)))
    if draw(st.integers(0, 30)) == 0:
        notional = draw(st.sampled_from([math.nan, math.inf]))
    return OrderRequest(
        venue=draw(st.sampled_from(VENUES)),
        instrument=f"{base}/USD",
        symbol=f"{base}/{quote}",
        base=base,
        quote=quote,
        side=draw(st.sampled_from(Side)),
        amount=Decimal(draw(st.integers(-1, 1500))),
        price=Decimal(1),
        notional_usd=notional,
        intent=draw(mostly(OrderIntent.OPEN, OrderIntent.HEDGE, OrderIntent.UNWIND, OrderIntent.CANCEL)),
        quote_age_ms=draw(mostly(50.0, None, 999.0, 1000.0, 1001.0, math.nan)),
        execution_id=draw(st.sampled_from(["e1", "e2", "e3", ""])),
        perp=draw(mostly(False, True)),
    )


@st.composite
def contexts(draw: st.DrawFn) -> RiskContext:
    keys = [(v, a) for v in VENUES for a in ASSETS]
    peak = Decimal(draw(mostly(10_000, 0, 1)))
    return RiskContext(
        balances=draw(st.dictionaries(st.sampled_from(keys), money, min_size=4)),
        reserved=draw(st.dictionaries(st.sampled_from(keys), st.integers(0, 1000).map(Decimal))),
        exposure_usd=draw(st.dictionaries(st.sampled_from(ASSETS[:2]), signed_usd)),
        instrument_notional_usd=draw(
            st.dictionaries(st.sampled_from(["BTC/USD", "ETH/USD"]), usd.map(lambda x: x / 2))
        ),
        venue_notional_usd=draw(st.dictionaries(st.sampled_from(VENUES), usd)),
        executions=draw(st.sets(st.sampled_from(["e1", "e2", "e3", "e4"]), max_size=3)),
        venue_state={v: draw(mostly(HEALTHY, "stale")) for v in draw(st.sets(st.sampled_from(VENUES), min_size=1))},
        order_times_ns={
            v: deque(sorted(draw(st.lists(st.integers(NOW - 2 * ORDER_RATE_WINDOW_NS, NOW), max_size=10))))
            for v in VENUES
        },
        realized_pnl_today_usd=draw(mostly(Decimal(0), None, Decimal(-99), Decimal(-100), Decimal(-101))),
        equity_usd=draw(mostly(peak, None, peak - 499, peak - 500, peak - 501)),
        peak_equity_usd=peak,
    )


@settings(max_examples=500, deadline=None)
@given(request=requests(), context=contexts(), state=mostly(TradingState.ACTIVE, *TradingState))
def test_fast_check_and_reference_agree(request: OrderRequest, context: RiskContext, state: TradingState) -> None:
    fast = check(request, context, LIMITS, state=state, now_ns=NOW)
    event(fast.reason.value if isinstance(fast, Denied) else "approved")
    naive = reference_check(request, context, SETTINGS, state=state, now_ns=NOW)

    if isinstance(fast, Approved):
        assert naive is None, naive
    else:
        assert naive == (fast.reason, fast.escalate), fast.detail
