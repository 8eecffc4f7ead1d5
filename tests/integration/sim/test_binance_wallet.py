"""The local Binance venue's wallet endpoint (`GET /sapi/v1/capital/config/getall`), read directly and via ccxt."""

from __future__ import annotations

from typing import Any

import aiohttp
import ccxt.async_support as ccxt_rest
import pytest

from arb.connectors.urls import point_at_local
from arb.sim.server import SimVenue
from arb.sim.venues.binance import BinanceProtocol

from .support import binance_venue

GETALL = "/sapi/v1/capital/config/getall"
SIGNED = {"timestamp": "1700000000000", "signature": "0" * 64}


def wallets_of(venue: SimVenue) -> Any:
    protocol = venue.protocol
    assert isinstance(protocol, BinanceProtocol)
    return protocol.wallets


async def get(venue: SimVenue, path: str, *, headers: dict[str, str] | None = None, **params: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(venue.http_url + path, params=params, headers=headers) as r,
    ):
        return r.status, await r.json()


@pytest.mark.parametrize(
    ("headers", "params", "status", "body"),
    [
        (None, SIGNED, 401, {"code": -2014, "msg": "API-key format invalid."}),
        (
            {"X-MBX-APIKEY": "k"},
            {"signature": "ab"},
            400,
            {"code": -1102, "msg": "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."},
        ),
        (
            {"X-MBX-APIKEY": "k"},
            {"timestamp": "1"},
            400,
            {"code": -1102, "msg": "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."},
        ),
    ],
)
async def test_an_unsigned_wallet_request_is_refused_as_binance_refuses_it(
    headers: dict[str, str] | None, params: dict[str, str], status: int, body: dict[str, Any]
) -> None:
    async with binance_venue(run=False) as venue:
        assert await get(venue, GETALL, headers=headers, **params) == (status, body)


async def test_every_listed_asset_has_an_open_wallet_until_the_control_closes_one() -> None:
    async with binance_venue(run=False) as venue:
        status, coins = await get(venue, GETALL, headers={"X-MBX-APIKEY": "k"}, **SIGNED)
        assert status == 200
        assert {c["coin"] for c in coins} == {"BTC", "ETH", "SOL", "USDT"}
        btc = next(c for c in coins if c["coin"] == "BTC")
        assert (btc["depositAllEnable"], btc["withdrawAllEnable"], btc["isLegalMoney"]) == (True, True, False)
        [default] = [n for n in btc["networkList"] if n["isDefault"]]
        assert default["network"] == "BTC"
        assert float(default["withdrawFee"]) == pytest.approx(1.0 / 65_000, rel=0.05)  # about $1 worth

        async with (
            aiohttp.ClientSession() as session,
            session.post(venue.http_url + "/_sim/wallets", json={"coin": "BTC", "withdraw": False}) as r,
        ):
            assert r.status == 200
        async with (
            aiohttp.ClientSession() as session,
            session.post(venue.http_url + "/_sim/wallets", json={"coin": "XRP", "withdraw": False}) as bad,
        ):
            assert bad.status == 422
            assert "XRP" in (await bad.json())["error"]

        _, coins = await get(venue, GETALL, headers={"X-MBX-APIKEY": "k"}, **SIGNED)
        btc = next(c for c in coins if c["coin"] == "BTC")
        assert btc["withdrawAllEnable"] is False
        assert all(not n["withdrawEnable"] and n["withdrawDesc"] for n in btc["networkList"])
        assert btc["depositAllEnable"] is True


async def test_the_real_ccxt_binance_class_reads_status_and_fees_from_it() -> None:
    async with binance_venue(run=False) as venue:
        wallets_of(venue).set("ETH", withdraw_fee=0.0012)
        wallets_of(venue).set("SOL", deposit=False)
        exchange = ccxt_rest.binance({"apiKey": "key", "secret": "secret", "options": {"fetchMargins": False}})
        point_at_local(exchange, venue.http_url, venue.ws_url)
        try:
            currencies = await exchange.fetch_currencies()
            fees = await exchange.fetch_deposit_withdraw_fees(["ETH"])
        finally:
            await exchange.close()

    assert currencies["ETH"]["networks"]["ERC20"]["fee"] == 0.0012
    assert fees["ETH"]["withdraw"]["fee"] == 0.0012  # ccxt's default-network fee
    assert (currencies["SOL"]["deposit"], currencies["SOL"]["withdraw"]) == (False, True)
    assert currencies["USDT"]["withdraw"] is True
