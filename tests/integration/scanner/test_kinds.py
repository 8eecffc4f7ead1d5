"""Basis and triangular opportunities through the scanner over a real Redis grid: opened, closed, and why.

Venue a lists BTC/USDT, ETH/BTC, ETH/USDT (a triangle) and the BTC perp; venue b lists the BTC perp only. Taker
fees: a 10 bps, b 5 bps. Funding: 1 bp per 8 h, held 24 h = +3 bps to the short perp.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from arb.config.schema import GridSettings
from arb.grid import GridLayout, PriceGrid
from arb.grid.funding import NS_PER_HOUR, FundingRate
from arb.grid.mirror import GridMirror
from arb.model import OpportunityEvent, Quote, VenueHealth
from arb.scanner.engine import Scanner
from tests.support import MS, Clock
from tests.unit.scanner.support_kinds import kinds_settings, perp, spot

SETTINGS = kinds_settings(
    {"a": 0.001, "b": 0.0005},
    {
        "BTC/USDT": spot("BTC", "USDT", {"a": "BTC/USDT"}),
        "ETH/BTC": spot("ETH", "BTC", {"a": "ETH/BTC"}),
        "ETH/USDT": spot("ETH", "USDT", {"a": "ETH/USDT"}),
        "BTC/USDT-PERP": perp("BTC", "USDT", "BTC/USDT", {"a": "BTC/USDT:USDT", "b": "BTC/USDT:USDT"}),
    },
    kinds=["spot", "basis", "triangular"],
    basis_holding_hours=24.0,
)
TRIANGLE = "USDT>BTC>ETH>USDT"


def book(venue: str, instrument: str, bid: float, ask: float, size: float, now: int, sequence: int = 1) -> Quote:
    return Quote(venue, instrument, bid, size, ask, size, now - MS, now, sequence, ((bid, size),), ((ask, size),))


def market(now: int, btc_ask: float = 50_000.0, sequence: int = 1) -> list[Quote]:
    return [
        book("a", "BTC/USDT", btc_ask - 10.0, btc_ask, 1.0, now, sequence),
        book("a", "ETH/BTC", 0.0499, 0.05, 20.0, now),
        book("a", "ETH/USDT", 2_520.0, 2_521.0, 10.0, now),
        book("a", "BTC/USDT-PERP", 49_995.0, 50_005.0, 1.0, now),
        book("b", "BTC/USDT-PERP", 50_200.0, 50_210.0, 1.0, now),  # 39 bps over perp a: no spot kind for perps
    ]


async def publish_inputs(grid: PriceGrid, now: int, funding_ts: int) -> None:
    await grid.publish_health([VenueHealth(venue=v, state="connected", since_ns=now, published_ns=now) for v in "ab"])
    await grid.write_funding(
        [FundingRate(venue=v, instrument="BTC/USDT-PERP", rate=0.0001, interval_h=8.0, ts_ns=funding_ts) for v in "ab"]
    )


@pytest.fixture
async def grid(redis_url: str) -> AsyncIterator[PriceGrid]:
    async with PriceGrid.from_url(redis_url, GridLayout.from_settings(SETTINGS), GridSettings(key_prefix="kinds")) as g:
        await g.reset()
        yield g


async def caught_up(mirror: GridMirror, grid: PriceGrid) -> None:
    target = (await grid.position()).c
    assert await mirror.wait_until(lambda m: m.position.c >= target, timeout_s=2)


def summary(events: list[OpportunityEvent]) -> set[tuple[str, str, str, str, str, str]]:
    return {
        (e.type, e.opportunity.kind, e.opportunity.instrument, e.opportunity.buy_venue, e.opportunity.sell_venue,
         e.close_reason)
        for e in events
    }  # fmt: skip


async def test_basis_and_triangular_opportunities_open_and_close_through_step(grid: PriceGrid) -> None:
    clock = Clock()
    mirror = grid.mirror(depth=20, now_ns=clock)
    scanner = Scanner(SETTINGS, mirror, now_ns=clock)
    async with mirror.following():
        await grid.write(market(clock.now))
        await publish_inputs(grid, clock.now, funding_ts=clock.now)
        await caught_up(mirror, grid)
        await scanner.refresh_inputs()

        opened = scanner.step()

        assert summary(opened) == {
            ("opened", "basis", "BTC/USDT-PERP", "a", "b", ""),
            ("opened", "triangular", TRIANGLE, "a", "a", ""),
        }
        basis, triangle = sorted((e.opportunity for e in opened), key=lambda o: o.kind)
        assert basis.id.startswith("basis:BTC/USDT-PERP:a>b:")
        assert basis.funding == pytest.approx(0.0003)
        assert basis.net_edge == pytest.approx(200 / 50_000 - 0.0015 + 0.0003)
        assert basis.legs == ("BTC/USDT", "BTC/USDT:USDT")
        assert triangle.id.startswith(f"triangular:{TRIANGLE}:a>a:")
        assert triangle.net_edge == pytest.approx(1.008 * 0.999**3 - 1)  # 1/50,000 x 20 x 2,520, three 10 bps fees
        assert triangle.size == pytest.approx(25_000.0)  # 10 ETH of ETH/USDT bids

        # BTC/USDT on a, a leg of both, jumps 60 bps: only its row is dirty, and both close on it
        clock.now += 10 * MS
        await grid.write([book("a", "BTC/USDT", 50_290.0, 50_300.0, 1.0, clock.now, sequence=2)])
        await caught_up(mirror, grid)
        closed = scanner.step(mirror.take_dirty())
        assert summary(closed) == {
            ("closed", "basis", "BTC/USDT-PERP", "a", "b", "edge"),
            ("closed", "triangular", TRIANGLE, "a", "a", "edge"),
        }

        clock.now += 10 * MS
        await grid.write([book("a", "BTC/USDT", 49_990.0, 50_000.0, 1.0, clock.now, sequence=3)])
        await caught_up(mirror, grid)
        assert {e.type for e in scanner.step(mirror.take_dirty())} == {"opened"}

        # the perp's funding rate on b goes unpublished for 17 h (two 8 h intervals is the limit): basis closes
        await publish_inputs(grid, clock.now, funding_ts=clock.now - 17 * NS_PER_HOUR)
        await scanner.refresh_inputs()
        assert summary(scanner.step()) == {("closed", "basis", "BTC/USDT-PERP", "a", "b", "funding")}

        clock.now += 2100 * MS  # every quote is past the venues' 2 s limit
        assert summary(scanner.step()) == {("closed", "triangular", TRIANGLE, "a", "a", "stale")}
    assert scanner.open == {}
