"""Bitvavo: the per-market `nonce` chain of `book` events that ccxt.pro 4.5.90 does not check.

Bitvavo's book subscription (https://docs.bitvavo.com/#tag/Market-data-subscription-WebSocket/paths/~1subscribeBook/
post) pushes `book` events with the changed levels of one market and a `nonce` that grows by exactly one per event of
that market; a larger step means events were missed and the book must be rebuilt from a new snapshot (`getBook`,
https://docs.bitvavo.com/#tag/Market-data/paths/~1%7Bmarket%7D~1book/get, whose `nonce` the events continue).

What ccxt 4.5.90 does (`pro/bitvavo.py handle_order_book`): buffers the events, asks the snapshot over the socket
(`{action: getBook}`), replays the buffered events newer than its nonce and then applies every event whose nonce is
above its book's, whatever the step, so a lost event leaves a wrong book that looks alive (FAULTS M3).

Per market, this guard keeps the nonce of the last `book` event it let through: the next must carry that + 1. The
first event of a market, and the first after a `subscribed` event naming it (a new subscription: ccxt fetches a new
snapshot), start the chain. The `getBook` answer does not touch the chain: it is a snapshot the events continue,
and ccxt joins it to them itself. Refused: an event whose nonce is not a non-negative integer, or without a market.
"""

from __future__ import annotations

from typing import Any


def _nonce(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


class BitvavoGuard:
    """Per market (`BTC-EUR`), the nonce of the last `book` event let through. See the module docstring."""

    def __init__(self) -> None:
        self.last_nonce: dict[str, int] = {}

    def check(self, message: Any) -> str | None:
        if not isinstance(message, dict):
            return None
        event = message.get("event")
        if event in ("subscribed", "unsubscribed"):
            subscriptions = message.get("subscriptions")
            books = subscriptions.get("book") if isinstance(subscriptions, dict) else None
            for market in books if isinstance(books, list) else []:
                self.last_nonce.pop(str(market), None)
            return None
        if event != "book":
            return None  # getBook answers, trades, tickers, errors: no chain
        market = message.get("market")
        if not isinstance(market, str):
            return f"bad book event: market {market!r}"
        nonce = _nonce(message.get("nonce"))
        if nonce is None:
            return f"bad nonce {market}: {message.get('nonce')!r}"
        last = self.last_nonce.get(market)
        if last is not None and nonce != last + 1:
            return f"seq gap {market} {last} -> {nonce}"
        self.last_nonce[market] = nonce
        return None


__all__ = ["BitvavoGuard"]
