"""Helpers shared by tests of several rooms: a hand-moved clock and a Quote builder with sound defaults."""

from __future__ import annotations

from arb.model import Quote

NS = 1_700_000_000_000_000_000
MS = 1_000_000


class Clock:
    """A clock the test moves by hand, injected on both sides (the quotes' ts_recv and the reader's now)."""

    def __init__(self, now: int = NS) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def quote(venue: str = "binance", instrument: str = "BTC/USD", **over: object) -> Quote:
    fields: dict[str, object] = {
        "bid": 100.0,
        "bid_size": 1.0,
        "ask": 100.5,
        "ask_size": 2.0,
        "ts_exchange": NS - 5 * MS,
        "ts_recv": NS,
        "sequence": 1,
    }
    fields.update(over)
    return Quote(venue=venue, instrument=instrument, **fields)  # type: ignore[arg-type]
