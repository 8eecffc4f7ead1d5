"""OpportunityRecord: lifecycle fields read as a user expects."""

from __future__ import annotations

import msgspec

from arb.ledger.records import OpportunityRecord

from .support import MS, NS, opportunity


def record(**over: object) -> OpportunityRecord:
    fields: dict[str, object] = {
        "opportunity": opportunity("opp-9"),
        "opened_at_ns": NS,
        "peak_net_edge": 0.004,
        "updates": 3,
        "last_event_ns": NS + 40 * MS,
    }
    fields.update(over)
    return OpportunityRecord(**fields)  # type: ignore[arg-type]


def test_a_closed_record_lasts_from_open_to_close() -> None:
    closed = record(closed_at_ns=NS + 250 * MS, close_reason="stale")

    assert not closed.is_open
    assert closed.duration_ms == 250.0
    assert closed.id == "opp-9"


def test_an_open_record_lasts_until_its_latest_event() -> None:
    still_open = record()

    assert still_open.is_open
    assert still_open.duration_ms == 40.0


def test_a_record_encodes_to_json_with_every_factor() -> None:
    data = msgspec.json.decode(msgspec.json.encode(record()))

    assert data["opportunity"]["liquidity_score"] == 0.8
    assert data["closed_at_ns"] is None
