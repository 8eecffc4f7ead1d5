"""The Gate guard on `spot.obu` messages in Gate's own format (apiv4 ws, Order Book V2; formats/gate.json)."""

from __future__ import annotations

from typing import Any

import pytest

from arb.connectors.guards import guard_class
from arb.connectors.guards.gate import GateGuard

S = "ob.BTC_USDT.50"


def push(result: dict[str, Any]) -> dict[str, Any]:
    return {"channel": "spot.obu", "result": {"t": 1700000000100, "s": S, **result}, "time_ms": 1, "event": "update"}


def full(u: Any, s: str = S) -> dict[str, Any]:
    return push({"full": True, "s": s, "u": u, "b": [["29999.9", "1.5"]], "a": [["30000.1", "0.8"]]})


def update(start: Any, end: Any, s: str = S) -> dict[str, Any]:
    return push({"s": s, "U": start, "u": end, "b": [["29999.7", "0.4"]], "a": []})


def ack(event: str = "subscribe") -> dict[str, Any]:
    return {
        "time": 1700000000,
        "id": 1,
        "channel": "spot.obu",
        "event": event,
        "payload": [S],
        "result": {"status": "success"},
    }


def test_the_connector_finds_the_guard_by_ccxt_id() -> None:
    assert guard_class("gate") is GateGuard


def test_full_book_then_chained_updates_pass() -> None:
    guard = GateGuard()

    assert guard.check(ack()) is None
    assert guard.check(full(100)) is None
    assert [guard.check(m) for m in (update(101, 103), update(104, 104), update(105, 110))] == [None, None, None]
    assert guard.last_u[S] == 110


def test_a_skipped_update_is_a_gap_named_with_both_ids() -> None:
    guard = GateGuard()
    guard.check(full(100))
    guard.check(update(101, 103))

    assert guard.check(update(106, 106)) == "seq gap ob.BTC_USDT.50 103 -> 106"
    assert guard.last_u[S] == 103


@pytest.mark.parametrize("start", [103, 101, 50])
def test_a_repeated_or_overlapping_update_is_a_gap_too(start: int) -> None:
    guard = GateGuard()
    guard.check(full(100))
    guard.check(update(101, 103))

    assert guard.check(update(start, 104)) == f"seq gap ob.BTC_USDT.50 103 -> {start}"


def test_a_new_full_book_restarts_the_chain_lower_or_higher() -> None:
    guard = GateGuard()
    guard.check(full(100))
    guard.check(update(101, 103))

    assert guard.check(full(7)) is None
    assert guard.check(update(8, 9)) is None
    assert guard.check(full(5000)) is None
    assert guard.check(update(5001, 5001)) is None


def test_an_update_before_the_full_book_and_after_a_resubscribe_is_refused() -> None:
    guard = GateGuard()
    assert guard.check(update(101, 101)) == "update before full book ob.BTC_USDT.50 U=101"

    guard.check(full(100))
    assert guard.check(ack("unsubscribe")) is None
    assert guard.check(ack()) is None
    assert guard.check(update(101, 101)) == "update before full book ob.BTC_USDT.50 U=101"
    assert guard.check(full(300)) is None
    assert guard.check(update(301, 302)) is None


def test_each_stream_keeps_its_own_chain() -> None:
    guard = GateGuard()
    guard.check(full(100))
    guard.check(full(10, "ob.ETH_USDT.50"))

    assert guard.check(update(101, 101)) is None
    assert guard.check(update(12, 12, "ob.ETH_USDT.50")) == "seq gap ob.ETH_USDT.50 10 -> 12"


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (update("101", 101), "bad U ob.BTC_USDT.50: '101'"),
        (update(101, None), "bad u ob.BTC_USDT.50: None"),
        (update(101, True), "bad u ob.BTC_USDT.50: True"),
        (update(None, 101), "bad U ob.BTC_USDT.50: None"),
        (update(102, 101), "bad range ob.BTC_USDT.50: U 102 > u 101"),
        (full(-1), "bad u ob.BTC_USDT.50: -1"),
        ({"channel": "spot.obu", "event": "update", "result": {"u": 1}}, "bad frame spot.obu: no result.s"),
    ],
)
def test_junk_sequence_fields_are_refused(message: dict[str, Any], reason: str) -> None:
    guard = GateGuard()
    guard.check(full(100))

    assert guard.check(message) == reason


@pytest.mark.parametrize(
    "message",
    [
        {"time": 1, "channel": "spot.pong", "event": "", "result": None},
        {"time": 1, "channel": "spot.tickers", "event": "update", "result": {"currency_pair": "BTC_USDT", "last": "1"}},
        {
            "time": 1,
            "channel": "spot.order_book_update",
            "event": "update",
            "result": {"s": "BTC_USDT", "U": 9, "u": 9},
        },
        {"time": 1, "channel": "spot.obu", "event": "subscribe", "error": {"code": 2, "message": "unknown"}},
        "not a dict",
    ],
)
def test_other_messages_pass_untouched(message: Any) -> None:
    guard = GateGuard()

    assert guard.check(message) is None
    assert guard.last_u == {}
