"""Helpers for the local-venue integration tests: a venue of any protocol on a free port, a real ccxt.pro client
pointed at it, and the small waits and checks every venue's tests share (the Binance ones are the defaults)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import ccxt
import ccxt.pro as ccxtpro
import orjson
import pytest

from arb.config import load_settings
from arb.connectors.urls import point_at_local
from arb.sim.market import NS_PER_S, Book, InstrumentSpec, Market, MarketConfig
from arb.sim.server import Protocol, SimExchangeGroup, SimVenue
from arb.sim.venues.binance import BinanceProtocol

SPECS = [
    InstrumentSpec.derive("BTC/USD", base="BTC", asset_class="crypto_major"),
    InstrumentSpec.derive("ETH/USD", base="ETH", asset_class="crypto_major"),
    InstrumentSpec.derive("SOL/USD", base="SOL", asset_class="crypto_major"),
]
SYMBOLS = {"BTC/USD": "BTC/USDT", "ETH/USD": "ETH/USDT", "SOL/USD": "SOL/USDT"}
LIVELY = MarketConfig(seed=7, tick_hz=20.0, book_update_hz=10.0)
"""Each book changes about every 100 ms: fast enough for tests, slow enough to catch the book between updates."""
CONNECTOR_OPTIONS: dict[str, Any] = {
    "enableRateLimit": True,
    "options": {"fetchCurrencies": False, "fetchMargins": False, "maxRetriesOnFailure": 0},
}
"""What `arb.connectors.ccxt_pro` creates its exchanges with."""


@asynccontextmanager
async def sim_venue(
    venue_id: str,
    protocol: Protocol,
    symbols: dict[str, str] = SYMBOLS,
    *,
    specs: list[InstrumentSpec] = SPECS,
    config: MarketConfig = LIVELY,
    run: bool = True,
    market: Market | None = None,
    **venue_options: Any,
) -> AsyncIterator[SimVenue]:
    """A venue served with `protocol` on a free port, over a market of `specs` (or `market`); the market runs unless
    `run=False` (then books hold still until a test steps or injects)."""
    market = market or Market(specs, config)
    async with SimVenue(venue_id, protocol, market, symbols, **venue_options) as venue:
        if run:
            async with market:
                yield venue
        else:
            yield venue
            await market.close()


@asynccontextmanager
async def binance_venue(
    *, config: MarketConfig = LIVELY, run: bool = True, market: Market | None = None, **venue_options: Any
) -> AsyncIterator[SimVenue]:
    """A Binance-protocol venue on a free port; its market runs unless `run=False` (then books hold still)."""
    async with sim_venue("binance", BinanceProtocol(), config=config, run=run, market=market, **venue_options) as venue:
        yield venue


@asynccontextmanager
async def ccxt_client(venue: SimVenue, cls: Any = None, /, **config: Any) -> AsyncIterator[Any]:
    """The real ccxt.pro class of the venue's protocol (or `cls`, e.g. a guarded subclass of it), made with `config`
    and talking to `venue`; always closed."""
    exchange = (cls or getattr(ccxtpro, venue.protocol.name))(config)
    point_at_local(exchange, venue.http_url, venue.ws_url)
    try:
        yield exchange
    finally:
        await exchange.close()


@asynccontextmanager
async def ccxt_binance(venue: SimVenue, **config: Any) -> AsyncIterator[Any]:
    """The real ccxt.pro binance class, rate limiter on, talking to `venue`; always closed."""
    async with ccxt_client(venue, ccxtpro.binance, **config) as exchange:
        yield exchange


@asynccontextmanager
async def configured_venue(venue_id: str) -> AsyncIterator[tuple[SimVenue, set[str]]]:
    """The venue as the settings configure it (its market still), and the symbols the settings map to it."""
    settings = load_settings()
    configured = {i.venues[venue_id] for i in settings.instruments.values() if venue_id in i.venues}
    async with SimExchangeGroup.from_settings(settings, [venue_id], run_market=False) as group:
        yield group.venues[venue_id], configured


def sim_book(book: Book, depth: int = 20) -> tuple[list[list[float]], list[list[float]]]:
    """The venue's book as ccxt shows one: [[price, amount], ...] best first."""
    bids, asks = book.levels(depth)
    return [[p, s] for p, s in bids], [[p, s] for p, s in asks]


def check_minute_candles(candles: list[list[float]], book: Book, count: int = 30) -> None:
    """`count` consecutive, well-formed 1m candles, each opening at the previous close, the last closing at the mid."""
    assert len(candles) == count
    assert [b[0] - a[0] for a, b in itertools.pairwise(candles)] == [60_000] * (count - 1)
    for _t, o, h, low, c, v in candles:
        assert low <= min(o, c) <= max(o, c) <= h
        assert v > 0
    assert all(candles[k][4] == candles[k + 1][1] for k in range(count - 1))  # each opens at the previous close
    assert candles[-1][4] == book.price((book.bid_top + book.ask_top) // 2)


async def watch_until(
    exchange: Any, symbol: str, synced: Callable[[Any], bool], timeout_s: float = 5.0, **watch_options: Any
) -> Any:
    """Watch `symbol` until `synced(ccxt's book)` (each venue has its own way to tell that nothing moved since)."""
    async with asyncio.timeout(timeout_s):
        while True:
            ob = await exchange.watch_order_book(symbol, **watch_options)
            if synced(ob):
                return ob


async def watch_until_synced(exchange: Any, venue: SimVenue, symbol: str, timeout_s: float = 5.0) -> Any:
    """Watch until ccxt's book is at the venue book's current update id (nothing moved in between)."""
    book = venue.book_for_symbol(symbol)
    return await watch_until(exchange, symbol, lambda ob: bool(ob["nonce"] == book.update_id), timeout_s)


async def watch_until_error(exchange: Any, symbol: str, *, per_watch_s: float = 2.0, tries: int = 50) -> None:
    """Keep watching `symbol` until a watch raises (the caller says which error it expects).

    Fails with AssertionError if `tries` watches all went through, so a fault that has no effect fails the test.
    """
    for _ in range(tries):
        await asyncio.wait_for(exchange.watch_order_book(symbol), per_watch_s)
    raise AssertionError(f"{tries} watches of {symbol} went through without an error")


async def check_invalid_json_stops_the_reader(exchange: Any, venue: SimVenue, symbol: str) -> None:
    """Send an invalid JSON frame on `symbol`'s book stream: ccxt 4.5.90 raises inside its reader callback and reads
    nothing more, while the socket stays up (on every venue)."""
    venue.faults.malformed("invalid_json", symbol=symbol)

    with pytest.raises(TimeoutError):  # ccxt raised inside its reader callback and reads no more
        await watch_until_error(exchange, symbol, per_watch_s=1.0)
    assert venue.faults.injected["malformed_invalid_json"] == 1
    assert len(venue.connections) == 1  # only a watchdog on message gaps notices (FAULTS M1)


async def check_drop_then_resync(
    exchange: Any, venue: SimVenue, symbol: str, synced: Callable[[Any, SimVenue, str], Awaitable[Any]]
) -> Any:
    """Drop the venue's connection: the pending watch fails with NetworkError, the next one reconnects (a second
    WebSocket) and `synced` waits for the book to be whole again; returns that book."""
    assert venue.faults.drop() == 1

    with pytest.raises(ccxt.NetworkError):
        await asyncio.wait_for(exchange.watch_order_book(symbol), 5)
    ob = await synced(exchange, venue, symbol)
    assert venue.stats["ws_connections"] == 2
    return ob


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


def step_every_book(venue: SimVenue) -> None:
    """Move every book of a venue whose market is not running, once (a step long enough to refresh them all)."""
    market = venue.market
    now = time.time_ns()
    if market._last_ns is None:
        market.step(now)
    market.step(max(now, market._last_ns or 0) + NS_PER_S)


@asynccontextmanager
async def ws_client(venue: SimVenue, path: str = "", **options: Any) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A plain WebSocket to `venue` at `path` (in a session of its own), for tests that read the wire directly."""
    async with aiohttp.ClientSession() as session, session.ws_connect(venue.ws_url + path, **options) as ws:
        yield ws


async def receive(ws: aiohttp.ClientWebSocketResponse, timeout_s: float = 3.0) -> Any:
    """The next text frame, decoded as JSON."""
    return orjson.loads(await ws.receive_str(timeout=timeout_s))
