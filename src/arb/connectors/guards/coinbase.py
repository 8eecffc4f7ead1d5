"""Coinbase Advanced Trade: the per-connection `sequence_num` check that ccxt.pro 4.5.90 does not do.

Why: every message on an Advanced Trade WebSocket carries `sequence_num`, one counter per connection across all
channels (l2_data, ticker, heartbeats, subscriptions), exactly one more each time; "a gap greater than one means a
message was dropped" (https://docs.cdp.coinbase.com/advanced-trade/docs/ws-overview, Sequence Numbers). ccxt.pro
`coinbase.handle_order_book` merges every `l2_data` event it gets and keeps no sequence at all (the book's nonce
stays None), so a dropped update leaves a book that is wrong and still looks alive (FAULTS M3). Since the counter
spans the connection, a gap anywhere on it means any book on it may have missed an update: all are suspect.

Accepted, not gaps: the first message this guard sees, and a counter that starts again at 0 (a new connection after
a drop or maintenance; its books arrive as fresh snapshots). Messages without a sequence number (`{"type": "error"}`)
are left to ccxt. Also refused, because ccxt would take them into the book silently (FAULTS M7): an `l2_data`
message whose events or levels are not in the documented shape (side bid/offer, price_level and new_quantity as
decimal strings, a positive finite price, a finite size >= 0).
"""

from __future__ import annotations

import math
from typing import Any, Final

_SIDES: Final = frozenset({"bid", "offer"})
_EVENT_TYPES: Final = frozenset({"snapshot", "update"})


def _decimal(value: Any) -> float | None:
    """The number in a decimal string, or None when it is not one (or not finite)."""
    if not isinstance(value, str):
        return None
    try:
        x = float(value)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _l2_problem(events: Any) -> str | None:
    if not isinstance(events, list) or not events:
        return "l2_data without events"
    for event in events:
        if not isinstance(event, dict) or event.get("type") not in _EVENT_TYPES:
            return "l2_data event of unknown type"
        product = event.get("product_id")
        updates = event.get("updates")
        if not isinstance(product, str) or not isinstance(updates, list):
            return f"l2_data event without product_id/updates list ({product!r})"
        for level in updates:
            if not isinstance(level, dict) or level.get("side") not in _SIDES:
                return f"bad level side {product}"
            price = _decimal(level.get("price_level"))
            size = _decimal(level.get("new_quantity"))
            if price is None or price <= 0:
                return f"bad price_level {product} {level.get('price_level')!r}"
            if size is None or size < 0:
                return f"bad new_quantity {product} {level.get('new_quantity')!r}"
    return None


def _where(message: dict[str, Any]) -> str:
    """The channel (and the first product) a message is about, for the reason text."""
    channel = message.get("channel")
    events = message.get("events")
    first = events[0] if isinstance(events, list) and events and isinstance(events[0], dict) else {}
    product = first.get("product_id")
    return f"{channel} {product}" if isinstance(product, str) else str(channel)


class CoinbaseGuard:
    """Checks one ccxt.pro coinbase session's messages: `check(message)` is None, or why the message is refused.

    State is the last `sequence_num` seen; ccxt.pro coinbase uses one WebSocket for every channel, so one counter.
    """

    def __init__(self) -> None:
        self.last_seq: int | None = None

    def reset(self) -> None:
        """Forget the counter (the owner opened a new connection and knows it)."""
        self.last_seq = None

    def check(self, message: Any) -> str | None:
        if not isinstance(message, dict) or "sequence_num" not in message:
            return None
        seq = message["sequence_num"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            return f"bad sequence_num {seq!r} ({_where(message)})"
        last, self.last_seq = self.last_seq, seq
        if last is not None and seq != last + 1 and seq != 0:
            verb = "gap" if seq > last else "went back"
            return f"seq {verb} {last} -> {seq} ({_where(message)})"
        if message.get("channel") == "l2_data":
            return _l2_problem(message.get("events"))
        return None


__all__ = ["CoinbaseGuard"]
