"""MEXC: the spot `aggre.depth` version chain that ccxt.pro 4.5.90 does not check.

MEXC's spot diff-depth stream (`spot@public.aggre.depth.v3.api.pb@<interval>@<SYMBOL>`,
https://www.mexc.com/api-docs/spot-v3/websocket-market-streams/diffdepth-stream) pushes protobuf
`PushDataV3ApiWrapper` messages (https://github.com/mexcdevelop/websocket-proto) whose `publicAggreDepths` carries the
changed levels and the range `fromVersion`..`toVersion` of the versions it covers. MEXC's recipe
(https://www.mexc.com/api-docs/spot-v3/websocket-market-streams/how-to-properly-maintain-a-local-copy-of-the-order-book):
take the REST snapshot (`GET /api/v3/depth`, `lastUpdateId`), apply the pushes after it, and check that every push's
`fromVersion` is the previous push's `toVersion` + 1; otherwise versions were missed and the book must be rebuilt.

What ccxt 4.5.90 does (`pro/mexc.py handle_message`): a binary frame is decoded in `handle_message` itself
(`decode_proto_msg`: `PushDataV3ApiWrapper.ParseFromString`, then `MessageToDict`), so what reaches a guard is the
raw protobuf bytes, not a dict. `handle_order_book` buffers 25 pushes, fetches the snapshot, keeps `fromVersion` as
the book's nonce, drops a push whose `fromVersion` is below it and applies every other one, so a lost push leaves a
wrong book that looks alive (FAULTS M3).

This guard decodes the frame with the same generated class ccxt uses (reading only the fields it needs; no dict is
built) and keeps, per symbol, the `toVersion` of the last push it let through: the next must start at that + 1. The
first push of a symbol, and the first after a subscription ack for its channel (JSON `{id, code: 0, msg: channel}`:
ccxt fetches a new snapshot), start the chain. Like the REST snapshot, the chain is only between pushes. Refused: a
version that is not an integer, or a range that ends before it starts. A frame that does not decode is left to ccxt
(which raises on it); JSON channels are not touched.
"""

from __future__ import annotations

from typing import Any, Final

from ccxt.protobuf.mexc.PushDataV3ApiWrapper_pb2 import PushDataV3ApiWrapper
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

_DEPTH: Final = "public.aggre.depth.v3.api.pb"


def _version(value: Any) -> int | None:
    """A version as MEXC sends it (a protobuf string of digits), or None."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _channel_symbol(channel: str) -> str | None:
    """`BTCUSDT` for `spot@public.aggre.depth.v3.api.pb@100ms@BTCUSDT`; None for other channels."""
    parts = channel.split("@")
    if len(parts) < 3 or parts[1] != _DEPTH:
        return None
    return parts[-1]


class MexcGuard:
    """Per symbol (`BTCUSDT`), the `toVersion` of the last depth push let through. See the module docstring."""

    def __init__(self) -> None:
        self.last_to: dict[str, int] = {}

    def check(self, message: Any) -> str | None:
        if isinstance(message, dict):
            msg = message.get("msg")
            acked = _channel_symbol(msg) if isinstance(msg, str) else None
            if acked is not None:
                self.last_to.pop(acked, None)  # (un)subscribed: ccxt joins a new snapshot to the next pushes
            return None
        if not isinstance(message, bytes | bytearray):
            return None
        wrapper = PushDataV3ApiWrapper()
        try:
            wrapper.ParseFromString(bytes(message))
        except DecodeError:
            return None  # ccxt's own decode raises on it
        if wrapper.WhichOneof("body") != "publicAggreDepths":
            return None
        depths = wrapper.publicAggreDepths
        channel_symbol = _channel_symbol(wrapper.channel)
        symbol: str = wrapper.symbol or channel_symbol or "?"
        start, end = _version(depths.fromVersion), _version(depths.toVersion)
        if start is None or end is None:
            return f"bad version {symbol}: {depths.fromVersion!r}..{depths.toVersion!r}"
        if end < start:
            return f"bad range {symbol}: fromVersion {start} > toVersion {end}"
        last = self.last_to.get(symbol)
        if last is not None and start != last + 1:
            return f"seq gap {symbol} {last} -> {start}"
        self.last_to[symbol] = end
        return None


__all__ = ["MexcGuard"]
