"""The MEXC guard on spot `aggre.depth` pushes as MEXC sends them: protobuf `PushDataV3ApiWrapper` bytes, the form
ccxt.pro's `handle_message` (and so the guard) gets (diffdepth-stream docs, mexcdevelop/websocket-proto)."""

from __future__ import annotations

from typing import Any

import pytest

from arb.connectors.guards import guard_class
from arb.connectors.guards.mexc import MexcGuard
from tests.unit.connectors.venue_formats import _mexc_protobuf

CHANNEL = "spot@public.aggre.depth.v3.api.pb@100ms@BTCUSDT"


def depth(start: str, end: str, symbol: str = "BTCUSDT") -> bytes:
    return _mexc_protobuf(
        {
            "channel": CHANNEL.replace("BTCUSDT", symbol),
            "symbol": symbol,
            "sendTime": "1700000000004",
            "publicAggreDepths": {
                "asks": [],
                "bids": [{"price": "29990.00", "quantity": "9.00000000"}],
                "eventType": "spot@public.aggre.depth.v3.api.pb@100ms",
                "fromVersion": start,
                "toVersion": end,
            },
        }
    )


def test_the_connector_finds_the_guard_by_ccxt_id() -> None:
    assert guard_class("mexc") is MexcGuard


def test_the_documented_flow_passes() -> None:
    guard = MexcGuard()

    assert guard.check({"id": 0, "code": 0, "msg": CHANNEL}) is None
    assert [guard.check(depth(str(v), str(v + 1))) for v in range(1001, 1057, 2)] == [None] * 28
    assert guard.last_to["BTCUSDT"] == 1056


@pytest.mark.parametrize("start", ["1061", "1056", "1001"])
def test_anything_but_the_next_version_is_a_gap(start: str) -> None:
    guard = MexcGuard()
    guard.check(depth("1055", "1056"))

    assert guard.check(depth(start, "1062")) == f"seq gap BTCUSDT 1056 -> {start}"
    assert guard.last_to["BTCUSDT"] == 1056


def test_a_subscription_ack_restarts_the_chain_of_its_symbol_only() -> None:
    guard = MexcGuard()
    guard.check(depth("1055", "1056"))
    guard.check(depth("10", "11", "ETHUSDT"))

    assert guard.check({"id": 0, "code": 0, "msg": CHANNEL}) is None
    assert guard.check(depth("9000", "9001")) is None
    assert guard.check(depth("13", "13", "ETHUSDT")) == "seq gap ETHUSDT 11 -> 13"


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (depth("", "1058"), "bad version BTCUSDT: ''..'1058'"),
        (depth("1057", "x"), "bad version BTCUSDT: '1057'..'x'"),
        (depth("1058", "1057"), "bad range BTCUSDT: fromVersion 1058 > toVersion 1057"),
    ],
)
def test_junk_versions_are_refused(message: bytes, reason: str) -> None:
    guard = MexcGuard()
    guard.check(depth("1055", "1056"))

    assert guard.check(message) == reason


@pytest.mark.parametrize(
    "message",
    [
        _mexc_protobuf(
            {
                "channel": "spot@public.aggre.deals.v3.api.pb@100ms@BTCUSDT",
                "symbol": "BTCUSDT",
                "publicAggreDeals": {"deals": [{"price": "1", "quantity": "1", "tradeType": 1, "time": "1"}]},
            }
        ),
        b"\xff\xff not protobuf",
        {"id": 0, "code": 0, "msg": "PONG"},
        {"c": "spot@public.increase.depth.v3.api@BTCUSDT", "d": {"asks": [], "r": "5"}, "s": "BTCUSDT"},
        "Invalid listen key",
    ],
)
def test_other_messages_pass_untouched(message: Any) -> None:
    guard = MexcGuard()

    assert guard.check(message) is None
    assert guard.last_to == {}
