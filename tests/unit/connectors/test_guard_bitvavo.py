"""The Bitvavo guard on `book` events in Bitvavo's own format (docs.bitvavo.com subscribeBook; formats/bitvavo.json)."""

from __future__ import annotations

from typing import Any

import pytest

from arb.connectors.guards import guard_class
from arb.connectors.guards.bitvavo import BitvavoGuard


def book(nonce: Any, market: Any = "BTC-EUR") -> dict[str, Any]:
    return {"event": "book", "market": market, "nonce": nonce, "bids": [["27990", "9"]], "asks": []}


def subscribed(*markets: str) -> dict[str, Any]:
    return {"event": "subscribed", "subscriptions": {"book": list(markets)}}


def snapshot(nonce: int) -> dict[str, Any]:
    return {"action": "getBook", "response": {"market": "BTC-EUR", "nonce": nonce, "bids": [], "asks": []}}


def test_the_connector_finds_the_guard_by_ccxt_id() -> None:
    assert guard_class("bitvavo") is BitvavoGuard


def test_the_documented_flow_passes_snapshot_included() -> None:
    guard = BitvavoGuard()

    assert guard.check(subscribed("BTC-EUR")) is None
    assert [guard.check(book(n)) for n in (1001, 1002)] == [None, None]
    assert guard.check(snapshot(1002)) is None  # the getBook answer does not touch the chain
    assert [guard.check(book(n)) for n in (1003, 1004, 1005)] == [None, None, None]
    assert guard.last_nonce["BTC-EUR"] == 1005


@pytest.mark.parametrize("nonce", [1009, 1006, 1005, 1])
def test_anything_but_the_next_nonce_is_a_gap(nonce: int) -> None:
    guard = BitvavoGuard()
    guard.check(book(1005))
    guard.check(book(1006))

    assert guard.check(book(nonce)) == f"seq gap BTC-EUR 1006 -> {nonce}"
    assert guard.last_nonce["BTC-EUR"] == 1006


def test_a_new_subscription_restarts_the_chain_of_its_markets_only() -> None:
    guard = BitvavoGuard()
    guard.check(book(1006))
    guard.check(book(50, "ETH-EUR"))

    assert guard.check(subscribed("BTC-EUR")) is None
    assert guard.check(book(2000)) is None
    assert guard.check(book(2001)) is None
    assert guard.check(book(52, "ETH-EUR")) == "seq gap ETH-EUR 50 -> 52"


def test_an_unsubscribe_forgets_the_market() -> None:
    guard = BitvavoGuard()
    guard.check(book(1006))

    assert guard.check({"event": "unsubscribed", "subscriptions": {"book": ["BTC-EUR"]}}) is None
    assert guard.last_nonce == {}


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (book("1007"), "bad nonce BTC-EUR: '1007'"),
        (book(None), "bad nonce BTC-EUR: None"),
        (book(True), "bad nonce BTC-EUR: True"),
        (book(-1), "bad nonce BTC-EUR: -1"),
        (book(1007, market=None), "bad book event: market None"),
    ],
)
def test_junk_is_refused(message: dict[str, Any], reason: str) -> None:
    guard = BitvavoGuard()
    guard.check(book(1006))

    assert guard.check(message) == reason


@pytest.mark.parametrize(
    "message",
    [
        snapshot(5),
        {"event": "trade", "market": "BTC-EUR", "id": "x", "amount": "1", "price": "2", "side": "buy", "timestamp": 1},
        {"action": "subscribe", "errorCode": 205, "error": "invalid parameter"},
        {"event": "subscribed", "subscriptions": {"ticker": ["BTC-EUR"]}},
        "not a dict",
    ],
)
def test_other_messages_pass_untouched(message: Any) -> None:
    guard = BitvavoGuard()

    assert guard.check(message) is None
    assert guard.last_nonce == {}
