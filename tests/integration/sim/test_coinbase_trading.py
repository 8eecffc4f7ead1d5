"""The real ccxt `coinbase` class trading on the local Coinbase Advanced Trade venue over loopback: signed orders
matched against the venue's book, balances, fills, both authentication schemes ccxt uses (legacy HMAC keys and CDP
keys' ES256 JWTs), order refusals and every order fault (FAULTS E1-E14).

Coinbase answers a new order with its ids only, so each test fetches the order to see how it filled. Coinbase charges
every fee in the quote currency, and a `client_order_id` already used returns the order that has it instead of
creating another. The market holds still (`run=False`) unless a test moves it, so each expected fill is read off the
venue's book."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal as D
from typing import Any

import ccxt
import ccxt.async_support as ccxt_rest
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from arb.connectors.urls import point_at_local
from arb.sim.server import SimVenue
from arb.sim.trading import DEFAULT_API_KEY, DEFAULT_SECRET
from arb.sim.venues.coinbase import CoinbaseProtocol

from .support import eventually, sim_venue

KEY, SECRET = "coinbase-trader", "coinbase-trader-secret"
FUNDS = {"USDT": D(100_000), "BTC": D(2)}
TAKER, MAKER = D("0.012"), D("0.006")
V3 = {"v3": True}


def pem_key() -> str:
    """A fresh EC P-256 private key in PEM, as a CDP API key's secret is."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@asynccontextmanager
async def trading_venue() -> AsyncIterator[SimVenue]:
    """A Coinbase venue whose book holds still, with the test account funded with `FUNDS`."""
    async with sim_venue("coinbase", CoinbaseProtocol(), run=False) as venue:
        venue.trading.create_account(KEY, SECRET, balances=FUNDS)
        yield venue


@asynccontextmanager
async def trader(venue: SimVenue, *, key: str = KEY, secret: str = SECRET, **config: Any) -> AsyncIterator[Any]:
    """The real ccxt coinbase REST class with the account's keys, talking to `venue`, markets loaded (with keys that
    includes the fee tier); always closed."""
    options = {"maxRetriesOnFailure": 0, **config.pop("options", {})}
    # ccxt's limiter off: load_markets alone is 7 spaced requests, and the limiter is not what these tests are about.
    exchange = ccxt_rest.coinbase(
        {"apiKey": key, "secret": secret, "enableRateLimit": False, "options": options, **config}
    )
    point_at_local(exchange, venue.http_url, venue.ws_url)
    try:
        await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


async def placed(exchange: Any, *args: Any, **kw: Any) -> dict[str, Any]:
    """Create an order and fetch it (Coinbase's answer to a new order carries its ids only)."""
    ack = await exchange.create_order(*args, **kw)
    assert ack["status"] is None
    order: dict[str, Any] = await exchange.fetch_order(ack["id"], args[0])
    return order


def asks(venue: SimVenue, n: int = 2) -> list[tuple[D, D]]:
    _, levels = venue.book_for_symbol("BTC/USDT").levels(n)
    return [(D(repr(p)), D(repr(s))) for p, s in levels]


def fee(cost: D, rate: D = TAKER) -> D:
    return (cost * rate).quantize(D("1e-8"))


async def create_raw(exchange: Any, config: dict[str, Any], side: str = "BUY", client_id: str = "raw-1") -> Any:
    """POST /orders as sent, bypassing ccxt's rounding."""
    return await exchange.v3PrivatePostBrokerageOrders(
        {"client_order_id": client_id, "product_id": "BTC-USDT", "side": side, "order_configuration": config}
    )


async def test_an_ioc_buy_fills_across_two_levels_and_pays_cost_plus_the_fee_in_quote() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, s1), (p2, _) = asks(venue)
        amount = s1 + D("0.001")

        order = await placed(exchange, "BTC/USDT", "limit", "buy", float(amount), float(p2), {"timeInForce": "IOC"})
        balance = await exchange.fetch_balance(V3)
        fills = await exchange.fetch_my_trades("BTC/USDT")

    cost = p1 * s1 + p2 * D("0.001")
    fees = fee(p1 * s1) + fee(p2 * D("0.001"))
    assert (order["status"], order["filled"], order["timeInForce"]) == ("closed", float(amount), "IOC")
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
        wallets = await exchange.fetch_balance()  # ccxt's default: the Coinbase App's wallets (totals)

    proceeds = price * D("0.001")
    assert (order["status"], order["filled"], order["average"]) == ("closed", 0.001, float(price))
    assert wallets["USDT"]["total"] == float(FUNDS["USDT"] + proceeds - fee(proceeds))


async def test_an_ioc_bigger_than_the_depth_fills_partially_and_expires_the_rest() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (_, s1), (p2, s2) = asks(venue)

        order = await placed(
            exchange, "BTC/USDT", "limit", "buy", float(s1 + s2 + D("0.2")), float(p2), {"timeInForce": "IOC"}
        )

    assert (order["info"]["status"], order["status"], order["filled"]) == ("EXPIRED", "canceled", float(s1 + s2))


async def test_a_fok_the_book_cannot_fill_whole_expires_with_nothing_traded() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (_, s1), (p2, s2) = asks(venue)

        order = await placed(
            exchange, "BTC/USDT", "limit", "buy", float(s1 + s2 + D("0.2")), float(p2), {"timeInForce": "FOK"}
        )
        fills = await exchange.fetch_my_trades("BTC/USDT")

    assert (order["info"]["status"], order["filled"], order["timeInForce"]) == ("EXPIRED", 0.0, "FOK")
    assert fills == []
    assert venue.trading.account(KEY).balance("USDT").free == FUNDS["USDT"]


async def test_a_resent_client_order_id_returns_the_existing_order_and_creates_none() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, _), _ = asks(venue)
        first = await placed(exchange, "BTC/USDT", "limit", "buy", 0.001, float(p1), {"client_order_id": "legA-1"})

        again = await exchange.create_order("BTC/USDT", "limit", "buy", 0.001, float(p1), {"client_order_id": "legA-1"})
        listed = [o for o in await exchange.fetch_orders("BTC/USDT") if o["clientOrderId"] == "legA-1"]

    assert (first["status"], first["clientOrderId"]) == ("closed", "legA-1")
    assert again["id"] == first["id"]  # FAULTS E4: one order, one fill
    assert [o["id"] for o in listed] == [first["id"]]
    assert len(venue.trading.trades) == 1


async def test_ccxt_names_its_own_client_order_id_unless_the_caller_passes_client_order_id() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        ack = await exchange.create_order("BTC/USDT", "market", "sell", 0.001, None, {"clientOrderId": "ignored"})

        assert ack["clientOrderId"].startswith("ccxt-")


async def test_a_gtc_rests_with_its_cost_on_hold_until_it_is_cancelled() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        resting = await placed(exchange, "BTC/USDT", "limit", "buy", 0.01, 60_000)
        open_orders = await exchange.fetch_open_orders("BTC/USDT")
        held = (await exchange.fetch_balance(V3))["USDT"]

        await exchange.cancel_order(resting["id"], "BTC/USDT")
        cancelled = await exchange.fetch_order(resting["id"], "BTC/USDT")
        with pytest.raises(ccxt.BadRequest):  # results[0].success is false: UNKNOWN_CANCEL_ORDER
            await exchange.cancel_order(resting["id"], "BTC/USDT")
        listed = await exchange.fetch_canceled_orders("BTC/USDT")
        after = (await exchange.fetch_balance(V3))["USDT"]

    assert (resting["status"], resting["info"]["outstanding_hold_amount"]) == ("open", "600")
    assert [o["id"] for o in open_orders] == [resting["id"]]
    assert (held["free"], held["used"], held["total"]) == (99_400.0, 600.0, 100_000.0)
    assert cancelled["status"] == "canceled"
    assert [o["id"] for o in listed] == [resting["id"]]
    assert (after["free"], after["used"]) == (100_000.0, 0.0)


async def test_an_unknown_order_id_is_coinbases_404_which_ccxt_raises_as_a_plain_exchange_error() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        with pytest.raises(ccxt.ExchangeError, match="order with this orderID was not found") as raised:
            await exchange.fetch_order("00000000-0000-4000-8000-000000000001", "BTC/USDT")

        assert type(raised.value) is ccxt.ExchangeError  # ccxt 4.5.90's broad pattern reads "self orderID"


async def test_a_resting_gtc_fills_as_maker_when_the_book_moves_through_it() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, _), _ = asks(venue)
        price = p1 - D("0.50")
        resting = await placed(exchange, "BTC/USDT", "limit", "buy", 0.002, float(price))

        venue.market.inject("coinbase", "BTC/USD", bps=-20, duration_ms=60_000)  # its asks now sit below the bid

        filled = await exchange.fetch_order(resting["id"], "BTC/USDT")
        [fill] = await exchange.fetch_my_trades("BTC/USDT")

    assert (resting["status"], filled["status"], filled["average"]) == ("open", "closed", float(price))
    assert (fill["takerOrMaker"], D(str(fill["fee"]["cost"]))) == ("maker", fee(price * D("0.002"), MAKER))


# ---------------------------------------------------------------------------------------------------- authentication


@pytest.mark.parametrize(
    ("credential", "value", "message"),
    [("secret", "wrong", "invalid signature"), ("apiKey", "nobody", "invalid api key")],
)
async def test_a_legacy_key_with_a_wrong_secret_or_an_unknown_key_is_an_authentication_error(
    credential: str, value: str, message: str
) -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        setattr(exchange, credential, value)

        with pytest.raises(ccxt.AuthenticationError, match=message):
            await exchange.create_order("BTC/USDT", "market", "sell", 0.001)

        assert venue.trading.orders == {}


@pytest.mark.parametrize(("offset_ms", "accepted"), [(40_000, False), (-40_000, False), (20_000, True)])
async def test_a_legacy_timestamp_more_than_30_s_off_is_expired(offset_ms: int, accepted: bool) -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        exchange.options["timeDifference"] = offset_ms  # ccxt signs with its clock minus this

        if accepted:
            assert (await exchange.fetch_balance(V3))["BTC"]["free"] == 2.0
        else:  # ccxt matches `authentication_error` exactly before its broad "request timestamp expired"
            with pytest.raises(ccxt.AuthenticationError, match="request timestamp expired"):
                await exchange.create_order("BTC/USDT", "market", "sell", 0.001)
        assert venue.trading.orders == {}


async def test_a_cdp_key_trades_with_es256_jwts_its_public_key_verifies() -> None:
    name = "organizations/sim-org/apiKeys/sim-key"
    async with trading_venue() as venue:
        venue.trading.create_account(name, pem_key(), balances=FUNDS)
        async with trader(venue, key=name, secret=venue.trading.account(name).secret) as exchange:
            order = await placed(exchange, "BTC/USDT", "market", "sell", 0.001)
            balance = await exchange.fetch_balance(V3)

    assert (order["status"], order["filled"]) == ("closed", 0.001)
    assert balance["BTC"]["free"] == float(FUNDS["BTC"] - D("0.001"))


async def test_a_jwt_signed_with_another_key_or_expired_is_unauthorized() -> None:
    name = "organizations/sim-org/apiKeys/sim-key"
    async with trading_venue() as venue:
        venue.trading.create_account(name, pem_key(), balances=FUNDS)
        async with trader(venue, key=name, secret=venue.trading.account(name).secret) as exchange:
            trading = venue.protocol.trading  # type: ignore[attr-defined]
            exchange.secret = pem_key()
            with pytest.raises(ccxt.AuthenticationError, match="401"):
                await exchange.fetch_balance(V3)
            exchange.secret = venue.trading.account(name).secret
            trading.clock_ms = lambda: time.time_ns() // 1_000_000 + 180_000  # three minutes on: the token's exp
            with pytest.raises(ccxt.AuthenticationError, match="401"):
                await exchange.fetch_balance(V3)

        assert venue.trading.orders == {}


# ---------------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"sor_limit_ioc": {"base_size": "0.001", "limit_price": "65000.001"}}, "PREVIEW_INVALID_PRICE_PRECISION"),
        ({"sor_limit_ioc": {"base_size": "0.000015", "limit_price": "65000"}}, "PREVIEW_INVALID_SIZE_PRECISION"),
        ({"sor_limit_ioc": {"base_size": "0.000001", "limit_price": "65000"}}, "PREVIEW_INVALID_BASE_SIZE_TOO_SMALL"),
        ({"sor_limit_ioc": {"base_size": "0.00001", "limit_price": "65000"}}, "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL"),
    ],
)
async def test_an_order_off_the_tick_off_the_increment_or_below_the_minimums_is_refused(
    config: dict[str, Any], reason: str
) -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        with pytest.raises(ccxt.ExchangeError, match=reason):
            await create_raw(exchange, config)
        assert venue.trading.orders == {}


async def test_insufficient_funds_and_a_crossing_post_only_order_are_refused() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, _), _ = asks(venue)

        with pytest.raises(ccxt.InsufficientFunds):
            await exchange.create_order("BTC/USDT", "limit", "buy", 2, float(p1))
        with pytest.raises(ccxt.ExchangeError, match="INVALID_LIMIT_PRICE_POST_ONLY"):
            await exchange.create_order("BTC/USDT", "limit", "buy", 0.001, float(p1), {"postOnly": True})
        with pytest.raises(ccxt.BadRequest, match="UNSUPPORTED_ORDER_CONFIGURATION"):
            await create_raw(exchange, {"limit_limit_gtd": {"base_size": "0.001", "limit_price": "60000"}})

        assert venue.trading.orders == {}


async def test_the_products_show_exactly_the_rules_orders_are_checked_against() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        info = exchange.market("BTC/USDT")["info"]
        rules = venue.trading.rules("BTC/USDT")

        assert (D(info["quote_increment"]), D(info["base_increment"])) == (rules.tick, rules.step)
        assert (D(info["base_min_size"]), D(info["base_max_size"])) == (rules.min_qty, rules.max_qty)
        assert (D(info["quote_min_size"]), D(info["quote_max_size"])) == (rules.min_notional, rules.max_notional)
        assert exchange.market("BTC/USDT")["taker"] == float(TAKER)  # the fee tier, read with the keys


async def test_a_market_buy_by_quote_size_spends_about_that_much() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        ack = await exchange.create_market_buy_order_with_cost("BTC/USDT", 1000)
        order = await exchange.fetch_order(ack["id"], "BTC/USDT")

        assert (order["status"], order["info"]["size_in_quote"]) == ("closed", True)
        assert 999 < order["cost"] <= 1000


# ---------------------------------------------------------------------------------------------------- order faults


async def test_a_reject_fault_refuses_the_order_and_places_nothing() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        venue.trading.faults.add("reject", side="buy")

        with pytest.raises(ccxt.ExchangeError, match="ORDER_ENTRY_DISABLED"):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001, 65_000)
        sold = await placed(exchange, "BTC/USDT", "market", "sell", 0.001)

        assert sold["status"] == "closed"
        assert [(o.side, o.fault) for o in venue.trading.orders.values()] == [("sell", None)]


async def test_an_ack_delay_places_the_order_at_once_and_answers_later() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        venue.trading.faults.add("ack_delay", seconds=0.6)
        started = time.monotonic()

        pending = asyncio.ensure_future(exchange.create_order("BTC/USDT", "market", "sell", 0.001))
        await eventually(lambda: len(venue.trading.orders) == 1, timeout_s=0.5)
        assert not pending.done()
        ack = await pending

        assert time.monotonic() - started >= 0.6
        assert (await exchange.fetch_order(ack["id"], "BTC/USDT"))["status"] == "closed"


async def test_a_ghost_order_times_out_yet_exists_filled_and_a_resend_with_its_client_id_returns_it() -> None:
    async with trading_venue() as venue, trader(venue, timeout=500) as exchange:
        venue.trading.faults.add("ghost", hold_s=1.5)
        params = {"client_order_id": "ghost-1"}

        with pytest.raises(ccxt.RequestTimeout):
            await exchange.create_order("BTC/USDT", "market", "sell", 0.001, None, params)
        resent = await exchange.create_order("BTC/USDT", "market", "sell", 0.001, None, params)
        found = await exchange.fetch_order(resent["id"], "BTC/USDT")

        assert (found["status"], found["filled"], found["clientOrderId"]) == ("closed", 0.001, "ghost-1")
        assert [o.fault for o in venue.trading.orders.values()] == ["ghost"]  # exactly one order


async def test_partial_then_cancel_fills_a_fraction_of_a_gtc_and_cancels_the_rest() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, _), _ = asks(venue)
        venue.trading.faults.add("partial_then_cancel", fraction=0.6)

        order = await placed(exchange, "BTC/USDT", "limit", "buy", 0.01, float(p1 * D("1.01")))

        assert (order["info"]["status"], order["filled"]) == ("CANCELLED", 0.006)
        assert venue.trading.account(KEY).balance("USDT").locked == 0


async def test_a_rate_limit_fault_is_coinbases_429_with_retry_after_and_no_order() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        venue.trading.faults.add("rate_limit", retry_after_s=2)

        with pytest.raises(ccxt.RateLimitExceeded, match="rate_limit_exceeded"):
            await exchange.create_order("BTC/USDT", "market", "sell", 0.001)

        assert exchange.last_response_headers["Retry-After"] == "2"
        assert venue.trading.orders == {}


@pytest.mark.parametrize("was_placed", [True, False])
async def test_a_disconnect_cuts_the_request_with_or_without_the_order_placed(was_placed: bool) -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        venue.trading.faults.add("disconnect", placed=was_placed)

        with pytest.raises(ccxt.NetworkError):
            await exchange.create_order("BTC/USDT", "market", "sell", 0.001, None, {"client_order_id": "cut-1"})
        found = [o for o in await exchange.fetch_orders("BTC/USDT") if o["clientOrderId"] == "cut-1"]

        assert [o["status"] for o in found] == (["closed"] if was_placed else [])


async def test_the_default_account_trades_with_the_module_credentials_and_its_secret_is_never_shown() -> None:
    async with trading_venue() as venue, trader(venue, key=DEFAULT_API_KEY, secret=DEFAULT_SECRET) as exchange:
        balance = await exchange.fetch_balance(V3)

        assert balance["USDT"]["free"] == 1_000_000.0
        assert orjson.dumps(balance["info"]).decode().count(DEFAULT_SECRET) == 0
