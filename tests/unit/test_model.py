"""Value types: cheap to build, validated at the edges (decode) with reasons a user can act on."""

from __future__ import annotations

import math
from decimal import Decimal

import msgspec
import pytest

from arb.model import (
    MAX_DEPTH,
    Order,
    OrderStatus,
    OrderType,
    Quote,
    Side,
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
