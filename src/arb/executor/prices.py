"""`PriceView` on the grid mirror: the executor's and hedger's view of current top of book, with its age."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from arb.executor.venue import Top

if TYPE_CHECKING:
    from arb.grid.mirror import GridMirror


class GridPrices:
    """Reads the mirror's arrays in place (they stay current while the mirror follows the grid)."""

    def __init__(self, mirror: GridMirror, now_ns: Callable[[], int] = time.time_ns) -> None:
        self.mirror = mirror
        self.layout = mirror.layout
        self._now_ns = now_ns

    def top(self, instrument: str, venue: str) -> Top | None:
        layout = self.layout
        if not layout.has_instrument(instrument) or not layout.has_venue(venue):
            return None
        i, j = layout.instrument_index(instrument), layout.venue_index(venue)
        bid, ask, ts = float(self.mirror.bid[i, j]), float(self.mirror.ask[i, j]), int(self.mirror.ts_recv[i, j])
        if not (math.isfinite(bid) and math.isfinite(ask)) or ts == 0 or bid >= ask:
            return None
        return Top(bid, ask, (self._now_ns() - ts) / 1e6)
