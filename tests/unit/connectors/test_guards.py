"""The guard registry and the guarded client: what a sequence break does to the messages that follow it."""

from __future__ import annotations

from typing import Any

import ccxt.pro

from arb.connectors.guards import guard_class, guarded
from arb.connectors.guards.binance import BinanceGuard


class _EveryThirdBreaks:
    def __init__(self) -> None:
        self.n = 0

    def check(self, message: Any) -> str | None:
        self.n += 1
        return "seq gap" if self.n == 3 else None


def test_venues_that_ccxt_checks_itself_have_no_guard_and_binance_watches_for_stale_snapshots() -> None:
    assert guard_class("bitget") is None  # ccxt checks its checksum and sequence itself
    assert guard_class("binance") is BinanceGuard


def test_a_guarded_client_hands_messages_to_ccxt_until_the_first_break_then_drops_everything() -> None:
    handled: list[int] = []
    trips: list[str] = []

    class Recording(ccxt.pro.binance):  # type: ignore[misc]
        def handle_message(self, client: Any, message: Any) -> None:
            handled.append(message)

    exchange = guarded(Recording, _EveryThirdBreaks)({})
    exchange.arb_on_trip = trips.append
    for i in range(6):
        exchange.handle_message(None, i)

    assert handled == [0, 1]
    assert trips == ["seq gap"]
    assert exchange.arb_tripped == "seq gap"
    assert type(exchange).__name__ == "GuardedRecording"


def test_the_binance_guard_says_a_book_is_behind_only_when_the_stream_has_passed_it() -> None:
    guard = BinanceGuard()
    assert guard.behind("BTCUSDT", 5) is None  # nothing seen yet
    guard.check({"stream": "btcusdt@depth", "data": {"e": "depthUpdate", "s": "BTCUSDT", "U": 8, "u": 10}})
    guard.check({"e": "depthUpdate", "s": "ETHUSDT", "U": 1, "u": 3})

    assert guard.behind("BTCUSDT", 10) is None
    problem = guard.behind("BTCUSDT", 7)
    assert problem == "book BTCUSDT at update id 7, the stream is at 10 (snapshot older than the stream)"
    assert guard.behind("ETHUSDT", 3) is None
