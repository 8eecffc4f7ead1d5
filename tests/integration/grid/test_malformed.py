"""Malformed entries planted in Redis are skipped and counted by every reader, never trusted, never a crash."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import numpy as np
import pytest

from arb.grid import PriceGrid, codec
from arb.model import encode_quote
from tests.support import Clock, quote

from .support import LAYOUT, metric, open_grid


@pytest.fixture
async def grid(redis_url: str) -> AsyncIterator[PriceGrid]:
    async with open_grid(redis_url, clock=Clock()) as g:
        yield g


async def plant_hash_entries(grid: PriceGrid) -> None:
    good = encode_quote(quote("kraken", "ETH/USD"))
    await grid.client.hset(
        grid.keys.grid,
        mapping={
            b"no-separator": good,
            b"DOGE/USD|kraken": good,
            b"ETH/USD|ftx": good,
            b"ETH/USD|binance": b"\xc1 not msgpack",
            b"ETH/USD|dex": encode_quote(quote("kraken", "ETH/USD")),  # a kraken quote filed under dex
            b"BTC/USD|kraken": encode_quote(quote("kraken", bid=float("nan"))),
            b"BTC/USD|dex": encode_quote(quote("dex", bid=101.0, ask=100.0)),
            b"SOL/USD|binance": encode_quote(quote("binance", "SOL/USD", ask_size=-1.0)),
        },
    )


async def test_bad_hash_entries_are_skipped_and_counted_by_the_quote_readers(grid: PriceGrid) -> None:
    await grid.write([quote("kraken", "ETH/USD"), quote("binance", "BTC/USD")])
    await plant_hash_entries(grid)
    before = metric("arb_grid_malformed_total", reason="invalid_quote")

    every = await grid.read_quotes()
    eth = await grid.read_instrument("ETH/USD")
    btc = await grid.read_instrument("BTC/USD")

    assert set(every.quotes) == {("ETH/USD", "kraken"), ("BTC/USD", "binance")}
    assert every.skipped == {
        "bad_field": 1,
        "unknown_instrument": 1,
        "unknown_venue": 1,
        "undecodable": 1,
        "field_mismatch": 1,
        "invalid_quote": 3,
    }
    assert set(eth.venues) == {"kraken"}
    assert eth.skipped == {"undecodable": 1, "field_mismatch": 1}
    assert set(btc.venues) == {"binance"}
    assert btc.skipped == {"invalid_quote": 2}
    assert metric("arb_grid_malformed_total", reason="invalid_quote") == before + 3 + 2


async def test_bad_top_of_book_cells_are_skipped_and_counted(grid: PriceGrid) -> None:
    await grid.write([quote("binance", "BTC/USD"), quote("kraken", "ETH/USD")])
    blob_pos = codec.blob_index(LAYOUT)
    garbage_at = int(blob_pos[LAYOUT.cell("SOL/USD", "dex")]) * codec.CELL_SIZE
    crossed = np.zeros(1, codec.CELL_DTYPE)
    crossed["bid"], crossed["ask"], crossed["ts_recv"], crossed["magic"] = 5.0, 4.0, 1, codec.CELL_MAGIC
    crossed_at = int(blob_pos[LAYOUT.cell("BTC/USD", "binance")]) * codec.CELL_SIZE
    await grid.client.setrange(grid.keys.tob, garbage_at, b"\xab" * codec.CELL_SIZE)
    await grid.client.setrange(grid.keys.tob, crossed_at, crossed.tobytes())

    snapshot = await grid.read_grid()

    assert snapshot.skipped == {"undecodable": 1, "invalid_quote": 1}
    assert snapshot.present.sum() == 1
    assert snapshot.view("ETH/USD", "kraken") is not None
    assert snapshot.view("BTC/USD", "binance") is None


async def test_a_mirror_rebuilds_past_bad_cells_and_follows_past_bad_feed_entries(grid: PriceGrid) -> None:
    await grid.write([quote("binance", "BTC/USD", sequence=1)])
    await grid.client.setrange(grid.keys.tob, 64 * codec.CELL_SIZE, b"\x01")  # beyond the layout: bad blob
    mirror = grid.mirror(block_ms=50)

    async with mirror.following():
        assert await mirror.wait_until(lambda m: m.valid, 5)
        last_c = (await grid.position()).c
        await grid.client.xadd(grid.keys.feed, {b"q": b"no counter"})
        await grid.client.xadd(grid.keys.feed, {b"c": b"oops", b"q": b""})
        await grid.client.xadd(grid.keys.feed, {b"c": str(last_c + 1).encode(), b"q": b"\xc1\xc1"})  # undecodable
        await grid.client.hincrby(grid.keys.pos, "c", 1)  # keep the counter honest, as the script would
        payload = codec.msgpack_array([encode_quote(quote(sequence=7)), msgspec.msgpack.encode([1, 2])])
        await grid.client.xadd(grid.keys.feed, {b"c": str(last_c + 2).encode(), b"q": payload})
        await grid.client.hincrby(grid.keys.pos, "c", 1)
        position = await grid.write([quote("kraken", "ETH/USD", sequence=8)])

        assert await mirror.wait_until(lambda m: m.position.c == position.c, 5)
        await asyncio.sleep(0.1)

    assert mirror.sequence[0, 0] == 7
    assert mirror.sequence[1, 1] == 8
    assert mirror.skipped == {"bad_blob": 1, "feed_bad_counter": 2, "feed_undecodable": 1, "undecodable": 1}
    assert mirror.gaps == []
