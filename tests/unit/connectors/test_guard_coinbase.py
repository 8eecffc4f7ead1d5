"""`CoinbaseGuard` on messages in Advanced Trade's documented format (the docs' examples, renumbered into one
connection's stream): one `sequence_num` counter per connection across channels, and well-formed l2_data levels."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from arb.connectors.guards import guard_class
from arb.connectors.guards.coinbase import CoinbaseGuard


def envelope(channel: str, seq: int, events: list[Any]) -> dict[str, Any]:
    return {
        "channel": channel,
        "client_id": "",
        "timestamp": "2023-02-09T20:32:50.714964855Z",
        "sequence_num": seq,
        "events": events,
    }


def level(side: str, price: str, qty: str) -> dict[str, str]:
    return {"side": side, "event_time": "2023-02-09T20:32:50.714964Z", "price_level": price, "new_quantity": qty}


def l2(seq: int, kind: str = "update", product: str = "BTC-USD", updates: Any = None) -> dict[str, Any]:
    levels = [level("bid", "21921.74", "0.06317902"), level("offer", "21922.01", "0")] if updates is None else updates
    return envelope("l2_data", seq, [{"type": kind, "product_id": product, "updates": levels}])


def heartbeat(seq: int) -> dict[str, Any]:
    return envelope(
        "heartbeats",
        seq,
        [{"current_time": "2023-06-23 20:31:56.121961769 +0000 UTC m=+91717.525857105", "heartbeat_counter": "3049"}],
    )


def ticker(seq: int) -> dict[str, Any]:
    tick = {
        "type": "ticker",
        "product_id": "ETH-USD",
        "price": "1600.12",
        "best_bid": "1600.11",
        "best_bid_quantity": "2.5",
        "best_ask": "1600.12",
        "best_ask_quantity": "0.3",
    }
    return envelope("ticker", seq, [{"type": "update", "tickers": [tick]}])


def subscriptions(seq: int) -> dict[str, Any]:
    return envelope("subscriptions", seq, [{"subscriptions": {"level2": ["BTC-USD"], "ticker": ["ETH-USD"]}}])


def stream() -> list[dict[str, Any]]:
    """A connection's first messages: snapshot, ack, then every channel interleaved."""
    return [
        l2(0, "snapshot"),
        subscriptions(1),
        ticker(2),
        subscriptions(3),
        heartbeat(4),
        l2(5),
        ticker(6),
        l2(7, product="ETH-USD"),
    ]


def test_the_connector_finds_the_guard_for_coinbase() -> None:
    assert guard_class("coinbase") is CoinbaseGuard


def test_one_counter_across_every_channel_is_accepted() -> None:
    guard = CoinbaseGuard()

    assert [guard.check(m) for m in stream()] == [None] * 8
    assert guard.last_seq == 7


def test_a_jump_anywhere_on_the_connection_is_a_gap_and_reported_once() -> None:
    guard = CoinbaseGuard()
    for m in stream():
        guard.check(m)

    assert guard.check(l2(9)) == "seq gap 7 -> 9 (l2_data BTC-USD)"
    assert guard.check(heartbeat(10)) is None  # counted on from the new number: one report per gap


def test_a_lost_heartbeat_is_a_gap_too_because_the_books_share_its_counter() -> None:
    guard = CoinbaseGuard()
    for m in stream():
        guard.check(m)

    assert guard.check(ticker(9)) == "seq gap 7 -> 9 (ticker)"


def test_a_number_going_back_is_refused() -> None:
    guard = CoinbaseGuard()
    for m in stream():
        guard.check(m)

    assert guard.check(l2(6)) == "seq went back 7 -> 6 (l2_data BTC-USD)"


def test_a_counter_starting_again_at_0_is_a_new_connection_not_a_gap() -> None:
    guard = CoinbaseGuard()
    for m in stream():
        guard.check(m)

    assert [guard.check(m) for m in stream()] == [None] * 8  # after a reconnect: snapshot 0, ack 1, ...


def test_the_first_message_seen_starts_the_chain_wherever_it_is() -> None:
    guard = CoinbaseGuard()

    assert guard.check(heartbeat(41)) is None
    assert guard.check(l2(42)) is None
    guard.reset()
    assert guard.check(l2(7)) is None


@pytest.mark.parametrize(
    "message",
    [
        {"type": "error", "message": "failure to subscribe"},
        "not a dict",
        None,
        {"channel": "l2_data", "events": []},  # no sequence_num at all: not this guard's business
    ],
)
def test_messages_without_a_sequence_number_are_left_to_ccxt_and_keep_the_chain(message: Any) -> None:
    guard = CoinbaseGuard()
    guard.check(l2(3))

    assert guard.check(message) is None
    assert guard.check(l2(4)) is None


@pytest.mark.parametrize("bad", ["5", 5.0, True, -1, None])
def test_a_sequence_num_that_is_not_a_count_is_refused(bad: Any) -> None:
    message = l2(0)
    message["sequence_num"] = bad

    reason = CoinbaseGuard().check(message)

    assert reason is not None
    assert reason.startswith("bad sequence_num")


@pytest.mark.parametrize(
    ("updates", "reason_starts"),
    [
        ([level("bid", "NaN", "1")], "bad price_level BTC-USD 'NaN'"),
        ([level("bid", "inf", "1")], "bad price_level"),
        ([level("offer", "-1", "1")], "bad price_level"),
        ([level("offer", "21922.01", "-0.5")], "bad new_quantity BTC-USD '-0.5'"),
        ([level("bid", "21921.74", "nan")], "bad new_quantity"),
        ([{**level("bid", "21921.74", "1"), "price_level": 21921.74}], "bad price_level"),
        ([{**level("bid", "21921.74", "1"), "new_quantity": ["1"]}], "bad new_quantity"),
        ([level("buy", "21921.74", "1")], "bad level side BTC-USD"),
        ({"side": "bid", "price_level": "1", "new_quantity": "1"}, "l2_data event without product_id/updates"),
    ],
)
def test_an_l2_message_with_a_level_ccxt_would_take_in_silently_is_refused(updates: Any, reason_starts: str) -> None:
    guard = CoinbaseGuard()
    guard.check(l2(0, "snapshot"))

    reason = guard.check(l2(1, updates=updates))

    assert reason is not None
    assert reason.startswith(reason_starts)
    assert guard.check(l2(2)) is None  # the sequence itself was fine


def test_l2_events_of_unknown_type_or_without_events_are_refused() -> None:
    no_events = l2(0)
    no_events["events"] = []
    odd_type = l2(1, kind="partial")
    no_product = copy.deepcopy(l2(2))
    del no_product["events"][0]["product_id"]

    guard = CoinbaseGuard()
    assert guard.check(no_events) == "l2_data without events"
    assert guard.check(odd_type) == "l2_data event of unknown type"
    assert (guard.check(no_product) or "").startswith("l2_data event without product_id")


def test_a_removal_and_an_update_without_levels_are_fine() -> None:
    guard = CoinbaseGuard()

    assert guard.check(l2(0, updates=[level("offer", "21922.01", "0")])) is None
    assert guard.check(l2(1, updates=[])) is None
