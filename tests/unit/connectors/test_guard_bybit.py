"""The Bybit guard on messages in Bybit's own format (docs v5 websocket/public/orderbook and ws/connect examples)."""

from __future__ import annotations

from typing import Any

import pytest

from arb.connectors.guards import guard_class
from arb.connectors.guards.bybit import BybitGuard

TOPIC = "orderbook.50.BTCUSDT"


def book_message(
    kind: str,
    u: Any,
    *,
    topic: str = TOPIC,
    bids: Any = None,
    asks: Any = None,
) -> dict[str, Any]:
    """A spot order book frame as Bybit sends it (field order topic, ts, type, data, cts)."""
    return {
        "topic": topic,
        "ts": 1672304484978,
        "type": kind,
        "data": {
            "s": topic.rsplit(".", 1)[1],
            "b": [["16493.50", "0.006"], ["16493.00", "0.100"]] if bids is None else bids,
            "a": [["16611.00", "0.029"], ["16612.00", "0.213"]] if asks is None else asks,
            "u": u,
            "seq": 7961638724 + (u if isinstance(u, int) else 0),
        },
        "cts": 1672304484976,
    }


def delta(u: Any, **kw: Any) -> dict[str, Any]:
    kw.setdefault("bids", [["16493.50", "0"]])
    kw.setdefault("asks", [])
    return book_message("delta", u, **kw)


def test_the_connector_finds_the_guard_by_ccxt_id() -> None:
    assert guard_class("bybit") is BybitGuard


def test_a_snapshot_then_consecutive_deltas_pass() -> None:
    guard = BybitGuard()

    assert guard.check(book_message("snapshot", 18521288)) is None
    assert [guard.check(delta(u)) for u in (18521289, 18521290, 18521291)] == [None, None, None]
    assert guard.last_u[TOPIC] == 18521291


def test_a_skipped_u_is_a_gap_named_with_both_ids() -> None:
    guard = BybitGuard()
    guard.check(book_message("snapshot", 1000))
    guard.check(delta(1001))

    assert guard.check(delta(1003)) == "seq gap orderbook.50.BTCUSDT 1001 -> 1003"


@pytest.mark.parametrize("u", [1001, 999, 1])
def test_a_repeated_or_older_delta_is_a_gap_too(u: int) -> None:
    guard = BybitGuard()
    guard.check(book_message("snapshot", 1000))
    guard.check(delta(1001))
    guard.check(delta(1002))

    assert guard.check(delta(u)) == f"seq gap orderbook.50.BTCUSDT 1002 -> {u}"


def test_a_snapshot_with_u_1_after_a_service_restart_is_a_reset_not_a_gap() -> None:
    guard = BybitGuard()
    guard.check(book_message("snapshot", 5000))
    guard.check(delta(5001))

    assert guard.check(book_message("snapshot", 1)) is None
    assert guard.check(delta(2)) is None
    assert guard.check(delta(4)) == "seq gap orderbook.50.BTCUSDT 2 -> 4"


def test_level_1_resends_its_snapshot_with_the_same_u_and_that_is_no_gap() -> None:
    guard = BybitGuard()
    top = "orderbook.1.BTCUSDT"
    one = {"bids": [["16493.50", "0.006"]], "asks": [["16611.00", "0.029"]]}

    assert guard.check(book_message("snapshot", 700, topic=top, **one)) is None
    assert guard.check(book_message("snapshot", 700, topic=top, **one)) is None  # 3 s without a change
    assert guard.check(book_message("snapshot", 701, topic=top, **one)) is None


def test_each_topic_keeps_its_own_chain() -> None:
    guard = BybitGuard()
    guard.check(book_message("snapshot", 10))
    guard.check(book_message("snapshot", 500, topic="orderbook.200.BTCUSDT"))
    guard.check(book_message("snapshot", 10, topic="orderbook.50.ETHUSDT"))

    assert guard.check(delta(11)) is None
    assert guard.check(delta(501, topic="orderbook.200.BTCUSDT")) is None
    assert guard.check(delta(12, topic="orderbook.50.ETHUSDT")) == "seq gap orderbook.50.ETHUSDT 10 -> 12"


def test_a_delta_before_any_snapshot_is_refused() -> None:
    assert BybitGuard().check(delta(41)) == "delta before snapshot orderbook.50.BTCUSDT u=41"


def test_a_refused_delta_does_not_move_the_chain() -> None:
    guard = BybitGuard()
    guard.check(book_message("snapshot", 40))

    assert guard.check(delta(42)) is not None
    assert guard.last_u[TOPIC] == 40  # the connector drops the book anyway; nothing after the gap is taken


@pytest.mark.parametrize(
    "message",
    [
        {"success": True, "ret_msg": "subscribe", "conn_id": "2324d924-aa4d", "req_id": "10001", "op": "subscribe"},
        {"success": True, "ret_msg": "pong", "conn_id": "0970e817-426e", "op": "ping"},
        {"success": False, "ret_msg": "error:handler not found,topic:orderbook.30.BTCUSDT", "op": "subscribe"},
        {
            "topic": "tickers.BTCUSDT",
            "ts": 1673853746002,
            "type": "snapshot",
            "cs": 2588407389,
            "data": {"symbol": "BTCUSDT", "lastPrice": "21109.77", "usdIndexPrice": "21120.2400136"},
        },
        "not a dict",
    ],
)
def test_messages_that_are_not_book_updates_pass_untouched(message: Any) -> None:
    guard = BybitGuard()

    assert guard.check(message) is None
    assert guard.last_u == {}


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (delta("1001"), "bad u orderbook.50.BTCUSDT: '1001'"),
        (delta(None), "bad u orderbook.50.BTCUSDT: None"),
        (delta(True), "bad u orderbook.50.BTCUSDT: True"),
        (delta(1001, bids="not a list of levels"), "bad b str in orderbook.50.BTCUSDT u=1001"),
        (delta(1001, bids=[["NaN", "0.5"]]), "bad level ['NaN', '0.5'] in orderbook.50.BTCUSDT u=1001"),
        (delta(1001, asks=[["16611.00", "-1"]]), "bad level ['16611.00', '-1'] in orderbook.50.BTCUSDT u=1001"),
        (delta(1001, asks=[["0", "1"]]), "bad level ['0', '1'] in orderbook.50.BTCUSDT u=1001"),
        (delta(1001, bids=[[16493.5, "1"]]), "bad level [16493.5, '1'] in orderbook.50.BTCUSDT u=1001"),
        (delta(1001, bids=[["1e", "1"]]), "bad level ['1e', '1'] in orderbook.50.BTCUSDT u=1001"),
        ({"topic": TOPIC, "type": "delta"}, "bad frame orderbook.50.BTCUSDT: no data"),
        (book_message("partial", 1001), "bad type orderbook.50.BTCUSDT: 'partial'"),
    ],
)
def test_a_frame_ccxt_would_merge_blindly_is_refused(message: dict[str, Any], reason: str) -> None:
    guard = BybitGuard()
    guard.check(book_message("snapshot", 1000))

    assert guard.check(message) == reason


def test_a_crossed_snapshot_is_refused_and_does_not_reset_the_chain() -> None:
    guard = BybitGuard()
    guard.check(book_message("snapshot", 1000))

    crossed = book_message("snapshot", 1, bids=[["16700.00", "1"]], asks=[["16611.00", "0.029"]])
    assert guard.check(crossed) == "crossed snapshot orderbook.50.BTCUSDT u=1: bid 16700.00 >= ask 16611.00"
    assert guard.last_u[TOPIC] == 1000


def test_a_one_sided_or_empty_snapshot_is_a_book_not_a_problem() -> None:
    guard = BybitGuard()

    assert guard.check(book_message("snapshot", 7, asks=[])) is None
    assert guard.check(book_message("snapshot", 8, bids=[], asks=[])) is None
    assert guard.check(delta(9)) is None
