"""KuCoin: the `/market/level2` sequence chain that ccxt.pro 4.5.90 does not check.

KuCoin's incremental spot order book (https://www.kucoin.com/docs-new/3470068w0) pushes `trade.l2update` messages,
each with the range `sequenceStart`..`sequenceEnd` of the book changes it carries; the snapshot comes from REST
(https://www.kucoin.com/docs-new/rest/spot-trading/market-data/get-part-orderbook, its `sequence`). The docs'
recipe: buffer the pushes, fetch the snapshot, apply the pushes whose range reaches past its sequence, and each
push's `sequenceStart` must be the previous push's `sequenceEnd` + 1; a larger start means changes were missed and
the book must be rebuilt from a new snapshot.

What ccxt 4.5.90 does (`pro/kucoin.py handle_order_book`): buffers five pushes, fetches the REST snapshot, replays
the buffer from the push whose range holds the snapshot's sequence, then drops any push whose `sequenceEnd` is at or
below its book's nonce and applies every other one whatever its `sequenceStart`, so a lost push leaves a wrong book
that looks alive (FAULTS M3). The depth-5/50 topics (`/spotMarket/level2Depth*`, subject `level2`) are whole books
and carry no chain.

The guard does not see the REST snapshot (it comes over HTTP), so it checks the chain between consecutive pushes of
one symbol, which is what a missed push breaks: a push is accepted when it is the symbol's first since this guard
started or since a `welcome` / `ack` (a new connection or subscription: ccxt fetches a new snapshot and joins it by
itself), when its range starts at or before the last `sequenceEnd` + 1 and ends after it (it covers the last one
seen, as the join does), or when it ends at or before the last one (an old push ccxt drops). A start past the last
`sequenceEnd` + 1 is a gap. Refused too: a sequence that is not an integer, or a range that ends before it starts.
"""

from __future__ import annotations

from typing import Any, Final

_SUBJECT: Final = "trade.l2update"


def _sequence(value: Any) -> int | None:
    """A sequence as KuCoin sends it (a JSON integer; a digit string is read the way ccxt reads it), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


class KucoinGuard:
    """Per symbol (`BTC-USDT`), the `sequenceEnd` of the last push let through. See the module docstring."""

    def __init__(self) -> None:
        self.last_end: dict[str, int] = {}

    def check(self, message: Any) -> str | None:
        if not isinstance(message, dict):
            return None
        kind = message.get("type")
        if kind in ("welcome", "ack"):
            # A new connection or subscription: ccxt buffers the next pushes and joins a fresh REST snapshot to them,
            # so the first push after it starts a chain. (An ack names no topic, so every chain restarts.)
            self.last_end.clear()
            return None
        if kind != "message" or message.get("subject") != _SUBJECT:
            return None  # pongs, errors, depth-5/50 snapshots, tickers: no chain
        data = message.get("data")
        if not isinstance(data, dict):
            return "bad frame trade.l2update: no data"
        symbol = data.get("symbol")
        if not isinstance(symbol, str):
            topic = message.get("topic")
            symbol = topic.rsplit(":", 1)[-1] if isinstance(topic, str) else "?"
        start, end = _sequence(data.get("sequenceStart")), _sequence(data.get("sequenceEnd"))
        if start is None or end is None:
            return f"bad sequence {symbol}: {data.get('sequenceStart')!r}..{data.get('sequenceEnd')!r}"
        if end < start:
            return f"bad range {symbol}: sequenceStart {start} > sequenceEnd {end}"
        last = self.last_end.get(symbol)
        if last is not None:
            if end <= last:
                return None  # an old push: ccxt drops it, and so the chain stays where it is
            if start > last + 1:
                return f"seq gap {symbol} {last} -> {start}"
        self.last_end[symbol] = end
        return None


__all__ = ["KucoinGuard"]
