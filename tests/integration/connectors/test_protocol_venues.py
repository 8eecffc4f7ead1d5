"""The connector against every full protocol venue: real ccxt.pro class -> local venue -> connector -> real Redis grid.

One test per fault and venue (issue 3 acceptance): whatever happens on the wire, the grid ends up holding exactly the
venue's book, and nothing unsound reached it on the way. Venue specifics (symbols, which faults apply) are data
below; the test bodies are the same for every exchange.
"""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from arb.config import load_settings
from arb.connectors.ccxt_pro import CcxtConnector, ConnectorOptions, LocalEndpoint, catching_frame_errors
from arb.grid import GridLayout, PriceGrid
from arb.model import Quote, quote_problems
from arb.sim.market import Market
from arb.sim.server import SimVenue
from arb.sim.venues import PROTOCOLS
from arb.tasks import cancel_and_wait, spawn
from tests.integration.sim.support import LIVELY, SPECS, eventually

VENUES = sorted(PROTOCOLS)
"""Every exchange with its own protocol module (binance, bybit, coinbase, kraken, okx)."""
USD_QUOTED = {"coinbase", "kraken"}
CHECKSUMMED = {"okx", "kraken"}
FAST = ConnectorOptions(
    backoff_initial_s=0.05, backoff_max_s=0.5, min_stall_budget_s=0.5, first_update_timeout_s=8.0, rate_limit_ms=2.0
)


def symbols_for(venue_id: str) -> dict[str, str]:
    quote = "USD" if venue_id in USD_QUOTED else "USDT"
    return {spec.id: f"{spec.id.split('/')[0]}/{quote}" for spec in SPECS}


@asynccontextmanager
async def streaming(
    venue_id: str, redis_url: str, seen: list[Quote]
) -> AsyncIterator[tuple[SimVenue, CcxtConnector, PriceGrid]]:
    symbols = symbols_for(venue_id)
    market = Market(SPECS, LIVELY)
    layout = GridLayout.from_lists(list(symbols), [venue_id], {venue_id: 2000})
    cfg = load_settings().venues[venue_id]
    async with (
        SimVenue(venue_id, PROTOCOLS[venue_id](), market, symbols) as venue,
        market,
        PriceGrid.from_url(redis_url, layout) as grid,
        grid.writer(max_delay_ms=2.0) as writer,
    ):

        def sink(quote: Quote) -> None:
            seen.append(quote)
            writer.put(quote)

        connector = CcxtConnector(
            venue_id,
            cfg,
            {sym: inst for inst, sym in symbols.items()},
            sink,
            endpoint=LocalEndpoint(venue.http_url, venue.ws_url),
            options=FAST,
        )
        with catching_frame_errors([connector]):
            task = spawn(connector.run(), name=f"test-connector-{venue_id}")
            try:
                yield venue, connector, grid
            finally:
                await cancel_and_wait(task, timeout_s=20)
                gc.collect()


async def grid_is_the_venues_book(grid: PriceGrid, venue: SimVenue) -> bool:
    for instrument, symbol in symbols_for(venue.venue_id).items():
        view = (await grid.read_instrument(instrument)).venues.get(venue.venue_id)
        if view is None:
            return False
        bids, asks = venue.book_for_symbol(symbol).levels(5)
        q = view.quote
        if [tuple(x) for x in q.bids[:5]] != [(p, s) for p, s in bids]:
            return False
        if [tuple(x) for x in q.asks[:5]] != [(p, s) for p, s in asks]:
            return False
    return True


async def settle(venue: SimVenue, grid: PriceGrid, seen: list[Quote]) -> None:
    """Stop the market and wait until the grid holds the venue's book; nothing unsound was ever written."""
    await venue.market.close()
    await eventually(lambda: grid_is_the_venues_book(grid, venue), 8)
    assert all(quote_problems(q) == [] for q in seen), "an unsound quote reached the grid"


@pytest.mark.parametrize("venue_id", VENUES)
async def test_the_grid_holds_the_venues_book(venue_id: str, redis_url: str) -> None:
    seen: list[Quote] = []
    async with streaming(venue_id, redis_url, seen) as (venue, connector, grid):
        await eventually(lambda: connector.status.quotes >= 20, 15)

        await settle(venue, grid, seen)

        assert connector.status.state == "connected"
        assert connector.status.reconnects == 0


@pytest.mark.parametrize("venue_id", VENUES)
async def test_a_dropped_connection_is_healed_and_the_book_resynced(venue_id: str, redis_url: str) -> None:
    seen: list[Quote] = []
    async with streaming(venue_id, redis_url, seen) as (venue, connector, grid):
        await eventually(lambda: connector.status.quotes >= 10, 15)

        venue.faults.drop()

        await eventually(lambda: connector.status.reconnects >= 1, 8)
        before = connector.status.quotes
        await eventually(lambda: connector.status.quotes > before + 10, 15)
        await settle(venue, grid, seen)


@pytest.mark.parametrize("venue_id", VENUES)
async def test_a_sequence_gap_triggers_a_resync_never_a_wrong_book(venue_id: str, redis_url: str) -> None:
    seen: list[Quote] = []
    async with streaming(venue_id, redis_url, seen) as (venue, connector, grid):
        await eventually(lambda: connector.status.quotes >= 10, 15)

        venue.faults.skip_sequence(symbol=symbols_for(venue_id)["BTC/USD"])

        await eventually(lambda: venue.faults.injected["skip_sequence"] >= 1, 5)
        await eventually(lambda: connector.status.gaps >= 1, 8)
        before = connector.status.quotes
        await eventually(lambda: connector.status.quotes > before + 10, 15)
        await settle(venue, grid, seen)


@pytest.mark.parametrize("venue_id", sorted(CHECKSUMMED & set(VENUES)))
async def test_a_bad_checksum_triggers_a_resync_never_a_wrong_book(venue_id: str, redis_url: str) -> None:
    seen: list[Quote] = []
    async with streaming(venue_id, redis_url, seen) as (venue, connector, grid):
        await eventually(lambda: connector.status.quotes >= 10, 15)

        venue.faults.bad_checksum(symbol=symbols_for(venue_id)["ETH/USD"])

        await eventually(lambda: venue.faults.injected["bad_checksum"] >= 1, 5)
        await eventually(lambda: connector.status.gaps >= 1, 8)
        before = connector.status.quotes
        await eventually(lambda: connector.status.quotes > before + 10, 15)
        await settle(venue, grid, seen)


@pytest.mark.parametrize("venue_id", VENUES)
async def test_a_malformed_frame_is_counted_and_skipped(venue_id: str, redis_url: str) -> None:
    seen: list[Quote] = []
    async with streaming(venue_id, redis_url, seen) as (venue, connector, grid):
        await eventually(lambda: connector.status.quotes >= 10, 15)

        venue.faults.malformed("invalid_json", symbol=symbols_for(venue_id)["SOL/USD"])

        await eventually(lambda: venue.faults.injected["malformed"] >= 1, 5)
        await eventually(lambda: connector.status.rejected.get("malformed", 0) >= 1, 8)
        before = connector.status.quotes
        await eventually(lambda: connector.status.quotes > before + 10, 15)
        await settle(venue, grid, seen)


@pytest.mark.parametrize("venue_id", VENUES)
async def test_a_429_is_backed_off_per_retry_after(venue_id: str, redis_url: str) -> None:
    seen: list[Quote] = []
    started = time.monotonic()
    async with streaming(venue_id, redis_url, seen) as (venue, connector, _grid):
        # the next REST call gets a 429 (no ban escalation: the concurrent market calls ccxt makes are in flight)
        venue.faults.rate_limit(status=429, retry_after_s=1, requests=1, escalate=False)

        await eventually(lambda: connector.status.quotes >= 1, 20)

        assert venue.faults.injected["http_429"] == 1
        assert connector.status.reconnects == 1
        assert connector.status.last_error.startswith("rate_limit"), connector.status.last_error
        assert time.monotonic() - started >= 1.0


@pytest.mark.parametrize("venue_id", VENUES)
async def test_a_silent_stall_marks_the_venue_stale_within_its_budget(venue_id: str, redis_url: str) -> None:
    """FAULTS M1: the socket stays open and nothing arrives (no data, no pings)."""
    seen: list[Quote] = []
    async with streaming(venue_id, redis_url, seen) as (venue, connector, grid):
        await eventually(lambda: connector.status.quotes >= 40, 20)  # enough gaps measured for the budget
        budget = connector.stall_budget_s

        venue.faults.stall(4.0)
        stalled_at = time.monotonic()

        await eventually(lambda: connector.status.state != "connected", 6, every_s=0.01)
        assert time.monotonic() - stalled_at <= budget + 1.0  # the budget + the watchdog's check interval + slack
        await eventually(lambda: connector.status.stalls >= 1, 5)
        venue.faults.clear()
        await eventually(lambda: connector.status.state == "connected", 20)
        await settle(venue, grid, seen)
