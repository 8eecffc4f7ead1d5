"""OKX: the `books` checksum and level checks that ccxt.pro 4.5.90 does not do; the `seqId` chain it does.

What ccxt 4.5.90 (`pro/okx.py handle_order_book_message`) checks: `prevSeqId` against the book's last `seqId`, raising
InvalidNonce and resubscribing for a fresh snapshot on a break. What it does not: the `checksum`
(https://www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-order-book-channel, "Checksum": CRC32, signed
32-bit, of `bid_px:bid_sz:ask_px:ask_sz:...` over the best 25 levels a side after the message, a side's missing
levels skipped, strings as sent), and the levels themselves: a NaN or negative size goes into its book silently
(FAULTS M7). So this guard keeps its own copy of every `books` book (`books-l2-tbt`, `books50-l2-tbt` alike) and
refuses a message whose checksum does not match the book it leads to, or whose levels are not decimal strings with a
positive finite price and a finite size >= 0 (also on `books5` and `bbo-tbt`).

Sequence ("Sequence ID" on the same page), FAULTS M3/M5: a snapshot (`prevSeqId` -1) starts a book at any `seqId`,
lower than before included (a resubscribe after maintenance). An update must name the last `seqId` as its
`prevSeqId`; that admits the two documented exceptions, which are counted, not refused: the keep-alive (no levels,
`seqId == prevSeqId`) and the restart after maintenance (`seqId < prevSeqId`). An update that does not chain is left
to ccxt, which raises InvalidNonce for it and resyncs that one book; the guard stops verifying that book until its
next snapshot (it has no true copy of it), so one break is reported once, by ccxt.

A `checksum` of 0 is not checked: OKX has sent 0 in production since 2026-06-23 (help centre, "OKX Order Book
Channels Checksum Field Deprecation"); the sim sends the CRC32 unless told otherwise.
"""

from __future__ import annotations

import bisect
import math
import zlib
from typing import Any, Final

_CHAINED: Final = frozenset({"books", "books-l2-tbt", "books50-l2-tbt"})
"""Channels with snapshot + updates, `prevSeqId` and a checksum."""
_SNAPSHOTS: Final = frozenset({"books5", "bbo-tbt"})
"""Channels whose every message is a whole (top of the) book: levels are checked, nothing is kept."""
_CHECKSUM_LEVELS: Final = 25


class _Malformed(Exception):
    pass


def _level(row: Any) -> tuple[float, float, str, str]:
    """(price, size, price string, size string) of a `[px, sz, "0", orders]` row; _Malformed if it is not one."""
    if not isinstance(row, list) or len(row) < 2 or not isinstance(row[0], str) or not isinstance(row[1], str):
        raise _Malformed(f"level {row!r} is not [price, size, ...] strings")
    try:
        price, size = float(row[0]), float(row[1])
    except ValueError:
        raise _Malformed(f"level {row[:2]!r} is not decimal") from None
    if not (math.isfinite(price) and price > 0 and math.isfinite(size) and size >= 0):
        raise _Malformed(f"level {row[:2]!r} out of range")
    return price, size, row[0], row[1]


def _rows(entry: dict[str, Any], side: str) -> list[Any]:
    rows = entry.get(side)
    if not isinstance(rows, list):
        raise _Malformed(f"{side} is not a list")
    return rows


def _seq(entry: dict[str, Any], name: str) -> int:
    value = entry.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Malformed(f"{name} {value!r} is not an integer")
    return value


class _Side:
    """One side of a book: levels by price, and the sort keys (best first) to read the top 25 off."""

    __slots__ = ("keys", "levels", "sign")

    def __init__(self, sign: float) -> None:
        self.sign = sign  # -1 for bids, so ascending keys are best first on both sides
        self.keys: list[float] = []
        self.levels: dict[float, tuple[str, str]] = {}

    def apply(self, rows: list[Any]) -> None:
        for row in rows:
            price, size, px, sz = _level(row)
            key = self.sign * price
            if size == 0.0:
                if self.levels.pop(key, None) is not None:
                    del self.keys[bisect.bisect_left(self.keys, key)]
            else:
                if key not in self.levels:
                    bisect.insort(self.keys, key)
                self.levels[key] = (px, sz)

    def top(self) -> list[tuple[str, str]]:
        return [self.levels[k] for k in self.keys[:_CHECKSUM_LEVELS]]


class _Book:
    __slots__ = ("asks", "bids", "seq")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.bids = _Side(-1.0)
        self.asks = _Side(1.0)

    def checksum(self) -> int:
        bids, asks = self.bids.top(), self.asks.top()
        parts: list[str] = []
        for i in range(max(len(bids), len(asks))):
            if i < len(bids):
                parts += bids[i]
            if i < len(asks):
                parts += asks[i]
        value = zlib.crc32(":".join(parts).encode())
        return value - (1 << 32) if value >= 1 << 31 else value


class OkxGuard:
    """Checks OKX public order book messages before ccxt takes them. See the module docstring."""

    def __init__(self) -> None:
        self._books: dict[tuple[str, str], _Book] = {}
        self.keepalives = 0
        """Keep-alive updates accepted (no levels, `seqId == prevSeqId`)."""
        self.restarts = 0
        """Sequence restarts accepted (`seqId < prevSeqId`, after maintenance)."""
        self.unchained = 0
        """Updates that did not chain (left to ccxt, which raises InvalidNonce)."""

    def check(self, message: Any) -> str | None:
        if not isinstance(message, dict):
            return None  # "pong"
        arg = message.get("arg")
        if not isinstance(arg, dict):
            return None  # notices, login, errors without an arg
        channel, inst_id = arg.get("channel"), arg.get("instId")
        if channel not in _CHAINED and channel not in _SNAPSHOTS:
            return None
        key = (str(channel), str(inst_id))
        event = message.get("event")
        if event is not None:
            if event == "unsubscribe":
                self._books.pop(key, None)
            return None  # acks and errors carry no book
        try:
            data = message.get("data")
            if not isinstance(data, list) or not data or not all(isinstance(d, dict) for d in data):
                raise _Malformed("data is not a list of objects")
            for entry in data:
                problem = self._entry(key, message.get("action"), entry)
                if problem is not None:
                    self._books.pop(key, None)
                    return f"{problem} {channel} {inst_id}"
        except _Malformed as exc:
            self._books.pop(key, None)
            return f"malformed {channel} {inst_id}: {exc}"
        return None

    def _entry(self, key: tuple[str, str], action: Any, entry: dict[str, Any]) -> str | None:
        if key[0] in _SNAPSHOTS:
            for side in ("bids", "asks"):
                for row in _rows(entry, side):
                    _level(row)
            return None
        if action == "snapshot":
            fresh = _Book(_seq(entry, "seqId"))
            fresh.bids.apply(_rows(entry, "bids"))
            fresh.asks.apply(_rows(entry, "asks"))
            self._books[key] = fresh
            return self._verify(fresh, entry)
        if action != "update":
            raise _Malformed(f"action {action!r}")
        prev, seq = _seq(entry, "prevSeqId"), _seq(entry, "seqId")
        bids, asks = _rows(entry, "bids"), _rows(entry, "asks")
        book = self._books.get(key)
        if book is None:
            return None  # no snapshot seen (or unverified since a break): ccxt's own chain check decides
        if prev != book.seq:
            self.unchained += 1
            del self._books[key]
            return None
        if seq == prev and not bids and not asks:
            self.keepalives += 1
        elif seq < prev:
            self.restarts += 1
        book.bids.apply(bids)
        book.asks.apply(asks)
        book.seq = seq
        return self._verify(book, entry)

    @staticmethod
    def _verify(book: _Book, entry: dict[str, Any]) -> str | None:
        sent = entry.get("checksum", 0)
        if not isinstance(sent, int) or isinstance(sent, bool):
            raise _Malformed(f"checksum {sent!r} is not an integer")
        if sent == 0:
            return None
        mine = book.checksum()
        return None if mine == sent else f"checksum mismatch (sent {sent}, book gives {mine}) at seqId {book.seq}"


__all__ = ["OkxGuard"]
