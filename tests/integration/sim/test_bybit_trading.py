"""The real ccxt `bybit` class trading on the local Bybit venue over loopback: signed orders matched against the
venue's book, balances, executions, authentication failures, order rejections (retCode) and every order fault
(FAULTS E1-E14).

Bybit answers a new order with its ids only, so each test fetches the order to see how it filled (ccxt's
`fetch_order` on a unified account needs `acknowledged`). The market holds still (`run=False`) unless a test moves
it, so each expected fill is read off the venue's book."""

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
from arb.sim.trading import DEFAULT_API_KEY, DEFAULT_SECRET
from arb.sim.venues.bybit import BybitProtocol

from .support import eventually, sim_venue

KEY, SECRET = "bybit-trader", "bybit-secret"
FUNDS = {"USDT": D(100_000), "BTC": D(2)}
ACK = {"acknowledged": True}


@asynccontextmanager
async def trading_venue() -> AsyncIterator[SimVenue]:
    """A Bybit venue whose book holds still, with the test account funded with `FUNDS`."""
    async with sim_venue("bybit", BybitProtocol(), run=False) as venue:
        venue.trading.create_account(KEY, SECRET, balances=FUNDS)
        yield venue


@asynccontextmanager
async def trader(venue: SimVenue, *, key: str = KEY, secret: str = SECRET, **config: Any) -> AsyncIterator[Any]:
    """The real ccxt bybit REST class with the account's keys, talking to `venue`, markets loaded; always closed."""
    options = {"maxRetriesOnFailure": 0, **config.pop("options", {})}
    # ccxt's limiter off: load_markets alone is 12 spaced requests, and the limiter is not what these tests are about.
    exchange = ccxt_rest.bybit(
        {"apiKey": key, "secret": secret, "enableRateLimit": False, "options": options, **config}
    )
    point_at_local(exchange, venue.http_url, venue.ws_url)
    try:
        await exchange.load_markets()  # with keys: also the signed coin list
        yield exchange
    finally:
        await exchange.close()


async def placed(exchange: Any, *args: Any, **kw: Any) -> dict[str, Any]:
    """Create an order and fetch it (Bybit's answer to a new order carries its ids only)."""
    ack = await exchange.create_order(*args, **kw)
    assert ack["status"] is None
    order: dict[str, Any] = await exchange.fetch_order(ack["id"], args[0], ACK)
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
    assert all(t["takerOrMaker"] == "taker" and t["fee"]["rate"] == 0.001 for t in fills)
    assert balance["USDT"]["free"] == float(FUNDS["USDT"] - cost)
    assert balance["BTC"]["free"] == float(FUNDS["BTC"] + amount - fee)


async def test_an_ioc_bigger_than_the_depth_fills_partially_and_ends_partially_filled_canceled() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (_, s1), (p2, s2) = asks(venue)

        order = await placed(
            exchange, "BTC/USDT", "limit", "buy", float(s1 + s2 + D("0.2")), float(p2), {"timeInForce": "IOC"}
        )

    # Spot's own status for a part-filled order that was cancelled; ccxt 4.5.90 calls it closed (ccxt#18685).
    assert (order["info"]["orderStatus"], order["status"]) == ("PartiallyFilledCanceled", "closed")
    assert (order["filled"], order["remaining"]) == (float(s1 + s2), 0.0)
    assert order["info"]["rejectReason"] == "EC_NoImmediateQtyToFill"


async def test_a_fok_the_book_cannot_fill_whole_is_cancelled_with_nothing_traded() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (_, s1), (p2, s2) = asks(venue)

        order = await placed(
            exchange, "BTC/USDT", "limit", "buy", float(s1 + s2 + D("0.2")), float(p2), {"timeInForce": "FOK"}
        )
        fills = await exchange.fetch_my_trades("BTC/USDT")

    assert (order["status"], order["filled"], order["timeInForce"]) == ("canceled", 0.0, "FOK")
    assert order["info"]["rejectReason"] == "EC_CancelForNoFullFill"
    assert fills == []
    assert venue.trading.account(KEY).balance("USDT").free == FUNDS["USDT"]


async def test_an_order_is_found_by_its_order_link_id_whatever_its_state_and_its_fills_are_my_trades() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, _), _ = asks(venue)
        first = await placed(exchange, "BTC/USDT", "limit", "buy", 0.001, float(p1), {"clientOrderId": "legA-1"})
        again = await placed(exchange, "BTC/USDT", "limit", "buy", 0.001, float(p1), {"clientOrderId": "legA-1"})

        # ccxt's fetch_order(None, ...) would send orderId=None; the realtime query by orderLinkId finds the newest
        # order with it among the open and the recent closed ones.
        [found] = await exchange.fetch_open_orders("BTC/USDT", None, None, {"orderLinkId": "legA-1"})
        history = await exchange.fetch_canceled_and_closed_orders("BTC/USDT", None, None, {"orderLinkId": "legA-1"})
        fills = await exchange.fetch_my_trades("BTC/USDT")
        by_order = await exchange.fetch_order_trades(first["id"], "BTC/USDT")

    # A filled order's orderLinkId may be used again (unique among open orders here, FAULTS E4).
    assert (found["id"], found["clientOrderId"], found["status"]) == (again["id"], "legA-1", "closed")
    assert [o["id"] for o in history] == [first["id"], again["id"]]  # ccxt sorts them oldest first
    assert sorted(t["order"] for t in fills) == sorted([first["id"], again["id"]])
    assert [t["order"] for t in by_order] == [first["id"]]


async def test_a_gtc_rests_in_open_orders_with_its_funds_locked_until_it_is_cancelled() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        resting = await placed(exchange, "BTC/USDT", "limit", "buy", 0.01, 60_000)
        open_orders = await exchange.fetch_open_orders("BTC/USDT")
        locked = (await exchange.fetch_balance())["USDT"]

        await exchange.cancel_order(resting["id"], "BTC/USDT")
        cancelled = await exchange.fetch_order(resting["id"], "BTC/USDT", ACK)
        with pytest.raises(ccxt.OrderNotFound, match="170213"):
            await exchange.cancel_order(resting["id"], "BTC/USDT")
        with pytest.raises(ccxt.OrderNotFound):
            await exchange.fetch_order("123", "BTC/USDT", ACK)
        closed = await exchange.fetch_canceled_orders("BTC/USDT")
        after = (await exchange.fetch_balance())["USDT"]

    assert resting["status"] == "open"
    assert [o["id"] for o in open_orders] == [resting["id"]]
    assert (locked["free"], locked["used"], locked["total"]) == (99_400.0, 600.0, 100_000.0)
    assert (cancelled["status"], cancelled["info"]["cancelType"]) == ("canceled", "CancelByUser")
    assert [o["id"] for o in closed] == [resting["id"]]
    assert (after["free"], after["used"]) == (100_000.0, 0.0)


async def test_a_gtc_is_cancelled_by_its_order_link_id() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        await exchange.create_order("BTC/USDT", "limit", "sell", 0.01, 90_000, {"clientOrderId": "rest-1"})

        await exchange.cancel_order(None, "BTC/USDT", {"orderLinkId": "rest-1"})

        assert [o.status for o in venue.trading.orders.values()] == ["canceled"]
        assert venue.trading.account(KEY).balance("BTC").free == FUNDS["BTC"]


async def test_a_resting_gtc_fills_as_maker_when_the_book_moves_through_it() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, _), _ = asks(venue)
        price = p1 - D("0.50")
        resting = await placed(exchange, "BTC/USDT", "limit", "buy", 0.002, float(price))

        venue.market.inject("bybit", "BTC/USD", bps=-20, duration_ms=60_000)  # its asks now sit below the bid

        filled = await exchange.fetch_order(resting["id"], "BTC/USDT", ACK)
        [fill] = await exchange.fetch_my_trades("BTC/USDT")

    assert (resting["status"], filled["status"], filled["average"]) == ("open", "closed", float(price))
    assert (fill["takerOrMaker"], fill["info"]["isMaker"]) == ("maker", True)


@pytest.mark.parametrize(("credential", "value", "code"), [("secret", "wrong", "10004"), ("apiKey", "nobody", "10003")])
async def test_a_wrong_signature_or_key_is_an_authentication_error(credential: str, value: str, code: str) -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        await exchange.fetch_balance()  # the account queries ccxt makes once
        setattr(exchange, credential, value)

        with pytest.raises(ccxt.AuthenticationError, match=code):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001)

        assert venue.trading.orders == {}


async def test_a_request_without_the_auth_headers_is_refused_naming_what_is_empty() -> None:
    async with (
        trading_venue() as venue,
        aiohttp.ClientSession() as session,
        session.get(
            f"{venue.http_url}/v5/account/wallet-balance?accountType=UNIFIED", headers={"X-BAPI-API-KEY": KEY}
        ) as r,
    ):
        body = await r.json()
        assert (r.status, body["retCode"]) == (401, 10001)
        assert body["retMsg"] == f"empty value: apiTimestamp[] apiKey[{KEY}] apiSignature[]"


@pytest.mark.parametrize(
    ("offset_ms", "recv_window", "accepted"),
    [
        (-1_500, 5_000, False),  # 1.5 s ahead of the server: more than the 1 s allowed
        (6_000, 5_000, False),  # 6 s behind: outside the 5 s recv_window
        (4_000, 5_000, True),
        (6_000, 10_000, True),  # a wider recv_window (signed into the request) lets it through
    ],
)
async def test_a_timestamp_outside_the_recv_window_is_refused_and_ccxt_raises_invalid_nonce(
    offset_ms: int, recv_window: int, accepted: bool
) -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        await exchange.fetch_balance()
        exchange.options["timeDifference"] = offset_ms  # ccxt signs with its clock minus this
        exchange.options["recvWindow"] = recv_window

        if accepted:
            assert (await exchange.fetch_balance())["BTC"]["free"] == 2.0
        else:
            with pytest.raises(ccxt.InvalidNonce, match="10002"):
                await exchange.create_order("BTC/USDT", "market", "buy", 0.001)
        assert venue.trading.orders == {}


@pytest.mark.parametrize(
    ("qty", "price", "code"),
    [
        ("0.001", "65000.001", "170134"),  # price off the tick
        ("0.000015", "65000", "170137"),  # qty off the step
        ("0.000001", "65000", "170136"),  # qty below the minimum
        ("0.00002", "65000", "170140"),  # value below minOrderAmt (5 USDT)
        ("1000", "65000", "170135"),  # qty above maxOrderQty
    ],
)
async def test_an_order_off_the_tick_off_the_step_or_out_of_range_is_refused_with_bybits_code(
    qty: str, price: str, code: str
) -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        with pytest.raises(ccxt.InvalidOrder, match=code):  # sent raw: ccxt's create_order would round them first
            await exchange.privatePostV5OrderCreate(
                {
                    "category": "spot",
                    "symbol": "BTCUSDT",
                    "side": "Buy",
                    "orderType": "Limit",
                    "qty": qty,
                    "price": price,
                }
            )
        assert venue.trading.orders == {}


async def test_the_instruments_list_shows_exactly_the_rules_orders_are_checked_against() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        info = exchange.market("BTC/USDT")["info"]
        rules = venue.trading.rules("BTC/USDT")

        assert D(info["priceFilter"]["tickSize"]) == rules.tick
        assert D(info["lotSizeFilter"]["basePrecision"]) == rules.step
        assert D(info["lotSizeFilter"]["minOrderQty"]) == rules.min_qty
        assert D(info["lotSizeFilter"]["maxOrderQty"]) == rules.max_qty
        assert D(info["lotSizeFilter"]["minOrderAmt"]) == rules.min_notional
        assert D(info["lotSizeFilter"]["maxOrderAmt"]) == rules.max_notional


async def test_insufficient_funds_is_refused_and_a_crossing_post_only_order_is_cancelled_at_once() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, _), _ = asks(venue)

        with pytest.raises(ccxt.InsufficientFunds, match="170131"):
            await exchange.create_order("BTC/USDT", "limit", "buy", 2, float(p1))
        with pytest.raises(ccxt.InsufficientFunds, match="170131"):
            await exchange.create_order("BTC/USDT", "market", "sell", 3)
        taker = await placed(exchange, "BTC/USDT", "limit", "buy", 0.001, float(p1), {"postOnly": True})

        assert (taker["status"], taker["filled"]) == ("canceled", 0.0)
        assert (taker["info"]["timeInForce"], taker["info"]["rejectReason"]) == (
            "PostOnly",
            "EC_PostOnlyWillTakeLiquidity",
        )


async def test_a_market_buy_by_cost_spends_about_that_much_quote() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        ack = await exchange.create_market_buy_order_with_cost("BTC/USDT", 1000)
        order = await exchange.fetch_order(ack["id"], "BTC/USDT", ACK)

        assert (order["status"], order["info"]["marketUnit"], order["info"]["qty"]) == ("closed", "quoteCoin", "1000")
        assert 999 < order["cost"] <= 1000


# ---------------------------------------------------------------------------------------------------- order faults


async def test_a_reject_fault_refuses_the_order_and_places_nothing() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        venue.trading.faults.add("reject", side="buy")

        with pytest.raises(ccxt.InvalidOrder, match="170210"):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001)
        sold = await placed(exchange, "BTC/USDT", "market", "sell", 0.001)

        assert [str(o.id) for o in venue.trading.orders.values()] == [sold["id"]]


async def test_an_ack_delay_places_the_order_at_once_and_answers_later() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        await exchange.fetch_balance()  # the account queries ccxt makes once, before the timed request
        venue.trading.faults.add("ack_delay", seconds=0.6)
        started = time.monotonic()

        pending = asyncio.ensure_future(exchange.create_order("BTC/USDT", "market", "buy", 0.001))
        await eventually(lambda: len(venue.trading.orders) == 1, timeout_s=0.5)
        assert not pending.done()
        ack = await pending

        assert time.monotonic() - started >= 0.6
        assert ack["id"] == str(next(iter(venue.trading.orders)))


async def test_a_ghost_order_times_out_at_the_client_yet_exists_filled_when_found_by_order_link_id() -> None:
    async with trading_venue() as venue, trader(venue, timeout=500) as exchange:
        await exchange.fetch_balance()
        venue.trading.faults.add("ghost", hold_s=1.5)

        with pytest.raises(ccxt.RequestTimeout):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001, None, {"clientOrderId": "ghost-1"})
        [found] = await exchange.fetch_open_orders("BTC/USDT", None, None, {"orderLinkId": "ghost-1"})

        assert (found["status"], found["filled"]) == ("closed", 0.001)
        assert [o.fault for o in venue.trading.orders.values()] == ["ghost"]  # exactly one order


async def test_partial_then_cancel_fills_a_fraction_of_a_gtc_and_cancels_the_rest() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        (p1, _), _ = asks(venue)
        venue.trading.faults.add("partial_then_cancel", fraction=0.6)

        order = await placed(exchange, "BTC/USDT", "limit", "buy", 0.01, float(p1 * D("1.01")))

        assert (order["info"]["orderStatus"], order["filled"]) == ("PartiallyFilledCanceled", 0.006)
        assert order["info"]["cancelType"] == "CancelByAdmin"
        assert venue.trading.account(KEY).balance("USDT").locked == 0


async def test_a_rate_limit_fault_is_bybits_10006_with_retry_after_and_no_order() -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        venue.trading.faults.add("rate_limit", retry_after_s=2)

        with pytest.raises(ccxt.RateLimitExceeded, match="10006"):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001)

        assert exchange.last_response_headers["Retry-After"] == "2"
        assert venue.trading.orders == {}


@pytest.mark.parametrize("was_placed", [True, False])
async def test_a_disconnect_cuts_the_request_with_or_without_the_order_placed(was_placed: bool) -> None:
    async with trading_venue() as venue, trader(venue) as exchange:
        await exchange.fetch_balance()
        venue.trading.faults.add("disconnect", placed=was_placed)

        with pytest.raises(ccxt.NetworkError):
            await exchange.create_order("BTC/USDT", "market", "buy", 0.001, None, {"clientOrderId": "cut-1"})
        found = await exchange.fetch_open_orders("BTC/USDT", None, None, {"orderLinkId": "cut-1"})

        assert [o["status"] for o in found] == (["closed"] if was_placed else [])


async def test_the_default_account_trades_with_the_module_credentials_and_its_secret_is_never_shown() -> None:
    async with (
        trading_venue() as venue,
        trader(venue, key=DEFAULT_API_KEY, secret=DEFAULT_SECRET) as exchange,
    ):
        balance = await exchange.fetch_balance()
        key_info = await exchange.privateGetV5UserQueryApi()

        assert balance["USDT"]["free"] == 1_000_000.0
        assert orjson.dumps([balance["info"], key_info]).decode().count(DEFAULT_SECRET) == 0
