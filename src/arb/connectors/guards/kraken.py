"""Kraken: ccxt.pro 4.5.90 merges the WebSocket v2 `book` stream without checking its CRC32, so this guard does.

Kraken's v2 book carries no sequence number; the only integrity signal is the `checksum` on every snapshot and
update, a CRC32 over the top 10 asks (low -> high) then the top 10 bids (high -> low), each price and qty written as
on the wire (padded to the pair's precision) without its `.` and leading zeros
(https://docs.kraken.com/api/docs/guides/spot-ws-book-v2). ccxt's option `watchOrderBook.checksum` is off by default
("the exchange checksum was not reliable") and, turned on, raises AttributeError at the first snapshot in Python
(`format_number` calls `str.split` on a float), so a lost or corrupted update leaves ccxt with a wrong book that
still looks alive (FAULTS M3/M6/M7).

This guard keeps its own copy of each book, trimmed to the subscribed depth after every message as the guide says
(levels pushed out of the depth are never deleted on the wire), and compares the CRC of its top 10 with the one sent.

The catch: it sees the message ccxt decoded, with floats, so the trailing zeros of `0.00100000` are gone. The pair's
decimals are learned from each snapshot: the only (price decimals, qty decimals) whose formatting reproduces the
snapshot's checksum (a few hundred CRCs at most, once per snapshot); a snapshot no precision explains is itself
refused. Floats hold a wire value exactly up to ~15 significant digits, which covers Kraken's pairs.

Also refused: a message that is not the documented shape (levels not a list of {price, qty} numbers, NaN, negative
qty, a non-integer checksum), an update before its book's snapshot, and a book that ends up crossed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, TypeGuard
from zlib import crc32

CHECKSUM_LEVELS: Final = 10
DEFAULT_DEPTH: Final = 10
_MAX_DECIMALS: Final = 16

Level = tuple[float, float]


def _token(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}".replace(".", "").lstrip("0")


def checksum(asks: list[Level], bids: list[Level], price_decimals: int, qty_decimals: int) -> int:
    """Kraken's CRC32 of the top 10 `asks` (best first) and `bids` (best first) at the given decimals."""
    parts = [
        _token(p, price_decimals) + _token(q, qty_decimals)
        for p, q in (*asks[:CHECKSUM_LEVELS], *bids[:CHECKSUM_LEVELS])
    ]
    return crc32("".join(parts).encode())


def _min_decimals(values: list[float]) -> int:
    """The fewest decimals that write every value exactly (a lower bound for the wire's padding)."""
    low = 0
    for v in values:
        exponent = Decimal(repr(v)).normalize().as_tuple().exponent
        if isinstance(exponent, int):
            low = max(low, -exponent)
    return low


@dataclass
class _Book:
    depth: int
    bids: dict[float, float] = field(default_factory=dict)
    asks: dict[float, float] = field(default_factory=dict)
    decimals: tuple[int, int] | None = None

    def top(self) -> tuple[list[Level], list[Level]]:
        asks = sorted(self.asks.items())[:CHECKSUM_LEVELS]
        bids = sorted(self.bids.items(), reverse=True)[:CHECKSUM_LEVELS]
        return asks, bids

    def trim(self) -> None:
        if len(self.bids) > self.depth:
            self.bids = dict(sorted(self.bids.items(), reverse=True)[: self.depth])
        if len(self.asks) > self.depth:
            self.asks = dict(sorted(self.asks.items())[: self.depth])

    def crossed(self) -> bool:
        return bool(self.bids and self.asks and max(self.bids) >= min(self.asks))


def _number(x: object) -> TypeGuard[float]:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _levels(raw: Any) -> list[Level] | None:
    """[(price, qty)] of one side, or None if it is not a list of {price, qty} finite numbers, qty >= 0."""
    if not isinstance(raw, list):
        return None
    out = []
    for level in raw:
        if not isinstance(level, dict):
            return None
        price, qty = level.get("price"), level.get("qty")
        if not _number(price) or not _number(qty):
            return None
        if price <= 0 or qty < 0:
            return None
        out.append((float(price), float(qty)))
    return out


class KrakenGuard:
    """Verifies every Kraken v2 `book` message against its own trimmed copy of the book (see the module docstring).

    `decimals` pins (price decimals, qty decimals) per v2 symbol instead of learning them from snapshots.
    """

    def __init__(self, decimals: Mapping[str, tuple[int, int]] | None = None) -> None:
        self._pinned = dict(decimals or {})
        self._depth: dict[str, int] = {}
        self.books: dict[str, _Book] = {}

    def check(self, message: Any) -> str | None:
        if not isinstance(message, dict):
            return None
        if message.get("method") in ("subscribe", "unsubscribe") and message.get("success") is True:
            self._on_ack(message)
            return None
        if message.get("channel") != "book":
            return None
        data = message.get("data")
        entry = data[0] if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict) else None
        symbol = entry.get("symbol") if entry is not None else None
        if entry is None or not isinstance(symbol, str):
            return "kraken book message without one {symbol, bids, asks} entry"
        bids, asks = _levels(entry.get("bids")), _levels(entry.get("asks"))
        crc = entry.get("checksum")
        if bids is None or asks is None:
            return f"kraken book {symbol}: levels are not a list of {{price, qty}} finite numbers"
        if crc is not None and (not isinstance(crc, int) or isinstance(crc, bool)):
            return f"kraken book {symbol}: checksum {crc!r} is not an integer"
        kind = message.get("type")
        if kind == "snapshot":
            return self._snapshot(symbol, bids, asks, crc)
        if kind == "update":
            return self._update(symbol, bids, asks, crc)
        return f"kraken book {symbol}: unknown message type {kind!r}"

    def _on_ack(self, message: dict[str, Any]) -> None:
        result = message.get("result")
        if not isinstance(result, dict) or result.get("channel") != "book":
            return
        symbol, depth = result.get("symbol"), result.get("depth")
        if not isinstance(symbol, str):
            return
        if message.get("method") == "unsubscribe":
            self.books.pop(symbol, None)
            self._depth.pop(symbol, None)
        elif isinstance(depth, int):
            self._depth[symbol] = depth

    def _snapshot(self, symbol: str, bids: list[Level], asks: list[Level], crc: int | None) -> str | None:
        depth = self._depth.get(symbol, max(DEFAULT_DEPTH, len(bids), len(asks)))
        old = self.books.get(symbol)
        book = _Book(depth, dict(bids), dict(asks))
        book.trim()
        self.books[symbol] = book
        if book.crossed():
            return f"kraken book {symbol}: snapshot is crossed"
        if crc is None:
            return None  # nothing to verify against; updates without a checksum are taken as they come
        pinned = self._pinned.get(symbol)
        book.decimals = pinned or self._learn(book, crc, old.decimals if old is not None else None)
        if book.decimals is None:
            return f"kraken book {symbol}: snapshot checksum {crc} matches no price/qty precision"
        local = checksum(*book.top(), *book.decimals)
        if local != crc:
            return f"kraken book {symbol}: snapshot checksum {crc} != {local} computed"
        return None

    @staticmethod
    def _learn(book: _Book, crc: int, hint: tuple[int, int] | None) -> tuple[int, int] | None:
        """The (price, qty) decimals whose formatting of the book gives `crc` (the wire's padding)."""
        asks, bids = book.top()
        if hint is not None and checksum(asks, bids, *hint) == crc:
            return hint
        levels = asks + bids
        low_p = _min_decimals([p for p, _ in levels])
        low_q = _min_decimals([q for _, q in levels])
        price_tokens = {d: [_token(p, d) for p, _ in levels] for d in range(low_p, max(low_p, _MAX_DECIMALS) + 1)}
        qty_tokens = {d: [_token(q, d) for _, q in levels] for d in range(low_q, max(low_q, _MAX_DECIMALS) + 1)}
        for pd, prices in price_tokens.items():
            for qd, qtys in qty_tokens.items():
                if crc32("".join(p + q for p, q in zip(prices, qtys, strict=True)).encode()) == crc:
                    return pd, qd
        return None

    def _update(self, symbol: str, bids: list[Level], asks: list[Level], crc: int | None) -> str | None:
        book = self.books.get(symbol)
        if book is None:
            return f"kraken book {symbol}: update before its snapshot"
        for side, changes in ((book.bids, bids), (book.asks, asks)):
            for price, qty in changes:
                if qty == 0:
                    side.pop(price, None)
                else:
                    side[price] = qty
        book.trim()
        mismatch = ""
        if crc is not None and book.decimals is not None:
            local = checksum(*book.top(), *book.decimals)
            if local != crc:
                mismatch = f"checksum {crc} != {local} computed (update lost or corrupted)"
        if book.crossed():
            crossed = f"crossed after update (bid {max(book.bids)} >= ask {min(book.asks)})"
            return f"kraken book {symbol}: {crossed}" + (f"; {mismatch}" if mismatch else "")
        return f"kraken book {symbol}: {mismatch}" if mismatch else None


__all__ = ["CHECKSUM_LEVELS", "KrakenGuard", "checksum"]
