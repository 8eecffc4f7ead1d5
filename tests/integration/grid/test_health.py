"""Venue health as a grid key (`{arb}:venues`): what connector workers publish is what the demo and scanner read."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from arb.grid import PriceGrid
from arb.model import LATENCY_EDGES_MS, VenueHealth
from tests.support import NS

from .support import open_grid


@pytest.fixture
async def grid(redis_url: str) -> AsyncIterator[PriceGrid]:
    async with open_grid(redis_url) as g:
        yield g


def health(venue: str, state: str = "connected", **over: object) -> VenueHealth:
    hist = [0] * (len(LATENCY_EDGES_MS) + 1)
    hist[10] = 7
    fields: dict[str, object] = {"since_ns": NS, "published_ns": NS + 1, "updates": 12, "latency_hist": hist}
    fields.update(over)
    return VenueHealth(venue=venue, state=state, **fields)  # type: ignore[arg-type]


async def test_published_health_reads_back_per_venue_and_a_newer_one_replaces_it(grid: PriceGrid) -> None:
    await grid.publish_health([health("binance"), health("okx", "down", last_error="network: dropped")])
    await grid.publish_health([health("binance", "stale", updates=13)])

    read = await grid.read_health()

    assert read == {"binance": health("binance", "stale", updates=13), "okx": read["okx"]}
    assert (read["okx"].state, read["okx"].last_error) == ("down", "network: dropped")
    assert await grid.client.exists(grid.keys.venues) == 1
    assert grid.keys.venues in grid.keys.all()  # a grid reset removes it with the rest


async def test_an_unreadable_entry_is_left_out_and_logged_never_guessed(
    grid: PriceGrid, caplog: pytest.LogCaptureFixture
) -> None:
    await grid.publish_health([health("binance")])
    await grid.client.hset(grid.keys.venues, "gate", b"\x93not a health")

    with caplog.at_level(logging.ERROR, logger="arb.grid.store"):
        read = await grid.read_health()

    assert set(read) == {"binance"}
    assert "grid.health_unreadable field=b'gate'" in caplog.text
