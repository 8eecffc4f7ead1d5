"""Capital.com's wire format: streamed quotes -> Quote, REST payloads, opening hours on both sides of each boundary."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec
import pytest

from arb.connectors.capital_com.wire import (
    QUOTE_DECODER,
    STREAM_DECODER,
    Confirm,
    MarketDetails,
    OpeningHours,
    quote_from_payload,
)
from arb.model import Quote

RECV = 1_700_000_000_123_000_000
QUOTE = (
    b'{"status":"OK","destination":"quote","payload":{"epic":"OIL_CRUDE","product":"CFD","bid":93.87,'
    b'"bidQty":4976.0,"ofr":93.9,"ofrQty":5000.0,"timestamp":1660297865136}}'
)


def test_a_streamed_quote_becomes_top_of_book_with_venue_time_in_ns_and_the_timestamp_as_sequence() -> None:
    msg = STREAM_DECODER.decode(QUOTE)
    payload = QUOTE_DECODER.decode(msg.payload)

    q = quote_from_payload("capital_com", "WTI/USD", payload, RECV)

    assert msg.destination == "quote"
    assert isinstance(q, Quote)
    assert (q.bid, q.bid_size, q.ask, q.ask_size) == (93.87, 4976.0, 93.9, 5000.0)
    assert q.ts_exchange == 1_660_297_865_136_000_000
    assert q.ts_recv == RECV
    assert q.sequence == 1_660_297_865_136
    assert (q.venue, q.instrument) == ("capital_com", "WTI/USD")


@pytest.mark.parametrize(
    ("bid", "ofr", "qty", "reason"),
    [
        (93.95, 93.9, 1.0, "crossed"),
        (0.0, 93.9, 1.0, "invalid"),
        (-1.0, 93.9, 1.0, "invalid"),
        (93.8, 93.9, -5.0, "invalid"),
    ],
)
def test_an_unusable_quote_gives_its_reason_not_a_quote(bid: float, ofr: float, qty: float, reason: str) -> None:
    payload = QUOTE_DECODER.decode(
        msgspec.json.encode({"epic": "X", "bid": bid, "bidQty": qty, "ofr": ofr, "ofrQty": 1.0, "timestamp": 1})
    )

    assert quote_from_payload("capital_com", "X/USD", payload, RECV) == reason


@pytest.mark.parametrize(
    "payload",
    [
        b'{"epic":"X","bid":"93.8","ofr":93.9,"timestamp":1}',  # a price as a string
        b'{"epic":"X","ofr":93.9,"timestamp":1}',  # no bid
        b'{"epic":"X","bid":93.8,"ofr":93.9}',  # no timestamp
        b'{"epic":"X","bid":NaN,"ofr":93.9,"timestamp":1}',  # not JSON
    ],
)
def test_a_quote_payload_with_a_wrong_or_missing_field_is_a_decode_error(payload: bytes) -> None:
    with pytest.raises(msgspec.MsgspecError):  # ValidationError (wrong field) or DecodeError (not JSON)
        QUOTE_DECODER.decode(payload)


def test_a_message_without_payload_decodes_with_a_null_payload() -> None:
    msg = STREAM_DECODER.decode(b'{"status":"OK","destination":"ping","correlationId":"7"}')

    assert (msg.status, msg.destination, msg.correlationId, bytes(msg.payload)) == ("OK", "ping", "7", b"null")


def test_market_details_decode_dealing_rules_as_exact_decimals_and_the_status() -> None:
    body = (
        b'{"instrument":{"epic":"SILVER","name":"Silver","type":"COMMODITIES","currency":"USD","lotSize":1,'
        b'"openingHours":{"mon":["00:00 - 22:00"],"zone":"UTC"}},'
        b'"dealingRules":{"minStepDistance":{"unit":"POINTS","value":0.001},"minDealSize":{"unit":"POINTS",'
        b'"value":0.1}},"snapshot":{"marketStatus":"CLOSED","bid":24.203,"offer":24.223,"decimalPlacesFactor":3}}'
    )

    d = msgspec.json.decode(body, type=MarketDetails)

    assert d.epic == "SILVER"
    assert d.dealingRules.minDealSize is not None
    assert d.dealingRules.minDealSize.value == Decimal("0.1")
    assert d.dealingRules.minStepDistance is not None
    assert d.dealingRules.minStepDistance.value == Decimal("0.001")
    assert not d.tradeable


def test_a_confirm_names_the_new_positions_deal_id_among_the_affected_deals() -> None:
    body = (
        b'{"date":"2023-02-15T11:24:36.310","status":"OPEN","reason":"SUCCESS","dealStatus":"ACCEPTED",'
        b'"epic":"TSLA","dealReference":"o_22b5","dealId":"order-id","affectedDeals":[{"dealId":"position-id",'
        b'"status":"OPENED"}],"level":210.51,"size":1.0,"direction":"SELL"}'
    )

    c = msgspec.json.decode(body, type=Confirm)

    assert c.accepted
    assert c.affected("OPENED") == "position-id"
    assert c.affected("FULLY_CLOSED") is None
    assert c.level == Decimal("210.51")


SILVER_HOURS = {
    "mon": ["00:00 - 22:00", "23:05 - 00:00"],
    "tue": ["00:00 - 22:00", "23:05 - 00:00"],
    "wed": ["00:00 - 22:00", "23:05 - 00:00"],
    "thu": ["00:00 - 22:00", "23:05 - 00:00"],
    "fri": ["00:00 - 22:00"],
    "sat": [],
    "sun": ["23:05 - 00:00"],
    "zone": "UTC",
}


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("at", "is_open"),
    [
        (utc(2024, 6, 7, 21, 59, 59), True),  # Friday, a second before the close
        (utc(2024, 6, 7, 22, 0, 0), False),  # Friday at the close (the end is not open)
        (utc(2024, 6, 8, 12, 0), False),  # Saturday
        (utc(2024, 6, 9, 23, 4, 59), False),  # Sunday, just before the open
        (utc(2024, 6, 9, 23, 5), True),  # Sunday at the open
        (utc(2024, 6, 10, 23, 59, 59), True),  # Monday late: "23:05 - 00:00" runs to midnight
        (utc(2024, 6, 11, 0, 0), True),  # Tuesday's first span starts at midnight
        (utc(2024, 6, 11, 22, 30), False),  # Tuesday's daily break
    ],
)
def test_opening_hours_hold_on_both_sides_of_each_boundary(at: dt.datetime, is_open: bool) -> None:
    hours = OpeningHours.from_wire(SILVER_HOURS)

    assert hours.is_open(at) is is_open


def test_opening_hours_in_a_local_zone_follow_its_daylight_saving_time() -> None:
    hours = OpeningHours.from_wire({"mon": ["08:00 - 16:30"], "zone": "Europe/London"})

    assert hours.is_open(utc(2024, 1, 8, 8, 0))  # winter: London = UTC
    assert not hours.is_open(utc(2024, 7, 8, 15, 30))  # summer: 16:30 in London
    assert hours.is_open(utc(2024, 7, 8, 7, 0))  # summer: 08:00 in London


def test_opening_hours_round_trip_through_the_wire_form() -> None:
    assert OpeningHours.from_wire(OpeningHours.from_wire(SILVER_HOURS).to_wire()) == OpeningHours.from_wire(
        SILVER_HOURS
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"mon": ["9:00 - 17:00"]}, "openingHours.mon: '9:00 - 17:00' is not 'HH:MM - HH:MM'"),
        ({"tue": ["17:00 - 09:00"]}, "openingHours.tue: '17:00 - 09:00' ends before it starts"),
        ({"wed": ["25:00 - 26:00"]}, "openingHours.wed: '25:00 - 26:00' is not a time span"),
        ({"thu": "00:00 - 22:00"}, "openingHours.thu must be a list"),
        ({"mon": [], "zone": "Mars/Olympus"}, "openingHours.zone 'Mars/Olympus' is not a known time zone"),
    ],
)
def test_unreadable_opening_hours_are_refused_naming_the_day(raw: dict[str, list[str] | str], message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        OpeningHours.from_wire(raw)


def test_is_open_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        OpeningHours.from_wire(SILVER_HOURS).is_open(dt.datetime(2024, 6, 7, 12, 0))  # noqa: DTZ001
