"""Faults the local Binance venue injects, as the real ccxt.pro client sees them (FAULTS M1-M3, M7, E10, E13).

Each test states what ccxt 4.5.90 actually does, because that is what the connector has to handle: some faults
ccxt turns into an exception (gap -> ChecksumError, drop -> NetworkError, 429 -> DDoSProtection), some it silently
absorbs into a wrong book (crossed / NaN levels), and an invalid JSON frame stops its receive loop altogether.
"""

from __future__ import annotations

import asyncio
import math

import aiohttp
import ccxt
import pytest

from .support import (
    binance_venue,
    ccxt_binance,
    check_invalid_json_stops_the_reader,
    eventually,
    sim_book,
    watch_until_error,
    watch_until_synced,
)


async def test_a_skipped_sequence_number_makes_ccxt_raise_and_a_new_watch_resyncs() -> None:
    async with binance_venue() as venue, ccxt_binance(venue) as exchange:
        await watch_until_synced(exchange, venue, "BTC/USDT")

        venue.faults.skip_sequence(symbol="BTC/USDT")

        with pytest.raises(ccxt.ChecksumError):
            await watch_until_error(exchange, "BTC/USDT")
        assert venue.faults.injected["skip_sequence"] == 1
        ob = await watch_until_synced(exchange, venue, "BTC/USDT")
        assert (ob["bids"][:20], ob["asks"][:20]) == sim_book(venue.book_for_symbol("BTC/USDT"))
        assert venue.stats["GET /api/v3/depth"] == 2  # a fresh snapshot, not the old book patched


async def test_a_dropped_connection_fails_the_watch_and_the_next_watch_reconnects_and_resyncs() -> None:
    async with binance_venue() as venue, ccxt_binance(venue) as exchange:
        await watch_until_synced(exchange, venue, "ETH/USDT")

        assert venue.faults.drop() == 1

        with pytest.raises(ccxt.NetworkError):
            await asyncio.wait_for(exchange.watch_order_book("ETH/USDT"), 5)
        ob = await watch_until_synced(exchange, venue, "ETH/USDT")
        assert (ob["bids"][:20], ob["asks"][:20]) == sim_book(venue.book_for_symbol("ETH/USDT"))
        assert venue.stats["ws_connections"] == 2


async def test_a_stall_sends_nothing_on_an_open_socket_and_the_lost_updates_show_as_a_gap() -> None:
    async with binance_venue() as venue, ccxt_binance(venue) as exchange:
        await watch_until_synced(exchange, venue, "BTC/USDT")
        update_id = venue.book_for_symbol("BTC/USDT").update_id

        venue.faults.stall(0.8)

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(exchange.watch_order_book("BTC/USDT"), 0.6)
        assert len(venue.connections) == 1  # silent, not closed
        assert venue.book_for_symbol("BTC/USDT").update_id > update_id  # the market moved on meanwhile
        with pytest.raises(ccxt.ChecksumError):  # the first update after the stall does not chain
            await watch_until_error(exchange, "BTC/USDT")
        assert venue.faults.injected["stall"] == 1


async def test_an_invalid_json_frame_stops_ccxts_receive_loop_while_the_socket_stays_up() -> None:
    async with binance_venue() as venue, ccxt_binance(venue) as exchange:
        await watch_until_synced(exchange, venue, "SOL/USDT")

        await check_invalid_json_stops_the_reader(exchange, venue, "SOL/USDT")


@pytest.mark.parametrize("kind", ["crossed", "nan_price"])
async def test_a_bad_level_is_taken_into_ccxts_book_and_kept(kind: str) -> None:
    async with binance_venue() as venue, ccxt_binance(venue) as exchange:
        await watch_until_synced(exchange, venue, "BTC/USDT")

        venue.faults.malformed(kind, symbol="BTC/USDT")  # type: ignore[arg-type]

        def poisoned(bids: list[list[float]], asks: list[list[float]]) -> bool:
            if kind == "nan_price":
                return any(math.isnan(p) for p, _ in bids)
            return bids[0][0] > asks[0][0]

        ob = await exchange.watch_order_book("BTC/USDT")
        while not poisoned(ob["bids"], ob["asks"]):
            ob = await asyncio.wait_for(exchange.watch_order_book("BTC/USDT"), 2)
        ob = await watch_until_synced(exchange, venue, "BTC/USDT")  # later updates chain on and do not heal it
        assert poisoned(ob["bids"], ob["asks"])
        bids, asks = sim_book(venue.book_for_symbol("BTC/USDT"))
        assert bids[0][0] < asks[0][0]
        assert not math.isnan(bids[0][0])
        assert venue.faults.injected[f"malformed_{kind}"] == 1


async def test_a_429_carries_retry_after_and_waiting_it_out_is_served_without_a_ban() -> None:
    async with binance_venue(run=False) as venue, ccxt_binance(venue) as exchange:
        await exchange.load_markets()
        venue.faults.rate_limit(retry_after_s=1)

        with pytest.raises(ccxt.DDoSProtection, match="429"):
            await exchange.fetch_order_book("BTC/USDT")
        assert exchange.last_response_headers["Retry-After"] == "1"
        await asyncio.sleep(1.0)
        ob = await exchange.fetch_order_book("BTC/USDT")

        assert ob["nonce"] == venue.book_for_symbol("BTC/USDT").update_id
        assert dict(venue.faults.injected) == {"http_429": 1}


async def test_coming_back_before_retry_after_gets_a_418_ban() -> None:
    async with binance_venue(run=False) as venue, ccxt_binance(venue) as exchange:
        await exchange.load_markets()
        venue.faults.rate_limit(retry_after_s=30, ban_s=60)

        with pytest.raises(ccxt.DDoSProtection, match="429"):
            await exchange.fetch_order_book("BTC/USDT")
        with pytest.raises(ccxt.DDoSProtection, match="418") as banned:
            await exchange.fetch_ticker("BTC/USDT")

        assert "IP banned until" in str(banned.value)
        assert exchange.last_response_headers["Retry-After"] == "60"
        assert dict(venue.faults.injected) == {"http_429": 1, "http_418": 1}


async def test_maintenance_answers_rest_with_on_maintenance_and_closes_and_refuses_websockets() -> None:
    async with binance_venue() as venue, ccxt_binance(venue) as exchange:
        await watch_until_synced(exchange, venue, "ETH/USDT")

        venue.faults.maintenance()

        with pytest.raises(ccxt.NetworkError):
            await watch_until_error(exchange, "ETH/USDT")
        with pytest.raises(ccxt.OnMaintenance):
            await exchange.fetch_order_book("ETH/USDT")
        with pytest.raises(ccxt.NetworkError):  # the reconnect is refused with 503
            await asyncio.wait_for(exchange.watch_order_book("ETH/USDT"), 5)
        assert (await exchange.fetch_status())["status"] == "maintenance"
        venue.faults.end_maintenance()
        await eventually(lambda: not venue.faults.in_maintenance())
        ob = await watch_until_synced(exchange, venue, "ETH/USDT")
        assert (ob["bids"][:20], ob["asks"][:20]) == sim_book(venue.book_for_symbol("ETH/USDT"))
        assert venue.faults.injected["ws_closed"] == 1
        assert venue.faults.injected["ws_refused"] >= 1
        assert venue.faults.injected["http_503"] >= 1


async def test_a_frozen_venue_clock_keeps_updates_coming_with_the_same_timestamp() -> None:
    async with binance_venue() as venue, ccxt_binance(venue) as exchange:
        await watch_until_synced(exchange, venue, "BTC/USDT")

        venue.faults.freeze_time(5.0)
        first = dict(await exchange.watch_order_book("BTC/USDT"))
        nonces, stamps = [first["nonce"]], {first["timestamp"]}
        for _ in range(5):
            ob = await exchange.watch_order_book("BTC/USDT")
            nonces.append(ob["nonce"])
            stamps.add(ob["timestamp"])

        assert nonces == sorted(set(nonces))  # six distinct, advancing updates...
        assert len(stamps) == 1  # ...all stamped with the same venue time (FAULTS M2)


async def test_a_client_that_ignores_pings_is_cut_off_and_ccxt_which_answers_them_is_not() -> None:
    async with (
        binance_venue(ping_interval_s=0.1, pong_timeout_s=0.3) as venue,
        ccxt_binance(venue) as exchange,
        aiohttp.ClientSession() as session,
        session.ws_connect(venue.ws_url + "/ws/btcusdt@bookTicker", autoping=False) as silent,
    ):
        await watch_until_synced(exchange, venue, "BTC/USDT")

        pings = 0
        async with asyncio.timeout(3):
            async for msg in silent:  # read everything, answer nothing
                pings += msg.type == aiohttp.WSMsgType.PING

        assert silent.closed
        assert pings >= 1
        assert venue.stats["pong_timeouts"] == 1
        await watch_until_synced(exchange, venue, "BTC/USDT")  # ccxt pongs, so it is still connected
        assert len(venue.connections) == 1
