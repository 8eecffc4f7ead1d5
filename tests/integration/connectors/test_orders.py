"""`CcxtGateway` end to end: the real ccxt binance / okx / bybit / kraken / coinbase REST classes, through the
gateway, trading on the local venues over loopback (real signatures, timestamps and nonces, matching against the
venue's book, order faults). What every venue must do alike is parametrized over all five (`ALL`); the rest runs
where that venue's behaviour is the point.

Each test reads the venue's own state (`venue.trading`, `venue.requests`) to check what the gateway said: that a
timed-out order is found and is the only one (FAULTS E2, E3), that nothing reaches a venue that asked for quiet (E10,
E13), that a refused key is not hammered, and that a bad order never leaves (E14). The market holds still
(`run=False`), so every expected fill is read off the venue's book.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal as D
from typing import Any

import ccxt
import ccxt.async_support as ccxt_rest
import pytest
from pydantic import SecretStr

from arb.config import load_settings
from arb.connectors.ccxt_pro import LocalEndpoint
from arb.connectors.order_dialects import COINBASE, kraken_cl_ord_id
from arb.connectors.orders import CcxtGateway
from arb.connectors.urls import point_at_local
from arb.connectors.wallets import Credentials, ccxt_rest_factory
from arb.executor.ids import client_id as executor_client_id
from arb.executor.venue import (
    OrderNotFound,
    OrderRejected,
    RequestTimedOut,
    VenueAuthError,
    VenueRateLimited,
    VenueUnavailable,
)
from arb.model import Order, OrderStatus, OrderType, Side, TimeInForce
from arb.sim.server import SimVenue
from arb.sim.venues import PROTOCOLS
from arb.sim.venues.binance import BinanceProtocol
from arb.sim.venues.coinbase_trading import ids_for
from arb.sim.venues.kraken_trading import txid
from tests.integration.sim.support import sim_venue

KEY, SECRET, PASSPHRASE = "gwKey7f3a91", "gwSecret9c1e55Ab", "gwPass41b2c8"
"""Planted, so a leak anywhere is found by a plain substring search. The secrets are valid base64 (Kraken's are)."""
WRONG_SECRET = "wrongSecret5d7e0"
FUNDS = {"USDT": D(100_000), "BTC": D(2)}
SETTINGS = load_settings()
BOTH = pytest.mark.parametrize("name", ["binance", "okx"])
ALL = pytest.mark.parametrize("name", ["binance", "okx", "bybit", "kraken", "coinbase"])
ORDER_PATHS = {
    "binance": "POST /api/v3/order",
    "okx": "POST /api/v5/trade/batch-orders",
    "bybit": "POST /v5/order/create",
    "kraken": "POST /0/private/AddOrder",
    "coinbase": "POST /api/v3/brokerage/orders",
}
BALANCE_PATHS = {
    "binance": "GET /api/v3/account",
    "okx": "GET /api/v5/account/balance",
    "bybit": "GET /v5/account/wallet-balance",
    "kraken": "POST /0/private/BalanceEx",
    "coinbase": "GET /api/v3/brokerage/accounts",
}
BUY_FEE_IN = {"binance": "BTC", "okx": "BTC", "bybit": "BTC", "kraken": "USDT", "coinbase": "USDT"}
"""The asset a buy's fee is charged in: the one received, or the quote on venues that charge every fee in it."""


@asynccontextmanager
async def trading_venue(name: str) -> AsyncIterator[SimVenue]:
    """A still local venue of `name`'s protocol with the test account funded with `FUNDS`."""
    async with sim_venue(name, PROTOCOLS[name](), run=False) as venue:
        venue.trading.create_account(KEY, SECRET, passphrase=PASSPHRASE, balances=FUNDS)
        yield venue


def wire_ids(venue: SimVenue) -> tuple[Callable[[int], str], Callable[[int], str]]:
    """How the venue writes the core's order and trade numbers on the wire (what a report's ids must be)."""
    if venue.protocol.name == "kraken":
        return (lambda n: txid("O", n)), (lambda n: txid("T", n))
    if venue.protocol.name == "coinbase":
        to_uuid, _ = ids_for(venue.venue_id)
        return (lambda n: to_uuid("order", n)), (lambda n: to_uuid("trade", n))
    return str, str


@asynccontextmanager
async def gateway(
    venue: SimVenue,
    *,
    secret: str = SECRET,
    timeout_s: float = 3.0,
    factory: Callable[[str, dict[str, Any]], Any] = ccxt_rest_factory,
) -> AsyncIterator[CcxtGateway]:
    creds = Credentials(SecretStr(KEY), SecretStr(secret), SecretStr(PASSPHRASE))
    endpoint = LocalEndpoint(venue.http_url, venue.ws_url)
    async with CcxtGateway(
        venue.venue_id, SETTINGS.venues[venue.venue_id], creds, endpoint=endpoint, timeout_s=timeout_s, factory=factory
    ) as gw:
        yield gw


def order(
    venue: SimVenue,
    client_id: str,
    amount: D,
    price: D | None,
    *,
    side: Side = Side.BUY,
    tif: TimeInForce = TimeInForce.IOC,
    symbol: str = "BTC/USDT",
) -> Order:
    kind = OrderType.LIMIT if price is not None else OrderType.MARKET
    return Order(
        client_id=client_id,
        venue=venue.venue_id,
        symbol=symbol,
        side=side,
        type=kind,
        amount=amount,
        price=price,
        time_in_force=tif,
    )


def asks(venue: SimVenue, n: int = 2) -> list[tuple[D, D]]:
    _, levels = venue.book_for_symbol("BTC/USDT").levels(n)
    return [(D(repr(p)), D(repr(s))) for p, s in levels]


def sent(venue: SimVenue) -> int:
    """REST requests the venue has received so far (control endpoints excluded)."""
    return len(venue.requests)


def paths(venue: SimVenue, since: int = 0) -> list[str]:
    """`METHOD /path` of every REST request the venue received (from the `since`-th on)."""
    return [f"{method} {path.partition('?')[0]}" for _, method, path in list(venue.requests)[since:]]


# ------------------------------------------------------------------------------------------------ orders and fills


@ALL
async def test_an_ioc_buy_fills_across_two_levels_and_the_report_books_each_trade_with_its_id_and_fee(
    name: str,
) -> None:
    async with trading_venue(name) as venue, gateway(venue) as gw:
        (p1, s1), (p2, _) = asks(venue)
        amount = s1 + D("0.001")

        report = await gw.create_order(order(venue, "legA1", amount, p2))

    trades = venue.trading.trades
    order_wire, trade_wire = wire_ids(venue)
    assert (report.status, report.filled, report.client_id) == (OrderStatus.FILLED, amount, "legA1")
    assert report.venue_order_id == order_wire(trades[0].order_id)
    assert sorted((f.trade_id, f.price, f.amount) for f in report.fills) == [
        (trade_wire(t.id), t.price, t.amount) for t in trades
    ]
    assert sorted((f.price, f.amount) for f in report.fills) == [(p1, s1), (p2, D("0.001"))]
    assert sum(f.fee for f in report.fills) == sum(t.fee for t in trades) > 0
    assert {f.fee_currency for f in report.fills} == {BUY_FEE_IN[name]}
    assert all(isinstance(f.price, D) and f.side == Side.BUY and f.venue == name for f in report.fills)
    assert all(f.client_id == "legA1" for f in report.fills)


@ALL
async def test_an_ioc_bigger_than_the_book_ends_cancelled_with_what_filled_and_its_fills(name: str) -> None:
    async with trading_venue(name) as venue, gateway(venue) as gw:
        (_, s1), (p2, s2) = asks(venue)

        report = await gw.create_order(order(venue, "thin1", s1 + s2 + D("0.2"), p2))

    assert report.status == OrderStatus.CANCELLED
    assert report.filled == s1 + s2 == sum(f.amount for f in report.fills)
    [venue_order] = venue.trading.orders.values()
    assert (venue_order.status, venue_order.filled) == ("expired", s1 + s2)


@ALL
async def test_an_order_is_fetched_by_its_client_id_with_the_same_fills(name: str) -> None:
    async with trading_venue(name) as venue, gateway(venue) as gw:
        (p1, _), _ = asks(venue)
        placed = await gw.create_order(order(venue, "fetchMe1", D("0.002"), p1))

        found = await gw.fetch_order("BTC/USDT", "fetchMe1")

    assert found.status == placed.status == OrderStatus.FILLED
    assert (found.venue_order_id, found.filled) == (placed.venue_order_id, D("0.002"))
    assert [f.trade_id for f in found.fills] == [f.trade_id for f in placed.fills]


@ALL
async def test_a_resting_gtc_is_acked_and_cancelling_it_reports_it_cancelled_with_its_funds_freed(name: str) -> None:
    async with trading_venue(name) as venue, gateway(venue) as gw:
        resting = await gw.create_order(order(venue, "rest1", D("0.01"), D(60_000), tif=TimeInForce.GTC))
        locked = venue.trading.account(KEY).balance("USDT").locked

        cancelled = await gw.cancel_order("BTC/USDT", "rest1")
        balances = await gw.fetch_balances()

    assert (resting.status, resting.filled, locked) == (OrderStatus.ACKED, D(0), D(600))
    assert (cancelled.status, cancelled.filled, cancelled.venue_order_id) == (
        OrderStatus.CANCELLED,
        D(0),
        resting.venue_order_id,
    )
    assert balances["USDT"] == FUNDS["USDT"]
    assert [o.status for o in venue.trading.orders.values()] == ["canceled"]


@ALL
async def test_cancelling_an_order_that_already_filled_reports_it_filled_with_its_fills(name: str) -> None:
    async with trading_venue(name) as venue, gateway(venue) as gw:
        (p1, _), _ = asks(venue)
        placed = await gw.create_order(order(venue, "done1", D("0.001"), p1))

        after = await gw.cancel_order("BTC/USDT", "done1")  # the venue says "unknown order" (FAULTS E6)

    assert (after.status, after.filled) == (OrderStatus.FILLED, D("0.001"))
    assert [f.trade_id for f in after.fills] == [f.trade_id for f in placed.fills]


@ALL
async def test_an_unknown_client_id_is_order_not_found_on_fetch_and_on_cancel(name: str) -> None:
    async with trading_venue(name) as venue, gateway(venue) as gw:
        with pytest.raises(OrderNotFound, match=name):
            await gw.fetch_order("BTC/USDT", "neverSent1")
        with pytest.raises(OrderNotFound):
            await gw.cancel_order("BTC/USDT", "neverSent1")


@ALL
async def test_free_balances_are_decimals_as_the_venue_holds_them_locked_funds_excluded(name: str) -> None:
    async with trading_venue(name) as venue, gateway(venue) as gw:
        await gw.create_order(order(venue, "lock1", D("0.01"), D(60_000), tif=TimeInForce.GTC))
        before = sent(venue)

        balances = await gw.fetch_balances()

    assert (balances["USDT"], balances["BTC"]) == (FUNDS["USDT"] - 600, FUNDS["BTC"])
    assert all(isinstance(v, D) for v in balances.values())
    assert paths(venue, before) == [BALANCE_PATHS[name]]


@pytest.mark.parametrize(("filled", "reason"), [(True, "ORDER_IS_FULLY_FILLED"), (False, "UNKNOWN_CANCEL_ORDER")])
async def test_a_coinbase_cancel_the_venue_refuses_for_a_filled_or_unknown_order_is_order_not_found(
    filled: bool, reason: str
) -> None:
    async with trading_venue("coinbase") as venue, gateway(venue) as gw:
        (p1, _), _ = asks(venue)
        placed = await gw.create_order(order(venue, "cbDone1", D("0.001"), p1))
        to_uuid, _ = ids_for(venue.venue_id)
        target = placed.venue_order_id if filled else to_uuid("order", 1)
        cancel = COINBASE.cancel_by_id
        assert target is not None
        assert cancel is not None
        exchange = ccxt_rest.coinbase({"apiKey": KEY, "secret": SECRET})
        point_at_local(exchange, venue.http_url, venue.ws_url)
        try:
            await exchange.load_markets()
            # what the gateway's cancel meets when the order filled between its lookup and its cancel (FAULTS E6)
            with pytest.raises(ccxt.OrderNotFound, match=reason):
                await cancel(exchange, "BTC/USDT", target)
        finally:
            await exchange.close()

    assert (placed.status, [o.status for o in venue.trading.orders.values()]) == (OrderStatus.FILLED, ["filled"])


# ------------------------------------------------------------------------------------------------ faults


@ALL
async def test_a_ghost_order_times_out_within_the_timeout_and_is_then_found_filled_and_alone(name: str) -> None:
    async with trading_venue(name) as venue, gateway(venue, timeout_s=0.5) as gw:
        (p1, _), _ = asks(venue)
        venue.trading.faults.add("ghost", hold_s=2.0)
        started = time.monotonic()

        with pytest.raises(RequestTimedOut):
            await gw.create_order(order(venue, "ghost1", D("0.003"), p1))
        waited = time.monotonic() - started
        found = await gw.fetch_order("BTC/USDT", "ghost1")

    assert waited < 0.5 + 0.3
    assert (found.status, found.filled, len(found.fills)) == (OrderStatus.FILLED, D("0.003"), 1)
    assert len(venue.trading.orders) == 1  # nothing was resent (FAULTS E3)
    assert paths(venue).count(ORDER_PATHS[name]) == 1


@ALL
@pytest.mark.parametrize("placed", [False, True])
async def test_a_connection_cut_mid_request_is_a_timeout_and_the_fetch_tells_whether_the_order_exists(
    name: str, placed: bool
) -> None:
    async with trading_venue(name) as venue, gateway(venue) as gw:
        (p1, _), _ = asks(venue)
        venue.trading.faults.add("disconnect", placed=placed)

        with pytest.raises(RequestTimedOut, match="connection lost"):
            await gw.create_order(order(venue, "cut1", D("0.001"), p1))
        if placed:
            assert (await gw.fetch_order("BTC/USDT", "cut1")).status == OrderStatus.FILLED
        else:
            with pytest.raises(OrderNotFound):  # FAULTS E2: never placed, and never resent
                await gw.fetch_order("BTC/USDT", "cut1")

    assert len(venue.trading.orders) == int(placed)


@ALL
async def test_after_a_429_no_call_reaches_the_venue_until_retry_after_has_passed(name: str) -> None:
    async with trading_venue(name) as venue, gateway(venue) as gw:
        (p1, _), _ = asks(venue)
        venue.trading.faults.add("rate_limit", retry_after_s=1)

        with pytest.raises(VenueRateLimited) as limited:
            await gw.create_order(order(venue, "rl1", D("0.001"), p1))
        refused_at, before = time.monotonic(), sent(venue)
        for call in (
            gw.fetch_balances(),
            gw.fetch_order("BTC/USDT", "rl1"),
            gw.cancel_order("BTC/USDT", "rl1"),
            gw.create_order(order(venue, "rl2", D("0.001"), p1)),
        ):
            with pytest.raises(VenueRateLimited) as again:
                await call
            assert 0 < again.value.retry_after_s <= 1.0
        assert sent(venue) == before  # FAULTS E10: zero calls during Retry-After
        await asyncio.sleep(max(0.0, 1.02 - (time.monotonic() - refused_at)))
        report = await gw.create_order(order(venue, "rl3", D("0.001"), p1))

    assert limited.value.retry_after_s == pytest.approx(1.0, abs=0.05)
    assert report.status == OrderStatus.FILLED
    assert [o.client_id for o in venue.trading.orders.values()] == ["rl3"]


async def test_a_venue_that_bans_on_calls_during_retry_after_never_gets_to_ban() -> None:
    async with trading_venue("binance") as venue, gateway(venue) as gw:
        venue.faults.rate_limit(status=429, retry_after_s=1, escalate=True, ban_s=60)

        with pytest.raises(VenueRateLimited):
            await gw.fetch_balances()
        for _ in range(5):
            with pytest.raises(VenueRateLimited):
                await gw.fetch_balances()
        await asyncio.sleep(1.05)
        balances = await gw.fetch_balances()

    assert balances["BTC"] == FUNDS["BTC"]
    assert venue.faults.injected["http_429"] == 1
    assert venue.faults.injected["http_418"] == 0  # Binance's IP ban for calling during Retry-After never came


async def test_a_418_ban_keeps_the_gateway_quiet_for_the_whole_ban() -> None:
    async with trading_venue("binance") as venue, gateway(venue) as gw:
        venue.faults.rate_limit(status=418, retry_after_s=30)

        with pytest.raises(VenueRateLimited) as banned:
            await gw.fetch_balances()
        before = sent(venue)
        with pytest.raises(VenueRateLimited) as again:
            await gw.fetch_balances()

    assert banned.value.retry_after_s == pytest.approx(30, abs=0.1)
    assert 29 < again.value.retry_after_s <= 30
    assert sent(venue) == before


REFUSED_AT_OPEN = {
    "okx": "GET /api/v5/asset/currencies",
    "bybit": "GET /v5/asset/coin/query-info",
    "coinbase": "GET /api/v3/brokerage/transaction_summary",
}
"""The signed call ccxt makes while loading markets, where a venue's keys are refused at open."""


@ALL
async def test_a_wrong_secret_is_an_auth_error_sent_once_with_no_retry_and_no_secret_in_it(name: str) -> None:
    async with trading_venue(name) as venue:
        before = sent(venue)
        if name in REFUSED_AT_OPEN:
            with pytest.raises(VenueAuthError) as refused:
                async with gateway(venue, secret=WRONG_SECRET):
                    pass
            assert paths(venue, before)[-1] == REFUSED_AT_OPEN[name]  # the refusal ended the open: no storm
            assert paths(venue, before).count(REFUSED_AT_OPEN[name]) == 1
        else:  # the keys are first used by an order (Kraken: "EAPI:Invalid signature", a plain error to ccxt)
            async with gateway(venue, secret=WRONG_SECRET) as gw:
                (p1, _), _ = asks(venue)
                before = sent(venue)
                with pytest.raises(VenueAuthError) as refused:
                    await gw.create_order(order(venue, "auth1", D("0.001"), p1))
                with pytest.raises(VenueAuthError):
                    await gw.fetch_balances()
            assert paths(venue, before) == [ORDER_PATHS[name], BALANCE_PATHS[name]]  # once each: no storm

    assert len(venue.trading.orders) == 0
    for text in (str(refused.value), repr(refused.value)):
        assert WRONG_SECRET not in text
        assert KEY not in text
        assert PASSPHRASE not in text


def skewed(skew_ms: int) -> Callable[[str, dict[str, Any]], Any]:
    """A factory of the real ccxt class whose clock runs `skew_ms` ahead (a host clock that drifted)."""

    def make(ccxt_id: str, config: dict[str, Any]) -> Any:
        base = getattr(ccxt_rest, ccxt_id)

        class Skewed(base):  # type: ignore[misc, valid-type]
            def milliseconds(self) -> int:
                return int(super().milliseconds()) + skew_ms

        return Skewed(config)

    return make


@BOTH
async def test_a_clock_ahead_of_the_venue_is_resynced_and_a_read_succeeds_on_its_one_retry(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="arb.connectors.orders")
    async with trading_venue(name) as venue, gateway(venue, factory=skewed(40_000)) as gw:
        before = sent(venue)

        balances = await gw.fetch_balances()  # OKX already resynced at open (its markets need a signed call)

    assert balances["BTC"] == FUNDS["BTC"]
    skews = [r.getMessage() for r in caplog.records if "gateway.clock_skew" in r.getMessage()]
    assert len(skews) == 1
    offset_ms = int(skews[0].rpartition("offset_ms=")[2])
    assert 39_000 < offset_ms < 41_000
    if name == "binance":
        assert paths(venue, before) == ["GET /api/v3/account", "GET /api/v3/time", "GET /api/v3/account"]


async def test_a_write_refused_for_its_timestamp_is_not_resent_but_the_next_one_goes_through() -> None:
    async with trading_venue("binance") as venue, gateway(venue, factory=skewed(3_000)) as gw:
        (p1, _), _ = asks(venue)

        with pytest.raises(VenueAuthError, match="timestamp refused"):
            await gw.create_order(order(venue, "skew1", D("0.001"), p1))
        assert paths(venue)[-2:] == ["POST /api/v3/order", "GET /api/v3/time"]
        assert len(venue.trading.orders) == 0
        report = await gw.create_order(order(venue, "skew2", D("0.001"), p1))

    assert report.status == OrderStatus.FILLED


@ALL
async def test_maintenance_makes_the_venue_unavailable_and_it_is_left_alone_until_its_retry_after(name: str) -> None:
    async with trading_venue(name) as venue, gateway(venue) as gw:
        (p1, _), _ = asks(venue)
        venue.faults.maintenance(seconds=1.0)

        with pytest.raises(VenueUnavailable):
            await gw.fetch_balances()
        refused_at, before = time.monotonic(), sent(venue)
        with pytest.raises(VenueUnavailable):
            await gw.create_order(order(venue, "maint1", D("0.001"), p1))
        assert sent(venue) == before  # no retry loop against a venue in maintenance (FAULTS E13)
        await asyncio.sleep(max(0.0, 1.05 - (time.monotonic() - refused_at)))  # Retry-After: 1
        report = await gw.create_order(order(venue, "maint2", D("0.001"), p1))

    assert report.status == OrderStatus.FILLED
    assert venue.faults.injected["http_503"] == 1


@pytest.mark.parametrize(
    ("name", "count"),
    # as many as ccxt's pacing of each venue's reads lets through within the timeout (Bybit 10 order reads a second,
    # Kraken a burst of 15 queries); every order is read back, with its trades, after it is placed
    [("binance", 20), ("okx", 20), ("coinbase", 20), ("bybit", 8), ("kraken", 4)],
)
async def test_concurrent_orders_on_one_key_all_fill_without_a_timestamp_or_nonce_error(name: str, count: int) -> None:
    async with trading_venue(name) as venue, gateway(venue, timeout_s=5.0) as gw:
        (p1, _), _ = asks(venue)

        reports = await asyncio.gather(
            *(gw.create_order(order(venue, f"conc{i}", D("0.001"), p1)) for i in range(count))
        )

    assert [r.status for r in reports] == [OrderStatus.FILLED] * count
    assert sorted(o.client_id for o in venue.trading.orders.values()) == sorted(f"conc{i}" for i in range(count))


async def test_concurrent_orders_on_one_kraken_key_go_one_at_a_time_so_no_nonce_arrives_out_of_order() -> None:
    async with trading_venue("kraken") as venue, gateway(venue, timeout_s=5.0) as gw:
        count = 14  # resting orders: one read each after the create, within Kraken's burst of 15 queries

        reports = await asyncio.gather(
            *(
                gw.create_order(order(venue, f"nonce{i}", D("0.001"), D(60_000), tif=TimeInForce.GTC))
                for i in range(count)
            )
        )

    assert [r.status for r in reports] == [OrderStatus.ACKED] * count
    assert len(venue.trading.orders) == count


# ------------------------------------------------------------------------------------------------ rules before sending


async def refused_before_sending(venue: SimVenue, gw: CcxtGateway, bad: Order) -> str | None:
    """The gateway's own check of `bad`, after asserting that sending it is refused and nothing reaches the venue."""
    before = sent(venue)
    found = gw.check_order(bad)
    with pytest.raises(OrderRejected, match="refused before sending"):
        await gw.create_order(bad)
    assert sent(venue) == before
    return found


@BOTH
@pytest.mark.parametrize(
    ("amount", "price", "symbol", "client_id", "problem"),
    [
        ("0.001", "65000.005", "BTC/USDT", "ok1", "off the tick 0.01"),
        ("0.0010001", "65000", "BTC/USDT", "ok1", "off the step 0.00001"),
        ("0.001", "65000", "DOGE/USDT", "ok1", "does not list 'DOGE/USDT'"),
        ("0.001", "65000", "BTC/USDT", "bad id with spaces", "not a valid"),
        ("0", "65000", "BTC/USDT", "ok1", "positive"),
    ],
)
async def test_an_order_the_venue_would_refuse_is_caught_before_anything_is_sent(
    name: str, amount: str, price: str, symbol: str, client_id: str, problem: str
) -> None:
    async with trading_venue(name) as venue, gateway(venue) as gw:
        bad = order(venue, client_id, D(amount), D(price), symbol=symbol)

        found = await refused_before_sending(venue, gw, bad)

    assert found is not None
    assert problem in found


async def test_a_notional_below_the_venue_minimum_is_caught_and_precision_helpers_round_as_ccxt_does() -> None:
    async with trading_venue("binance") as venue, gateway(venue) as gw:
        small = order(venue, "small1", D("0.00005"), D(65_000))  # 3.25 USDT < 5

        problem = gw.check_order(small)
        market = gw.market("BTC/USDT")

        assert gw.amount_to_precision("BTC/USDT", D("0.0010001")) == D("0.001")
        assert gw.amount_to_precision("BTC/USDT", D("0.000001")) == 0
        assert gw.price_to_precision("BTC/USDT", D("65000.004")) == D("65000.00")
        assert gw.check_order(order(venue, "fine1", D("0.001"), D(65_000))) is None
        with pytest.raises(KeyError, match="DOGE/USDT"):
            gw.market("DOGE/USDT")

    assert problem is not None
    assert "notional 3.25" in problem
    assert "minimum 5" in problem
    assert (market.amount_step, market.price_tick, market.min_notional) == (D("0.00001"), D("0.01"), D(5))


async def test_an_executor_client_id_too_long_for_kraken_goes_as_a_short_uuid_yet_is_found_and_cancelled() -> None:
    ours = executor_client_id("ex" + "a" * 20, 0)  # 29 characters: Kraken's free-text cl_ord_id takes 18
    async with trading_venue("kraken") as venue, gateway(venue) as gw:
        resting = await gw.create_order(order(venue, ours, D("0.01"), D(60_000), tif=TimeInForce.GTC))
        found = await gw.fetch_order("BTC/USDT", ours)
        cancelled = await gw.cancel_order("BTC/USDT", ours)

    [venue_order] = venue.trading.orders.values()
    assert venue_order.client_id == kraken_cl_ord_id(ours)
    assert len(venue_order.client_id) == 32
    assert int(venue_order.client_id, 16) >= 0
    assert (resting.client_id, resting.status) == (ours, OrderStatus.ACKED)
    assert (found.client_id, found.venue_order_id) == (ours, resting.venue_order_id)
    assert (cancelled.client_id, cancelled.status, venue_order.status) == (ours, OrderStatus.CANCELLED, "canceled")


@pytest.mark.parametrize(
    ("name", "client_id", "problem"),
    [
        ("bybit", "a" * 37, "1-36 of"),
        ("bybit", "has.dot", "1-36 of"),
        ("okx", "has-dash", "1-32 letters and digits"),
        ("binance", "a" * 37, "1-36 of"),
    ],
)
async def test_a_client_id_the_venue_would_refuse_is_caught_before_sending(
    name: str, client_id: str, problem: str
) -> None:
    async with trading_venue(name) as venue, gateway(venue) as gw:
        (p1, _), _ = asks(venue)
        bad = order(venue, client_id, D("0.001"), p1)

        found = await refused_before_sending(venue, gw, bad)

    assert found is not None
    assert problem in found


@pytest.mark.parametrize("client_id", ["x" * 18, "6d1b345e-2821-40e2-ad83-4ecb18a06876", "with space"])
async def test_kraken_takes_a_cl_ord_id_as_itself_when_it_can_and_as_a_short_uuid_otherwise(client_id: str) -> None:
    async with trading_venue("kraken") as venue, gateway(venue) as gw:
        (p1, _), _ = asks(venue)

        report = await gw.create_order(order(venue, client_id, D("0.001"), p1))

    [venue_order] = venue.trading.orders.values()
    sent_as = client_id if " " not in client_id else kraken_cl_ord_id(client_id)
    assert (report.client_id, report.status, venue_order.client_id) == (client_id, OrderStatus.FILLED, sent_as)
    assert len(sent_as) in (18, 36, 32)


# ------------------------------------------------------------------------------------------------ keys and lifecycle


async def test_keys_never_appear_in_logs_at_debug_in_reprs_or_in_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with trading_venue("okx") as venue:
        async with gateway(venue) as gw:
            (p1, _), _ = asks(venue)
            await gw.create_order(order(venue, "leak1", D("0.001"), p1))
            text = repr(gw)
        with pytest.raises(VenueAuthError) as refused:  # refused at open (okx signs a call to load markets)
            async with gateway(venue, secret=WRONG_SECRET):
                pass

    logged = caplog.text
    assert "OK-ACCESS-KEY" in logged  # ccxt's DEBUG request lines were captured, headers and all
    for secret in (KEY, SECRET, PASSPHRASE, WRONG_SECRET):
        assert secret not in logged
        assert secret not in text
        assert secret not in str(refused.value)


async def test_a_gateway_opens_once_and_refuses_calls_once_closed() -> None:
    async with trading_venue("binance") as venue:
        async with gateway(venue) as gw:
            with pytest.raises(RuntimeError, match="already opened"):
                await gw.__aenter__()
        with pytest.raises(RuntimeError, match="closed"):
            await gw.fetch_balances()
        with pytest.raises(RuntimeError, match="closed"):
            gw.market("BTC/USDT")


async def test_a_venue_served_in_another_exchanges_format_is_traded_with_that_exchanges_class() -> None:
    async with sim_venue("gate", BinanceProtocol(), run=False) as venue:
        venue.trading.create_account(KEY, SECRET, balances=FUNDS)
        creds = Credentials(SecretStr(KEY), SecretStr(SECRET))
        endpoint = LocalEndpoint(venue.http_url, venue.ws_url)
        async with CcxtGateway("gate", SETTINGS.venues["gate"], creds, endpoint=endpoint, ccxt_id="binance") as gw:
            (p1, _), _ = asks(venue)
            report = await gw.create_order(order(venue, "gate1", D("0.001"), p1))

    assert (gw.venue, gw.ccxt_id, report.status) == ("gate", "binance", OrderStatus.FILLED)
    assert {f.venue for f in report.fills} == {"gate"}
