"""The local Capital.com read on the wire (plain aiohttp, no arb client): the documented bodies, error codes,
stream messages, limits and market hours, so the connector's tests are tests against the API's format."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
import pytest

from arb.config import load_settings
from arb.sim.trading import DEFAULT_API_KEY
from arb.sim.venues.capital_com import (
    DEFAULT_IDENTIFIER,
    DEFAULT_PASSWORD,
    CapitalComProtocol,
    LocalCapitalCom,
    hours_open,
    serve_capital_com,
)
from tests.integration.sim.support import eventually

SETTINGS = load_settings(None)
FEW = ["EUR/USD", "XAU/USD", "US500", "BTC/USD"]
LOGIN = {"identifier": DEFAULT_IDENTIFIER, "password": DEFAULT_PASSWORD}


@asynccontextmanager
async def venue(
    instruments: list[str] = FEW, **options: Any
) -> AsyncIterator[tuple[LocalCapitalCom, aiohttp.ClientSession]]:
    protocol = CapitalComProtocol(**({"hours": "always"} | options))
    async with (
        serve_capital_com(SETTINGS, instruments=instruments, protocol=protocol) as local,
        aiohttp.ClientSession() as http,
    ):
        yield local, http


async def login(local: LocalCapitalCom, http: aiohttp.ClientSession) -> dict[str, str]:
    async with http.post(
        local.rest_url + "/api/v1/session", json=LOGIN, headers={"X-CAP-API-KEY": DEFAULT_API_KEY}
    ) as r:
        assert r.status == 200
        return {"CST": r.headers["CST"], "X-SECURITY-TOKEN": r.headers["X-SECURITY-TOKEN"]}


def _dumps(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


async def call(http: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> tuple[int, Any]:
    async with http.request(method, url, **kw) as r:
        return r.status, orjson.loads(await r.read())


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        ({}, LOGIN, "error.null.api.key"),
        ({"X-CAP-API-KEY": "nope"}, LOGIN, "error.invalid.api.key"),
        ({"X-CAP-API-KEY": DEFAULT_API_KEY}, {**LOGIN, "password": "wrong"}, "error.invalid.details"),
    ],
)
async def test_a_refused_login_is_a_401_with_the_apis_error_code(
    headers: dict[str, str], body: dict[str, str], code: str
) -> None:
    async with venue() as (local, http):
        status, answer = await call(http, "POST", local.rest_url + "/api/v1/session", json=body, headers=headers)

        assert (status, answer) == (401, {"errorCode": code})


async def test_a_login_answers_the_account_with_the_tokens_in_headers() -> None:
    async with venue() as (local, http):
        async with http.post(
            local.rest_url + "/api/v1/session", json=LOGIN, headers={"X-CAP-API-KEY": DEFAULT_API_KEY}
        ) as r:
            body = orjson.loads(await r.read())
            tokens = (r.headers.get("CST"), r.headers.get("X-SECURITY-TOKEN"))

        assert all(tokens)
        assert body["currentAccountId"] == body["accounts"][0]["accountId"]
        assert body["streamingHost"].startswith("ws://127.0.0.1:")


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "error.null.client.token"),
        ({"CST": "x"}, "error.null.account.token"),
        ({"CST": "x", "X-SECURITY-TOKEN": "y"}, "error.invalid.session.token"),
    ],
)
async def test_calls_without_valid_tokens_are_401_with_the_apis_error_code(headers: dict[str, str], code: str) -> None:
    async with venue() as (local, http):
        assert await call(http, "GET", local.rest_url + "/api/v1/positions", headers=headers) == (
            401,
            {"errorCode": code},
        )


async def test_market_details_carry_instrument_dealing_rules_and_snapshot() -> None:
    async with venue() as (local, http):
        tokens = await login(local, http)
        local.protocol.set_market_status("US500", "CLOSED")

        status, body = await call(http, "GET", local.rest_url + "/api/v1/markets?epics=GOLD,US500", headers=tokens)

        assert status == 200
        gold, us500 = body["marketDetails"]
        book = local.venue.book_for_symbol("GOLD")
        bid, _, ask, _ = book.top()
        assert gold["instrument"]["epic"] == "GOLD"
        assert gold["instrument"]["type"] == "COMMODITIES"
        assert gold["dealingRules"]["minStepDistance"]["value"] == book.tick
        assert gold["dealingRules"]["minDealSize"]["value"] == book.step
        assert (gold["snapshot"]["bid"], gold["snapshot"]["offer"]) == (bid, ask)
        assert gold["snapshot"]["marketStatus"] == "TRADEABLE"
        assert us500["snapshot"]["marketStatus"] == "CLOSED"
        assert await call(http, "GET", local.rest_url + "/api/v1/markets/NOPE", headers=tokens) == (
            404,
            {"errorCode": "error.not-found.epic"},
        )


async def test_the_venue_answers_429_past_ten_requests_a_second() -> None:
    async with venue() as (local, http):
        tokens = await login(local, http)  # the login is the first of the ten

        answers = [await call(http, "GET", local.rest_url + "/api/v1/ping", headers=tokens) for _ in range(10)]

        assert [s for s, _ in answers] == [200] * 9 + [429]
        assert answers[-1][1] == {"errorCode": "error.too-many.requests"}
        assert local.venue.stats["rate_limited"] == 1


async def test_the_stream_subscribes_answers_pings_and_sends_quotes_in_the_documented_shape() -> None:
    async with venue() as (local, http):
        tokens = await login(local, http)
        auth = {"cst": tokens["CST"], "securityToken": tokens["X-SECURITY-TOKEN"]}
        async with http.ws_connect(local.ws_url) as ws:
            await ws.send_str(
                orjson.dumps(
                    {
                        "destination": "marketData.subscribe",
                        "correlationId": "1",
                        **auth,
                        "payload": {"epics": ["GOLD"]},
                    }
                ).decode()
            )
            reply = orjson.loads(await ws.receive_str(timeout=3))
            quote = orjson.loads(await ws.receive_str(timeout=3))
            await ws.send_str(orjson.dumps({"destination": "ping", "correlationId": "2", **auth}).decode())
            while (pong := orjson.loads(await ws.receive_str(timeout=3)))["destination"] != "ping":
                pass

        assert reply == {
            "status": "OK",
            "destination": "marketData.subscribe",
            "correlationId": "1",
            "payload": {"subscriptions": {"GOLD": "PROCESSED"}},
        }
        assert quote["destination"] == "quote"
        assert set(quote["payload"]) == {"epic", "product", "bid", "bidQty", "ofr", "ofrQty", "timestamp"}
        assert quote["payload"]["epic"] == "GOLD"
        assert pong == {"status": "OK", "destination": "ping", "correlationId": "2", "payload": {}}


async def test_the_stream_refuses_dead_tokens_and_more_than_40_epics_a_connection() -> None:
    fx = [iid for iid, i in SETTINGS.instruments.items() if i.asset_class == "fx"]
    async with venue(fx) as (local, http):
        tokens = await login(local, http)
        auth = {"cst": tokens["CST"], "securityToken": tokens["X-SECURITY-TOKEN"]}
        epics = [SETTINGS.instruments[i].venues["capital_com"] for i in fx]
        subscribe = {"destination": "marketData.subscribe", **auth}
        async with http.ws_connect(local.ws_url) as ws:
            await ws.send_str(orjson.dumps({"destination": "ping", "correlationId": "1", "cst": "x"}).decode())
            dead = orjson.loads(await ws.receive_str(timeout=3))
            await ws.send_str(
                orjson.dumps({**subscribe, "correlationId": "2", "payload": {"epics": epics[:41]}}).decode()
            )
            too_many = orjson.loads(await ws.receive_str(timeout=3))
            await ws.send_str(
                orjson.dumps({**subscribe, "correlationId": "3", "payload": {"epics": ["NOPE"]}}).decode()
            )
            unknown = orjson.loads(await ws.receive_str(timeout=3))

        assert (dead["status"], dead["payload"]) == ("FAILED", {"errorCode": "error.null.account.token"})
        assert (too_many["status"], too_many["correlationId"]) == ("FAILED", "2")
        assert too_many["payload"] == {"errorCode": "error.invalid.subscription.limit"}
        assert unknown["payload"] == {"subscriptions": {"NOPE": "NOT_FOUND"}}


async def test_a_connection_silent_for_the_idle_limit_is_closed_by_the_venue() -> None:
    async with venue(ws_idle_s=0.3) as (local, http), http.ws_connect(local.ws_url) as ws:
        await eventually(lambda: local.venue.stats["ws_idle_closed"] == 1, 3)
        msg = await ws.receive(timeout=3)

        assert msg.type == aiohttp.WSMsgType.CLOSE


@pytest.mark.parametrize(
    ("kind", "at", "is_open"),
    [
        ("fx", dt.datetime(2024, 6, 7, 21, 59, 59, tzinfo=dt.UTC), True),  # Friday before 22:00
        ("fx", dt.datetime(2024, 6, 7, 22, 0, tzinfo=dt.UTC), False),  # Friday 22:00: the week ends
        ("fx", dt.datetime(2024, 6, 9, 21, 59, tzinfo=dt.UTC), False),  # Sunday before the open
        ("fx", dt.datetime(2024, 6, 9, 22, 0, tzinfo=dt.UTC), True),  # Sunday 22:00: the week starts
        ("session", dt.datetime(2024, 6, 11, 20, 59, tzinfo=dt.UTC), True),  # Tuesday before the daily break
        ("session", dt.datetime(2024, 6, 11, 21, 30, tzinfo=dt.UTC), False),  # in it
        ("session", dt.datetime(2024, 6, 11, 22, 0, tzinfo=dt.UTC), True),  # after it
        ("crypto", dt.datetime(2024, 6, 8, 12, 0, tzinfo=dt.UTC), True),  # Saturday
    ],
)
def test_market_hours_on_both_sides_of_each_boundary(kind: str, at: dt.datetime, is_open: bool) -> None:
    assert hours_open(kind, at) is is_open


async def test_a_closed_market_stops_quoting_and_rejects_deals_with_market_closed() -> None:
    saturday = dt.datetime(2024, 6, 8, 12, 0, tzinfo=dt.UTC)
    async with venue(hours="real", wall=lambda: saturday) as (local, http):
        tokens = await login(local, http)
        order = {"epic": "EURUSD", "direction": "BUY", "size": local.venue.book_for_symbol("EURUSD").step}

        _, ref = await call(http, "POST", local.rest_url + "/api/v1/positions", json=order, headers=tokens)
        _, confirm = await call(
            http, "GET", local.rest_url + f"/api/v1/confirms/{ref['dealReference']}", headers=tokens
        )

        assert (confirm["dealStatus"], confirm["reason"]) == ("REJECTED", "MARKET_CLOSED")
        assert local.protocol.market_status("EURUSD") == "CLOSED"
        assert local.protocol.market_status("BTCUSD") == "TRADEABLE"
        assert local.protocol.opening_hours("EURUSD")["sat"] == []
