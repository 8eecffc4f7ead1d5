"""Capital.com quotes into a real Redis grid from the local venue over real WebSockets: sharding, reconnects,
expired sessions, closed markets, stalls and bad messages. Whatever happens, the grid never holds a wrong quote."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest

from arb.connectors.capital_com import CapitalComConnector, StreamOptions
from arb.grid import PriceGrid
from arb.model import Quote
from arb.sim.venues.capital_com import LocalCapitalCom
from tests.integration.connectors.capital_com_support import (
    FAST_STREAM,
    FEW,
    SETTINGS,
    epics_of,
    local_capital_com,
    streaming,
)
from tests.integration.sim.support import eventually

NON_CRYPTO = [iid for iid, i in SETTINGS.instruments.items() if i.asset_class in ("fx", "commodity", "index")]


async def grid_matches_venue(grid: PriceGrid, local: LocalCapitalCom, instruments: list[str]) -> bool:
    """Every instrument's grid quote is the venue's current top of book."""
    epic_of = {i: e for e, i in epics_of(local).items()}
    for instrument in instruments:
        view = (await grid.read_instrument(instrument)).venues.get("capital_com")
        if view is None:
            return False
        q = view.quote
        if (q.bid, q.bid_size, q.ask, q.ask_size) != local.venue.book_for_symbol(epic_of[instrument]).top():
            return False
    return True


async def test_100_epics_stream_into_the_grid_over_three_connections_of_at_most_40(redis_url: str) -> None:
    async with local_capital_com(NON_CRYPTO) as local, streaming(local, redis_url) as (connector, grid):
        await eventually(lambda: connector.status.state == "connected", 10)
        await eventually(lambda: grid_is_full(grid, NON_CRYPTO), 10)

        await local.venue.market.close()  # hold the books still: the grid must show exactly them
        await eventually(lambda: grid_matches_venue(grid, local, NON_CRYPTO), 5)

        assert len(local.venue.connections) == 3
        assert sorted(len(c.topics) for c in local.venue.connections) == [20, 40, 40]
        assert connector.status.symbols == 100
        assert connector.status.rejected == {}
        assert connector.status.closed == []


async def grid_is_full(grid: PriceGrid, instruments: list[str]) -> bool:
    snap = await grid.read_grid()
    return bool(snap.present.sum() == len(instruments))


async def test_a_dropped_connection_is_reconnected_and_resubscribed(redis_url: str) -> None:
    seen: list[Quote] = []
    async with local_capital_com(NON_CRYPTO) as local, streaming(local, redis_url, seen=seen) as (connector, _grid):
        await eventually(lambda: connector.status.state == "connected", 10)

        assert local.venue.faults.drop() == 3
        dropped_at = time.time_ns()

        await eventually(lambda: connector.status.reconnects >= 3, 5)
        await eventually(lambda: {q.instrument for q in seen if q.ts_recv > dropped_at} == set(NON_CRYPTO), 10)
        await eventually(lambda: connector.status.state == "connected", 5)
        assert local.venue.stats["ws_connections"] >= 6
        assert len(local.venue.connections) == 3
        assert sorted(len(c.topics) for c in local.venue.connections) == [20, 40, 40]  # every epic resubscribed


async def test_an_expired_session_on_the_stream_logs_in_again_and_streaming_goes_on(redis_url: str) -> None:
    seen: list[Quote] = []
    async with local_capital_com(FEW) as local, streaming(local, redis_url, seen=seen) as (connector, _grid):
        await eventually(lambda: connector.status.state == "connected", 10)

        local.protocol.expire_sessions()  # the next ping carries dead tokens

        await eventually(lambda: "session" in connector.status.last_error, 5)
        reconnected_at = time.time_ns()
        await eventually(lambda: {q.instrument for q in seen if q.ts_recv > reconnected_at} == set(FEW), 10)
        await eventually(lambda: connector.status.state == "connected", 5)
        assert local.venue.stats["sessions_created"] == 2
        assert local.venue.stats["ws_connections"] == 2  # the one shard, resubscribed on a new connection


async def test_closed_markets_are_marked_closed_not_stale_and_quote_again_when_they_reopen(redis_url: str) -> None:
    seen: list[Quote] = []
    async with local_capital_com(FEW) as local, streaming(local, redis_url, seen=seen) as (connector, _grid):
        await eventually(lambda: connector.status.state == "connected", 10)
        stalls = connector.status.stalls
        for epic in ("EURUSD", "GOLD", "US500", "BTCUSD"):  # the whole (only) shard closes: silence is expected
            local.protocol.set_market_status(epic, "CLOSED")

        await eventually(lambda: len(connector.status.closed) == 4, 5)
        closed_at = time.time_ns()
        await asyncio.sleep(2.0)  # > 3 x the stall budget (0.5 s) with no quote at all

        assert not [q for q in seen if q.ts_recv > closed_at]
        assert connector.status.state == "connected"
        assert connector.status.stalls == stalls
        assert connector.status.closed == sorted(FEW)

        local.protocol.set_market_status("EURUSD", None)
        await eventually(lambda: "EUR/USD" not in connector.status.closed, 5)
        await eventually(lambda: any(q.instrument == "EUR/USD" and q.ts_recv > closed_at for q in seen), 5)
        assert connector.status.closed == sorted(set(FEW) - {"EUR/USD"})


async def test_real_hours_on_a_saturday_close_fx_commodities_and_indices_but_not_crypto(redis_url: str) -> None:
    saturday = dt.datetime(2024, 6, 8, 12, 0, tzinfo=dt.UTC)
    async with (
        local_capital_com(FEW, hours="real", wall=lambda: saturday) as local,
        streaming(local, redis_url) as (connector, grid),
    ):
        await eventually(lambda: connector.status.state == "connected", 10)
        await eventually(lambda: connector.status.quotes >= 5, 5)

        assert connector.status.closed == ["EUR/USD", "US500", "XAU/USD"]
        assert {q for q, v in (await grid.read_instrument("BTC/USD")).venues.items() if v.fresh} == {"capital_com"}
        assert (await grid.read_instrument("EUR/USD")).venues == {}


async def test_a_silent_stall_marks_the_venue_stale_and_reconnects(redis_url: str) -> None:
    async with local_capital_com(FEW) as local, streaming(local, redis_url) as (connector, _grid):
        await eventually(lambda: connector.status.quotes >= 40, 15)  # enough gaps measured for the budget

        local.venue.faults.stall(3.0)

        await eventually(lambda: connector.status.state != "connected", 5, every_s=0.01)
        assert connector.status.stalls >= 1
        await eventually(lambda: connector.status.state == "connected", 10)
        assert connector.status.reconnects >= 1


async def test_malformed_quotes_are_counted_and_dropped_and_the_connection_stays(redis_url: str) -> None:
    seen: list[Quote] = []
    async with local_capital_com(FEW) as local, streaming(local, redis_url, seen=seen) as (connector, _grid):
        await eventually(lambda: connector.status.state == "connected", 10)

        for kind in ("invalid_json", "wrong_types", "nan_price", "crossed"):
            local.venue.faults.malformed(kind)  # type: ignore[arg-type]
        await eventually(lambda: sum(connector.status.rejected.values()) == 4, 10)

        assert connector.status.rejected == {"malformed": 3, "crossed": 1}
        assert connector.status.reconnects == 0
        assert all(q.bid <= q.ask for q in seen)


async def test_pings_keep_the_connection_inside_the_venues_idle_limit(redis_url: str) -> None:
    async with local_capital_com(FEW, ws_idle_s=1.0) as local, streaming(local, redis_url) as (connector, _grid):
        await eventually(lambda: connector.status.state == "connected", 10)

        await asyncio.sleep(2.5)

        assert local.venue.stats["ws_idle_closed"] == 0
        assert connector.status.reconnects == 0


async def test_without_pings_the_venue_drops_the_connection_and_it_is_reconnected(redis_url: str) -> None:
    lazy = StreamOptions(**{**_fields(FAST_STREAM), "ping_interval_s": 30.0})
    async with (
        local_capital_com(FEW, ws_idle_s=0.5) as local,
        streaming(local, redis_url, options=lazy) as (connector, _grid),
    ):
        await eventually(lambda: local.venue.stats["ws_idle_closed"] >= 1, 5)
        await eventually(lambda: connector.status.reconnects >= 1, 5)


def _fields(options: StreamOptions) -> dict[str, object]:
    return {f: getattr(options, f) for f in options.__struct_fields__}


def test_the_connector_refuses_a_venue_that_is_not_capital_com() -> None:
    with pytest.raises(ValueError, match=r"is not a Capital\.com"):
        CapitalComConnector("binance", SETTINGS.venues["binance"], {"X": "Y"}, lambda q: None, credentials=None)
