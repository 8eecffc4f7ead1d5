"""Binance: ccxt.pro checks the `U`/`u` diff chain itself; what it misses is a snapshot older than the stream.

Binance's "How to manage a local order book correctly" says: if the REST snapshot's `lastUpdateId` is below the first
buffered event's `U`, fetch the snapshot again. ccxt 4.5.90 (`pro/binance.py fetch_order_book_snapshot`) instead
skips every buffered diff that does not fit and resolves the watch with the old snapshot (FAULTS M4): the first book
a client sees is stale, and only the next diff raises InvalidNonce. This guard remembers the newest `u` the stream
has shown per market (a USD-M perp's, whose diffs carry `pu`, as `<id>:swap`: spot and perp share ids like BTCUSDT),
so the connector can tell that a book ccxt hands over is behind the stream and not use it.
Docs: https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams (diff depth stream).
"""

from __future__ import annotations

from typing import Any


class BinanceGuard:
    def __init__(self) -> None:
        self.last_u: dict[str, int] = {}

    def check(self, message: Any) -> str | None:
        data = message.get("data", message) if isinstance(message, dict) else None
        if isinstance(data, dict) and data.get("e") == "depthUpdate":
            market_id, u = data.get("s"), data.get("u")
            if isinstance(market_id, str) and "pu" in data:  # USD-M futures: same ids as spot, own update chain
                market_id += ":swap"
            if isinstance(market_id, str) and isinstance(u, int) and u > self.last_u.get(market_id, -1):
                self.last_u[market_id] = u
        return None

    def continue_from(self, previous: BinanceGuard) -> None:
        """Start from what an earlier session's stream showed: Binance's update ids are per market and server-wide,
        so a new connection continues the same chain. Without this, a stale snapshot that lands before the new
        socket's first diff of its market would pass (nothing to compare it with) and send the grid back in time."""
        for market_id, u in previous.last_u.items():
            if u > self.last_u.get(market_id, -1):
                self.last_u[market_id] = u

    def behind(self, market_id: str, nonce: Any) -> str | None:
        """Why a book at update id `nonce` is older than what the stream already delivered, or None."""
        last = self.last_u.get(market_id)
        if last is None or not isinstance(nonce, int) or nonce >= last:
            return None
        return f"book {market_id} at update id {nonce}, the stream is at {last} (snapshot older than the stream)"
