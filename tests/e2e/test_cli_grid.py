"""`arb grid show`: what a user sees of one instrument in a running grid (real Redis, real process)."""

from __future__ import annotations

import json
import time

import redis.asyncio as aioredis

from arb.config import load_settings
from arb.grid import GridLayout, PriceGrid
from arb.model import Quote
from tests.e2e.test_cli import arb


def quote(venue: str, bid: float, ask: float, age_s: float) -> Quote:
    now = time.time_ns()
    return Quote(venue, "BTC/USD", bid, 1.0, ask, 2.0, now - int(age_s * 1e9), now - int(age_s * 1e9), 1)


async def test_grid_show_lists_venues_with_age_and_staleness(redis_url: str) -> None:
    settings = load_settings()
    async with PriceGrid.from_url(redis_url, GridLayout.from_settings(settings), settings.grid) as grid:
        await grid.write([quote("binance", 100.0, 100.1, 0.0), quote("kraken", 100.2, 100.4, 3600.0)])

    proc = arb("grid", "show", "BTC/USD", "--json", env={"ARB_REDIS_URL": redis_url})

    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    by_venue = {r["venue"]: r for r in shown["quotes"]}
    assert set(by_venue) == {"binance", "kraken"}
    assert by_venue["binance"]["stale"] is False
    assert by_venue["binance"]["symbol"] == "BTC/USDT"
    assert by_venue["kraken"]["stale"] is True  # an hour old: never reported fresh
    assert by_venue["kraken"]["age_ms"] > 3_500_000


async def test_grid_show_counts_a_malformed_entry_and_still_shows_the_rest(redis_url: str) -> None:
    settings = load_settings()
    async with PriceGrid.from_url(redis_url, GridLayout.from_settings(settings), settings.grid) as grid:
        await grid.write([quote("binance", 100.0, 100.1, 0.0)])
        grid_key = grid.keys.grid
    client = aioredis.Redis.from_url(redis_url)
    await client.hset(grid_key, "BTC/USD|okx", b"\xc1 not msgpack")
    await client.aclose()

    proc = arb("grid", "show", "BTC/USD", "--json", env={"ARB_REDIS_URL": redis_url})

    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert [r["venue"] for r in shown["quotes"]] == ["binance"]
    assert sum(shown["skipped"].values()) == 1


def test_grid_show_table_is_readable(redis_url: str) -> None:
    proc = arb("grid", "show", "ETH/USD", env={"ARB_REDIS_URL": redis_url})

    assert proc.returncode == 0, proc.stderr
    assert "ETH/USD: 0 of" in proc.stdout


def test_grid_show_unknown_instrument_is_a_usage_error(redis_url: str) -> None:
    proc = arb("grid", "show", "NOPE/USD", env={"ARB_REDIS_URL": redis_url})

    assert proc.returncode == 2
    assert "unknown instrument 'NOPE/USD'" in proc.stderr


def test_grid_show_without_a_redis_url_explains_what_to_set() -> None:
    proc = arb("grid", "show", "BTC/USD")

    assert proc.returncode == 2
    assert "set ARB_REDIS_URL" in proc.stderr


def test_grid_show_with_redis_down_fails_with_exit_1() -> None:
    proc = arb("grid", "show", "BTC/USD", env={"ARB_REDIS_URL": "redis://127.0.0.1:1/0"})

    assert proc.returncode == 1
    assert "Redis unavailable" in proc.stderr
