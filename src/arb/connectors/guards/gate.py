"""Gate: the `spot.obu` (Order Book V2) update chain that ccxt.pro 4.5.90 does not check.

Gate's Order Book V2 channel (https://www.gate.com/docs/developers/apiv4/ws/en/#order-book-v2-subscription) pushes,
per stream `ob.<PAIR>.<level>`, first a full book (`full: true`, its update id `u`) and then updates carrying the
range `U`..`u` of the update ids they cover, with absolute sizes. An update's `U` must be the previous push's `u` + 1;
otherwise the client has missed one and must re-subscribe. A push with `full: true` replaces the book (Gate may send
one at any time) and restarts the chain from its `u`.

What ccxt 4.5.90 does (`pro/gate.py handle_new_spot_order_book`): resets on `full`, drops an update whose `u` is at
or below its book's nonce, and applies every other update whatever its `U`, so a lost push leaves a wrong book that
looks alive (FAULTS M3). The older `spot.order_book_update` / `futures.order_book_update` channels are left to ccxt,
which checks their `U` itself (ChecksumError and a resubscribe).

Per stream, this guard keeps the `u` of the last push it let through: an update must carry `U` = that + 1 and
`u` >= `U`. Refused: an update before the stream's first full book, a `U`/`u` that is not a non-negative integer
(ccxt would read it as None and apply the update blindly). A subscribe or unsubscribe ack for a stream forgets its
chain (the next full book restarts it).
"""

from __future__ import annotations

from typing import Any, Final

_CHANNEL: Final = "spot.obu"


def _update_id(value: Any) -> int | None:
    """An update id as Gate sends it (a JSON integer), or None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


class GateGuard:
    """Per `spot.obu` stream (`ob.BTC_USDT.50`), the `u` of the last push let through. See the module docstring."""

    def __init__(self) -> None:
        self.last_u: dict[str, int] = {}

    def check(self, message: Any) -> str | None:
        if not isinstance(message, dict) or message.get("channel") != _CHANNEL:
            return None  # other channels, pongs, errors: nothing merged into a spot.obu book
        event = message.get("event")
        if event in ("subscribe", "unsubscribe"):
            payload = message.get("payload")
            for acked in payload if isinstance(payload, list) else []:
                self.last_u.pop(str(acked), None)
            return None
        if event != "update":
            return None
        result = message.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("s"), str):
            return "bad frame spot.obu: no result.s"
        stream: str = result["s"]
        u = _update_id(result.get("u"))
        if u is None:
            return f"bad u {stream}: {result.get('u')!r}"
        if result.get("full") is True:
            self.last_u[stream] = u  # a new book: the chain restarts here
            return None
        start = _update_id(result.get("U"))
        if start is None:
            return f"bad U {stream}: {result.get('U')!r}"
        if u < start:
            return f"bad range {stream}: U {start} > u {u}"
        last = self.last_u.get(stream)
        if last is None:
            return f"update before full book {stream} U={start}"
        if start != last + 1:
            return f"seq gap {stream} {last} -> {start}"
        self.last_u[stream] = u
        return None


__all__ = ["GateGuard"]
