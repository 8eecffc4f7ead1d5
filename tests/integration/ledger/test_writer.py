"""OpportunityLedgerWriter against a real database: lifecycles land, batches coalesce, outages are ridden through."""

from __future__ import annotations

import logging

import pytest

from arb.ledger import InvalidEvent, Ledger, open_ledger
from arb.ledger.records import OpportunityEventRecord
from tests.unit.ledger.support import MS, NS, event, lifecycle

from .conftest import Database
from .support import eventually, metric


async def events_of(ledger: Ledger, id: str) -> list[tuple[str, int, float]]:
    return [(e.type, e.ts_ns, e.net_edge) for e in await ledger.opportunity_events(id)]


async def test_a_lifecycle_lands_as_one_row_with_its_peak_duration_and_close(db: Database) -> None:
    opened, up1, up2, closed = lifecycle("opp-1", edges=(0.002, 0.005, 0.003))

    async with open_ledger(db.url) as ledger:
        async with ledger.opportunity_writer(max_delay_ms=60_000) as writer:
            writer.put(opened)
            await writer.flush()
            just_opened = await ledger.opportunity("opp-1")
            writer.put(up1)
            await writer.flush()
            writer.put(up2)
            await writer.flush()
            still_open = await ledger.opportunity("opp-1")
            writer.put(closed)
            await writer.flush()
        record = await ledger.opportunity("opp-1")
        steps = await events_of(ledger, "opp-1")

    assert just_opened is not None
    assert just_opened.is_open
    assert (just_opened.opened_at_ns, just_opened.peak_net_edge, just_opened.updates) == (NS, 0.002, 0)
    assert still_open is not None
    assert still_open.is_open
    assert (still_open.opportunity.net_edge, still_open.peak_net_edge, still_open.updates) == (0.003, 0.005, 2)
    assert record is not None
    assert not record.is_open
    assert (record.closed_at_ns, record.close_reason, record.duration_ms) == (NS + 3 * MS, "edge", 3.0)
    assert (record.peak_net_edge, record.updates) == (0.005, 2)
    assert record.opportunity == closed.opportunity  # every cost and priority factor, as the scanner computed them
    assert steps == [
        ("opened", NS, 0.002),
        ("updated", NS + MS, 0.005),
        ("updated", NS + 2 * MS, 0.003),
        ("closed", NS + 3 * MS, 0.003),
    ]
    assert (writer.written, writer.coalesced, writer.dropped, writer.pending) == (4, 0, 0, 0)


async def test_leaving_the_writer_flushes_what_is_pending(db: Database) -> None:
    async with open_ledger(db.url) as ledger:
        async with ledger.opportunity_writer(max_delay_ms=60_000) as writer:
            for k in range(3):
                for e in lifecycle(f"opp-{k}"):
                    writer.put(e)
            assert writer.written == 0

        assert (writer.written, writer.coalesced, writer.pending) == (9, 3, 0)  # one update of each coalesced
        assert [r.id for r in await ledger.recent_opportunities()] == ["opp-2", "opp-1", "opp-0"]


async def test_a_full_batch_is_written_without_waiting_for_the_timer(db: Database) -> None:
    async with open_ledger(db.url) as ledger, ledger.opportunity_writer(max_batch=4, max_delay_ms=60_000) as writer:
        for e in lifecycle("opp-1"):  # 4 events
            writer.put(e)

        async def closed() -> bool:
            record = await ledger.opportunity("opp-1")
            return record is not None and not record.is_open

        assert await eventually(closed)


async def test_a_partial_batch_is_written_after_the_delay(db: Database) -> None:
    async with open_ledger(db.url) as ledger, ledger.opportunity_writer(max_delay_ms=20) as writer:
        writer.put(event("opened", "opp-1"))

        async def there() -> bool:
            return await ledger.opportunity("opp-1") is not None

        assert await eventually(there, timeout_s=2.0)


async def test_updates_in_one_batch_keep_one_event_row_and_the_full_count(db: Database) -> None:
    events = lifecycle("opp-1", edges=(0.001, *(0.001 * k for k in range(2, 12))))  # opened, 10 updates, closed
    before = metric("arb_ledger_events_coalesced_total")

    async with open_ledger(db.url) as ledger:
        async with ledger.opportunity_writer(max_delay_ms=60_000) as writer:
            for e in events:
                writer.put(e)
            await writer.flush()
        record = await ledger.opportunity("opp-1")
        steps = [step[0] for step in await events_of(ledger, "opp-1")]

    assert steps == ["opened", "updated", "closed"]
    assert record is not None
    assert (record.updates, record.peak_net_edge) == (10, pytest.approx(0.011))
    assert (writer.written, writer.coalesced) == (3, 9)
    assert metric("arb_ledger_events_coalesced_total") - before == 9


async def test_events_put_during_an_outage_are_written_after_it(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    a, b = lifecycle("opp-a"), lifecycle("opp-b", opened_ns=NS + 10 * MS)
    failures = metric("arb_ledger_write_failures_total")

    async with open_ledger(db.url) as ledger:
        async with ledger.opportunity_writer(max_delay_ms=10, retry_max_s=0.05) as writer:
            writer.put(a[0])
            await writer.flush()
            with caplog.at_level(logging.INFO, logger="arb.ledger.writer"):
                async with db.outage():
                    for e in a[1:] + b:
                        writer.put(e)

                    async def failed_twice() -> bool:
                        return metric("arb_ledger_write_failures_total") - failures >= 2

                    assert await eventually(failed_twice)
                    # kept, not dropped (the first update of each coalesced into the second when batched)
                    assert (writer.pending, writer.coalesced, writer.dropped) == (5, 2, 0)

                async def written() -> bool:
                    return writer.written == 6

                assert await eventually(written)
        records = {r.id: r for r in await ledger.recent_opportunities()}
        steps_b = [step[0] for step in await events_of(ledger, "opp-b")]

    assert not records["opp-a"].is_open
    assert not records["opp-b"].is_open
    assert records["opp-a"].opportunity == a[-1].opportunity
    assert steps_b == ["opened", "updated", "closed"]
    assert (writer.written, writer.coalesced, writer.dropped) == (6, 2, 0)
    failing = [r for r in caplog.records if "ledger.writer_failing" in r.getMessage()]
    assert len(failing) == 1  # once per outage, not once per retry
    assert failing[0].levelno == logging.WARNING  # classified as an outage, not as a bug
    assert caplog.text.count("ledger.writer_recovered") == 1


async def test_events_still_unwritten_when_the_writer_closes_during_an_outage_are_counted_lost(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    before = metric("arb_ledger_events_dropped_total", reason="shutdown")

    async with open_ledger(db.url) as ledger:
        async with db.outage():
            async with ledger.opportunity_writer(max_delay_ms=10, retry_max_s=0.05, close_timeout_s=0.2) as writer:
                for e in lifecycle("opp-1"):
                    writer.put(e)

    assert (writer.written, writer.coalesced, writer.dropped, writer.pending) == (0, 1, 3, 0)
    assert metric("arb_ledger_events_dropped_total", reason="shutdown") - before == 3
    assert "ledger.writer_lost events=3" in caplog.text


async def test_a_batch_written_twice_leaves_the_same_rows_and_events(db: Database) -> None:
    events = lifecycle("opp-a") + lifecycle("opp-b")

    async with open_ledger(db.url) as ledger:
        for _ in range(2):  # as after a commit whose outcome was unknown
            async with ledger.opportunity_writer() as writer:
                for e in events:
                    writer.put(e)
        records = await ledger.recent_opportunities()
        steps = await events_of(ledger, "opp-a")

    assert len(records) == 2
    assert [s[0] for s in steps] == ["opened", "updated", "closed"]  # the two updates coalesced in each batch


async def test_an_older_event_arriving_late_never_moves_a_row_back(db: Database) -> None:
    opened, up1, up2, closed = lifecycle("opp-1", edges=(0.002, 0.005, 0.003))

    async with open_ledger(db.url) as ledger:
        async with ledger.opportunity_writer() as writer:
            for e in (opened, up1, up2, closed):
                writer.put(e)
            await writer.flush()
            writer.put(up1)  # replayed after the close
            await writer.flush()
        record = await ledger.opportunity("opp-1")

    assert record is not None
    assert (record.closed_at_ns, record.last_event_ns, record.opportunity.net_edge) == (NS + 3 * MS,) * 2 + (0.003,)


async def test_a_writer_started_mid_lifecycle_records_the_whole_state_from_a_later_event(db: Database) -> None:
    opened_ns = NS - 1_000 * MS
    update = event("updated", "opp-1", ts=NS, opened_ns=opened_ns, net_edge=0.003, peak=0.006, updates=7)

    async with open_ledger(db.url) as ledger:
        async with ledger.opportunity_writer() as writer:
            writer.put(update)
        record = await ledger.opportunity("opp-1")

    assert record is not None
    assert record.is_open
    assert (record.opened_at_ns, record.peak_net_edge, record.updates, record.duration_ms) == (
        opened_ns,
        0.006,
        7,
        1000.0,
    )


async def test_an_opportunity_the_database_refuses_is_dropped_alone(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    bad = event("opened", "opp-bad", instrument=None)  # NOT NULL: put() would refuse it, so it is slipped in below
    before = metric("arb_ledger_events_dropped_total", reason="refused")

    async with open_ledger(db.url) as ledger:
        async with ledger.opportunity_writer(max_delay_ms=60_000) as writer:
            for e in lifecycle("opp-a"):
                writer.put(e)
            writer._pending.append(bad)
            for e in lifecycle("opp-b"):
                writer.put(e)
            await writer.flush()
        ids = [r.id for r in await ledger.recent_opportunities()]

    assert sorted(ids) == ["opp-a", "opp-b"]
    assert (writer.written, writer.dropped) == (6, 1)
    assert metric("arb_ledger_events_dropped_total", reason="refused") - before == 1
    assert "ledger.writer_refused opportunity=opp-bad events=1" in caplog.text


async def test_bad_events_are_refused_at_put_naming_them(sqlite_url: str) -> None:
    async with open_ledger(sqlite_url) as ledger, ledger.opportunity_writer() as writer:
        with pytest.raises(InvalidEvent, match=r"id='opp-9'\): opportunity.net_edge must be a finite number, got nan"):
            writer.put(event("opened", "opp-9", net_edge=float("nan")))
        with pytest.raises(InvalidEvent, match="before opened_ns"):
            writer.put(event("closed", ts=NS - 1))
        assert writer.pending == 0


async def test_a_writer_is_used_once_inside_its_block(sqlite_url: str) -> None:
    async with open_ledger(sqlite_url) as ledger:
        writer = ledger.opportunity_writer()
        with pytest.raises(RuntimeError, match="inside `async with`"):
            writer.put(event("opened"))
        async with writer:
            with pytest.raises(RuntimeError, match="cannot be opened again"):
                await writer.__aenter__()
        with pytest.raises(RuntimeError, match="closed"):
            writer.put(event("opened"))


def test_event_records_name_their_fields() -> None:
    assert OpportunityEventRecord.__struct_fields__ == ("opportunity_id", "type", "ts_ns", "net_edge", "priority")
