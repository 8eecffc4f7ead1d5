"""The scanner over a real Redis grid: quotes in, ranked opportunities and their lifecycle out (stream included)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest

from arb.config.schema import GridSettings
from arb.grid import GridLayout, InvalidQuote, PriceGrid
from arb.grid.mirror import GridMirror
from arb.model import OpportunityEvent, Quote, VenueHealth
from arb.scanner.engine import Scanner
from arb.scanner.stream import OpportunityStream, read_events
from tests.support import MS, NS, Clock
from tests.unit.scanner.support import settings

SETTINGS = settings({"a": 0.001, "b": 0.001, "c": 0.001}, {x: dict.fromkeys("abc", "X/USDT") for x in ("BTC/USD",)})


def book(venue: str, mid: float, *, ts: int = NS, size: float = 1.0, sequence: int = 1) -> Quote:
    """A 5-level book around `mid` (1 bp half spread, 1 bp level gap)."""
    bids = tuple((mid * (1 - 1e-4 * (k + 1)), size) for k in range(5))
    asks = tuple((mid * (1 + 1e-4 * (k + 1)), size) for k in range(5))
    return Quote(venue, "BTC/USD", bids[0][0], size, asks[0][0], size, ts - MS, ts, sequence, bids, asks)


def healthy(now: int, *venues: str, state: str = "connected") -> dict[str, VenueHealth]:
    return {v: VenueHealth(venue=v, state=state, since_ns=now, published_ns=now) for v in venues}


@pytest.fixture
async def grid(redis_url: str) -> AsyncIterator[PriceGrid]:
    layout = GridLayout.from_settings(SETTINGS)
    async with PriceGrid.from_url(redis_url, layout, GridSettings(key_prefix="scan")) as g:
        await g.reset()
        yield g


async def caught_up(mirror: GridMirror, grid: PriceGrid) -> None:
    target = (await grid.position()).c
    assert await mirror.wait_until(lambda m: m.position.c >= target, timeout_s=2)


async def test_a_dislocated_venue_opens_an_opportunity_that_updates_and_closes_with_its_reason(grid: PriceGrid) -> None:
    clock = Clock()
    events: list[OpportunityEvent] = []
    mirror = grid.mirror(depth=20, now_ns=clock)
    scanner = Scanner(SETTINGS, mirror, sinks=[events.append], now_ns=clock)
    scanner.set_venue_health(healthy(clock.now, "a", "b", "c"))
    async with mirror.following():
        await grid.write([book("a", 65_000.0), book("b", 65_000.0), book("c", 65_020.0)])
        await caught_up(mirror, grid)
        assert scanner.step() == []  # 3 bps apart: nothing after 20 bps of fees

        await grid.write([book("c", 65_300.0, sequence=2, size=10.0)])  # c 46 bps up: sell there, buy on a or b
        await caught_up(mirror, grid)
        opened = scanner.step(mirror.take_dirty())

        assert {(e.type, e.opportunity.buy_venue, e.opportunity.sell_venue) for e in opened} == {
            ("opened", "a", "c"),
            ("opened", "b", "c"),
        }
        best = scanner.ranked()[0]
        # fees only: USDT on both legs pays no haircut
        assert best.net_edge == pytest.approx((best.vwap_sell - best.vwap_buy) / best.vwap_buy - 0.002)
        # a and b hold 5 units within the 5 bps slippage cap: the $50k per-trade limit binds first
        assert best.size == pytest.approx(50_000 / best.best_ask_buy)
        assert best.id.startswith("spot:BTC/USD:")
        assert best.priority > 0
        assert best.liquidity_score == 1.0
        assert best.execution_time_s == pytest.approx(0.05)

        await grid.write([book("c", 65_400.0, sequence=3, size=10.0)])
        await caught_up(mirror, grid)
        updated = scanner.step(mirror.take_dirty())
        assert {e.type for e in updated} == {"updated"}
        assert {e.opportunity.id for e in updated} == {o.id for o in scanner.ranked()}  # ids survive updates

        clock.now += 100 * MS
        await grid.write([book("c", 65_000.0, ts=clock.now, sequence=4)])
        await caught_up(mirror, grid)
        closed = scanner.step(mirror.take_dirty())
    assert {(e.type, e.close_reason) for e in closed} == {("closed", "edge")}
    assert all(e.duration_ms == pytest.approx(100.0) for e in closed)
    assert all(e.peak_net_edge >= e.opportunity.net_edge for e in closed)
    assert scanner.open == {}
    assert [e.type for e in events].count("opened") == 2


async def test_stale_quotes_and_unhealthy_venues_close_opportunities_and_open_none(grid: PriceGrid) -> None:
    clock = Clock()
    mirror = grid.mirror(depth=20, now_ns=clock)
    scanner = Scanner(SETTINGS, mirror, now_ns=clock)
    scanner.set_venue_health(healthy(clock.now, "a", "b", "c"))
    async with mirror.following():
        await grid.write([book("a", 65_000.0), book("b", 65_000.0), book("c", 65_300.0, size=10.0)])
        await caught_up(mirror, grid)
        assert len(scanner.step()) == 2

        clock.now += 1500 * MS  # within the 2 s quote-age limit, but c's connector is now reconnecting
        scanner.set_venue_health({**healthy(clock.now, "a", "b"), **healthy(clock.now, "c", state="reconnecting")})
        closed = scanner.step()
        assert {(e.type, e.close_reason) for e in closed} == {("closed", "venue")}
        assert scanner.scan_once() == []

        scanner.set_venue_health(healthy(clock.now, "a", "b", "c"))
        assert len(scanner.step()) == 2  # back: reopened, with new ids
        clock.now += 600 * MS  # 2.1 s: every quote is now older than the venues' 2 s limit; no feed entry needed
        scanner.set_venue_health(healthy(clock.now, "a", "b", "c"))
        closed = scanner.step()
    assert {(e.type, e.close_reason) for e in closed} == {("closed", "stale")}


async def test_health_older_than_the_venue_quote_age_limit_counts_as_down(grid: PriceGrid) -> None:
    clock = Clock()
    mirror = grid.mirror(depth=20, now_ns=clock)
    scanner = Scanner(SETTINGS, mirror, now_ns=clock)
    scanner.set_venue_health(healthy(clock.now - 2500 * MS, "a", "b", "c"), now_ns=clock.now)
    assert not scanner.venue_up.any()
    assert scanner.venue_state["a"] == "health 2500 ms old"
    scanner.set_venue_health(healthy(clock.now, "a"), now_ns=clock.now)
    assert scanner.venue_state["b"] == "no health published"


async def test_an_instrument_paused_by_risk_produces_nothing(grid: PriceGrid) -> None:
    clock = Clock()
    mirror = grid.mirror(depth=20, now_ns=clock)
    scanner = Scanner(SETTINGS, mirror, now_ns=clock)
    scanner.set_venue_health(healthy(clock.now, "a", "b", "c"))
    async with mirror.following():
        await grid.write([book("a", 65_000.0), book("b", 65_000.0), book("c", 65_300.0, size=10.0)])
        await caught_up(mirror, grid)
        assert len(scanner.step()) == 2
        await grid.set_paused("BTC/USD", True)
        scanner.set_paused(await grid.read_paused())
        closed = scanner.step()
    assert {e.close_reason for e in closed} == {"paused"}


async def test_a_crossed_book_never_reaches_the_scanner(grid: PriceGrid) -> None:
    clock = Clock()
    mirror = grid.mirror(depth=20, now_ns=clock)
    scanner = Scanner(SETTINGS, mirror, now_ns=clock)
    scanner.set_venue_health(healthy(clock.now, "a", "b", "c"))
    crossed = Quote("c", "BTC/USD", 65_400.0, 5.0, 65_300.0, 5.0, NS - MS, NS, 9)
    with pytest.raises(InvalidQuote, match="crossed book"):
        await grid.write([book("a", 65_000.0), crossed])
    assert mirror.apply([book("a", 65_000.0), book("b", 65_000.0), crossed]) == 2  # skipped and counted
    assert mirror.skipped.get("invalid_quote") == 1
    await mirror.rebuild()
    assert scanner.step() == []


async def test_lifecycle_events_reach_the_redis_stream_in_order(grid: PriceGrid) -> None:
    clock = Clock()
    mirror = grid.mirror(depth=20, now_ns=clock)
    async with OpportunityStream(grid) as stream:
        scanner = Scanner(SETTINGS, mirror, sinks=[stream.put], now_ns=clock)
        scanner.set_venue_health(healthy(clock.now, "a", "b", "c"))
        async with mirror.following():
            await grid.write([book("a", 65_000.0), book("b", 65_000.0), book("c", 65_300.0, size=10.0)])
            await caught_up(mirror, grid)
            scanner.step()
            scanner.close_all()
    _, events = await read_events(grid)
    assert [e.type for e in events] == ["opened", "opened", "closed", "closed"]
    assert {e.close_reason for e in events[2:]} == {"shutdown"}
    assert events[0].opportunity.id == events[2].opportunity.id or events[0].opportunity.id == events[3].opportunity.id


async def publish_market_fee(grid: PriceGrid, health: dict[str, VenueHealth], fee: float) -> None:
    """Venue c's connector publishes `fee` as BTC/USD's market taker fee with its (healthy) health record."""
    health["c"] = msgspec.structs.replace(health["c"], taker_fees={"BTC/USD": fee})
    await grid.publish_health(list(health.values()))


async def c_dislocated(grid: PriceGrid, mirror: GridMirror) -> None:
    """c 46 bps above a and b: buy on a or b, sell on c."""
    await grid.write([book("a", 65_000.0), book("b", 65_000.0), book("c", 65_300.0, size=10.0)])
    await caught_up(mirror, grid)


async def test_with_fees_from_markets_the_venues_published_taker_fees_replace_the_configured_ones(
    grid: PriceGrid, caplog: pytest.LogCaptureFixture
) -> None:
    s = settings({"a": 0.001, "b": 0.001, "c": 0.001}, scanner={"fees_from_markets": True})
    clock = Clock()
    mirror = grid.mirror(depth=20, now_ns=clock)
    scanner = Scanner(s, mirror, now_ns=clock)
    health = healthy(clock.now, "a", "b", "c")
    await publish_market_fee(grid, health, 0.0004)
    async with mirror.following():
        await c_dislocated(grid, mirror)

        await scanner.refresh_inputs()
        [best, _] = scanner.scan_once(clock.now)

        assert (best.sell_venue, best.fee_sell, best.fee_buy) == ("c", 0.0004, 0.001)  # c's market fee, a's config
        assert best.net_edge == pytest.approx((best.vwap_sell - best.vwap_buy) / best.vwap_buy - 0.0014)  # no haircut

        await publish_market_fee(grid, health, -0.0002)  # a rebate: refused
        await scanner.refresh_inputs()
        assert scanner.scan_once(clock.now)[0].fee_sell == 0.0004  # the fees in use stay, and it says why
        assert "scanner.market_fees_refused" in caplog.text


async def test_without_fees_from_markets_the_configured_fees_stand(grid: PriceGrid) -> None:
    clock = Clock()
    mirror = grid.mirror(depth=20, now_ns=clock)
    scanner = Scanner(SETTINGS, mirror, now_ns=clock)
    await publish_market_fee(grid, healthy(clock.now, "a", "b", "c"), 0.0004)
    async with mirror.following():
        await c_dislocated(grid, mirror)
        await scanner.refresh_inputs()
        assert {o.fee_sell for o in scanner.scan_once(clock.now)} == {0.001}
