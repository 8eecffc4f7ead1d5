"""`PaperGateway` against a real grid mirror (real Redis): paper orders walk the mirror's depth as a venue's matching
engine would walk its book. IOC takes every level up to its limit and cancels the rest, FOK fills whole or not at
all, the taker fee is charged in the quote, balances move by exactly what the fills say, and a whole paper
execution through the `Executor` leaves the ledger equal to the paper balances.

Books are written to the grid as quotes with depth (the connectors' format), read back by a mirror with depth 5.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path

import pytest

from arb.config.schema import GridSettings
from arb.executor.engine import Executor
from arb.executor.paper import PaperGateway
from arb.executor.prices import GridPrices
from arb.executor.venue import Market, OrderNotFound, OrderRejected
from arb.grid import GridLayout, PriceGrid
from arb.grid.mirror import GridMirror
from arb.hedging.hedger import Hedger
from arb.ledger import open_ledger
from arb.model import Opportunity, Order, OrderStatus, OrderType, Quote, Side, TimeInForce
from arb.risk import RiskContext, RiskEngine
from arb.risk.ledger import LedgerEventSink, LedgerStateStore

from .support import make_settings

LAYOUT = GridLayout.from_lists(["BTC/USD"], ["binance", "okx"], 60_000)
FEE = D("0.001")
MARKET = Market(
    symbol="BTC/USDT", base="BTC", quote="USDT", amount_step=D("0.00001"), price_tick=D("0.01"),
    min_amount=D("0.00001"), min_notional=D(5), taker_fee=FEE,
)  # fmt: skip
ASKS = ((65000.0, 0.01), (65001.0, 0.02), (65003.0, 0.05))
BIDS = ((64999.0, 0.01), (64998.0, 0.02), (64995.0, 0.05))
FUNDS = {"USDT": D(100_000), "BTC": D(1)}
OKX_SHIFT = 200.0
"""OKX's book sits this much above Binance's: ~31 bps gross, ~11 bps net of both fees."""


def book(venue: str, *, shift: float = 0.0, sequence: int = 1) -> Quote:
    """A quote with three levels a side, every price moved by `shift`."""
    bids = tuple((p + shift, q) for p, q in BIDS)
    asks = tuple((p + shift, q) for p, q in ASKS)
    now = time.time_ns()
    return Quote(
        venue=venue, instrument="BTC/USD", bid=bids[0][0], bid_size=bids[0][1], ask=asks[0][0],
        ask_size=asks[0][1], ts_exchange=now, ts_recv=now, sequence=sequence, bids=bids, asks=asks,
    )  # fmt: skip


@pytest.fixture
async def mirror(redis_url: str) -> AsyncIterator[GridMirror]:
    async with PriceGrid.from_url(redis_url, LAYOUT, GridSettings(socket_timeout_s=1.0)) as grid:
        await grid.write([book("binance"), book("okx", shift=OKX_SHIFT)])
        m = grid.mirror(depth=5)
        await m.rebuild()
        yield m


def gateway(mirror: GridMirror, venue: str = "binance") -> PaperGateway:
    return PaperGateway(
        venue, mirror=mirror, markets={"BTC/USDT": MARKET}, instruments={"BTC/USDT": "BTC/USD"}, balances=FUNDS
    )


def order(
    client_id: str, side: Side, amount: str, price: str, tif: TimeInForce = TimeInForce.IOC, venue: str = "binance"
) -> Order:
    return Order(
        client_id=client_id, venue=venue, symbol="BTC/USDT", side=side, type=OrderType.LIMIT, amount=D(amount),
        price=D(price), time_in_force=tif,
    )  # fmt: skip


async def test_an_ioc_buy_walks_the_levels_up_to_its_limit_and_cancels_the_rest(mirror: GridMirror) -> None:
    gw = gateway(mirror)

    report = await gw.create_order(order("p1", Side.BUY, "0.05", "65001"))

    cost = D("65000") * D("0.01") + D("65001") * D("0.02")
    fee = cost * FEE
    assert (report.status, report.filled) == (OrderStatus.CANCELLED, D("0.03"))  # the third level is above the limit
    assert [(f.price, f.amount) for f in report.fills] == [(D(65000), D("0.01")), (D(65001), D("0.02"))]
    assert report.average_price == cost / D("0.03")
    assert sum(f.fee for f in report.fills) == fee
    assert {f.fee_currency for f in report.fills} == {"USDT"}
    assert len({f.trade_id for f in report.fills}) == 2
    assert gw.balances == {"USDT": FUNDS["USDT"] - cost - fee, "BTC": FUNDS["BTC"] + D("0.03")}


async def test_an_ioc_sell_takes_the_bids_down_to_its_limit(mirror: GridMirror) -> None:
    gw = gateway(mirror)

    report = await gw.create_order(order("p2", Side.SELL, "0.02", "64990"))

    proceeds = D("64999") * D("0.01") + D("64998") * D("0.01")
    assert (report.status, report.filled) == (OrderStatus.FILLED, D("0.02"))
    assert gw.balances == {"USDT": FUNDS["USDT"] + proceeds - proceeds * FEE, "BTC": FUNDS["BTC"] - D("0.02")}


async def test_a_fok_fills_whole_or_not_at_all(mirror: GridMirror) -> None:
    gw = gateway(mirror)

    missed = await gw.create_order(order("p3", Side.BUY, "0.05", "65001", TimeInForce.FOK))  # 0.03 within the limit
    balances_after_miss = dict(gw.balances)
    whole = await gw.create_order(order("p4", Side.BUY, "0.08", "65003", TimeInForce.FOK))

    assert (missed.status, missed.filled, missed.fills) == (OrderStatus.CANCELLED, D(0), ())
    assert balances_after_miss == FUNDS
    assert (whole.status, whole.filled, len(whole.fills)) == (OrderStatus.FILLED, D("0.08"), 3)


async def test_an_order_beyond_the_balance_is_refused_and_nothing_moves(mirror: GridMirror) -> None:
    gw = PaperGateway(
        "binance", mirror=mirror, markets={"BTC/USDT": MARKET}, instruments={"BTC/USDT": "BTC/USD"},
        balances={"USDT": D(100), "BTC": D("0.001")},
    )  # fmt: skip

    with pytest.raises(OrderRejected, match="insufficient USDT"):
        await gw.create_order(order("p5", Side.BUY, "0.01", "65000"))
    with pytest.raises(OrderRejected, match="insufficient BTC"):
        await gw.create_order(order("p6", Side.SELL, "0.01", "64999"))

    assert gw.balances == {"USDT": D(100), "BTC": D("0.001")}
    with pytest.raises(OrderNotFound):
        await gw.fetch_order("BTC/USDT", "p5")


@pytest.mark.parametrize(
    ("amount", "price", "tif", "problem"),
    [
        ("0.000015", "65000", TimeInForce.IOC, "step"),
        ("0.01", "65000.005", TimeInForce.IOC, "tick"),
        ("0.00005", "65000", TimeInForce.IOC, "notional"),
        ("0.01", "65000", TimeInForce.GTC, "IOC/FOK"),
    ],
)
async def test_an_order_off_the_rules_is_refused_before_it_touches_the_book(
    mirror: GridMirror, amount: str, price: str, tif: TimeInForce, problem: str
) -> None:
    gw = gateway(mirror)
    bad = order("p7", Side.BUY, amount, price, tif)

    assert problem in (gw.check_order(bad) or "")
    with pytest.raises(OrderRejected, match=problem):
        await gw.create_order(bad)
    assert gw.balances == FUNDS


async def test_an_order_is_found_by_client_id_and_its_client_id_cannot_be_reused(mirror: GridMirror) -> None:
    gw = gateway(mirror)
    first = await gw.create_order(order("p8", Side.BUY, "0.01", "65000"))

    assert await gw.fetch_order("BTC/USDT", "p8") == first
    assert await gw.cancel_order("BTC/USDT", "p8") == first  # IOC: already final
    with pytest.raises(OrderRejected, match="duplicate"):
        await gw.create_order(order("p8", Side.BUY, "0.01", "65000"))
    assert gw.balances["BTC"] == FUNDS["BTC"] + D("0.01")


async def test_a_paper_execution_books_the_same_money_in_the_ledger_as_the_paper_balances_moved(
    mirror: GridMirror, tmp_path: Path
) -> None:
    settings = make_settings()
    gateways = {v: gateway(mirror, v) for v in ("binance", "okx")}
    prices = GridPrices(mirror)
    opp = Opportunity(
        id="paper-1", instrument="BTC/USD", buy_venue="binance", sell_venue="okx", quote_currency="USDT", size=0.01,
        best_ask_buy=65000.0, best_bid_sell=65199.0, vwap_buy=65000.0, vwap_sell=65199.0,
        gross_spread=199 / 65000, fee_buy=0.001, fee_sell=0.001, gas=0.0, haircut=0.0, slippage=0.0,
        net_edge=199 / 65000 - 0.002, expected_profit=0.0, liquidity_score=1.0, execution_time_s=0.1,
        risk_factor=1.0, priority=1.0, buy_quote_age_ms=1.0, sell_quote_age_ms=1.0,
    )  # fmt: skip
    async with open_ledger(f"sqlite+aiosqlite:///{tmp_path}/paper.db") as ledger:
        store = ledger.execution()
        async with RiskEngine(settings.risk, LedgerStateStore(store), LedgerEventSink(store)) as risk:
            context = RiskContext(
                venue_state={"binance": "connected", "okx": "connected"}, realized_pnl_today_usd=D(0),
                equity_usd=D(1_000_000), peak_equity_usd=D(1_000_000),
            )  # fmt: skip
            hedger = Hedger(settings, gateways=gateways, prices=prices, risk=risk, context=context)
            executor = Executor(
                settings, gateways=gateways, store=store, risk=risk, context=context, prices=prices, hedger=hedger
            )
            await executor.start()

            out = await executor.execute(opp)

            positions = await store.positions()
    assert out.status == "done", out.reason
    assert out.bought == out.sold == D("0.01")
    for venue, gw in gateways.items():
        for asset in ("BTC", "USDT"):
            assert gw.balances[asset] - FUNDS[asset] == positions[(venue, asset)]
    assert out.realized_pnl_usd is not None
    assert out.realized_pnl_usd > 0
