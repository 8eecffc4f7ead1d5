"""The generic connector end to end: real ccxt.pro binance -> local Binance venue -> connector -> real Redis grid.

Each test ends by comparing the grid with the venue's own book: whatever the fault, the grid never holds a wrong book.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from arb.config import VenueConfig, load_settings
from arb.connectors.ccxt_pro import CcxtConnector, ConnectorOptions, LocalEndpoint, catching_frame_errors
from arb.grid import GridLayout, PriceGrid
from arb.model import Quote, quote_problems
from arb.sim.server import SimVenue
from arb.tasks import cancel_and_wait, spawn
from tests.integration.sim.support import SYMBOLS, binance_venue, eventually

FAST = ConnectorOptions(backoff_initial_s=0.05, backoff_max_s=0.5, min_stall_budget_s=0.5, first_update_timeout_s=5.0)
INSTRUMENTS = list(SYMBOLS)


@asynccontextmanager
async def streaming(
    venue: SimVenue, redis_url: str, options: ConnectorOptions = FAST, seen: list[Quote] | None = None
) -> AsyncIterator[tuple[CcxtConnector, PriceGrid]]:
    """The connector streaming `venue` into a real grid; every quote it writes is also appended to `seen`."""
    layout = GridLayout.from_lists(INSTRUMENTS, ["binance"], {"binance": 2000})
    cfg = load_settings().venues["binance"]
    async with PriceGrid.from_url(redis_url, layout) as grid, grid.writer(max_delay_ms=2.0) as writer:

        def sink(quote: Quote) -> None:
            if seen is not None:
                seen.append(quote)
            writer.put(quote)

        connector = connector_for(venue, sink, cfg, options)
        with catching_frame_errors([connector]):
            task = spawn(connector.run(), name="test-connector")
            try:
                yield connector, grid
            finally:
                await cancel_and_wait(task, timeout_s=20)
                gc.collect()  # an exchange this test leaked is reported here, by this test


def connector_for(
    venue: SimVenue, sink: Callable[[Quote], None], cfg: VenueConfig, options: ConnectorOptions
) -> CcxtConnector:
    symbols = {sym: inst for inst, sym in SYMBOLS.items()}
    return CcxtConnector(
        "binance", cfg, symbols, sink, endpoint=LocalEndpoint(venue.http_url, venue.ws_url), options=options
    )


async def grid_matches_venue(grid: PriceGrid, venue: SimVenue) -> bool:
    """True when every instrument's grid quote is the venue's current top of book, at the venue's update id."""
    for instrument, symbol in SYMBOLS.items():
        snap = await grid.read_instrument(instrument)
        view = snap.venues.get("binance")
        book = venue.book_for_symbol(symbol)
        if view is None or view.quote.sequence != book.update_id:
            return False
        bid, bid_size, ask, ask_size = book.top()
        q = view.quote
        assert (q.bid, q.bid_size, q.ask, q.ask_size) == (bid, bid_size, ask, ask_size), "same update id, other book"
        assert quote_problems(q) == []
    return True


async def settle(venue: SimVenue, grid: PriceGrid, timeout_s: float = 5.0) -> None:
    """Stop the venue's market moving and wait until the grid shows exactly the venue's books."""
    await venue.market.close()
    await eventually(lambda: grid_matches_venue(grid, venue), timeout_s)


async def test_quotes_in_the_grid_match_the_venues_book(redis_url: str) -> None:
    async with binance_venue() as venue, streaming(venue, redis_url) as (connector, grid):
        await eventually(lambda: connector.status.quotes >= 30, 10)

        await settle(venue, grid)

        assert connector.status.state == "connected"
        snap = await grid.read_instrument("BTC/USD")
        q = snap.venues["binance"].quote
        bids, asks = venue.book_for_symbol("BTC/USDT").levels(20)
        assert list(q.bids) == [(p, s) for p, s in bids]
        assert list(q.asks) == [(p, s) for p, s in asks]
        assert q.ts_exchange <= q.ts_recv


async def test_a_dropped_connection_is_healed_and_the_book_resynced(redis_url: str) -> None:
    async with binance_venue() as venue, streaming(venue, redis_url) as (connector, grid):
        await eventually(lambda: connector.status.quotes >= 10, 10)

        venue.faults.drop()

        await eventually(lambda: connector.status.reconnects >= 1, 5)
        quotes_after_drop = connector.status.quotes
        await eventually(lambda: connector.status.quotes > quotes_after_drop + 10, 10)
        assert connector.status.state == "connected"
        await settle(venue, grid)


async def test_a_silent_stall_marks_the_venue_stale_within_budget_and_reconnects(redis_url: str) -> None:
    async with binance_venue() as venue, streaming(venue, redis_url) as (connector, _grid):
        await eventually(lambda: connector.status.quotes >= 60, 15)  # enough gaps measured for the budget
        budget = connector.stall_budget_s
        assert budget <= 1.0

        venue.faults.stall(5.0)
        stalled_at = time.monotonic()

        await eventually(lambda: connector.status.state != "connected", 5, every_s=0.01)
        assert time.monotonic() - stalled_at <= budget + 0.6  # budget + the watchdog's check interval
        await eventually(lambda: connector.status.stalls >= 1 and connector.status.reconnects >= 1, 5)
        assert connector.status.last_error.startswith("stall")
        # The venue answers again: the feed comes back on a new session (and the stalled one finishes closing,
        # which cannot happen while the venue stays silent).
        venue.faults.clear()
        before = connector.status.quotes
        await eventually(lambda: connector.status.quotes > before + 10 and connector.status.state == "connected", 15)


async def test_a_sequence_gap_triggers_a_resync_never_a_wrong_book(redis_url: str) -> None:
    async with binance_venue() as venue, streaming(venue, redis_url) as (connector, grid):
        await eventually(lambda: connector.status.quotes >= 10, 10)

        venue.faults.skip_sequence(symbol="BTC/USDT")

        await eventually(lambda: connector.status.gaps >= 1 or connector.status.reconnects >= 1, 10)
        before = connector.status.quotes
        await eventually(lambda: connector.status.quotes > before + 10, 10)
        await settle(venue, grid)


async def test_a_malformed_frame_never_reaches_the_grid_and_the_feed_recovers(redis_url: str) -> None:
    async with binance_venue() as venue, streaming(venue, redis_url) as (connector, grid):
        await eventually(lambda: connector.status.quotes >= 10, 10)

        venue.faults.malformed("invalid_json", symbol="ETH/USDT")
        sent_at = time.monotonic()

        await eventually(lambda: connector.status.rejected.get("malformed", 0) == 1, 5)
        await eventually(lambda: connector.status.reconnects == 1, 2)
        assert time.monotonic() - sent_at < 2.0, "reconnected by the stall watchdog, not on the frame error"
        assert connector.status.last_error.startswith("malformed")
        before = connector.status.quotes
        await eventually(lambda: connector.status.quotes > before + 10, 10)
        await settle(venue, grid)


async def test_a_429_is_backed_off_per_retry_after(redis_url: str) -> None:
    async with binance_venue() as venue:
        venue.faults.rate_limit(status=429, retry_after_s=1, requests=1)
        started = time.monotonic()

        async with streaming(venue, redis_url) as (connector, _grid):
            await eventually(lambda: connector.status.quotes >= 1, 10)

            assert time.monotonic() - started >= 1.0
            assert connector.status.last_error.startswith("rate_limit")
            assert connector.status.reconnects == 1
            await asyncio.sleep(0)


def sequences_never_go_back(quotes: list[Quote]) -> bool:
    last: dict[str, int] = {}
    for q in quotes:
        if q.sequence < last.get(q.instrument, -1):
            return False
        last[q.instrument] = q.sequence
    return True


@pytest.mark.parametrize("kind", ["crossed", "nan_price"])
async def test_a_bad_level_ccxt_merged_invalidates_the_book_and_it_is_rebuilt(redis_url: str, kind: str) -> None:
    """FAULTS M7: ccxt keeps a crossing / NaN level in its book; the connector must not trust that book again."""
    seen: list[Quote] = []
    async with binance_venue() as venue, streaming(venue, redis_url, seen=seen) as (connector, grid):
        await eventually(lambda: connector.status.quotes >= 10, 10)

        venue.faults.malformed(kind, symbol="ETH/USDT")  # type: ignore[arg-type]

        await eventually(lambda: connector.status.resyncs >= 1, 5)
        assert connector.status.rejected.get("crossed", 0) + connector.status.rejected.get("invalid", 0) >= 1
        before = connector.status.quotes
        await eventually(lambda: connector.status.quotes > before + 10, 10)
        await settle(venue, grid)
        assert all(quote_problems(q) == [] for q in seen), "a bad book reached the grid"


async def test_a_snapshot_older_than_the_stream_is_never_used_and_is_fetched_again(redis_url: str) -> None:
    """FAULTS M4: a snapshot the stream already passed is refused and fetched again.

    Two places catch it, whichever sees it first (a race between the REST snapshot and the socket's diffs): ccxt,
    when diffs it buffered before the snapshot do not follow on (InvalidNonce, counted as a gap); or our guard, when
    ccxt resolves the watch with the snapshot before any diff (rejected as `stale_snapshot`)."""
    seen: list[Quote] = []
    async with binance_venue() as venue, streaming(venue, redis_url, seen=seen) as (connector, grid):
        await eventually(lambda: connector.status.quotes >= 10, 10)
        gaps = connector.status.gaps

        venue.faults.stale_snapshot(symbol="BTC/USDT")
        venue.faults.drop()  # the new session fetches new snapshots: BTC's is stale

        await eventually(lambda: venue.faults.injected["stale_snapshot"] == 1, 5)
        await eventually(
            lambda: connector.status.rejected.get("stale_snapshot", 0) >= 1 or connector.status.gaps > gaps, 5
        )
        before = connector.status.quotes
        await eventually(lambda: connector.status.quotes > before + 10, 10)
        await settle(venue, grid)
        assert sequences_never_go_back(seen), "a stale snapshot reached the grid"


async def test_snapshots_that_stay_stale_mark_the_venue_unhealthy_instead_of_a_resync_storm(redis_url: str) -> None:
    """FAULTS M4: after `max_resyncs` failed rebuilds in a row the venue backs off for its long backoff."""
    options = ConnectorOptions(
        backoff_initial_s=0.05, backoff_max_s=3.0, min_stall_budget_s=0.5, first_update_timeout_s=5.0, max_resyncs=3
    )
    async with binance_venue() as venue, streaming(venue, redis_url, options) as (connector, _grid):
        await eventually(lambda: connector.status.quotes >= 10, 10)

        venue.faults.stale_snapshot(count=1000)
        venue.faults.drop()

        await eventually(lambda: connector.status.last_error.startswith("unhealthy"), 10)
        assert connector.status.state == "down"
        resyncs = connector.status.resyncs
        await asyncio.sleep(1.0)
        assert connector.status.resyncs == resyncs, "kept rebuilding during the long backoff"
        venue.faults.clear()
        before = connector.status.quotes
        await eventually(lambda: connector.status.quotes > before + 10 and connector.status.state == "connected", 10)


async def test_a_venue_whose_clock_stops_is_marked_stale_by_the_lag_watchdog(redis_url: str) -> None:
    """FAULTS M2: messages keep coming but their venue timestamps stop advancing."""
    async with binance_venue() as venue, streaming(venue, redis_url) as (connector, _grid):
        await eventually(lambda: connector.status.quotes >= 60, 15)
        updates_before = connector.status.updates

        venue.faults.freeze_time(10.0)
        frozen_at = time.monotonic()

        await eventually(lambda: connector.status.state != "connected", 5, every_s=0.01)
        assert connector.status.updates > updates_before, "updates kept arriving: this is not a silent stall"
        assert time.monotonic() - frozen_at <= max(connector.stall_budget_s, 1.0) + 2.5  # + check interval, slack
        await eventually(lambda: connector.status.stalls >= 1, 5)
        assert "timestamps stopped advancing" in connector.status.last_error
        venue.faults.clear()  # the clock runs again: the feed comes back on a new session
        await eventually(lambda: connector.status.state == "connected", 15)


async def test_the_connector_keeps_each_instruments_taker_fee_from_the_venues_markets(redis_url: str) -> None:
    async with binance_venue() as venue, streaming(venue, redis_url) as (connector, _):
        await eventually(lambda: connector.status.quotes >= 1, 10)
        # ccxt's binance markets state the base-tier spot taker fee, 0.1 % (binance.com/en/fee/schedule)
        assert connector.taker_fees == dict.fromkeys(SYMBOLS, 0.001)
