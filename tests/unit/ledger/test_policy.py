"""The writer's pure policy: what put() refuses, how a batch coalesces, what the pending bound drops."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arb.ledger.writer import _FLOAT_FIELDS, _Pending, coalesce, event_problem
from arb.model import Opportunity, OpportunityEvent

from .support import MS, NS, event, lifecycle


def test_every_float_field_of_an_opportunity_is_checked() -> None:
    floats = {f.name for f in msgspec.structs.fields(Opportunity) if f.type is float}

    assert set(_FLOAT_FIELDS) == floats
    assert {"net_edge", "priority", "size", "notional", "expected_profit"} <= floats


def test_a_sound_event_has_no_problem() -> None:
    for e in lifecycle():
        assert event_problem(e) is None


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (event("opened", net_edge=math.nan), "opportunity.net_edge must be a finite number, got nan"),
        (event("opened", priority=math.inf), "opportunity.priority must be a finite number, got inf"),
        (event("opened", size="1.0"), "opportunity.size must be a finite number, got '1.0'"),
        (event("opened", instrument=None), "opportunity.instrument must be a str, got None"),
        (event("opened", id=""), "opportunity.id is empty"),
        (event("opened", peak=math.nan), "peak_net_edge must be a finite number"),
        (event("updated", ts=NS - 1), f"ts {NS - 1} is before opened_ns {NS}"),
        (event("updated", updates=-1), "updates must be an integer"),
        (event("updated", updates=2**31), "updates must be an integer"),
        (event("opened", ts=2**63, opened_ns=NS), "ts must be an integer"),
        (event("closed", close_reason=None), "close_reason must be a str"),  # type: ignore[arg-type]
        (event("opened").__replace__(type="reopened"), "type must be one of opened/updated/closed"),
        ("opened", "expected an OpportunityEvent, got str"),
    ],
)
def test_an_unsound_event_is_named_by_its_problem(bad: object, problem: str) -> None:
    found = event_problem(bad)

    assert found is not None
    assert problem in found


def test_a_batch_keeps_opened_closed_and_the_latest_update_of_each_opportunity() -> None:
    a, b = lifecycle("a", edges=(0.001, 0.002, 0.003, 0.004)), lifecycle("b", edges=(0.001, 0.002))
    batch = [a[0], b[0], a[1], a[2], b[1], a[3], b[2], a[4]]  # interleaved, each in its own order

    kept, coalesced = coalesce(batch)

    assert kept == [a[0], b[0], b[1], a[3], b[2], a[4]]
    assert coalesced == 2


def test_a_batch_with_one_update_per_opportunity_is_kept_as_it_is() -> None:
    batch = lifecycle("a")[:2] + lifecycle("b")[:2]

    kept, coalesced = coalesce(batch)

    assert kept is batch
    assert coalesced == 0


def updates_of(id: str, n: int, start: int = 1) -> list[OpportunityEvent]:
    return [event("updated", id, ts=NS + k * MS, updates=k) for k in range(start, start + n)]


def test_past_the_bound_superseded_updates_go_first_then_the_oldest() -> None:
    pending = _Pending(max_pending=10)
    pending.append(event("opened", "a"))
    for e in updates_of("a", 4):  # 3 of these are superseded by the 4th
        pending.append(e)
    for e in updates_of("b", 1) + updates_of("c", 1) + updates_of("d", 1):
        pending.append(e)
    pending.append(event("closed", "e", close_reason="edge"))
    pending.append(event("opened", "f"))
    assert len(pending) == 10

    pending.append(event("opened", "g"))  # 11 > 10: shed down to 9

    left = pending.take(100)
    assert pending.dropped == 2
    assert [(e.type, e.opportunity.id, e.updates) for e in left] == [
        ("opened", "a", 0),
        ("updated", "a", 3),  # the oldest superseded ones (updates 1, 2) went
        ("updated", "a", 4),
        ("updated", "b", 1),
        ("updated", "c", 1),
        ("updated", "d", 1),
        ("closed", "e", 0),
        ("opened", "f", 0),
        ("opened", "g", 0),
    ]


def test_past_the_bound_the_oldest_updates_go_when_none_is_superseded() -> None:
    pending = _Pending(max_pending=10)
    for k in range(10):
        pending.append(event("updated", f"o{k}", updates=1))

    pending.append(event("opened", "new"))

    left = pending.take(100)
    assert pending.dropped == 2
    assert [e.opportunity.id for e in left] == [f"o{k}" for k in range(2, 10)] + ["new"]


def test_opened_and_closed_events_are_never_dropped(caplog: pytest.LogCaptureFixture) -> None:
    pending = _Pending(max_pending=10)

    for k in range(25):
        pending.append(event("opened", f"o{k}"))
        pending.append(event("closed", f"o{k}", close_reason="edge"))

    assert len(pending) == 50
    assert pending.dropped == 0
    assert caplog.text.count("ledger.writer_over_bound") == 1


def test_events_put_back_go_in_front_in_their_order() -> None:
    pending = _Pending(max_pending=100)
    a, b = lifecycle("a"), lifecycle("b")
    for e in b:
        pending.append(e)

    pending.put_back(a)

    assert pending.take(100) == a + b


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["opened", "updated", "updated", "closed"])), max_size=80),
    st.integers(1, 30),
)
def test_whatever_is_put_every_opened_and_closed_event_is_kept_in_order_and_the_rest_is_bounded(
    steps: list[tuple[int, str]], max_pending: int
) -> None:
    pending = _Pending(max_pending=max_pending)
    put: list[OpportunityEvent] = []
    for k, (opp, kind) in enumerate(steps):
        e = event(kind, f"o{opp}", ts=NS + k, updates=k)  # type: ignore[arg-type]
        put.append(e)
        pending.append(e)

    left = pending.take(len(pending))

    assert len(left) + pending.dropped == len(put)
    assert [e for e in put if e.type != "updated"] == [e for e in left if e.type != "updated"]
    assert left == [e for e in put if e in left]  # order kept
    # sheds are amortised: once only opened/closed events are left, the next shed waits until the queue doubles
    assert len(left) <= max(max_pending, 2 * sum(e.type != "updated" for e in put))
