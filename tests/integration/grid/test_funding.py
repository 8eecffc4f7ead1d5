"""Funding rates as a grid key (`{arb}:funding`): what a connector writes is what the scanner's basis kind reads."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator

import pytest

from arb.grid import InvalidQuote, PriceGrid
from arb.grid.funding import NS_PER_HOUR, FundingRate
from tests.support import NS

from .support import open_grid


@pytest.fixture
async def grid(redis_url: str) -> AsyncIterator[PriceGrid]:
    async with open_grid(redis_url) as g:
        yield g


def funding(venue: str, instrument: str = "BTC/USDT-PERP", rate: float = 0.0001, **over: object) -> FundingRate:
    fields: dict[str, object] = {"interval_h": 8.0, "ts_ns": NS, "next_ts_ns": NS + 3 * NS_PER_HOUR}
    fields.update(over)
    return FundingRate(venue=venue, instrument=instrument, rate=rate, **fields)  # type: ignore[arg-type]


async def test_written_rates_read_back_per_perp_cell_and_a_newer_one_replaces_it(grid: PriceGrid) -> None:
    await grid.write_funding([funding("binance"), funding("okx", rate=-0.0002)])
    await grid.write_funding([funding("binance", rate=0.0003, ts_ns=NS + 1)])

    read = await grid.read_funding()

    assert read == {
        ("BTC/USDT-PERP", "binance"): funding("binance", rate=0.0003, ts_ns=NS + 1),
        ("BTC/USDT-PERP", "okx"): funding("okx", rate=-0.0002),
    }
    assert await grid.client.hexists(grid.keys.funding, "BTC/USDT-PERP|okx")
    assert grid.keys.funding in grid.keys.all()  # market data: a grid reset removes it


@pytest.mark.parametrize(
    ("over", "problem"),
    [({"rate": math.nan}, "rate must be a finite number"), ({"interval_h": 0.0}, "interval_h must be a positive")],
)
async def test_a_malformed_rate_refuses_the_whole_batch(grid: PriceGrid, over: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidQuote, match=f"funding of BTC/USDT-PERP on okx: {problem}"):
        await grid.write_funding([funding("binance"), funding("okx", **over)])

    assert await grid.read_funding() == {}


async def test_an_unreadable_entry_is_left_out_and_logged_never_guessed(
    grid: PriceGrid, caplog: pytest.LogCaptureFixture
) -> None:
    await grid.write_funding([funding("binance")])
    await grid.client.hset(grid.keys.funding, "BTC/USDT-PERP|okx", b"\x93not a rate")

    with caplog.at_level(logging.ERROR, logger="arb.grid.store"):
        read = await grid.read_funding()

    assert set(read) == {("BTC/USDT-PERP", "binance")}
    assert "grid.funding_unreadable field=b'BTC/USDT-PERP|okx'" in caplog.text


def test_a_rate_is_stale_only_past_two_funding_intervals() -> None:
    rate = funding("binance", interval_h=8.0, ts_ns=NS)

    assert not rate.stale(NS + 16 * NS_PER_HOUR)
    assert rate.stale(NS + 16 * NS_PER_HOUR + 1)
