"""The real ccxt `kraken` class trading on the local Kraken venue over loopback: signed orders matched against the
venue's book, balances, trades, authentication and nonce failures, order refusals and every order fault (FAULTS
E1-E14).

Kraken answers a new order with its description and txid only, so each test fetches the order to see how it filled.
Kraken charges every fee in the quote currency. The market holds still (`run=False`) unless a test moves it, so each
expected fill is read off the venue's book."""

from __future__ import annotations

import asyncio
import base64
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
from arb.sim.trading import DEFAULT_API_KEY, DEFAULT_SECRET
from arb.sim.venues.kraken import KrakenProtocol

from .support import eventually, sim_venue

KEY, SECRET = "kraken-trader", base64.b64encode(b"kraken-trader-secret-bytes").decode()
FUNDS = {"USDT": D(100_000), "BTC": D(2)}
TAKER, MAKER = D("0.004"), D("0.0025")


@asynccontextmanager
async def trading_venue() -> AsyncIterator[SimVenue]:
    """A Kraken venue whose book holds still, with the test account funded with `FUNDS`."""
    async with sim_venue("kraken", KrakenProtocol(), run=False) as venue:
        venue.trading.create_account(KEY, SECRET, balances=FUNDS)
        yield venue


@asynccontextmanager
async def trader(venue: SimVenue, *, key: str = KEY, secret: str = SECRET, **config: Any) -> AsyncIterator[Any]:
    """The real ccxt kraken REST class with the account's keys, talking to `venue`, markets loaded; always closed."""
    options = {"maxRetriesOnFailure": 0, **config.pop("options", {})}
    # ccxt spaces kraken's calls a second apart; off here so each test is not mostly waiting (nonces still rise).
    exchange = ccxt_rest.kraken(
        {"apiKey": key, "secret": secret, "enableRateLimit": False, "options": options, **config}
    )
    point_at_local(exchange, venue.http_url, venue.ws_url)
    try:
        await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


async def placed(exchange: Any, *args: Any, **kw: Any) -> dict[str, Any]:
    """Create an order and fetch it (Kraken's answer to a new order carries its description and txid only)."""
    ack = await exchange.create_order(*args, **kw)
    assert ack["status"] is None
    order: dict[str, Any] = await exchange.fetch_order(ack["id"], args[0])
    return order


def asks(venue: SimVenue, n: int = 2) -> list[tuple[D, D]]:
    _, levels = venue.book_for_symbol("BTC/USDT").levels(n)
    return [(D(repr(p)), D(repr(s))) for p, s in levels]


def fee(cost: D, rate: D = TAKER) -> D:
    return (cost * rate).quantize(D("1e-8"))


async def test_an_ioc_buy_fills_across_two_levels_and_pays_cost_plus_the_fee_in_quote() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, s1), (p2, _) = asks(venue)
        amount = s1 + D("0.001")

        order = await placed(exchange, "BTC/USDT", "limit", "buy", float(amount), float(p2), {"timeInForce": "IOC"})
        balance = await exchange.fetch_balance()
        fills = await exchange.fetch_my_trades("BTC/USDT")

    cost = p1 * s1 + p2 * D("0.001")
    fees = fee(p1 * s1) + fee(p2 * D("0.001"))
    assert (order["status"], order["filled"]) == ("closed", float(amount))
    assert order["average"] == pytest.approx(float(cost / amount))
    assert (order["fee"]["currency"], D(order["fee"]["cost"])) == ("USDT", fees)
    assert sorted((t["price"], t["amount"]) for t in fills) == [(float(p1), float(s1)), (float(p2), 0.001)]
    assert all(t["takerOrMaker"] == "taker" and t["fee"]["currency"] == "USDT" for t in fills)
    assert balance["USDT"]["free"] == float(FUNDS["USDT"] - cost - fees)
    assert balance["BTC"]["free"] == float(FUNDS["BTC"] + amount)


async def test_a_sell_receives_its_proceeds_less_the_fee_in_quote() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        bids, _ = venue.book_for_symbol("BTC/USDT").levels(1)
        price = D(repr(bids[0].price))

        order = await placed(exchange, "BTC/USDT", "market", "sell", 0.001)

        assert (order["status"], order["filled"], order["average"]) == ("closed", 0.001, float(price))
        assert venue.trading.account(KEY).balance("USDT").free == FUNDS["USDT"] + price * D("0.001") - fee(
            price * D("0.001")
        )


async def test_an_ioc_bigger_than_the_depth_fills_partially_and_the_rest_is_cancelled() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (_, s1), (p2, s2) = asks(venue)

        order = await placed(
            exchange, "BTC/USDT", "limit", "buy", float(s1 + s2 + D("0.2")), float(p2), {"timeInForce": "IOC"}
        )

    assert (order["status"], order["filled"]) == ("canceled", float(s1 + s2))
    assert order["info"]["reason"] == "Insufficient liquidity"


async def test_an_order_is_found_by_its_client_id_among_open_and_closed_orders_and_its_fills_are_my_trades() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, _), _ = asks(venue)
        first = await placed(exchange, "BTC/USDT", "limit", "buy", 0.001, float(p1), {"clientOrderId": "legA-1"})
        resting = await placed(exchange, "BTC/USDT", "limit", "buy", 0.001, 60_000, {"clientOrderId": "legB-1"})

        closed = await exchange.fetch_closed_orders("BTC/USDT", None, None, {"clientOrderId": "legA-1"})
        still_open = await exchange.fetch_open_orders("BTC/USDT", None, None, {"clientOrderId": "legB-1"})
        fills = await exchange.fetch_my_trades("BTC/USDT")

    assert [(o["id"], o["clientOrderId"], o["status"]) for o in closed] == [(first["id"], "legA-1", "closed")]
    assert [(o["id"], o["status"]) for o in still_open] == [(resting["id"], "open")]
    assert {t["order"] for t in fills} == {first["id"]}
    assert [t["id"] for t in first["trades"]] == [t["id"] for t in fills]


async def test_a_gtc_rests_with_its_cost_held_until_it_is_cancelled_by_txid_or_client_id() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        resting = await placed(exchange, "BTC/USDT", "limit", "buy", 0.01, 60_000)
        other = await placed(exchange, "BTC/USDT", "limit", "sell", 0.01, 90_000, {"clientOrderId": "rest-2"})
        open_orders = await exchange.fetch_open_orders("BTC/USDT")
        held = (await exchange.fetch_balance())["USDT"]

        await exchange.cancel_order(resting["id"], "BTC/USDT")
        await exchange.cancel_order(None, "BTC/USDT", {"clientOrderId": "rest-2"})
        cancelled = await exchange.fetch_order(resting["id"], "BTC/USDT")
        with pytest.raises(ccxt.OrderNotFound, match="EOrder:Unknown order"):
            await exchange.cancel_order(resting["id"], "BTC/USDT")
        after = await exchange.fetch_balance()

    assert resting["status"] == "open"
    assert sorted(o["id"] for o in open_orders) == sorted([resting["id"], other["id"]])
    assert (held["used"], held["total"]) == (600.0, 100_000.0)
    assert (cancelled["status"], cancelled["info"]["reason"]) == ("canceled", "User requested")
    assert (after["USDT"]["used"], after["BTC"]["used"]) == (0.0, 0.0)


async def test_an_unknown_txid_is_an_invalid_order_to_ccxt() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        with pytest.raises(ccxt.InvalidOrder, match="EOrder:Invalid order"):
            await exchange.fetch_order("OAAAAA-AAAAA-AAAAAB", "BTC/USDT")


async def test_a_resting_gtc_fills_as_maker_when_the_book_moves_through_it() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, _), _ = asks(venue)
        price = p1 - D("0.50")
        resting = await placed(exchange, "BTC/USDT", "limit", "buy", 0.002, float(price))

        venue.market.inject("kraken", "BTC/USD", bps=-20, duration_ms=60_000)  # its asks now sit below the bid

        filled = await exchange.fetch_order(resting["id"], "BTC/USDT")
        [fill] = await exchange.fetch_my_trades("BTC/USDT")

    assert (resting["status"], filled["status"], filled["average"]) == ("open", "closed", float(price))
    assert (fill["takerOrMaker"], D(str(fill["fee"]["cost"]))) == ("maker", fee(price * D("0.002"), MAKER))


async def test_an_unknown_key_is_an_authentication_error_and_a_wrong_signature_a_plain_exchange_error() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        exchange.apiKey = "nobody"
        with pytest.raises(ccxt.AuthenticationError, match="EAPI:Invalid key"):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001)
        exchange.apiKey, exchange.secret = KEY, base64.b64encode(b"wrong").decode()
        with pytest.raises(ccxt.ExchangeError, match="EAPI:Invalid signature") as raised:
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001)

        # ccxt 4.5.90 has no entry for Kraken's signature error: the gateway has to map it itself.
        assert type(raised.value) is ccxt.ExchangeError
        assert venue.trading.orders == {}


async def test_a_nonce_not_above_the_last_one_of_the_key_is_refused_and_ccxt_raises_invalid_nonce() -> None:
    async with trading_venue() as venue, trader(venue) as ahead, trader(venue) as behind:
        await ahead.fetch_balance()
        behind.options["timeDifference"] = 60_000  # its clock (and so its nonce) is a minute behind

        with pytest.raises(ccxt.InvalidNonce, match="EAPI:Invalid nonce"):
            await behind.create_order("BTC/USDT", "market", "buy", 0.001)
        assert (await ahead.fetch_balance())["BTC"]["free"] == 2.0  # the refused nonce did not move the key's on
        assert venue.trading.orders == {}


async def test_a_request_without_a_nonce_is_refused() -> None:
    async with (
        trading_venue() as venue,
        aiohttp.ClientSession() as session,
        session.post(f"{venue.http_url}/0/private/Balance", headers={"API-Key": KEY, "API-Sign": "x"}, data="") as r,
    ):
        assert (r.status, await r.json()) == (200, {"error": ["EAPI:Invalid signature"]})


@pytest.mark.parametrize(
    ("volume", "price", "error", "text"),
    [
        ("0.001", "65000.001", ccxt.ExchangeError, "price can only be specified up to 2 decimals"),
        ("0.000010001", "65000", ccxt.InvalidOrder, "EGeneral:Invalid arguments:volume"),  # off lot_decimals 8
        ("0.000005", "65000", ccxt.InvalidOrder, "EOrder:Order minimum not met"),  # below ordermin
        ("10", "65000", ccxt.InsufficientFunds, "EOrder:Insufficient funds"),
    ],
)
async def test_an_order_off_the_tick_off_the_lot_below_the_minimum_or_beyond_the_funds_is_refused(
    volume: str, price: str, error: type[Exception], text: str
) -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        with pytest.raises(error, match=text):  # sent raw: ccxt's create_order would round them first
            await exchange.privatePostAddOrder(
                {"pair": "XBTUSDT", "type": "buy", "ordertype": "limit", "volume": volume, "price": price}
            )
        assert venue.trading.orders == {}


async def test_a_cost_below_costmin_is_refused() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        with pytest.raises(ccxt.ExchangeError, match="EOrder:Cost minimum not met"):
            await exchange.privatePostAddOrder(
                {"pair": "XBTUSDT", "type": "buy", "ordertype": "limit", "volume": "0.00001", "price": "10000"}
            )


async def test_the_asset_pairs_show_exactly_the_rules_orders_are_checked_against() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        market = exchange.market("BTC/USDT")
        rules = venue.trading.rules("BTC/USDT")

        assert D(str(market["precision"]["amount"])) == rules.step == D("1e-8")
        assert D(market["info"]["tick_size"]) == rules.tick
        assert D(market["info"]["ordermin"]) == rules.min_qty
        assert D(market["info"]["costmin"]) == rules.min_notional


async def test_a_crossing_post_only_order_is_cancelled_at_once_and_validate_places_nothing() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, _), _ = asks(venue)

        taker = await placed(exchange, "BTC/USDT", "limit", "buy", 0.001, float(p1), {"postOnly": True})
        checked = await exchange.privatePostAddOrder(
            {
                "pair": "XBTUSDT",
                "type": "buy",
                "ordertype": "limit",
                "volume": "0.001",
                "price": "60000",
                "validate": "true",
            }
        )

        assert (taker["status"], taker["filled"], taker["info"]["reason"]) == ("canceled", 0.0, "Post only order")
        assert "txid" not in checked["result"]
        assert len(venue.trading.orders) == 1


async def test_a_market_buy_by_cost_spends_that_much_quote_plus_the_fee() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        ack = await exchange.create_market_buy_order_with_cost("BTC/USDT", 1000)
        order = await exchange.fetch_order(ack["id"], "BTC/USDT")

        assert (order["status"], order["info"]["oflags"]) == ("closed", "fciq,viqc")
        assert 999 < order["cost"] <= 1000


# ---------------------------------------------------------------------------------------------------- order faults


async def test_a_reject_fault_refuses_the_order_and_places_nothing() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        venue.trading.faults.add("reject", side="buy")

        with pytest.raises(ccxt.OnMaintenance, match="cancel_only"):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001)
        sold = await placed(exchange, "BTC/USDT", "market", "sell", 0.001)

        assert sold["status"] == "closed"
        assert [(o.side, o.fault) for o in venue.trading.orders.values()] == [("sell", None)]


async def test_an_ack_delay_places_the_order_at_once_and_answers_later() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        venue.trading.faults.add("ack_delay", seconds=0.6)
        started = time.monotonic()

        pending = asyncio.ensure_future(exchange.create_order("BTC/USDT", "market", "buy", 0.001))
        await eventually(lambda: len(venue.trading.orders) == 1, timeout_s=0.5)
        assert not pending.done()
        ack = await pending

        assert time.monotonic() - started >= 0.6
        assert (await exchange.fetch_order(ack["id"], "BTC/USDT"))["status"] == "closed"


async def test_a_ghost_order_times_out_at_the_client_yet_exists_filled_when_found_by_client_id() -> None:
    async with trading_venue() as venue, trader(venue, timeout=500) as exchange:
        venue.trading.faults.add("ghost", hold_s=1.5)

        with pytest.raises(ccxt.RequestTimeout):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001, None, {"clientOrderId": "ghost-1"})
        [found] = await exchange.fetch_closed_orders("BTC/USDT", None, None, {"clientOrderId": "ghost-1"})

        assert (found["status"], found["filled"]) == ("closed", 0.001)
        assert [o.fault for o in venue.trading.orders.values()] == ["ghost"]  # exactly one order


async def test_partial_then_cancel_fills_a_fraction_of_a_gtc_and_cancels_the_rest() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, _), _ = asks(venue)
        venue.trading.faults.add("partial_then_cancel", fraction=0.6)

        order = await placed(exchange, "BTC/USDT", "limit", "buy", 0.01, float(p1 * D("1.01")))

        assert (order["status"], order["filled"], order["info"]["reason"]) == ("canceled", 0.006, "Canceled by venue")
        assert venue.trading.account(KEY).balance("USDT").locked == 0


async def test_a_rate_limit_fault_is_krakens_too_many_requests_with_retry_after_and_no_order() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        venue.trading.faults.add("rate_limit", retry_after_s=2)

        with pytest.raises(ccxt.DDoSProtection, match="EGeneral:Too many requests"):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001)

        assert exchange.last_response_headers["Retry-After"] == "2"
        assert venue.trading.orders == {}


@pytest.mark.parametrize("was_placed", [True, False])
async def test_a_disconnect_cuts_the_request_with_or_without_the_order_placed(was_placed: bool) -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        venue.trading.faults.add("disconnect", placed=was_placed)

        with pytest.raises(ccxt.NetworkError):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001, None, {"clientOrderId": "cut-1"})
        found = await exchange.fetch_closed_orders("BTC/USDT", None, None, {"clientOrderId": "cut-1"})

        assert [o["status"] for o in found] == (["closed"] if was_placed else [])


async def test_the_default_account_trades_with_the_module_credentials_and_its_secret_is_never_shown() -> None:
    async with trading_venue() as venue, trader(venue, key=DEFAULT_API_KEY, secret=DEFAULT_SECRET) as exchange:
        balance = await exchange.fetch_balance()

        assert balance["USDT"]["free"] == 1_000_000.0
        assert orjson.dumps(balance["info"]).decode().count(DEFAULT_SECRET) == 0
