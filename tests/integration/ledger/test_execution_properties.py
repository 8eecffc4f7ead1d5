"""Property tests of the execution ledger (FAULTS E7, E19): shuffled, repeated fills and fill reports, on SQLite and
PostgreSQL. Whatever the order and the repeats, positions equal the sum of the distinct fills, and an order's filled
amount only grows."""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal, localcontext

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arb.ledger import IllegalFillUpdate, open_ledger
from arb.model import ExecutionIntent, Fill, IllegalTransition, Leg, Order, OrderStatus, OrderType, Side

from .test_execution import NS, url  # noqa: F401 - `url` is the fixture these tests use

RUN = itertools.count()
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None
)
amounts = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("50"), places=8)
prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=4)
fees = st.decimals(min_value=Decimal("-0.5"), max_value=Decimal("5"), places=6)
raw_fills = st.tuples(
    st.sampled_from(["a", "b"]), st.sampled_from([Side.BUY, Side.SELL]), amounts, prices, fees,
    st.sampled_from(["USDT", "BTC", "BNB"]),
)  # fmt: skip


def expected_positions(fills: list[Fill]) -> dict[tuple[str, str], Decimal]:
    """The invariant, computed the plain way: each asset's signed sum over the distinct fills."""
    out: dict[tuple[str, str], Decimal] = {}
    with localcontext(prec=100):
        for f in fills:
            base, quote = f.symbol.split("/")
            signed = f.amount if f.side == Side.BUY else -f.amount
            for asset, change in ((base, signed), (quote, -signed * f.price), (f.fee_currency, -f.fee)):
                out[(f.venue, asset)] = out.get((f.venue, asset), Decimal(0)) + change
    return out


@SETTINGS
@given(raws=st.lists(raw_fills, min_size=1, max_size=10), data=st.data())
def test_positions_equal_the_distinct_fills_whatever_their_order_and_repeats(
    url: str,  # noqa: F811
    raws: list[tuple[str, Side, Decimal, Decimal, Decimal, str]],
    data: st.DataObject,
) -> None:
    run = next(RUN)
    fills = [
        Fill(
            trade_id=f"t{i}",
            client_id=f"c{i}",
            venue=f"{venue}-{run}",
            symbol="BTC/USDT",
            side=side,
            price=price,
            amount=amount,
            fee=fee,
            fee_currency=currency,
            ts=NS + i,
        )
        for i, (venue, side, amount, price, fee, currency) in enumerate(raws)
    ]
    repeats = data.draw(st.lists(st.sampled_from(fills), max_size=len(fills)))
    stream = data.draw(st.permutations(fills + repeats))

    async def book() -> tuple[list[bool], dict[tuple[str, str], Decimal]]:
        async with open_ledger(url) as ledger:
            store = ledger.execution()
            booked = [await store.book_fill(f) for f in stream]
            venues = {f.venue for f in fills}
            mine = {key: value for key, value in (await store.positions()).items() if key[0] in venues}
            return booked, mine

    booked, positions = asyncio.run(book())

    assert sum(booked) == len(fills)  # every distinct fill once, every repeat refused
    expected = expected_positions(fills)
    assert {k: v for k, v in positions.items() if v} == {k: v for k, v in expected.items() if v}


@SETTINGS
@given(
    amount=amounts,
    fractions=st.lists(st.integers(min_value=0, max_value=8), min_size=1, max_size=12),
)
def test_an_orders_filled_amount_only_grows_whatever_order_the_reports_come_in(
    url: str,  # noqa: F811
    amount: Decimal,
    fractions: list[int],
) -> None:
    run = next(RUN)
    reports = [amount * k / 8 for k in fractions]  # cumulative filled amounts, in eighths of the order
    cid = f"p{run}-0"
    leg = Leg(venue="a", instrument="BTC/USDT", symbol="BTC/USDT", side=Side.BUY, amount=amount, limit_price=Decimal(1))
    intent = ExecutionIntent(
        id=f"p{run}", opportunity_id="o", instrument="BTC/USDT", legs=(leg,), predicted_net_edge_bps=1.0,
        predicted_profit=0.1, ts=NS,
    )  # fmt: skip
    order = Order(
        client_id=cid, venue="a", symbol="BTC/USDT", side=Side.BUY, type=OrderType.LIMIT, amount=amount,
        price=Decimal(1), ts_created=NS,
    )  # fmt: skip

    async def report() -> tuple[Decimal, list[Decimal], int]:
        async with open_ledger(url) as ledger:
            store = ledger.execution()
            await store.write_intent(intent, [order])
            await store.transition(cid, OrderStatus.SENT, NS + 1, detail="create_order")
            refused = 0
            for i, filled in enumerate(reports):
                if filled == 0:
                    continue
                status = OrderStatus.FILLED if filled == amount else OrderStatus.PARTIALLY_FILLED
                try:
                    await store.transition(cid, status, NS + 2 + i, detail="report", filled=filled)
                except (IllegalFillUpdate, IllegalTransition):
                    refused += 1
            record = await store.order(cid)
            assert record is not None
            return record.order.filled, [e.filled for e in await store.order_history(cid)], refused

    filled, history, refused = asyncio.run(report())

    assert filled == max(reports)
    assert history == sorted(history)
    increases = sum(1 for i, r in enumerate(reports) if r > max([Decimal(0), *reports[:i]]))
    assert len(history) == 2 + increases  # created, sent, then one row per report that moved filled up
    assert refused == sum(1 for i, r in enumerate(reports) if 0 < r < max([Decimal(0), *reports[:i]]))
