"""The real ccxt.pro `binance` class against the local Binance venue over loopback: markets, REST, streams, truth."""

from __future__ import annotations

import math

import ccxt.pro as ccxtpro
import msgspec
import pytest
import redis.asyncio as aioredis

from arb.config import load_settings
from arb.connectors.urls import point_at_local
from arb.sim.market import Market
from arb.sim.server import SimExchangeGroup
from arb.sim.truth import TruthLog, read_truth_stream

from .support import (
    LIVELY,
    SPECS,
    binance_venue,
    ccxt_binance,
    check_minute_candles,
    configured_venue,
    eventually,
    sim_book,
    watch_until_synced,
)


async def test_load_markets_lists_exactly_the_symbols_the_settings_map_to_binance() -> None:
    async with configured_venue("binance") as (venue, configured), ccxt_binance(venue) as exchange:
        markets = await exchange.load_markets()

        assert set(markets) == configured
        btc = markets["BTC/USDT"]
        book = venue.book_for_symbol("BTC/USDT")
        assert (btc["id"], btc["spot"], btc["active"]) == ("BTCUSDT", True, True)
        assert (btc["precision"]["price"], btc["precision"]["amount"]) == (book.tick, book.step)
        assert btc["limits"]["cost"]["min"] == 5.0
        assert sorted(path for _, _, path in venue.requests) == [  # what ccxt asks for, keys or not
            "/api/v3/exchangeInfo",
            "/dapi/v1/exchangeInfo",
            "/fapi/v1/exchangeInfo",
        ]


async def test_fetch_order_book_is_the_sim_book_at_its_update_id() -> None:
    async with binance_venue(run=False) as venue, ccxt_binance(venue) as exchange:
        ob = await exchange.fetch_order_book("ETH/USDT", limit=100)

        book = venue.book_for_symbol("ETH/USDT")
        assert ob["nonce"] == book.update_id
        assert (ob["bids"], ob["asks"]) == sim_book(book)
        assert len(ob["bids"]) == len(ob["asks"]) == 20


async def test_fetch_ticker_carries_the_sim_top_of_book_and_a_sane_day() -> None:
    async with binance_venue(run=False) as venue, ccxt_binance(venue) as exchange:
        ticker = await exchange.fetch_ticker("BTC/USDT")

        top = venue.book_for_symbol("BTC/USDT").top()
        assert (ticker["bid"], ticker["bidVolume"], ticker["ask"], ticker["askVolume"]) == top
        assert ticker["bid"] <= ticker["last"] <= ticker["ask"]
        assert ticker["low"] <= min(ticker["open"], ticker["last"]) <= ticker["high"]
        assert ticker["baseVolume"] > 0


async def test_fetch_ohlcv_gives_consecutive_candles_ending_at_the_current_price() -> None:
    async with binance_venue(run=False) as venue, ccxt_binance(venue) as exchange:
        candles = await exchange.fetch_ohlcv("SOL/USDT", "1m", limit=30)
        again = await exchange.fetch_ohlcv("SOL/USDT", "1m", limit=30)

        check_minute_candles(candles, venue.book_for_symbol("SOL/USDT"))
        assert again == candles  # the same history on every request


async def test_watch_order_book_converges_to_the_sim_book_level_for_level() -> None:
    async with binance_venue() as venue, ccxt_binance(venue) as exchange:
        first = await exchange.watch_order_book("BTC/USDT")  # resolved by the REST snapshot
        first_nonce = first["nonce"]

        ob = await watch_until_synced(exchange, venue, "BTC/USDT")

        book = venue.book_for_symbol("BTC/USDT")
        assert ob["nonce"] > first_nonce  # diffs were applied on top of the snapshot
        assert (ob["bids"][:20], ob["asks"][:20]) == sim_book(book)
        assert ob["timestamp"] == book.ts_ns // 1_000_000
        assert venue.stats["GET /api/v3/depth"] == 1


async def test_watch_bids_asks_follows_the_sim_top_of_book() -> None:
    async with binance_venue() as venue, ccxt_binance(venue) as exchange:
        book = venue.book_for_symbol("ETH/USDT")

        async def synced() -> bool:
            tickers = await exchange.watch_bids_asks(["ETH/USDT"])
            t = tickers["ETH/USDT"]
            return bool(
                t["info"]["u"] == book.update_id and (t["bid"], t["bidVolume"], t["ask"], t["askVolume"]) == book.top()
            )

        await eventually(synced)


async def test_a_dislocation_shows_in_the_watched_book_and_in_the_ground_truth(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    truth = TruthLog(redis=client)
    market = Market(SPECS, LIVELY, truth=truth)
    try:
        async with binance_venue(market=market) as venue, ccxt_binance(venue) as exchange:
            before = await watch_until_synced(exchange, venue, "BTC/USDT")
            before_mid = (before["bids"][0][0] + before["asks"][0][0]) / 2

            d = market.inject("binance", "BTC/USD", bps=80, duration_ms=60_000)

            after = await watch_until_synced(exchange, venue, "BTC/USDT")
            after_mid = (after["bids"][0][0] + after["asks"][0][0]) / 2
            moved_bps = (after_mid / before_mid - 1) * 1e4
            assert moved_bps == pytest.approx(80, abs=3)  # plus what the calm market walked in a fraction of a second
            assert after["bids"][0][0] < after["asks"][0][0]
        # the stream has the record's fields; the file and the in-memory list also carry the books it left
        assert await read_truth_stream(client) == [msgspec.structs.replace(r, books={}) for r in truth.records] == [d]
        assert truth.records[0].books["binance"][0][0][0] > 0
        assert (d.venue, d.instrument, d.symbol, d.bps) == ("binance", "BTC/USD", "BTC/USDT", 80.0)
        assert d.end_ns - d.start_ns == 60_000_000_000
    finally:
        await client.aclose()


async def test_a_group_serves_each_venue_on_its_own_port_with_its_own_symbols() -> None:
    settings = load_settings()
    venue_ids = ["binance", "kraken", "coinbase"]

    async with SimExchangeGroup.from_settings(settings, venue_ids) as group:
        urls = group.urls()
        assert len({http for http, _ in urls.values()}) == 3
        for venue_id in venue_ids:
            # each is spoken to with the ccxt class of the wire format it is served in (its own, or the nearest)
            exchange = getattr(ccxtpro, group.venues[venue_id].protocol.name)({"rateLimit": 2})
            point_at_local(exchange, *urls[venue_id])
            try:
                markets = await exchange.load_markets()
                ob = await exchange.watch_order_book(sorted(markets)[0])
            finally:
                await exchange.close()
            configured = {i.venues[venue_id] for i in settings.instruments.values() if venue_id in i.venues}
            assert {s for s, m in markets.items() if m["spot"] or m["swap"]} == configured  # binance: perps too
            assert ob["bids"][0][0] < ob["asks"][0][0]
            assert not math.isnan(ob["bids"][0][0])
