"""ccxt structures -> Quote: the one place venue data becomes a grid value.

Why here and not in each connector: every CEX goes through ccxt's unified order book / ticker structures, so one
conversion, tested against each venue's own wire format, serves all of them. It takes the unified structures as
plain mappings (ccxt's OrderBook is a dict subclass whose sides are lists of [price, amount(, ...)]) and never trusts
them: a one-sided, crossed or non-finite book gives the reason (a str), never a Quote.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from arb.model import MAX_DEPTH, Quote, quote_is_sound, quote_problems

Rejected = str
"""Why a structure gave no Quote (counted per reason by the connector)."""


def _levels(side: Any, depth: int) -> tuple[tuple[float, float], ...] | None:
    """[[price, amount(, ...)], ...] -> ((price, amount), ...); None when any level is not two numbers.

    Hot path (one call per side per book update): `x + 0.0` is the numbers-only check (a str or None raises
    TypeError) and costs a fraction of isinstance against the ABCs; NaN and ordering are quote_problems' job."""
    if not isinstance(side, list | tuple):
        return None
    try:
        return tuple([(level[0] + 0.0, level[1] + 0.0) for level in side[:depth]])
    except (TypeError, IndexError, KeyError):
        return None


def _venue_time_ns(ts_ms: Any, ts_recv: int) -> int:
    """Venue time (ms) as ns; the receive time when the venue sends none, so latency reads 0, not an invention."""
    return int(ts_ms) * 1_000_000 if isinstance(ts_ms, int | float) and math.isfinite(ts_ms) else ts_recv


def _checked(q: Quote) -> Quote | Rejected:
    if quote_is_sound(q):
        return q
    return "; ".join(quote_problems(q)) or "unsound quote"


def quote_from_order_book(
    venue: str,
    instrument: str,
    book: Mapping[str, Any],
    ts_recv: int,
    *,
    depth: int = MAX_DEPTH,
    sequence: int | None = None,
) -> Quote | Rejected:
    """Top of book plus up to `depth` levels a side from a ccxt order book; the reason when unusable.

    `ts_exchange` is the book's venue timestamp (ms -> ns) or, if the venue sends none, the receive time (so latency
    metrics read 0 rather than inventing a value). `sequence` defaults to the book's `nonce` (the venue's update id).
    """
    depth = max(1, min(depth, MAX_DEPTH))
    bids = _levels(book.get("bids"), depth)
    asks = _levels(book.get("asks"), depth)
    if bids is None or asks is None:
        return "malformed book sides"
    if not bids or not asks:
        return "one-sided book"
    nonce = book.get("nonce")
    seq = sequence if sequence is not None else (int(nonce) if isinstance(nonce, int) else 0)
    return _checked(
        Quote(
            venue=venue,
            instrument=instrument,
            bid=bids[0][0],
            bid_size=bids[0][1],
            ask=asks[0][0],
            ask_size=asks[0][1],
            ts_exchange=_venue_time_ns(book.get("timestamp"), ts_recv),
            ts_recv=ts_recv,
            sequence=seq,
            bids=bids,
            asks=asks,
        )
    )


def quote_from_ticker(venue: str, instrument: str, ticker: Mapping[str, Any], ts_recv: int) -> Quote | Rejected:
    """Top of book only, from a ccxt ticker / bids-asks entry (`bid`, `bidVolume`, `ask`, `askVolume`).

    A missing size is read as unknown, so 0.0 (never invented): the scanner then sizes with its impact model.
    """
    bid, ask = ticker.get("bid"), ticker.get("ask")
    if not isinstance(bid, int | float) or not isinstance(ask, int | float):
        return "ticker without bid and ask"
    bid_size = ticker.get("bidVolume")
    ask_size = ticker.get("askVolume")
    return _checked(
        Quote(
            venue=venue,
            instrument=instrument,
            bid=float(bid),
            bid_size=float(bid_size) if isinstance(bid_size, int | float) else 0.0,
            ask=float(ask),
            ask_size=float(ask_size) if isinstance(ask_size, int | float) else 0.0,
            ts_exchange=_venue_time_ns(ticker.get("timestamp"), ts_recv),
            ts_recv=ts_recv,
        )
    )
