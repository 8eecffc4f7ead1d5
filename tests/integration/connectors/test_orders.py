"""`CcxtGateway` end to end: the real ccxt binance / okx REST classes, through the gateway, trading on the local
venues over loopback (real HMAC signatures, timestamps, matching against the venue's book, order faults).

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

import ccxt.async_support as ccxt_rest
import pytest
from pydantic import SecretStr

from arb.config import load_settings
from arb.connectors.ccxt_pro import LocalEndpoint
from arb.connectors.orders import CcxtGateway
from arb.connectors.wallets import Credentials, ccxt_rest_factory
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
from arb.sim.venues.binance import BinanceProtocol
from arb.sim.venues.okx import OkxProtocol
from tests.integration.sim.support import binance_venue, sim_venue

KEY, SECRET, PASSPHRASE = "gwKey7f3a91", "gwSecret9c1e55", "gwPass41b2c8"
"""Planted, so a leak anywhere is found by a plain substring search."""
FUNDS = {"USDT": D(100_000), "BTC": D(2)}
SETTINGS = load_settings()
BOTH = pytest.mark.parametrize("name", ["binance", "okx"])
ORDER_PATHS = {"binance": "POST /api/v3/order", "okx": "POST /api/v5/trade/batch-orders"}
BALANCE_PATHS = {"binance": "GET /api/v3/account", "okx": "GET /api/v5/account/balance"}


@asynccontextmanager
async def trading_venue(name: str) -> AsyncIterator[SimVenue]:
    """A still local venue of `name`'s protocol with the test account funded with `FUNDS`."""
    cm = binance_venue(run=False) if name == "binance" else sim_venue("okx", OkxProtocol(), run=False)
    async with cm as venue:
        venue.trading.create_account(KEY, SECRET, passphrase=PASSPHRASE, balances=FUNDS)
        yield venue


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


@BOTH
async def test_an_ioc_buy_fills_across_two_levels_and_the_report_books_each_trade_with_its_id_and_fee(
    name: str,
) -> None:
    async with trading_venue(name) as venue, gateway(venue) as gw:
        (p1, s1), (p2, _) = asks(venue)
        amount = s1 + D("0.001")

        report = await gw.create_order(order(venue, "legA1", amount, p2))

    trades = venue.trading.trades
    assert (report.status, report.filled, report.client_id) == (OrderStatus.FILLED, amount, "legA1")
    assert report.venue_order_id == str(trades[0].order_id)
    assert [(f.trade_id, f.price, f.amount) for f in report.fills] == [(str(t.id), t.price, t.amount) for t in trades]
    assert [(f.price, f.amount) for f in report.fills] == [(p1, s1), (p2, D("0.001"))]
    assert sum(f.fee for f in report.fills) == sum(t.fee for t in trades) > 0
    assert {f.fee_currency for f in report.fills} == {"BTC"}
    assert all(isinstance(f.price, D) and f.side == Side.BUY and f.venue == name for f in report.fills)


@BOTH
async def test_an_ioc_bigger_than_the_book_ends_cancelled_with_what_filled_and_its_fills(name: str) -> None:
    async with trading_venue(name) as venue, gateway(venue) as gw:
        (_, s1), (p2, s2) = asks(venue)

        report = await gw.create_order(order(venue, "thin1", s1 + s2 + D("0.2"), p2))

    assert report.status == OrderStatus.CANCELLED
    assert report.filled == s1 + s2 == sum(f.amount for f in report.fills)
    [venue_order] = venue.trading.orders.values()
    assert (venue_order.status, venue_order.filled) == ("expired", s1 + s2)


@BOTH
async def test_an_order_is_fetched_by_its_client_id_with_the_same_fills(name: str) -> None:
    async with trading_venue(name) as venue, gateway(venue) as gw:
        (p1, _), _ = asks(venue)
        placed = await gw.create_order(order(venue, "fetchMe1", D("0.002"), p1))

        found = await gw.fetch_order("BTC/USDT", "fetchMe1")

    assert found.status == placed.status == OrderStatus.FILLED
    assert (found.venue_order_id, found.filled) == (placed.venue_order_id, D("0.002"))
    assert [f.trade_id for f in found.fills] == [f.trade_id for f in placed.fills]


@BOTH
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


@BOTH
async def test_cancelling_an_order_that_already_filled_reports_it_filled_with_its_fills(name: str) -> None:
    async with trading_venue(name) as venue, gateway(venue) as gw:
        (p1, _), _ = asks(venue)
        placed = await gw.create_order(order(venue, "done1", D("0.001"), p1))

        after = await gw.cancel_order("BTC/USDT", "done1")  # the venue says "unknown order" (FAULTS E6)

    assert (after.status, after.filled) == (OrderStatus.FILLED, D("0.001"))
    assert [f.trade_id for f in after.fills] == [f.trade_id for f in placed.fills]


@BOTH
async def test_an_unknown_client_id_is_order_not_found_on_fetch_and_on_cancel(name: str) -> None:
    async with trading_venue(name) as venue, gateway(venue) as gw:
        with pytest.raises(OrderNotFound, match=name):
            await gw.fetch_order("BTC/USDT", "neverSent1")
        with pytest.raises(OrderNotFound):
            await gw.cancel_order("BTC/USDT", "neverSent1")


async def test_free_balances_are_decimals_as_the_venue_holds_them() -> None:
    async with trading_venue("binance") as venue, gateway(venue) as gw:
        balances = await gw.fetch_balances()

    assert (balances["USDT"], balances["BTC"]) == (FUNDS["USDT"], FUNDS["BTC"])
    assert all(isinstance(v, D) for v in balances.values())


# ------------------------------------------------------------------------------------------------ faults


@BOTH
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


@BOTH
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


@BOTH
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


@BOTH
async def test_a_wrong_secret_is_an_auth_error_sent_once_with_no_retry_and_no_secret_in_it(name: str) -> None:
    wrong = "wrongSecret5d7e"
    async with trading_venue(name) as venue:
        before = sent(venue)
        if name == "okx":  # ccxt's okx signs a call while loading markets: the keys are refused at open
            with pytest.raises(VenueAuthError) as refused:
                async with gateway(venue, secret=wrong):
                    pass
            assert [p for p in paths(venue, before) if "/public/" not in p] == ["GET /api/v5/asset/currencies"]
        else:
            async with gateway(venue, secret=wrong) as gw:
                (p1, _), _ = asks(venue)
                before = sent(venue)
                with pytest.raises(VenueAuthError) as refused:
                    await gw.create_order(order(venue, "auth1", D("0.001"), p1))
                with pytest.raises(VenueAuthError):
                    await gw.fetch_balances()
            assert paths(venue, before) == ["POST /api/v3/order", "GET /api/v3/account"]  # once each: no storm

    assert len(venue.trading.orders) == 0
    for text in (str(refused.value), repr(refused.value)):
        assert wrong not in text
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


@BOTH
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


@BOTH
async def test_twenty_concurrent_orders_on_one_key_all_fill_without_a_timestamp_error(name: str) -> None:
    async with trading_venue(name) as venue, gateway(venue, timeout_s=5.0) as gw:
        (p1, _), _ = asks(venue)

        reports = await asyncio.gather(*(gw.create_order(order(venue, f"conc{i}", D("0.001"), p1)) for i in range(20)))

    assert [r.status for r in reports] == [OrderStatus.FILLED] * 20
    assert sorted(o.client_id for o in venue.trading.orders.values()) == sorted(f"conc{i}" for i in range(20))


# ------------------------------------------------------------------------------------------------ rules before sending


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
        before = sent(venue)

        found = gw.check_order(bad)
        with pytest.raises(OrderRejected, match="refused before sending"):
            await gw.create_order(bad)

    assert found is not None
    assert problem in found
    assert sent(venue) == before


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


# ------------------------------------------------------------------------------------------------ keys and lifecycle


async def test_keys_never_appear_in_logs_at_debug_in_reprs_or_in_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with trading_venue("okx") as venue:
        async with gateway(venue) as gw:
            (p1, _), _ = asks(venue)
            await gw.create_order(order(venue, "leak1", D("0.001"), p1))
            text = repr(gw)
        with pytest.raises(VenueAuthError) as refused:  # refused at open (okx signs a call to load markets)
            async with gateway(venue, secret="wrongSecret5d7e"):
                pass

    logged = caplog.text
    assert "OK-ACCESS-KEY" in logged  # ccxt's DEBUG request lines were captured, headers and all
    for secret in (KEY, SECRET, PASSPHRASE, "wrongSecret5d7e"):
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
