"""Writing and reading the grid against a real Redis: round trips, atomic batches, the feed, staleness."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from arb.grid import GridLayout, GridLayoutMismatch, InvalidQuote, PriceGrid
from arb.grid.store import FeedPosition
from arb.model import decode_quotes
from tests.support import MS, NS, Clock, quote

from .support import LAYOUT, open_grid


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def grid(redis_url: str, clock: Clock) -> AsyncIterator[PriceGrid]:
    async with open_grid(redis_url, clock=clock) as g:
        yield g


async def test_a_quote_with_depth_comes_back_exactly(grid: PriceGrid) -> None:
    q = quote(
        "kraken",
        "ETH/USD",
        bid=2000.5,
        ask=2001.25,
        bid_size=0.125,
        ask_size=3.0,
        sequence=77,
        bids=((2000.5, 0.125), (2000.0, 4.0), (1999.5, 9.5)),
        asks=((2001.25, 3.0), (2002.0, 1.0)),
    )

    position = await grid.write([q])

    assert position.c == 1
    snapshot = await grid.read_instrument("ETH/USD")
    assert snapshot.venues["kraken"].quote == q
    assert snapshot.position == position
    assert set(snapshot.venues) == {"kraken"}
    every = await grid.read_quotes()
    assert every.quotes[("ETH/USD", "kraken")].quote == q
    top = await grid.read_grid()
    i, j = LAYOUT.instrument_index("ETH/USD"), LAYOUT.venue_index("kraken")
    assert (top.bid[i, j], top.ask[i, j], top.bid_size[i, j], top.ask_size[i, j]) == (2000.5, 2001.25, 0.125, 3.0)
    assert (top.ts_exchange[i, j], top.ts_recv[i, j], top.sequence[i, j]) == (q.ts_exchange, q.ts_recv, 77)
    assert top.has_depth[i, j]
    assert top.present.sum() == 1
    assert np.isnan(top.bid[0, 0])
    view = top.view("ETH/USD", "kraken")
    assert view is not None
    assert view.quote == quote(
        "kraken", "ETH/USD", bid=2000.5, ask=2001.25, bid_size=0.125, ask_size=3.0, sequence=77
    )  # top of book only


async def test_the_last_quote_for_a_cell_wins_but_the_feed_keeps_every_quote(grid: PriceGrid) -> None:
    batch = [quote(sequence=1, bid=1.0, ask=2.0), quote("dex", sequence=2), quote(sequence=3, bid=1.5, ask=2.5)]

    await grid.write(batch)

    assert (await grid.read_instrument("BTC/USD")).venues["binance"].quote.sequence == 3
    top = await grid.read_grid()
    assert top.sequence[0, 0] == 3
    assert top.bid[0, 0] == 1.5
    entries = await grid.client.xrange(grid.keys.feed)
    assert len(entries) == 1
    assert decode_quotes(entries[0][1][b"q"]) == batch


async def test_a_batch_with_one_bad_quote_is_refused_whole_and_names_it(grid: PriceGrid) -> None:
    good = quote()
    crossed = quote("kraken", bid=101.0, ask=100.0, sequence=42)

    with pytest.raises(InvalidQuote, match=r"quote #1 \(venue='kraken', instrument='BTC/USD', sequence=42\).*crossed"):
        await grid.write([good, crossed])
    with pytest.raises(InvalidQuote, match="venue 'ftx' is not in the grid layout"):
        await grid.write([quote("ftx")])

    assert await grid.position() == FeedPosition()
    assert (await grid.read_instrument("BTC/USD")).venues == {}
    assert not (await grid.read_grid()).present.any()


async def test_a_batch_larger_than_a_chunk_is_one_transaction_with_one_feed_entry_per_chunk(redis_url: str) -> None:
    async with open_grid(redis_url, chunk_size=4) as grid:
        batch = [
            quote(v, x, sequence=k)
            for k, (x, v) in enumerate((x, v) for x in LAYOUT.instruments for v in LAYOUT.venues)
        ]

        position = await grid.write(batch)

        assert position.c == 3  # 9 quotes in chunks of 4
        top = await grid.read_grid()
        assert top.sequence.ravel().tolist() == list(range(9))
        entries = await grid.client.xrange(grid.keys.feed)
        assert [int(e[1][b"c"]) for e in entries] == [1, 2, 3]
        assert [q for e in entries for q in decode_quotes(e[1][b"q"])] == batch
        assert entries[-1][0].decode() == position.id


async def test_feed_counter_advances_by_one_per_entry_across_writers(redis_url: str) -> None:
    async with open_grid(redis_url) as a, open_grid(redis_url) as b:
        positions = [await a.write([quote()]), await b.write([quote("kraken")]), await a.write([quote("dex")])]

        assert [p.c for p in positions] == [1, 2, 3]
        assert await a.position() == positions[-1]


async def test_staleness_is_judged_on_both_sides_of_each_venues_limit(grid: PriceGrid, clock: Clock) -> None:
    await grid.write([quote("binance", ts_recv=NS), quote("dex", ts_recv=NS)])

    clock.now = NS + 1000 * MS
    at_limit = await grid.read_instrument("BTC/USD")
    clock.now += 1
    past_limit = await grid.read_instrument("BTC/USD")
    top = await grid.read_grid()

    assert at_limit.venues["binance"].fresh
    assert at_limit.venues["binance"].age_ns == 1000 * MS
    assert past_limit.venues["binance"].stale
    assert set(past_limit.fresh()) == {"dex"}  # dex allows 10 s
    assert top.fresh_mask()[0].tolist() == [False, False, True]
    assert top.stale_mask()[0].tolist() == [True, False, False]
    assert top.fresh_mask(NS + 1000 * MS)[0].tolist() == [True, False, True]
    binance = top.view("BTC/USD", "binance")
    assert binance is not None
    assert binance.stale


async def test_a_grid_written_with_another_layout_is_refused_not_misread(grid: PriceGrid, redis_url: str) -> None:
    await grid.write([quote()])
    other = GridLayout.from_lists(["BTC/USD", "ETH/USD", "SOL/USD", "XRP/USD"], ["binance", "kraken", "dex"])

    async with open_grid(redis_url, other) as stranger:
        with pytest.raises(GridLayoutMismatch, match=f"written with layout {LAYOUT.layout_id}"):
            await stranger.write([quote()])
        with pytest.raises(GridLayoutMismatch):
            await stranger.read_grid()
        assert (await stranger.read_instrument("BTC/USD")).venues["binance"].quote == quote()  # by name: fine
        await stranger.reset()
        await stranger.write([quote("kraken", "XRP/USD")])
        assert (await stranger.read_grid()).present.sum() == 1


async def test_the_write_script_is_reloaded_after_redis_forgets_it(grid: PriceGrid) -> None:
    await grid.write([quote(sequence=1)])
    await grid.client.script_flush()

    position = await grid.write([quote(sequence=2)])

    assert position.c == 2
    assert (await grid.read_grid()).sequence[0, 0] == 2


async def test_reading_an_instrument_the_layout_lacks_is_an_error_naming_it(grid: PriceGrid) -> None:
    with pytest.raises(KeyError, match="DOGE/USD"):
        await grid.read_instrument("DOGE/USD")


async def test_write_many_lands_every_batch_in_order(grid: PriceGrid) -> None:
    batches = [[quote(sequence=k), quote("kraken", "SOL/USD", sequence=k)] for k in range(1, 31)]
    seen: list[int] = []

    written = await grid.write_many(batches, on_written=lambda n, pos: seen.append(pos.c))

    assert written == 60
    assert seen == list(range(1, 31))
    top = await grid.read_grid()
    assert top.sequence[0, 0] == 30
    assert top.sequence[2, 1] == 30


async def test_write_many_stops_at_a_refused_batch_after_landing_the_earlier_ones(grid: PriceGrid) -> None:
    batches = [[quote(sequence=1)], [quote(sequence=2)], [quote(bid=0.0)], [quote(sequence=4)]]

    with pytest.raises(InvalidQuote):
        await grid.write_many(batches)

    assert (await grid.position()).c == 2
    assert (await grid.read_grid()).sequence[0, 0] == 2
