"""Helpers for the local-venue integration tests: a small Binance venue, a real ccxt.pro client pointed at it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import ccxt.pro as ccxtpro

from arb.connectors.urls import point_at_local
from arb.sim.market import Book, InstrumentSpec, Market, MarketConfig
from arb.sim.server import SimVenue
from arb.sim.venues.binance import BinanceProtocol

SPECS = [
    InstrumentSpec.derive("BTC/USD", base="BTC", asset_class="crypto_major"),
    InstrumentSpec.derive("ETH/USD", base="ETH", asset_class="crypto_major"),
    InstrumentSpec.derive("SOL/USD", base="SOL", asset_class="crypto_major"),
]
SYMBOLS = {"BTC/USD": "BTC/USDT", "ETH/USD": "ETH/USDT", "SOL/USD": "SOL/USDT"}
LIVELY = MarketConfig(seed=7, tick_hz=20.0, book_update_hz=10.0)
"""Each book changes about every 100 ms: fast enough for tests, slow enough to catch the book between updates."""


@asynccontextmanager
async def binance_venue(
    *, config: MarketConfig = LIVELY, run: bool = True, market: Market | None = None, **venue_options: Any
) -> AsyncIterator[SimVenue]:
    """A Binance-protocol venue on a free port; its market runs unless `run=False` (then books hold still)."""
    market = market or Market(SPECS, config)
    async with SimVenue("binance", BinanceProtocol(), market, SYMBOLS, **venue_options) as venue:
        if run:
            async with market:
                yield venue
        else:
            yield venue
            await market.close()


@asynccontextmanager
async def ccxt_binance(venue: SimVenue, **config: Any) -> AsyncIterator[Any]:
    """The real ccxt.pro binance class, rate limiter on, talking to `venue`; always closed."""
    exchange = ccxtpro.binance(config)
    point_at_local(exchange, venue.http_url, venue.ws_url)
    try:
        yield exchange
    finally:
        await exchange.close()


def sim_book(book: Book, depth: int = 20) -> tuple[list[list[float]], list[list[float]]]:
    """The venue's book as ccxt shows one: [[price, amount], ...] best first."""
    bids, asks = book.levels(depth)
    return [[p, s] for p, s in bids], [[p, s] for p, s in asks]


async def watch_until_synced(exchange: Any, venue: SimVenue, symbol: str, timeout_s: float = 5.0) -> Any:
    """Watch until ccxt's book is at the venue book's current update id (nothing moved in between)."""
    book = venue.book_for_symbol(symbol)
    async with asyncio.timeout(timeout_s):
        while True:
            ob = await exchange.watch_order_book(symbol)
            if ob["nonce"] == book.update_id:
                return ob


async def watch_until_error(exchange: Any, symbol: str, *, per_watch_s: float = 2.0, tries: int = 50) -> None:
    """Keep watching `symbol` until a watch raises (the caller says which error it expects).

    Fails with AssertionError if `tries` watches all went through, so a fault that has no effect fails the test.
    """
    for _ in range(tries):
        await asyncio.wait_for(exchange.watch_order_book(symbol), per_watch_s)
    raise AssertionError(f"{tries} watches of {symbol} went through without an error")


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], timeout_s: float = 5.0, every_s: float = 0.02
) -> None:
    """Wait until `check()` is true; fail with a TimeoutError otherwise."""
    async with asyncio.timeout(timeout_s):
        while True:
            result = check()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await asyncio.sleep(every_s)
