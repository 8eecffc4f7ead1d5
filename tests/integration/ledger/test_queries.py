"""The ledger's queries: what the CLI and the API read back is what was written."""

from __future__ import annotations

import pytest

from arb.ledger import Ledger, LedgerUnavailable, OpportunityRecord, open_ledger
from arb.model import OpportunityEvent
from tests.unit.ledger.support import MS, NS, event, lifecycle

from .conftest import Database

SECOND = 1_000 * MS


async def write(ledger: Ledger, events: list[OpportunityEvent]) -> None:
    async with ledger.opportunity_writer() as writer:
        for e in events:
            writer.put(e)


def history() -> list[OpportunityEvent]:
    """o1 BTC closed, o2 ETH open, o3 BTC open, o4 BTC closed; opened one second apart in that order."""
    return [
        *lifecycle("o1", opened_ns=NS),
        event("opened", "o2", ts=NS + SECOND, opened_ns=NS + SECOND, instrument="ETH/USDT"),
        event("opened", "o3", ts=NS + 2 * SECOND, opened_ns=NS + 2 * SECOND),
        *lifecycle("o4", opened_ns=NS + 3 * SECOND),
    ]


async def test_recent_opportunities_come_newest_first_and_filter_by_instrument_and_openness(db: Database) -> None:
    async with open_ledger(db.url) as ledger:
        await write(ledger, history())

        def ids(records: list[OpportunityRecord]) -> list[str]:
            return [r.id for r in records]

        assert ids(await ledger.recent_opportunities()) == ["o4", "o3", "o2", "o1"]
        assert ids(await ledger.recent_opportunities(limit=2)) == ["o4", "o3"]
        assert ids(await ledger.recent_opportunities(instrument="BTC/USDT")) == ["o4", "o3", "o1"]
        assert ids(await ledger.recent_opportunities(open_only=True)) == ["o3", "o2"]
        assert ids(await ledger.recent_opportunities(instrument="BTC/USDT", open_only=True)) == ["o3"]
        assert await ledger.recent_opportunities(instrument="XAU/USD") == []


async def test_a_record_carries_the_whole_latest_opportunity_and_its_lifecycle(db: Database) -> None:
    events = lifecycle("o1", edges=(0.002, 0.007, 0.004))

    async with open_ledger(db.url) as ledger:
        await write(ledger, events)
        record = await ledger.opportunity("o1")
        listed = await ledger.recent_opportunities()

    assert record is not None
    assert record == listed[0]
    assert record.opportunity == events[-1].opportunity  # every field: costs, factors, ages, wallet, ts
    assert (record.opened_at_ns, record.closed_at_ns, record.close_reason) == (NS, NS + 3 * MS, "edge")
    assert (record.peak_net_edge, record.updates, record.last_event_ns) == (0.007, 2, NS + 3 * MS)


async def test_an_unknown_opportunity_is_none_and_has_no_events(db: Database) -> None:
    async with open_ledger(db.url) as ledger:
        assert await ledger.opportunity("nope") is None
        assert await ledger.opportunity_events("nope") == []


async def test_reads_during_a_write_outage(db: Database) -> None:
    async with open_ledger(db.url) as ledger:
        await write(ledger, lifecycle("o1"))

        async with db.outage():
            if db.backend == "sqlite":  # WAL: readers are not blocked by a writer's lock
                assert [r.id for r in await ledger.recent_opportunities()] == ["o1"]
            else:
                with pytest.raises(LedgerUnavailable, match="ledger recent_opportunities failed"):
                    await ledger.recent_opportunities()

        assert [r.id for r in await ledger.recent_opportunities()] == ["o1"]


async def test_a_limit_out_of_range_is_refused(sqlite_url: str) -> None:
    async with open_ledger(sqlite_url) as ledger:
        for limit in (0, -1, 10_001):
            with pytest.raises(ValueError, match=r"limit must be in \[1, 10000\]"):
                await ledger.recent_opportunities(limit=limit)


async def test_a_closed_ledger_refuses_use(sqlite_url: str) -> None:
    async with open_ledger(sqlite_url) as ledger:
        pass

    with pytest.raises(RuntimeError, match="Ledger is closed"):
        await ledger.recent_opportunities()
    with pytest.raises(RuntimeError, match="Ledger is closed"):
        ledger.opportunity_writer()
