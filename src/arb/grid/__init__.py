"""The Redis price grid: connectors write quotes, the scanner reads snapshots and follows the change feed.

    layout = GridLayout.from_settings(settings)
    async with PriceGrid.from_url(url, layout, settings.grid) as grid:
        async with grid.writer() as w:          # connectors: batched, pipelined writes
            w.put(quote)
        snap = await grid.read_grid()           # whole grid, consistent, as arrays (+ feed position)
        mirror = grid.mirror()                  # scanner: numpy arrays that follow the feed, fail closed
        async with mirror.following():
            fresh = mirror.fresh_mask()

Storage, feed and failure semantics are documented in `arb.grid.store`; the cell format in `arb.grid.codec`.

Names are imported lazily (PEP 562) so that `arb.grid.embedded`, which the CLI needs at start-up, does not drag in
numpy and redis.asyncio with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from arb.lazy import lazy_getattr

if TYPE_CHECKING:
    from arb.grid.errors import GridError, GridLayoutMismatch, GridUnavailable, InvalidQuote
    from arb.grid.layout import GridLayout
    from arb.grid.mirror import GridMirror, MirrorGap
    from arb.grid.store import (
        FeedPosition,
        GridSnapshot,
        InstrumentSnapshot,
        PriceGrid,
        QuotesSnapshot,
        QuoteView,
        connect,
    )
    from arb.grid.writer import GridWriter

_EXPORTS = {
    "GridError": "arb.grid.errors",
    "GridLayoutMismatch": "arb.grid.errors",
    "GridUnavailable": "arb.grid.errors",
    "InvalidQuote": "arb.grid.errors",
    "GridLayout": "arb.grid.layout",
    "GridMirror": "arb.grid.mirror",
    "MirrorGap": "arb.grid.mirror",
    "FeedPosition": "arb.grid.store",
    "GridSnapshot": "arb.grid.store",
    "InstrumentSnapshot": "arb.grid.store",
    "PriceGrid": "arb.grid.store",
    "QuotesSnapshot": "arb.grid.store",
    "QuoteView": "arb.grid.store",
    "connect": "arb.grid.store",
    "GridWriter": "arb.grid.writer",
}

__all__ = [
    "FeedPosition",
    "GridError",
    "GridLayout",
    "GridLayoutMismatch",
    "GridMirror",
    "GridSnapshot",
    "GridUnavailable",
    "GridWriter",
    "InstrumentSnapshot",
    "InvalidQuote",
    "MirrorGap",
    "PriceGrid",
    "QuoteView",
    "QuotesSnapshot",
    "connect",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
