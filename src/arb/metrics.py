"""Every Prometheus metric arb exports, in one place, so names, labels and meanings can be read (and alerted on) here.

Conventions: names are `arb_<room>_<what>_<unit>`; counters end in `_total`; labels are small closed sets (never a
symbol, never an id), because every label value is a time series. All metrics live in the default registry, which
`/metrics` of the API serves.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

_FAST_SECONDS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5)

# --- grid (arb.grid) -------------------------------------------------------------------------------------------------

GRID_QUOTES_WRITTEN: Final = Counter(
    "arb_grid_quotes_written_total",
    "Quotes accepted by the grid's write path (every quote goes to the change feed; the latest per cell to the grid).",
)
GRID_WRITE_SECONDS: Final = Histogram(
    "arb_grid_write_seconds",
    "Time of one PriceGrid.write call (one pipelined round trip for a whole batch), successful or not.",
    buckets=_FAST_SECONDS,
)
GRID_WRITER_DROPPED: Final = Counter(
    "arb_grid_writer_dropped_total",
    "Quotes a GridWriter dropped, by reason: `overflow` (its buffer was full because Redis was slower than the "
    "connector), `unavailable` (the flush failed; quotes are not resent because newer ones follow) or `refused` "
    "(the grid refused the batch; a bug, logged as an error).",
    ["reason"],
)
GRID_READ_SECONDS: Final = Histogram(
    "arb_grid_read_seconds",
    "Time of one snapshot read, by kind: `instrument` (all venues of one instrument), `grid` (top of book of every "
    "cell, arrays), `quotes` (every cell as a full Quote with depth).",
    ["kind"],
    buckets=_FAST_SECONDS,
)
GRID_MALFORMED: Final = Counter(
    "arb_grid_malformed_total",
    "Entries read from Redis that were skipped instead of trusted, by reason (bad_field, unknown_instrument, "
    "unknown_venue, undecodable, invalid_quote, field_mismatch, bad_blob, feed_bad_counter, feed_undecodable). "
    "Counted at every read that skips them, so a bad entry that stays in Redis keeps this rising: alert on rate > 0.",
    ["reason"],
)
GRID_UNAVAILABLE: Final = Counter(
    "arb_grid_unavailable_total",
    "Grid operations that failed because Redis was down, too slow (socket timeout) or answered with an error "
    "(FAULTS M8), by operation (write, read_instrument, read_grid, read_quotes, follow, ...).",
    ["operation"],
)
GRID_MIRROR_VALID: Final = Gauge(
    "arb_grid_mirror_valid",
    "1 while a GridMirror is in sync with Redis, 0 while it is failed closed (Redis unreachable, or rebuilding). "
    "With several mirrors in one process, the last one to change state sets it.",
)
GRID_MIRROR_GAPS: Final = Counter(
    "arb_grid_mirror_gaps_total",
    "Times a GridMirror lost continuity with the change feed and rebuilt from a snapshot, by reason: `trimmed` (it "
    "fell more than feed_maxlen entries behind), `restart` (Redis came back empty), `unavailable` (Redis was "
    "unreachable or too slow for a while), `error` (a bug in following; logged with its traceback).",
    ["reason"],
)
GRID_MIRROR_REBUILD_SECONDS: Final = Histogram(
    "arb_grid_mirror_rebuild_seconds",
    "Time to rebuild a GridMirror from a consistent snapshot of the whole grid.",
    buckets=_FAST_SECONDS,
)
GRID_MIRROR_LAG_SECONDS: Final = Histogram(
    "arb_grid_mirror_lag_seconds",
    "Receive-time age of the newest quote in each feed batch when a GridMirror applies it (feed + apply latency).",
    buckets=_FAST_SECONDS,
)
