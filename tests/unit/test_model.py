"""Value types: cheap to build, validated at the edges (decode) with reasons a user can act on."""

from __future__ import annotations

import math
from decimal import Decimal

import msgspec
import pytest

from arb.model import (
    FINAL_INTENT_STATUSES,
    FINAL_STATUSES,
    INTENT_TRANSITIONS,
    MAX_DEPTH,
    ORDER_TRANSITIONS,
    ExecutionIntent,
    IllegalTransition,
    IntentStatus,
    Leg,
    Order,
    OrderStatus,
    OrderType,
    Quote,
    Side,
    check_intent_transition,
    check_transition,
    decode_quote,
    decode_quotes,
    encode_quote,
    encode_quotes,
    quote_problems,
)

NS = 1_700_000_000_000_000_000


def quote(**over: object) -> Quote:
    fields: dict[str, object] = {
        "venue": "binance",
        "instrument": "BTC/USD",
        "bid": 100.0,
        "bid_size": 1.5,
        "ask": 100.5,
        "ask_size": 2.0,
        "ts_exchange": NS,
        "ts_recv": NS + 1_000_000,
        "sequence": 7,
        "bids": ((100.0, 1.5), (99.5, 3.0)),
        "asks": ((100.5, 2.0), (101.0, 4.0)),
    }
    fields.update(over)
    return Quote(**fields)  # type: ignore[arg-type]


def test_quote_round_trips_through_msgpack_with_depth() -> None:
    q = quote()

    assert decode_quote(encode_quote(q)) == q
    assert decode_quotes(encode_quotes([q, q])) == [q, q]


def test_sound_quote_has_no_problems() -> None:
    assert quote_problems(quote()) == []


@pytest.mark.parametrize(
    ("over", "problem"),
    [
        ({"bid": math.nan}, "bid must be a positive finite number"),
        ({"ask": math.inf}, "ask must be a positive finite number"),
        ({"bid_size": -1.0}, "bid_size must be a non-negative finite number"),
        ({"bid": 101.0}, "crossed book: bid 101.0 > ask 100.5"),
        ({"bids": ((99.0, 1.0), (99.5, 1.0))}, "bids are not sorted descending"),
        ({"asks": ((100.5, -2.0),)}, "asks level (100.5, -2.0) is not a positive price and size"),
        ({"ts_recv": 0}, "timestamps must be positive"),
    ],
)
def test_unsound_quote_is_reported_with_a_reason(over: dict[str, object], problem: str) -> None:
    problems = quote_problems(quote(**over))

    assert any(p.startswith(problem) for p in problems), problems


def test_decoding_rejects_negative_price_naming_the_field() -> None:
    raw = msgspec.msgpack.encode(["binance", "BTC/USD", -1.0, 1.0, 2.0, 1.0, NS, NS, 0, [], []])

    with pytest.raises(msgspec.ValidationError, match=r"\$\[2\]"):
        decode_quote(raw)


def test_decoding_rejects_nan_price() -> None:
    raw = msgspec.msgpack.encode(["binance", "BTC/USD", math.nan, 1.0, 2.0, 1.0, NS, NS, 0, [], []])

    with pytest.raises(msgspec.ValidationError):
        decode_quote(raw)


def test_decoding_rejects_depth_beyond_twenty_levels() -> None:
    levels = [[100.0 - i, 1.0] for i in range(MAX_DEPTH + 1)]
    raw = msgspec.msgpack.encode(["binance", "BTC/USD", 100.0, 1.0, 101.0, 1.0, NS, NS, 0, levels, []])

    with pytest.raises(msgspec.ValidationError, match="length <= 20"):
        decode_quote(raw)


def test_order_keeps_booked_money_in_decimal() -> None:
    order = Order(
        client_id="arb-1", venue="kraken", symbol="BTC/USD", side=Side.BUY, type=OrderType.LIMIT, amount=Decimal("0.1")
    )

    decoded = msgspec.json.decode(msgspec.json.encode(order), type=Order)

    assert decoded.amount == Decimal("0.1")
    assert isinstance(decoded.filled, Decimal)
    assert decoded.status is OrderStatus.NEW


S = OrderStatus
ALLOWED = {
    (S.NEW, S.SENT), (S.NEW, S.REJECTED),
    (S.SENT, S.ACKED), (S.SENT, S.REJECTED), (S.SENT, S.UNKNOWN), (S.SENT, S.FILLED), (S.SENT, S.PARTIALLY_FILLED),
    (S.SENT, S.CANCELLED),
    (S.ACKED, S.PARTIALLY_FILLED), (S.ACKED, S.FILLED), (S.ACKED, S.CANCELLED), (S.ACKED, S.REJECTED),
    (S.PARTIALLY_FILLED, S.PARTIALLY_FILLED), (S.PARTIALLY_FILLED, S.FILLED), (S.PARTIALLY_FILLED, S.CANCELLED),
    (S.UNKNOWN, S.ACKED), (S.UNKNOWN, S.PARTIALLY_FILLED), (S.UNKNOWN, S.FILLED), (S.UNKNOWN, S.CANCELLED),
    (S.UNKNOWN, S.REJECTED),
    (S.CANCELLED, S.FILLED), (S.CANCELLED, S.CANCELLED),  # fill after cancel (FAULTS E6), documented correction
}  # fmt: skip
"""The order state machine as the executor issue specifies it, written out pair by pair."""


@pytest.mark.parametrize(("old", "new"), [(old, new) for old in OrderStatus for new in OrderStatus])
def test_the_order_state_machine_allows_exactly_the_specified_transitions(old: OrderStatus, new: OrderStatus) -> None:
    if (old, new) in ALLOWED:
        check_transition(old, new)
        return

    with pytest.raises(IllegalTransition, match=f"illegal order transition: {old} -> {new}$") as refused:
        check_transition(old, new)

    assert (refused.value.old, refused.value.new) == (old, new)
    assert isinstance(refused.value, ValueError)


def test_every_status_has_an_entry_and_only_the_final_ones_end_the_order() -> None:
    assert set(ORDER_TRANSITIONS) == set(OrderStatus)
    assert FINAL_STATUSES == {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED}
    assert ORDER_TRANSITIONS[OrderStatus.FILLED] == ORDER_TRANSITIONS[OrderStatus.REJECTED] == frozenset()
    assert ORDER_TRANSITIONS[OrderStatus.CANCELLED] <= {OrderStatus.FILLED, OrderStatus.CANCELLED}
    with pytest.raises(TypeError):
        ORDER_TRANSITIONS[OrderStatus.FILLED] = frozenset({OrderStatus.NEW})  # type: ignore[index]


def test_a_timed_out_order_is_resolved_by_query_never_sent_again() -> None:
    with pytest.raises(IllegalTransition, match="unknown -> sent"):
        check_transition(OrderStatus.UNKNOWN, OrderStatus.SENT)
    with pytest.raises(IllegalTransition, match="unknown -> new"):
        check_transition(OrderStatus.UNKNOWN, OrderStatus.NEW)


def test_an_execution_is_never_planned_or_sent_again() -> None:
    assert set(INTENT_TRANSITIONS) == set(IntentStatus)
    for old in IntentStatus:
        check_intent_transition(old, old)  # a retried write
        for new in (IntentStatus.PLANNED, IntentStatus.SENDING):
            if old != new and (old, new) != (IntentStatus.PLANNED, IntentStatus.SENDING):
                with pytest.raises(IllegalTransition, match=f"illegal intent transition: {old} -> {new}"):
                    check_intent_transition(old, new)
    assert FINAL_INTENT_STATUSES == {IntentStatus.DONE, IntentStatus.FAILED, IntentStatus.HEDGED}
    check_intent_transition(IntentStatus.DONE, IntentStatus.HEDGING)  # a late fill reopens it


def test_an_intent_round_trips_with_its_legs_in_decimal() -> None:
    leg = Leg(
        venue="binance", instrument="BTC/USDT", symbol="BTC/USDT", side=Side.BUY, amount=Decimal("0.1"),
        limit_price=Decimal("65000.12"),
    )  # fmt: skip
    intent = ExecutionIntent(
        id="x1", opportunity_id="o1", instrument="BTC/USDT", legs=(leg,), predicted_net_edge_bps=8.5,
        predicted_profit=0.55, ts=NS,
    )  # fmt: skip

    decoded = msgspec.json.decode(msgspec.json.encode(intent), type=ExecutionIntent)

    assert decoded == intent
    assert decoded.mode == "paper"
    assert decoded.legs[0].limit_price == Decimal("65000.12")


def test_an_opportunity_id_round_trips_with_instruments_holding_colons() -> None:
    from arb.model import opportunity_id, parse_opportunity_id

    oid = opportunity_id("basis", "BTC/USDT-PERP", "binance", "okx", 1_700_000_000_123_456_789)

    assert oid == "basis:BTC/USDT-PERP:binance>okx:1700000000123456789"
    assert parse_opportunity_id(oid) == ("basis", "BTC/USDT-PERP", "binance", "okx", 1_700_000_000_123_456_789)
    assert parse_opportunity_id("spot:BTC/USDT:USDT:a>b:5")[1] == "BTC/USDT:USDT"


@pytest.mark.parametrize("bad", ["", "spot", "spot:BTC/USD:binance>okx:", "swap:BTC/USD:a>b:1", "spot:BTC/USD:ab:1"])
def test_a_malformed_opportunity_id_says_the_expected_shape(bad: str) -> None:
    from arb.model import parse_opportunity_id

    with pytest.raises(ValueError, match=r"is not an opportunity id \(kind:instrument:buy>sell:ns"):
        parse_opportunity_id(bad)
