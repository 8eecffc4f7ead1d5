"""The Capital.com client against the local venue over real HTTP: login, token renewal, 401s, rate limits, 429s."""

from __future__ import annotations

import asyncio
import itertools
import logging
from decimal import Decimal

import pytest

from arb.connectors.capital_com import CapitalComTrader, ClientOptions, PositionRequest
from arb.executor.venue import VenueAuthError, VenueRateLimited, VenueUnavailable
from tests.integration.connectors.capital_com_support import (
    FEW,
    client_of,
    local_capital_com,
    max_in_window,
    requests_to,
)


async def test_login_gives_tokens_that_read_markets_with_status_rules_and_hours() -> None:
    async with local_capital_com(FEW, run=False) as local, client_of(local) as client:
        markets = await client.markets(["EURUSD", "GOLD", "NOSUCHEPIC"])

        assert client.stats.sessions_created == 1
        assert [m.epic for m in markets] == ["EURUSD", "GOLD"]  # an unknown epic is simply absent
        gold = markets[1]
        book = local.venue.book("GOLD")
        assert book is not None
        bid, _, ask, _ = book.top()
        assert (gold.snapshot.bid, gold.snapshot.offer, gold.snapshot.marketStatus) == (bid, ask, "TRADEABLE")
        assert gold.dealingRules.minDealSize is not None
        assert gold.dealingRules.minDealSize.value == Decimal(repr(book.step))
        assert gold.instrument.openingHours is not None


async def test_a_wrong_api_key_is_refused_with_the_apis_401_and_the_key_never_appears() -> None:
    async with local_capital_com(FEW, run=False) as local, client_of(local, api_key="wrong-key-123") as client:
        with pytest.raises(VenueAuthError) as err:
            await client.ping()

        assert "HTTP 401 error.invalid.api.key" in str(err.value)
        assert "wrong-key-123" not in str(err.value)
        assert local.password not in str(err.value)
        assert client.stats.sessions_created == 0


async def test_an_idle_session_is_kept_alive_by_pings_and_never_lapses() -> None:
    options = ClientOptions(timeout_s=5.0, session_idle_s=1.0, renew_margin_s=0.2, keepalive_s=0.3)
    async with local_capital_com(FEW, run=False, session_idle_s=1.0) as local, client_of(local, options) as client:
        await client.ping()

        await asyncio.sleep(2.5)  # 2.5 idle-timeouts of the venue
        await client.positions()

        assert client.stats.sessions_created == 1
        assert client.stats.keepalive_pings >= 3
        assert client.stats.session_errors == 0
        assert local.venue.faults.injected["session_lapsed"] == 0


async def test_a_session_idle_too_long_is_renewed_before_the_request_not_after_a_401() -> None:
    options = ClientOptions(timeout_s=5.0, session_idle_s=1.0, renew_margin_s=0.2, keepalive_s=None)
    async with local_capital_com(FEW, run=False, session_idle_s=1.0) as local, client_of(local, options) as client:
        await client.ping()

        await asyncio.sleep(1.1)
        await client.ping()

        assert client.stats.sessions_created == 2
        assert client.stats.renewed_idle == 1
        assert client.stats.session_errors == 0  # no request was refused: the renewal came first
        assert local.venue.faults.injected["session_lapsed"] == 0


async def test_an_expired_session_on_a_read_logs_in_again_and_the_read_succeeds() -> None:
    async with local_capital_com(FEW, run=False) as local, client_of(local) as client:
        await client.ping()
        local.protocol.expire_sessions()

        positions = await client.positions()

        assert positions == []
        assert client.stats.session_errors == 1
        assert client.stats.sessions_created == 2
        assert len(requests_to(local, "GET", "/api/v1/positions")) == 2  # refused once, then answered


async def test_the_documented_rate_limits_hold_at_the_venue_under_a_burst() -> None:
    async with local_capital_com(FEW, run=False) as local, client_of(local) as client:
        trader = CapitalComTrader(client)
        size = Decimal(repr(local.venue.book_for_symbol("GOLD").step))
        reads = [client.markets(["GOLD"]) for _ in range(24)]
        opens = [trader.open_position(PositionRequest(epic="GOLD", direction="BUY", size=size)) for _ in range(4)]

        await asyncio.gather(*reads, *opens)

        everything = [t for t, _, p in local.venue.requests if p.startswith("/api/v1/")]
        positions = sorted(requests_to(local, "POST", "/api/v1/positions"))
        assert len(everything) >= 24 + 4 + 4 + 1  # reads, opens, their confirms, the login
        assert max_in_window(everything, 1.0) <= 10
        assert min(b - a for a, b in itertools.pairwise(positions)) >= 0.1
        stats = local.venue.stats
        assert stats["rate_limited"] == stats["rate_limited_trade"] == stats["rate_limited_session"] == 0
        assert len(local.protocol.default_account.positions) == 4  # type: ignore[union-attr]


async def test_a_429_silences_the_client_for_its_retry_after() -> None:
    async with local_capital_com(FEW, run=False) as local, client_of(local) as client:
        await client.ping()
        local.venue.faults.rate_limit(retry_after_s=1, requests=1, escalate=False)

        with pytest.raises(VenueRateLimited) as err:
            await client.ping()
        refused_at = requests_to(local, "GET", "/api/v1/ping")[-1]
        await client.ping()

        assert err.value.retry_after_s == 1.0
        assert "error.too-many.requests" in str(err.value)
        next_at = requests_to(local, "GET", "/api/v1/ping")[-1]
        assert next_at - refused_at >= 1.0  # nothing reached the venue inside its Retry-After


async def test_maintenance_makes_reads_unavailable_with_the_venues_503() -> None:
    async with local_capital_com(FEW, run=False) as local, client_of(local) as client:
        await client.ping()
        local.venue.faults.maintenance(5.0)

        with pytest.raises(VenueUnavailable, match=r"HTTP 503 error\.service\.unavailable"):
            await client.positions()


async def test_no_key_password_or_session_token_reaches_the_logs_or_reprs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with local_capital_com(FEW, run=False) as local, client_of(local) as client:
        first = await client.tokens()
        local.protocol.expire_sessions()
        await client.positions()  # refused, logged in again, answered
        second = await client.tokens()
        async with client_of(local, api_key=local.api_key + "-typo") as wrong:
            with pytest.raises(VenueAuthError):
                await wrong.ping()

        secrets = [local.api_key, local.password, first.cst, first.security_token, second.cst, second.security_token]
        shown = caplog.text + repr(client) + repr(first) + repr(second)
        assert first.generation + 1 == second.generation
        assert [s for s in secrets if s in shown] == []
