"""The real ccxt `okx` class trading on the local OKX venue over loopback: signed orders matched against the venue's
book, balances, fills, authentication failures, order rejections (sCode) and every order fault (FAULTS E1-E14).

OKX answers a new order with its ids only, so each test fetches the order to see how it filled. The market holds still
(`run=False`) unless a test moves it, so each expected fill is read off the venue's book."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal as D
from typing import Any

import aiohttp
import ccxt
import ccxt.async_support as ccxt_rest
import orjson
import pytest

from arb.connectors.urls import point_at_local
from arb.sim.server import SimVenue
from arb.sim.trading import DEFAULT_API_KEY, DEFAULT_PASSPHRASE, DEFAULT_SECRET
from arb.sim.venues.okx import OkxProtocol

from .support import eventually, sim_venue

KEY, SECRET, PASSPHRASE = "okx-trader", "okx-secret", "okx-passphrase"
FUNDS = {"USDT": D(100_000), "BTC": D(2)}


@asynccontextmanager
async def trading_venue() -> AsyncIterator[SimVenue]:
    """An OKX venue whose book holds still, with the test account funded with `FUNDS`."""
    async with sim_venue("okx", OkxProtocol(), run=False) as venue:
        venue.trading.create_account(KEY, SECRET, passphrase=PASSPHRASE, balances=FUNDS)
        yield venue


@asynccontextmanager
async def trader(
    venue: SimVenue, *, key: str = KEY, secret: str = SECRET, password: str = PASSPHRASE, **config: Any
) -> AsyncIterator[Any]:
    """The real ccxt okx REST class with the account's keys, talking to `venue`, markets loaded; always closed."""
    exchange = ccxt_rest.okx(
        {"apiKey": key, "secret": secret, "password": password, "options": {"maxRetriesOnFailure": 0}, **config}
    )
    point_at_local(exchange, venue.http_url, venue.ws_url)
    try:
        await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


async def placed(exchange: Any, *args: Any, **kw: Any) -> dict[str, Any]:
    """Create an order and fetch it (OKX's answer to a new order carries its ids only)."""
    ack = await exchange.create_order(*args, **kw)
    assert ack["status"] is None
    order: dict[str, Any] = await exchange.fetch_order(ack["id"], args[0])
    return order


def asks(venue: SimVenue, n: int = 2) -> list[tuple[D, D]]:
    _, levels = venue.book_for_symbol("BTC/USDT").levels(n)
    return [(D(repr(p)), D(repr(s))) for p, s in levels]


async def test_an_ioc_buy_fills_across_two_levels_and_moves_balances_by_price_times_amount_and_the_fee() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, s1), (p2, _) = asks(venue)
        amount = s1 + D("0.001")

        order = await placed(exchange, "BTC/USDT", "limit", "buy", float(amount), float(p2), {"timeInForce": "IOC"})
        balance = await exchange.fetch_balance()
        fills = await exchange.fetch_my_trades("BTC/USDT")

    cost = p1 * s1 + p2 * D("0.001")
    fee = (amount * D("0.001")).quantize(D("1e-8"))
    assert (order["status"], order["filled"], order["timeInForce"]) == ("closed", float(amount), "IOC")
    assert order["average"] == pytest.approx(float(cost / amount))
    assert order["fee"] == {"currency": "BTC", "cost": float(fee)}
    assert sorted((t["price"], t["amount"]) for t in fills) == [(float(p1), float(s1)), (float(p2), 0.001)]
    assert balance["USDT"]["free"] == float(FUNDS["USDT"] - cost)
    assert balance["BTC"]["free"] == float(FUNDS["BTC"] + amount - fee)


async def test_an_ioc_bigger_than_the_depth_within_its_price_fills_partially_and_the_rest_is_cancelled() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (_, s1), (p2, s2) = asks(venue)

        order = await placed(
            exchange, "BTC/USDT", "limit", "buy", float(s1 + s2 + D("0.2")), float(p2), {"timeInForce": "IOC"}
        )

    assert (order["status"], order["filled"]) == ("canceled", float(s1 + s2))
    assert order["info"]["cancelSource"] == "14"


async def test_a_fok_the_book_cannot_fill_whole_is_cancelled_with_nothing_traded() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (_, s1), (p2, s2) = asks(venue)

        order = await placed(
            exchange, "BTC/USDT", "limit", "buy", float(s1 + s2 + D("0.2")), float(p2), {"timeInForce": "FOK"}
        )
        fills = await exchange.fetch_my_trades("BTC/USDT")

    assert (order["status"], order["filled"], order["timeInForce"]) == ("canceled", 0.0, "FOK")
    assert order["info"]["cancelSource"] == "13"
    assert fills == []
    assert venue.trading.account(KEY).balance("USDT").free == FUNDS["USDT"]


async def test_an_order_is_found_by_its_client_id_and_its_fills_are_my_trades() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, _), _ = asks(venue)
        first = await placed(exchange, "BTC/USDT", "limit", "buy", 0.001, float(p1), {"clientOrderId": "legA1"})
        again = await placed(exchange, "BTC/USDT", "limit", "buy", 0.001, float(p1), {"clientOrderId": "legA1"})

        found = await exchange.fetch_order(None, "BTC/USDT", {"clientOrderId": "legA1"})
        fills = await exchange.fetch_my_trades("BTC/USDT")

    # A filled order's clOrdId may be used again; a lookup by it finds the newest (OKX docs, FAULTS E4).
    assert (found["id"], found["clientOrderId"], found["status"]) == (again["id"], "legA1", "closed")
    assert first["status"] == "closed"
    assert sorted(t["order"] for t in fills) == sorted([first["id"], again["id"]])
    assert all(t["takerOrMaker"] == "taker" and t["fee"]["currency"] == "BTC" for t in fills)


async def test_a_gtc_rests_in_open_orders_with_its_funds_frozen_until_it_is_cancelled() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        resting = await placed(exchange, "BTC/USDT", "limit", "buy", 0.01, 60_000)
        open_orders = await exchange.fetch_open_orders("BTC/USDT")
        frozen = (await exchange.fetch_balance({"ccy": "USDT"}))["USDT"]

        await exchange.cancel_order(resting["id"], "BTC/USDT")
        cancelled = await exchange.fetch_order(resting["id"], "BTC/USDT")
        with pytest.raises(ccxt.OrderNotFound, match="51400"):
            await exchange.cancel_order(resting["id"], "BTC/USDT")
        with pytest.raises(ccxt.OrderNotFound, match="51603"):
            await exchange.fetch_order("123", "BTC/USDT")
        closed = await exchange.fetch_canceled_orders("BTC/USDT")

    assert resting["status"] == "open"
    assert [o["id"] for o in open_orders] == [resting["id"]]
    assert (frozen["free"], frozen["total"]) == (99_400.0, 100_000.0)
    assert (cancelled["status"], cancelled["info"]["cancelSource"]) == ("canceled", "1")
    assert [o["id"] for o in closed] == [resting["id"]]


async def test_a_resting_gtc_fills_as_maker_when_the_book_moves_through_it() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, _), _ = asks(venue)
        price = p1 - D("0.50")
        resting = await placed(exchange, "BTC/USDT", "limit", "buy", 0.002, float(price))

        venue.market.inject("okx", "BTC/USD", bps=-20, duration_ms=60_000)  # its asks now sit below the bid

        filled = await exchange.fetch_order(resting["id"], "BTC/USDT")
        [fill] = await exchange.fetch_my_trades("BTC/USDT")

    assert (resting["status"], filled["status"], filled["average"]) == ("open", "closed", float(price))
    assert (fill["takerOrMaker"], fill["info"]["feeRate"]) == ("maker", "-0.0008")


@pytest.mark.parametrize(
    ("credential", "value", "code"),
    [("secret", "wrong", "50113"), ("password", "wrong", "50105"), ("apiKey", "nobody", "50111")],
)
async def test_a_wrong_signature_passphrase_or_key_is_an_authentication_error(
    credential: str, value: str, code: str
) -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        setattr(exchange, credential, value)  # after load_markets, which reads the signed currency list

        with pytest.raises(ccxt.AuthenticationError, match=code):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001)

        assert venue.trading.orders == {}


async def test_a_request_without_the_access_headers_is_refused_naming_the_first_missing_one() -> None:
    async with (
        trading_venue() as venue,
        aiohttp.ClientSession() as session,
        session.get(f"{venue.http_url}/api/v5/account/balance", headers={"OK-ACCESS-KEY": KEY}) as r,
    ):
        assert (r.status, await r.json()) == (
            401,
            {"code": "50106", "msg": 'Request header "OK-ACCESS-SIGN" cannot be empty.', "data": []},
        )


@pytest.mark.parametrize("offset_ms", [40_000, -40_000])
async def test_a_timestamp_more_than_30_s_off_is_expired_and_ccxt_raises_invalid_nonce(offset_ms: int) -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        exchange.options["timeDifference"] = offset_ms  # ccxt signs with its clock minus this

        with pytest.raises(ccxt.InvalidNonce, match="50102"):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001)
        exchange.options["timeDifference"] = 20_000  # within 30 s: accepted
        assert (await exchange.fetch_balance())["BTC"]["free"] == 2.0
        assert venue.trading.orders == {}


@pytest.mark.parametrize(
    ("sz", "px", "error", "code"),
    [
        ("0.001", "65000.001", ccxt.BadRequest, "51000"),  # px off the tick
        ("0.000015", "65000", ccxt.InvalidOrder, "51121"),  # sz off the lot
        ("0.000001", "65000", ccxt.InvalidOrder, "51020"),  # sz below minSz
    ],
)
async def test_an_order_off_the_tick_off_the_lot_or_below_the_minimum_is_refused_with_okxs_scode(
    sz: str, px: str, error: type[Exception], code: str
) -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        with pytest.raises(error, match=code):  # sent raw: ccxt's create_order would round them first
            await exchange.privatePostTradeOrder(
                {"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "limit", "sz": sz, "px": px}
            )
        assert venue.trading.orders == {}


async def test_the_instruments_list_shows_exactly_the_rules_orders_are_checked_against() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        market = exchange.market("BTC/USDT")
        rules = venue.trading.rules("BTC/USDT")

        assert D(market["info"]["tickSz"]) == rules.tick
        assert D(market["info"]["lotSz"]) == rules.step
        assert D(market["info"]["minSz"]) == rules.min_qty
        assert D(market["info"]["maxLmtSz"]) == rules.max_qty
        assert D(market["info"]["maxLmtAmt"]) == rules.max_notional


async def test_insufficient_funds_is_refused_and_a_crossing_post_only_order_is_cancelled_at_once() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, _), _ = asks(venue)

        with pytest.raises(ccxt.InsufficientFunds, match="Insufficient USDT balance"):
            await exchange.create_order("BTC/USDT", "limit", "buy", 2, float(p1))
        with pytest.raises(ccxt.InsufficientFunds, match="Insufficient BTC balance"):
            await exchange.create_order("BTC/USDT", "market", "sell", 3)
        taker = await placed(exchange, "BTC/USDT", "limit", "buy", 0.001, float(p1), {"postOnly": True})

        assert (taker["status"], taker["filled"], taker["info"]["cancelSource"]) == ("canceled", 0.0, "31")


async def test_a_market_buy_by_quote_amount_spends_about_that_much() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        order = await placed(
            exchange,
            "BTC/USDT",
            "market",
            "buy",
            1000,
            None,
            {"tgtCcy": "quote_ccy", "createMarketBuyOrderRequiresPrice": False},
        )

        assert order["status"] == "closed"
        assert 999 < order["cost"] <= 1000
        assert order["info"]["sz"] == "1000"


async def test_a_batch_with_one_bad_order_is_answered_partly_failed_and_places_the_good_one() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        good = {
            "instId": "BTC-USDT",
            "tdMode": "cash",
            "side": "buy",
            "ordType": "market",
            "sz": "0.001",
            "tgtCcy": "base_ccy",
            "clOrdId": "good1",
        }
        bad = {**good, "ordType": "limit", "px": "65000", "sz": "100", "clOrdId": "bad1"}

        answer = await exchange.privatePostTradeBatchOrders([good, bad])

        assert answer["code"] == "2"
        assert [(r["clOrdId"], r["sCode"]) for r in answer["data"]] == [("good1", "0"), ("bad1", "51008")]
        assert [o.client_id for o in venue.trading.orders.values()] == ["good1"]


async def test_the_single_order_endpoint_places_like_the_batch_one() -> None:
    async with trading_venue() as venue, trader(venue, options={"createOrder": "privatePostTradeOrder"}) as exchange:
        order = await placed(exchange, "BTC/USDT", "market", "buy", 0.001)

        assert (order["status"], order["filled"]) == ("closed", 0.001)
        assert venue.stats["POST /api/v5/trade/order"] == 1


# ---------------------------------------------------------------------------------------------------- order faults


async def test_a_reject_fault_refuses_the_order_with_a_price_limit_scode_and_places_nothing() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        venue.trading.faults.add("reject", side="buy")

        with pytest.raises(ccxt.InvalidOrder, match="51006"):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001)
        sold = await placed(exchange, "BTC/USDT", "market", "sell", 0.001)

        assert [str(o.id) for o in venue.trading.orders.values()] == [sold["id"]]


async def test_an_ack_delay_places_the_order_at_once_and_answers_later() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        venue.trading.faults.add("ack_delay", seconds=0.6)
        started = time.monotonic()

        pending = asyncio.ensure_future(exchange.create_order("BTC/USDT", "market", "buy", 0.001))
        await eventually(lambda: len(venue.trading.orders) == 1, timeout_s=0.5)
        assert not pending.done()
        ack = await pending

        assert time.monotonic() - started >= 0.6
        assert ack["id"] == str(next(iter(venue.trading.orders)))


async def test_a_ghost_order_times_out_at_the_client_yet_exists_filled_when_fetched_by_client_id() -> None:
    async with trading_venue() as venue, trader(venue, timeout=500) as exchange:
        venue.trading.faults.add("ghost", hold_s=1.5)

        with pytest.raises(ccxt.RequestTimeout):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001, None, {"clientOrderId": "ghost1"})
        found = await exchange.fetch_order(None, "BTC/USDT", {"clientOrderId": "ghost1"})

        assert (found["status"], found["filled"]) == ("closed", 0.001)
        assert [o.fault for o in venue.trading.orders.values()] == ["ghost"]  # exactly one order


async def test_partial_then_cancel_fills_a_fraction_of_a_gtc_and_cancels_the_rest() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, _), _ = asks(venue)
        venue.trading.faults.add("partial_then_cancel", fraction=0.6)

        order = await placed(exchange, "BTC/USDT", "limit", "buy", 0.01, float(p1 * D("1.01")))

        assert (order["status"], order["filled"], order["info"]["cancelSource"]) == ("canceled", 0.006, "0")
        assert venue.trading.account(KEY).balance("USDT").locked == 0


async def test_a_rate_limit_fault_is_okxs_50011_with_retry_after_and_no_order() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        venue.trading.faults.add("rate_limit", retry_after_s=2)

        with pytest.raises(ccxt.RateLimitExceeded, match="50011"):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001)

        assert exchange.last_response_headers["Retry-After"] == "2"
        assert venue.trading.orders == {}


@pytest.mark.parametrize("was_placed", [True, False])
async def test_a_disconnect_cuts_the_request_with_or_without_the_order_placed(was_placed: bool) -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        venue.trading.faults.add("disconnect", placed=was_placed)

        with pytest.raises(ccxt.NetworkError):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001, None, {"clientOrderId": "cut1"})
        if was_placed:
            found = await exchange.fetch_order(None, "BTC/USDT", {"clientOrderId": "cut1"})
            assert found["status"] == "closed"
        else:
            with pytest.raises(ccxt.OrderNotFound):
                await exchange.fetch_order(None, "BTC/USDT", {"clientOrderId": "cut1"})


async def test_the_default_account_trades_with_the_module_credentials() -> None:
    async with (
        trading_venue() as venue,
        trader(venue, key=DEFAULT_API_KEY, secret=DEFAULT_SECRET, password=DEFAULT_PASSPHRASE) as exchange,
    ):
        balance = await exchange.fetch_balance()

        assert balance["USDT"]["free"] == 1_000_000.0
        assert orjson.dumps(balance["info"]).decode().count(DEFAULT_SECRET) == 0
