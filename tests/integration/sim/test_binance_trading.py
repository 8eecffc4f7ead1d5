"""The real ccxt `binance` class trading on the local Binance venue over loopback: signed orders matched against the
venue's book, balances, trades, authentication failures, filter failures and every order fault (FAULTS E1-E14).

The market holds still (`run=False`) unless a test moves it, so each expected fill is read off the venue's book."""

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
import pytest

from arb.connectors.urls import point_at_local
from arb.sim.server import SimVenue
from arb.sim.trading import DEFAULT_API_KEY, DEFAULT_SECRET

from .support import binance_venue, eventually

KEY, SECRET = "trader-key", "trader-secret"
FUNDS = {"USDT": D(100_000), "BTC": D(2)}
OPTIONS: dict[str, Any] = {"fetchCurrencies": False, "fetchMargins": False, "maxRetriesOnFailure": 0}


@asynccontextmanager
async def trading_venue() -> AsyncIterator[SimVenue]:
    """A Binance venue whose book holds still, with the test account funded with `FUNDS`."""
    async with binance_venue(run=False) as venue:
        venue.trading.create_account(KEY, SECRET, balances=FUNDS)
        yield venue


@asynccontextmanager
async def trader(venue: SimVenue, *, key: str = KEY, secret: str = SECRET, **config: Any) -> AsyncIterator[Any]:
    """The real ccxt binance REST class with the account's keys, talking to `venue`, markets loaded; always closed."""
    exchange = ccxt_rest.binance({"apiKey": key, "secret": secret, "options": dict(OPTIONS), **config})
    point_at_local(exchange, venue.http_url, venue.ws_url)
    try:
        await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


def asks(venue: SimVenue, n: int = 2) -> list[tuple[D, D]]:
    """The best `n` asks of BTC/USDT as (price, size) Decimals, as the wire shows them."""
    _, levels = venue.book_for_symbol("BTC/USDT").levels(n)
    return [(D(repr(p)), D(repr(s))) for p, s in levels]


def free(venue: SimVenue, asset: str, key: str = KEY) -> D:
    return venue.trading.account(key).balance(asset).free


async def test_an_ioc_limit_buy_fills_across_two_levels_and_moves_balances_by_price_times_amount_and_the_fee() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, s1), (p2, _) = asks(venue)
        amount = s1 + D("0.001")

        order = await exchange.create_order(
            "BTC/USDT", "limit", "buy", float(amount), float(p2), {"timeInForce": "IOC"}
        )
        balance = await exchange.fetch_balance()

    cost = p1 * s1 + p2 * D("0.001")
    fee = (amount * D("0.001")).quantize(D("1e-8"))
    assert (order["status"], order["filled"], order["remaining"]) == ("closed", float(amount), 0.0)
    assert [(t["price"], t["amount"]) for t in order["trades"]] == [(float(p1), float(s1)), (float(p2), 0.001)]
    assert order["cost"] == pytest.approx(float(cost), abs=1e-8)
    assert order["fee"] == {"currency": "BTC", "cost": float(fee)}
    assert balance["USDT"]["free"] == float(FUNDS["USDT"] - cost)
    assert balance["BTC"]["free"] == float(FUNDS["BTC"] + amount - fee)
    assert balance["USDT"]["used"] == 0.0


async def test_an_ioc_bigger_than_the_depth_within_its_price_fills_partially_and_the_rest_expires() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, s1), (p2, s2) = asks(venue)

        order = await exchange.create_order(
            "BTC/USDT", "limit", "buy", float(s1 + s2 + D("0.2")), float(p2), {"timeInForce": "IOC"}
        )

        assert (order["status"], order["filled"]) == ("expired", float(s1 + s2))
        assert order["remaining"] == pytest.approx(0.2)
        assert free(venue, "USDT") == FUNDS["USDT"] - p1 * s1 - p2 * s2


async def test_a_fok_the_book_cannot_fill_whole_is_expired_with_nothing_traded() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (_, s1), (p2, s2) = asks(venue)

        order = await exchange.create_order(
            "BTC/USDT", "limit", "buy", float(s1 + s2 + D("0.2")), float(p2), {"timeInForce": "FOK"}
        )
        trades = await exchange.fetch_my_trades("BTC/USDT")

        assert (order["status"], order["filled"], order["trades"]) == ("expired", 0.0, [])
        assert trades == []
        assert (free(venue, "USDT"), free(venue, "BTC")) == (FUNDS["USDT"], FUNDS["BTC"])


async def test_an_order_is_found_by_its_client_id_and_its_fills_are_my_trades() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, _), _ = asks(venue)
        placed = await exchange.create_order(
            "BTC/USDT", "limit", "buy", 0.001, float(p1), {"timeInForce": "IOC", "clientOrderId": "leg-a-1"}
        )
        again = await exchange.create_order(
            "BTC/USDT", "limit", "buy", 0.001, float(p1), {"timeInForce": "IOC", "clientOrderId": "leg-a-1"}
        )

        found = await exchange.fetch_order(None, "BTC/USDT", {"clientOrderId": "leg-a-1"})
        first = await exchange.fetch_order(placed["id"], "BTC/USDT")
        trades = await exchange.fetch_my_trades("BTC/USDT")

        # A filled order's client id may be used again (Binance: unique among open orders only, FAULTS E4).
        assert (found["id"], found["clientOrderId"], found["status"]) == (again["id"], "leg-a-1", "closed")
        assert (first["id"], first["filled"]) == (placed["id"], 0.001)
        assert [t["order"] for t in trades] == [placed["id"], again["id"]]
        assert [t["id"] for t in trades] == [str(t.id) for t in venue.trading.trades]
        assert all(t["fee"]["currency"] == "BTC" and t["takerOrMaker"] == "taker" for t in trades)


async def test_a_gtc_rests_in_open_orders_with_its_funds_locked_until_it_is_cancelled() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        resting = await exchange.create_order("BTC/USDT", "limit", "buy", 0.01, 60_000)
        open_orders = await exchange.fetch_open_orders("BTC/USDT")
        locked = (await exchange.fetch_balance())["USDT"]["used"]

        cancelled = await exchange.cancel_order(resting["id"], "BTC/USDT")
        balance = await exchange.fetch_balance()
        with pytest.raises(ccxt.OrderNotFound, match="-2011"):
            await exchange.cancel_order(resting["id"], "BTC/USDT")
        with pytest.raises(ccxt.OrderNotFound, match="-2013"):
            await exchange.fetch_order("123", "BTC/USDT")

    assert resting["status"] == "open"
    assert [o["id"] for o in open_orders] == [resting["id"]]
    assert locked == 600.0
    assert cancelled["status"] == "canceled"
    assert (balance["USDT"]["free"], balance["USDT"]["used"]) == (100_000.0, 0.0)


async def test_a_resting_gtc_fills_as_maker_when_the_book_moves_through_it() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, _), _ = asks(venue)
        price = p1 - D("0.50")
        resting = await exchange.create_order("BTC/USDT", "limit", "buy", 0.002, float(price))
        assert resting["status"] == "open"

        venue.market.inject("binance", "BTC/USD", bps=-20, duration_ms=60_000)  # its asks now sit below the bid

        filled = await exchange.fetch_order(resting["id"], "BTC/USDT")
        [trade] = await exchange.fetch_my_trades("BTC/USDT")

    assert (filled["status"], filled["filled"], filled["average"]) == ("closed", 0.002, float(price))
    assert (trade["price"], trade["takerOrMaker"]) == (float(price), "maker")


async def test_a_wrong_signature_an_unknown_key_and_a_missing_key_are_authentication_errors() -> None:
    async with trading_venue() as venue:
        async with trader(venue, secret="not-the-secret") as exchange:
            with pytest.raises(ccxt.AuthenticationError, match="-1022"):
                await exchange.fetch_balance()
        async with trader(venue, key="nobody") as exchange:
            with pytest.raises(ccxt.AuthenticationError, match="-2015"):
                await exchange.create_order("BTC/USDT", "market", "buy", 0.001)
        async with aiohttp.ClientSession() as session, session.get(f"{venue.http_url}/api/v3/account") as r:
            assert (r.status, await r.json()) == (401, {"code": -2014, "msg": "API-key format invalid."})
        assert venue.trading.orders == {}


@pytest.mark.parametrize(("offset_ms", "message"), [(20_000, "outside of the recvWindow"), (-5_000, "ahead")])
async def test_a_stale_or_early_timestamp_is_an_invalid_nonce(offset_ms: int, message: str) -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        exchange.options["timeDifference"] = offset_ms  # ccxt signs with its clock minus this

        with pytest.raises(ccxt.InvalidNonce, match=message):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001)
        exchange.options["timeDifference"] = 0
        assert (await exchange.fetch_balance())["BTC"]["free"] == 2.0
        assert venue.trading.orders == {}


async def test_a_recv_window_within_its_bounds_admits_an_older_timestamp() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        exchange.options["timeDifference"] = 20_000
        exchange.options["recvWindow"] = 30_000

        assert (await exchange.fetch_balance())["BTC"]["free"] == 2.0


@pytest.mark.parametrize(
    ("quantity", "price", "error", "message"),
    [
        ("0.001", "65000.005", ccxt.InvalidOrder, "Filter failure: PRICE_FILTER"),
        ("0.0010001", "65000", ccxt.InvalidOrder, "Filter failure: LOT_SIZE"),
        ("0.00005", "65000", ccxt.BadRequest, "Filter failure: NOTIONAL"),  # 3.25 USDT < 5
    ],
)
async def test_an_order_off_the_tick_off_the_step_or_below_min_notional_is_refused_with_binances_filter_failure(
    quantity: str, price: str, error: type[Exception], message: str
) -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        with pytest.raises(error, match=message):  # sent raw: ccxt's create_order would round them first
            await exchange.privatePostOrder(
                {
                    "symbol": "BTCUSDT",
                    "side": "BUY",
                    "type": "LIMIT",
                    "timeInForce": "GTC",
                    "quantity": quantity,
                    "price": price,
                }
            )
        assert venue.trading.orders == {}


async def test_exchange_info_advertises_exactly_the_rules_orders_are_checked_against() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        market = exchange.market("BTC/USDT")
        rules = venue.trading.rules("BTC/USDT")

        assert market["precision"]["price"] == float(rules.tick)
        assert market["precision"]["amount"] == float(rules.step)
        assert market["limits"]["cost"]["min"] == float(rules.min_notional) == 5.0
        assert market["limits"]["amount"]["min"] == float(rules.min_qty)
        assert (market["limits"]["amount"]["max"], market["limits"]["cost"]["max"]) == (
            float(rules.max_qty),
            float(rules.max_notional),
        )


async def test_insufficient_funds_and_a_crossing_post_only_order_are_refused() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, _), _ = asks(venue)

        with pytest.raises(ccxt.InsufficientFunds):
            await exchange.create_order("BTC/USDT", "limit", "buy", 2, float(p1))  # 130,000 USDT > 100,000
        with pytest.raises(ccxt.InsufficientFunds):
            await exchange.create_order("BTC/USDT", "market", "sell", 3)
        with pytest.raises(ccxt.OrderImmediatelyFillable):
            await exchange.create_order("BTC/USDT", "limit", "buy", 0.001, float(p1), {"postOnly": True})
        maker = await exchange.create_order("BTC/USDT", "limit", "buy", 0.001, float(p1 - 1), {"postOnly": True})

        assert maker["status"] == "open"
        assert [o.type for o in venue.trading.orders.values()] == ["limit"]


# ---------------------------------------------------------------------------------------------------- order faults


async def test_a_reject_fault_refuses_the_order_and_places_nothing() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        venue.trading.faults.add("reject", symbol="BTC/USDT", side="buy")

        with pytest.raises(ccxt.MarketClosed, match="Market is closed"):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001)
        sold = await exchange.create_order("BTC/USDT", "market", "sell", 0.001)  # the other side is not armed

        assert [o.id for o in venue.trading.orders.values()] == [int(sold["id"])]
        assert venue.trading.faults.injected == {"reject": 1}


async def test_an_ack_delay_places_the_order_at_once_and_answers_later() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        venue.trading.faults.add("ack_delay", seconds=0.6)
        started = time.monotonic()

        pending = asyncio.ensure_future(exchange.create_order("BTC/USDT", "market", "buy", 0.001))
        await eventually(lambda: len(venue.trading.orders) == 1, timeout_s=0.5)
        assert not pending.done()
        order = await pending

        assert time.monotonic() - started >= 0.6
        assert (order["status"], order["filled"]) == ("closed", 0.001)


async def test_a_ghost_order_times_out_at_the_client_yet_exists_filled_when_fetched_by_client_id() -> None:
    async with trading_venue() as venue, trader(venue, timeout=500) as exchange:
        venue.trading.faults.add("ghost", hold_s=1.5)

        with pytest.raises(ccxt.RequestTimeout):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001, None, {"clientOrderId": "ghost-1"})
        found = await exchange.fetch_order(None, "BTC/USDT", {"clientOrderId": "ghost-1"})

        assert (found["status"], found["filled"]) == ("closed", 0.001)
        assert [o.fault for o in venue.trading.orders.values()] == ["ghost"]  # exactly one order


async def test_partial_then_cancel_fills_a_fraction_of_a_gtc_and_cancels_the_rest() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, _), _ = asks(venue)
        venue.trading.faults.add("partial_then_cancel", fraction=0.6)

        order = await exchange.create_order("BTC/USDT", "limit", "buy", 0.01, float(p1 * D("1.01")))
        balance = await exchange.fetch_balance()

        assert (order["status"], order["filled"], order["remaining"]) == ("canceled", 0.006, 0.004)
        assert balance["USDT"]["used"] == 0.0


async def test_a_rate_limit_fault_is_a_429_with_retry_after_and_no_order() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        venue.trading.faults.add("rate_limit", retry_after_s=2)

        with pytest.raises(ccxt.DDoSProtection, match="429"):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001)

        assert exchange.last_response_headers["Retry-After"] == "2"
        assert venue.trading.orders == {}


@pytest.mark.parametrize("placed", [True, False])
async def test_a_disconnect_cuts_the_request_with_or_without_the_order_placed(placed: bool) -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        venue.trading.faults.add("disconnect", placed=placed)

        with pytest.raises(ccxt.NetworkError):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001, None, {"clientOrderId": "cut-1"})
        orders = await exchange.fetch_orders("BTC/USDT")

        assert [(o["clientOrderId"], o["status"]) for o in orders] == ([("cut-1", "closed")] if placed else [])


# ---------------------------------------------------------------------------------------------------- control


async def test_accounts_faults_and_orders_are_controlled_over_http() -> None:
    async with trading_venue() as venue, aiohttp.ClientSession() as http:
        base = venue.http_url
        async with http.post(
            f"{base}/_sim/accounts", json={"api_key": "http-key", "secret": "http-secret", "balances": {"USDT": "1000"}}
        ) as r:
            assert r.status == 200
        async with http.post(f"{base}/_sim/order-faults", json={"fault": "reject", "side": "sell"}) as r:
            assert (await r.json())["armed"][0]["fault"] == "reject"
        async with http.post(f"{base}/_sim/order-faults", json={"fault": "nope"}) as r:
            assert r.status == 422
        async with trader(venue, key="http-key", secret="http-secret") as exchange:
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001)
        async with http.get(f"{base}/_sim/accounts/http-key") as r:
            account = await r.json()
        async with http.get(f"{base}/_sim/accounts/nobody") as r:
            assert r.status == 404
        async with http.get(f"{base}/_sim/orders", params={"api_key": "http-key"}) as r:
            [order] = (await r.json())["orders"]

    assert (D(account["balances"]["BTC"]["free"]), D(account["balances"]["BTC"]["locked"])) == (D("0.000999"), 0)
    assert "http-secret" not in str(account)
    assert (order["symbol"], order["status"], D(order["filled"])) == ("BTC/USDT", "filled", D("0.001"))


async def test_the_default_account_trades_with_the_module_credentials() -> None:
    async with trading_venue() as venue, trader(venue, key=DEFAULT_API_KEY, secret=DEFAULT_SECRET) as exchange:
        balance = await exchange.fetch_balance()

        assert balance["USDT"]["free"] == 1_000_000.0
        assert balance["BTC"]["free"] > 0
