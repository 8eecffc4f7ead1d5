"""Helpers shared by tests of several rooms: a hand-moved clock, a Quote builder with sound defaults, and cleaned
hourly bars of a random walk (the directional layer's input)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from arb.model import Quote

if TYPE_CHECKING:
    import pandas as pd

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


def random_bars(n: int, seed: int, *, drift: float = 0.0) -> pd.DataFrame:
    """`n` clean hourly bars (the `arb.strategy.candles` contract) of a log-normal walk from 100, wicks up to 1 %."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(drift, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    idx = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="ts", unit="ns")
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * (1.0 + rng.uniform(0.0, 0.01, n)),
            "low": np.minimum(open_, close) * (1.0 - rng.uniform(0.0, 0.01, n)),
            "close": close,
            "volume": rng.uniform(1.0, 2.0, n),
            "filled": False,
            "clipped": False,
        },
        index=idx,
    )
