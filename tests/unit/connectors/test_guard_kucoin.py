"""The KuCoin guard on `trade.l2update` pushes in KuCoin's own format (docs-new 3470068w0; formats/kucoin.json)."""

from __future__ import annotations

from typing import Any

import pytest

from arb.connectors.guards import guard_class
from arb.connectors.guards.kucoin import KucoinGuard


def l2(start: Any, end: Any, symbol: str = "BTC-USDT") -> dict[str, Any]:
    return {
        "type": "message",
        "topic": f"/market/level2:{symbol}",
        "subject": "trade.l2update",
        "data": {
            "changes": {"asks": [["30010", "9", str(end)]], "bids": []},
            "sequenceEnd": end,
            "sequenceStart": start,
            "symbol": symbol,
            "time": 1700000000101,
        },
    }


def test_the_connector_finds_the_guard_by_ccxt_id() -> None:
    assert guard_class("kucoin") is KucoinGuard


def test_the_documented_flow_passes() -> None:
    guard = KucoinGuard()
    flow = [{"id": "hQvf8jkno", "type": "welcome"}, {"id": "1", "type": "ack"}]
    flow += [l2(1001, 1002), l2(1003, 1004), l2(1005, 1006), l2(1007, 1007), l2(1008, 1011)]

    assert [guard.check(m) for m in flow] == [None] * len(flow)
    assert guard.last_end["BTC-USDT"] == 1011


def test_a_start_past_the_last_end_plus_one_is_a_gap() -> None:
    guard = KucoinGuard()
    guard.check(l2(1012, 1013))

    assert guard.check(l2(1016, 1016)) == "seq gap BTC-USDT 1013 -> 1016"
    assert guard.last_end["BTC-USDT"] == 1013


def test_a_push_covering_the_last_sequence_passes_and_an_old_one_changes_nothing() -> None:
    guard = KucoinGuard()
    guard.check(l2(1010, 1013))

    assert guard.check(l2(1011, 1015)) is None  # overlaps 1013: the docs' join rule
    assert guard.check(l2(1012, 1014)) is None  # entirely old: ccxt drops it
    assert guard.last_end["BTC-USDT"] == 1015
    assert guard.check(l2(1017, 1017)) == "seq gap BTC-USDT 1015 -> 1017"


@pytest.mark.parametrize("reset", [{"id": "hQvf8jkno", "type": "welcome"}, {"id": "2", "type": "ack"}])
def test_a_new_connection_or_subscription_restarts_every_chain(reset: dict[str, Any]) -> None:
    guard = KucoinGuard()
    guard.check(l2(1012, 1013))

    assert guard.check(reset) is None
    assert guard.check(l2(5000, 5001)) is None
    assert guard.check(l2(5002, 5002)) is None


def test_each_symbol_keeps_its_own_chain() -> None:
    guard = KucoinGuard()
    guard.check(l2(1, 2))
    guard.check(l2(50, 51, "ETH-USDT"))

    assert guard.check(l2(3, 3)) is None
    assert guard.check(l2(53, 53, "ETH-USDT")) == "seq gap ETH-USDT 51 -> 53"


def test_digit_strings_are_read_as_ccxt_reads_them() -> None:
    guard = KucoinGuard()

    assert guard.check(l2("1001", "1002")) is None
    assert guard.check(l2(1004, 1004)) == "seq gap BTC-USDT 1002 -> 1004"


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (l2(None, 1014), "bad sequence BTC-USDT: None..1014"),
        (l2(1014, "x"), "bad sequence BTC-USDT: 1014..'x'"),
        (l2(True, 1014), "bad sequence BTC-USDT: True..1014"),
        (l2(-1, 1014), "bad sequence BTC-USDT: -1..1014"),
        (l2(1015, 1014), "bad range BTC-USDT: sequenceStart 1015 > sequenceEnd 1014"),
        (
            {"type": "message", "subject": "trade.l2update", "topic": "/market/level2:BTC-USDT"},
            "bad frame trade.l2update: no data",
        ),
    ],
)
def test_junk_is_refused(message: dict[str, Any], reason: str) -> None:
    guard = KucoinGuard()
    guard.check(l2(1012, 1013))

    assert guard.check(message) == reason


@pytest.mark.parametrize(
    "message",
    [
        {"id": "1", "type": "pong", "timestamp": 1700000000000000000},
        {"id": "1", "type": "error", "code": 404, "data": "topic /market/level2:X-Y is not found"},
        {
            "type": "message",
            "topic": "/spotMarket/level2Depth5:BTC-USDT",
            "subject": "level2",
            "data": {"asks": [["1", "1"]], "bids": [], "timestamp": 1},
        },
        {"type": "message", "topic": "/market/ticker:BTC-USDT", "subject": "trade.ticker", "data": {"sequence": "5"}},
        "not a dict",
    ],
)
def test_other_messages_pass_untouched(message: Any) -> None:
    guard = KucoinGuard()

    assert guard.check(message) is None
    assert guard.last_end == {}
