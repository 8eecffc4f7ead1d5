"""Wallet status end to end: the real ccxt binance class reads the local venues' wallet endpoint, the pollers publish
to a real Redis, and the scanner's opportunities carry the transfer cost and the wallet status, flipping to
"suspended" (and ranking last) once a venue closes withdrawals of the base coin."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import aiohttp
import pytest

from arb.config.schema import GridSettings
from arb.connectors.ccxt_pro import LocalEndpoint
from arb.connectors.wallets import pollers_for, polling_wallets
from arb.grid import GridLayout, PriceGrid
from arb.model import Opportunity, Quote
from arb.scanner.engine import Scanner
from arb.sim.market import InstrumentSpec, Market, MarketConfig
from arb.sim.server import SimVenue
from arb.sim.venues.binance import BinanceProtocol
from tests.integration.sim.support import eventually
from tests.unit.scanner.support import settings

VENUES = ("binance", "gate", "okx")
SETTINGS = settings(
    dict.fromkeys(VENUES, 0.001), {"BTC/USD": dict.fromkeys(VENUES, "BTC/USDT")}, scanner={"wallet_refresh_s": 0.2}
)
SERVED_AS = dict.fromkeys(VENUES, "binance")
"""Every venue speaks the Binance format here, so each is read with the ccxt binance class."""
ENV = {f"ARB_{v.upper()}_{what}": f"{v}-{what.lower()}-value" for v in VENUES for what in ("API_KEY", "SECRET")}


def book(venue: str, mid: float, sequence: int) -> Quote:
    """A fresh 5-level book around `mid` (1 bp half spread, 1 bp level gap, 10 BTC a level)."""
    now = time.time_ns()
    bids = tuple((mid * (1 - 1e-4 * (k + 1)), 10.0) for k in range(5))
    asks = tuple((mid * (1 + 1e-4 * (k + 1)), 10.0) for k in range(5))
    return Quote(venue, "BTC/USD", bids[0][0], 10.0, asks[0][0], 10.0, now - 1_000_000, now, sequence, bids, asks)


@pytest.fixture
async def grid(redis_url: str) -> AsyncIterator[PriceGrid]:
    async with PriceGrid.from_url(redis_url, GridLayout.from_settings(SETTINGS), GridSettings(key_prefix="xfer")) as g:
        await g.reset()
        yield g


@pytest.fixture
async def venues() -> AsyncIterator[dict[str, SimVenue]]:
    market = Market([InstrumentSpec.derive("BTC/USD", base="BTC", asset_class="crypto_major")], MarketConfig(seed=3))
    async with AsyncExitStack() as stack:
        out = {}
        for vid in VENUES:
            out[vid] = await stack.enter_async_context(
                SimVenue(vid, BinanceProtocol(), market, {"BTC/USD": "BTC/USDT"})
            )
        yield out
    await market.close()


def wallets(venue: SimVenue) -> BinanceProtocol:
    protocol = venue.protocol
    assert isinstance(protocol, BinanceProtocol)
    return protocol


def endpoints(venues: dict[str, SimVenue]) -> dict[str, LocalEndpoint]:
    return {vid: LocalEndpoint(v.http_url, v.ws_url) for vid, v in venues.items()}


def pair(found: list[Opportunity], buy: str, sell: str) -> Opportunity:
    [opp] = [o for o in found if (o.buy_venue, o.sell_venue) == (buy, sell)]
    return opp


async def test_opportunities_carry_transfer_cost_and_flip_to_suspended_when_withdrawals_close(
    grid: PriceGrid, venues: dict[str, SimVenue]
) -> None:
    wallets(venues["binance"]).wallets.set("BTC", withdraw_fee=0.0002)
    wallets(venues["okx"]).wallets.set("BTC", withdraw_fee=0.0003)
    wallets(venues["gate"]).wallets.set("USDT", withdraw_fee=1.5)
    mirror = grid.mirror(depth=20)
    scanner = Scanner(SETTINGS, mirror, require_health=False)
    scanner.transfers.read_every_s = 0.0
    sequence = 0

    async def scan() -> list[Opportunity]:
        """Fresh books (gate 60 bps above the others: buy on binance or okx, sell on gate), then a scan."""
        nonlocal sequence
        sequence += 1
        target = await grid.write(
            [book("binance", 65_000.0, sequence), book("okx", 65_000.0, sequence), book("gate", 65_400.0, sequence)]
        )
        assert await mirror.wait_until(lambda m: m.position.c >= target.c, timeout_s=2)
        await scanner.refresh_inputs()
        return scanner.scan_once()

    async with (
        mirror.following(),
        polling_wallets(SETTINGS, grid, VENUES, endpoints=endpoints(venues), ccxt_ids=SERVED_AS, environ=ENV) as ps,
    ):
        assert sorted(p.venue_id for p in ps) == sorted(VENUES)
        await eventually(lambda: all(p.polls for p in ps), timeout_s=10)

        found = await scan()
        via_binance, via_okx = pair(found, "binance", "gate"), pair(found, "okx", "gate")
        assert (via_binance.wallet, via_okx.wallet) == ("open", "open")
        # 0.0002 BTC out of binance at the buy price, 1.5 USDT back out of gate: ~14.5 USD
        assert via_binance.transfer_cost == pytest.approx(0.0002 * via_binance.vwap_buy + 1.5)
        assert via_okx.transfer_cost == pytest.approx(0.0003 * via_okx.vwap_buy + 1.5)
        assert 14.4 < via_binance.transfer_cost < 14.6
        assert via_binance.priority > 0

        async with (
            aiohttp.ClientSession() as session,
            session.post(venues["binance"].http_url + "/_sim/wallets", json={"coin": "BTC", "withdraw": False}) as r,
        ):
            assert r.status == 200

        async def binance_suspended() -> bool:
            return pair(await scan(), "binance", "gate").wallet == "suspended"

        await eventually(binance_suspended, timeout_s=10, every_s=0.1)
        found = await scan()

    suspended, still_open = pair(found, "binance", "gate"), pair(found, "okx", "gate")
    assert suspended.priority == 0.0  # visible, flagged, ranked after every open one
    assert suspended.expected_profit > 0
    assert suspended.transfer_cost == pytest.approx(0.0002 * suspended.vwap_buy + 1.5)
    assert still_open.wallet == "open"
    assert found[0] == still_open


async def test_a_failing_venue_publishes_nothing_and_logs_without_its_credentials(
    grid: PriceGrid, venues: dict[str, SimVenue], caplog: pytest.LogCaptureFixture
) -> None:
    venue = venues["binance"]
    [poller] = pollers_for(
        SETTINGS, ["binance"], grid.write_wallets, endpoints=endpoints(venues), ccxt_ids=SERVED_AS, environ=ENV
    )
    venue.faults.maintenance()
    try:
        with caplog.at_level(logging.WARNING, logger="arb.connectors.wallets"):
            assert await poller.refresh() is False
        venue.faults.end_maintenance()
        assert await poller.refresh() is True
    finally:
        await poller.aclose()

    assert "wallets.poll_failed venue=binance error='OnMaintenance" in caplog.text
    assert not any(value in caplog.text for value in ENV.values())
    assert re.search(r"signature=(?!\*\*\*)", caplog.text) is None
    assert (poller.failures, poller.polls) == (1, 1)
    published = await grid.read_wallets()
    assert set(published) == {"binance"}
    assert set(published["binance"].currencies) == {"BTC", "USDT"}
