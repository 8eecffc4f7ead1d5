"""ccxt structures -> Quote: unusable books give a reason, never a Quote."""

from __future__ import annotations

import math

import pytest

from arb.connectors.quotes import quote_from_order_book, quote_from_ticker
from arb.model import Quote

RECV = 1_700_000_000_123_000_000


def book(bids: list[list[float]], asks: list[list[float]], **extra: object) -> dict[str, object]:
    return {"bids": bids, "asks": asks, "timestamp": 1_700_000_000_000, "nonce": 42, **extra}


def test_a_sound_book_gives_top_of_book_depth_venue_time_and_update_id() -> None:
    q = quote_from_order_book("okx", "BTC/USD", book([[100.0, 1.0], [99.0, 2.0]], [[101.0, 3.0]]), RECV, depth=1)

    assert isinstance(q, Quote)
    assert (q.bid, q.bid_size, q.ask, q.ask_size) == (100.0, 1.0, 101.0, 3.0)
    assert q.bids == ((100.0, 1.0),)  # depth honoured
    assert q.ts_exchange == 1_700_000_000_000_000_000
    assert q.sequence == 42


@pytest.mark.parametrize(
    ("bids", "asks", "reason"),
    [
        ([], [[101.0, 1.0]], "one-sided book"),
        ([[102.0, 1.0]], [[101.0, 1.0]], "crossed book"),
        ([[math.nan, 1.0]], [[101.0, 1.0]], "bid must be a positive finite number"),
        ([["100", 1.0]], [[101.0, 1.0]], "malformed book sides"),
        ([[100.0, -1.0]], [[101.0, 1.0]], "bid_size must be a non-negative finite number"),
        ([[100.0, 1.0], [99.0, -2.0]], [[101.0, 1.0]], "bids level (99.0, -2.0) is not a positive price and size"),
        ([[100.0, 1.0], [100.5, 2.0]], [[101.0, 1.0]], "bids are not sorted descending"),
        ([[100.0, 1.0]], [[101.0, 1.0], [math.inf, 1.0]], "asks level (inf, 1.0) is not a positive price and size"),
        ([[100.0]], [[101.0, 1.0]], "malformed book sides"),
    ],
)
def test_an_unusable_book_gives_the_reason(bids: list[list[object]], asks: list[list[object]], reason: str) -> None:
    result = quote_from_order_book("okx", "BTC/USD", {"bids": bids, "asks": asks}, RECV)

    assert isinstance(result, str)
    assert result.startswith(reason)


def test_a_ticker_without_sizes_or_time_reads_unknown_size_and_receive_time() -> None:
    q = quote_from_ticker("gemini", "BTC/USD", {"bid": 100.0, "ask": 100.5}, RECV)

    assert isinstance(q, Quote)
    assert (q.bid_size, q.ask_size) == (0.0, 0.0)
    assert q.ts_exchange == RECV
    assert q.bids == ()


def test_a_ticker_without_prices_gives_the_reason() -> None:
    assert quote_from_ticker("gemini", "BTC/USD", {"bid": None, "ask": 100.5}, RECV) == "ticker without bid and ask"
