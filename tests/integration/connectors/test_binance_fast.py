"""The Binance diff-depth fast path against the local Binance venue, side by side with the ccxt.pro path.

Both connectors read the same venue; once the market stops, each must hold exactly the venue's book, and their
Quotes must be identical field for field (receive time aside). Faults: a gap, a stale snapshot, a malformed frame and
a crossing level each end in a rebuilt book, never a wrong one in the grid.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import pytest

from arb.config import load_settings
from arb.connectors.binance_fast import DepthEvent, LocalBook, combined_stream_url
from arb.connectors.ccxt_pro import CcxtConnector, ConnectorOptions, LocalEndpoint, catching_frame_errors
from arb.grid import GridLayout, PriceGrid
from arb.model import Quote, quote_problems
from arb.sim.server import SimVenue
from arb.tasks import cancel_and_wait, spawn
from tests.integration.sim.support import SYMBOLS, binance_venue, eventually

DEPTH = 10
"""Quote depth below the book limit (20): ccxt trims its book to the limit, so level 20+ may differ legitimately."""
BASE = ConnectorOptions(
    depth=DEPTH, backoff_initial_s=0.05, backoff_max_s=0.5, min_stall_budget_s=0.5, first_update_timeout_s=8.0,
    rate_limit_ms=2.0,
)  # fmt: skip
FASTPATH = msgspec.structs.replace(BASE, fast_binance_depth=True)


@asynccontextmanager
async def connector(
    venue: SimVenue, options: ConnectorOptions, last: dict[str, Quote], seen: list[Quote], redis_url: str | None = None
) -> AsyncIterator[CcxtConnector]:
    cfg = load_settings().venues["binance"]
    layout = GridLayout.from_lists(list(SYMBOLS), ["binance"], {"binance": 2000})

    def record(q: Quote) -> None:
        seen.append(q)
        last[q.instrument] = q

    symbols = {sym: inst for inst, sym in SYMBOLS.items()}
    endpoint = LocalEndpoint(venue.http_url, venue.ws_url)
    if redis_url is None:
        conn = CcxtConnector("binance", cfg, symbols, record, endpoint=endpoint, options=options)
        async with _running(conn):
            yield conn
        return
    async with PriceGrid.from_url(redis_url, layout) as grid, grid.writer(max_delay_ms=2.0) as writer:

        def sink(q: Quote) -> None:
            record(q)
            writer.put(q)

        conn = CcxtConnector("binance", cfg, symbols, sink, endpoint=endpoint, options=options)
        async with _running(conn):
            yield conn


@asynccontextmanager
async def _running(conn: CcxtConnector) -> AsyncIterator[None]:
    with catching_frame_errors([conn]):
        task = spawn(conn.run(), name="test-connector")
        try:
            yield
        finally:
            await cancel_and_wait(task, timeout_s=20)
            gc.collect()


def at_venue_book(last: dict[str, Quote], venue: SimVenue) -> bool:
    for instrument, symbol in SYMBOLS.items():
        q = last.get(instrument)
        book = venue.book_for_symbol(symbol)
        if q is None or q.sequence != book.update_id:
            return False
        bids, asks = book.levels(DEPTH)
        assert (list(q.bids), list(q.asks)) == ([tuple(x) for x in bids], [tuple(x) for x in asks]), "wrong book"
    return True


async def test_the_fast_path_and_ccxt_give_identical_quotes_for_the_same_stream(redis_url: str) -> None:
    via_ccxt: dict[str, Quote] = {}
    via_fast: dict[str, Quote] = {}
    seen: list[Quote] = []
    async with (
        binance_venue() as venue,
        connector(venue, BASE, via_ccxt, seen) as slow,
        connector(venue, FASTPATH, via_fast, seen, redis_url) as fast,
    ):
        await eventually(lambda: slow.status.quotes >= 30 and fast.status.quotes >= 30, 15)
        await venue.market.close()

        await eventually(lambda: at_venue_book(via_ccxt, venue) and at_venue_book(via_fast, venue), 8)

        for instrument in SYMBOLS:
            a, b = via_ccxt[instrument], via_fast[instrument]
            assert msgspec.structs.replace(a, ts_recv=0) == msgspec.structs.replace(b, ts_recv=0)
        assert fast.status.gaps == slow.status.gaps == 0
        assert all(quote_problems(q) == [] for q in seen)


@pytest.mark.parametrize("fault", ["skip_sequence", "stale_snapshot", "invalid_json", "crossed"])
async def test_a_fault_on_the_fast_path_ends_in_a_rebuilt_book_never_a_wrong_one(fault: str, redis_url: str) -> None:
    last: dict[str, Quote] = {}
    seen: list[Quote] = []
    async with binance_venue() as venue, connector(venue, FASTPATH, last, seen, redis_url) as fast:
        await eventually(lambda: fast.status.quotes >= 20, 15)

        if fault == "skip_sequence":
            venue.faults.skip_sequence(symbol="BTC/USDT")
        elif fault == "stale_snapshot":
            venue.faults.stale_snapshot(symbol="ETH/USDT")
            venue.faults.drop()  # the new session fetches snapshots again
        else:
            venue.faults.malformed(fault, symbol="SOL/USDT")  # type: ignore[arg-type]

        await eventually(lambda: fast.status.gaps >= 1 or fast.status.rejected.get("malformed", 0) >= 1, 8)
        if fault == "stale_snapshot":
            assert fast.status.rejected.get("stale_snapshot", 0) >= 1
        before = fast.status.quotes
        await eventually(lambda: fast.status.quotes > before + 10, 10)
        await venue.market.close()
        await eventually(lambda: at_venue_book(last, venue), 8)
        assert all(quote_problems(q) == [] for q in seen), "an unsound quote reached the grid"


def test_buffered_events_replay_after_the_snapshot_and_a_stale_snapshot_is_refused() -> None:
    def ev(first: int, last: int, bid: str = "100.0") -> DepthEvent:
        return DepthEvent("depthUpdate", 1_700_000_000_000 + last, "BTCUSDT", first, last, [(bid, "2")], [])

    book = LocalBook()
    for e in (ev(5, 7), ev(8, 9, "101.0"), ev(10, 12, "102.0")):
        assert book.apply(e) is None
    assert not book.synced

    assert book.load({"nonce": 3, "bids": [[99.0, 1.0]], "asks": [[110.0, 1.0]]}) is not None  # 4 and 5-.. missing
    assert book.load({"nonce": 8, "bids": [[99.0, 1.0]], "asks": [[110.0, 1.0]]}) is None
    assert book.last_u == 12
    assert book.bids == {99.0: 1.0, 101.0: 2.0, 102.0: 2.0}  # 5-7 was in the snapshot, 8-9 and 10-12 applied
    assert book.apply(ev(14, 15)) == "gap BTCUSDT: U 14 after u 12"


def test_the_combined_stream_url_is_built_from_ccxts_spot_stream_url() -> None:
    url = combined_stream_url("ws://127.0.0.1:9000/ws", ["BTCUSDT", "ETHUSDT"])

    assert url == "ws://127.0.0.1:9000/stream?streams=btcusdt@depth@100ms/ethusdt@depth@100ms"
