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

# --- connectors (arb.connectors) -------------------------------------------------------------------------------------
# `venue` is a label here: the configured venue ids are a small closed set (about 20), unlike symbols.

CONNECTOR_UP: Final = Gauge(
    "arb_connector_up",
    "1 while a venue's market-data stream is connected and fresh, 0 while it is down, reconnecting or stale.",
    ["venue"],
)
CONNECTOR_MESSAGES: Final = Counter(
    "arb_connector_messages_total",
    "Book/ticker updates a connector received from ccxt (one per updated symbol), before conversion.",
    ["venue"],
)
CONNECTOR_QUOTES: Final = Counter(
    "arb_connector_quotes_total", "Quotes a connector handed to the grid writer.", ["venue"]
)
CONNECTOR_REJECTED: Final = Counter(
    "arb_connector_rejected_total",
    "Updates that gave no Quote, by reason: `one_sided`, `crossed`, `malformed`, `unknown_symbol`, `invalid`.",
    ["venue", "reason"],
)
CONNECTOR_RECONNECTS: Final = Counter(
    "arb_connector_reconnects_total",
    "Times a connector tore down its exchange session and started again, by cause (network, maintenance, "
    "rate_limit, stall, error).",
    ["venue", "cause"],
)
CONNECTOR_GAPS: Final = Counter(
    "arb_connector_gaps_total",
    "Book resyncs after a sequence gap or checksum error reported by ccxt (InvalidNonce / ChecksumError).",
    ["venue"],
)
CONNECTOR_LATENCY_SECONDS: Final = Histogram(
    "arb_connector_latency_seconds",
    "Per venue and stage: `exchange_to_recv` (venue timestamp to our receive time; needs synced clocks) and "
    "`recv_to_grid` (receive time to the grid write that carried the quote).",
    ["venue", "stage"],
    buckets=_FAST_SECONDS,
)
CONNECTOR_STALE_SECONDS: Final = Counter(
    "arb_connector_stale_seconds_total",
    "Seconds a venue spent down or stale (its quotes unusable), accumulated when it recovers.",
    ["venue"],
)
