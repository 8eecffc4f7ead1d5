"""Perps end to end: local Binance venue (spot + USD-M perp) -> real ccxt.pro connector and funding poller -> real
Redis grid -> Scanner with the basis kind.

The market prices the perp 30 bps over its underlying; fees and haircuts are zero, so the basis opportunity's net edge
is its realised spread plus funding, and funding = rate x basis_holding_hours / interval (24 h / 8 h = 3 x the rate).
"""

from __future__ import annotations

import dataclasses
import gc
import time

import pytest

from arb.config.schema import GridSettings
from arb.connectors.ccxt_pro import CcxtConnector, ConnectorOptions, LocalEndpoint, catching_frame_errors
from arb.connectors.funding import FundingPoller
from arb.grid import GridLayout, PriceGrid
from arb.model import VenueHealth
from arb.scanner.engine import Scanner
from arb.sim.market import InstrumentSpec, Market, MarketConfig
from arb.sim.server import SimVenue
from arb.sim.venues import BinanceProtocol
from arb.tasks import cancel_and_wait, spawn
from tests.integration.sim.support import eventually
from tests.support import Clock
from tests.unit.scanner.support_kinds import kinds_settings, perp, spot

SETTINGS = kinds_settings(
    {"binance": 0.0},
    {
        "BTC/USDT": spot("BTC", "USDT", {"binance": "BTC/USDT"}),
        "BTC/USDT-PERP": perp("BTC", "USDT", "BTC/USDT", {"binance": "BTC/USDT:USDT"}),
    },
    kinds=["spot", "basis"],
    basis_holding_hours=24.0,
)
SYMBOLS = {"BTC/USDT": "BTC/USDT", "BTC/USDT:USDT": "BTC/USDT-PERP"}
FAST = ConnectorOptions(backoff_initial_s=0.05, backoff_max_s=0.5, min_stall_budget_s=5.0, first_update_timeout_s=5.0)


def market() -> Market:
    btc = InstrumentSpec.derive("BTC/USDT", base="BTC", quote="USDT", asset_class="crypto_major")
    btc_perp = InstrumentSpec.derive("BTC/USDT-PERP", base="BTC", quote="USDT", asset_class="crypto_major")
    perp_spec = dataclasses.replace(btc_perp, underlying="BTC/USDT", basis_bps=30.0)
    return Market([btc, perp_spec], MarketConfig(seed=3, venue_offset_bps=0.0, venue_noise_bps=0.0))


async def grid_matches_venue(grid: PriceGrid, venue: SimVenue) -> bool:
    for symbol, instrument in SYMBOLS.items():
        view = (await grid.read_instrument(instrument)).venues.get("binance")
        book = venue.book_for_symbol(symbol)
        if view is None or view.quote.sequence != book.update_id:
            return False
        assert (view.quote.bid, view.quote.bid_size, view.quote.ask, view.quote.ask_size) == book.top()
    return True


async def test_perp_book_and_funding_reach_the_grid_and_the_scanner_opens_a_basis_trade(redis_url: str) -> None:
    mkt = market()
    protocol = BinanceProtocol()
    venue = SimVenue("binance", protocol, mkt, {"BTC/USDT": "BTC/USDT", "BTC/USDT-PERP": "BTC/USDT:USDT"})
    layout = GridLayout.from_settings(SETTINGS)
    async with (
        venue,
        mkt,
        PriceGrid.from_url(redis_url, layout, GridSettings(key_prefix="perps")) as grid,
        grid.writer(max_delay_ms=2.0) as writer,
    ):
        await grid.reset()
        endpoint = LocalEndpoint(venue.http_url, venue.ws_url)
        protocol.futures.set_funding("BTC/USDT:USDT", 0.0001)
        connector = CcxtConnector(
            "binance", SETTINGS.venues["binance"], SYMBOLS, writer.put, endpoint=endpoint, options=FAST
        )
        poller = FundingPoller("binance", "binance", {"BTC/USDT:USDT": "BTC/USDT-PERP"}, grid.write_funding,
                               endpoint=endpoint)  # fmt: skip
        with catching_frame_errors([connector]):
            task = spawn(connector.run(), name="test-perp-connector")
            try:
                # the perp streams like a spot book: the grid holds the venue's book, at its update id
                await eventually(lambda: connector.status.quotes >= 4, 10.0)
                await mkt.close()
                await eventually(lambda: grid_matches_venue(grid, venue), 5.0)

                assert await poller.refresh()
                rate = (await grid.read_funding())[("BTC/USDT-PERP", "binance")]
                assert (rate.rate, rate.interval_h) == (0.0001, 8.0)
                assert abs(rate.ts_ns - time.time_ns()) < 5 * 10**9
                assert rate.next_ts_ns % (8 * 3600 * 10**9) == 0  # Binance settles at 00, 08, 16 UTC

                clock = Clock(time.time_ns())
                mirror = grid.mirror(depth=20, now_ns=clock)
                scanner = Scanner(SETTINGS, mirror, now_ns=clock)
                async with mirror.following():
                    await grid.publish_health(
                        [VenueHealth(venue="binance", state="connected", since_ns=clock.now, published_ns=clock.now)]
                    )
                    target = (await grid.position()).c
                    assert await mirror.wait_until(lambda m: m.position.c >= target, timeout_s=2)
                    await scanner.refresh_inputs()

                    opened = [e.opportunity for e in scanner.step() if e.opportunity.kind == "basis"]

                    assert len(opened) == 1
                    opp = opened[0]
                    spot_book, perp_book = venue.book_for_symbol("BTC/USDT"), venue.book_for_symbol("BTC/USDT:USDT")
                    assert (opp.instrument, opp.buy_venue, opp.sell_venue) == ("BTC/USDT-PERP", "binance", "binance")
                    assert (opp.best_ask_buy, opp.best_bid_sell) == (spot_book.top()[2], perp_book.top()[0])
                    assert opp.funding == pytest.approx(0.0001 * 24 / 8)
                    realised = (opp.vwap_sell - opp.vwap_buy) / opp.vwap_buy
                    assert opp.net_edge == pytest.approx(realised + 0.0003)
                    assert 0.0025 < realised < 0.0031  # the market's 30 bps basis, less the two half-spreads

                    # the venue's rate turns negative (shorts pay): the next poll carries it to the opportunity
                    protocol.futures.set_funding("BTC/USDT:USDT", -0.0002)
                    assert await poller.refresh()
                    assert (await grid.read_funding())[("BTC/USDT-PERP", "binance")].rate == -0.0002
                    await scanner.refresh_inputs()

                    updated = [e for e in scanner.step() if e.opportunity.kind == "basis"]

                    assert [e.type for e in updated] == ["updated"]
                    assert updated[0].opportunity.funding == pytest.approx(-0.0002 * 24 / 8)
                    assert updated[0].opportunity.net_edge == pytest.approx(realised - 0.0006)
            finally:
                await cancel_and_wait(task, timeout_s=20)
                await poller.aclose()
                gc.collect()
