"""Every Prometheus metric arb exports, in one place, so names, labels and meanings can be read (and alerted on) here.

Conventions: names are `arb_<room>_<what>_<unit>`; counters end in `_total`; labels are small closed sets (never a
symbol, never an id), because every label value is a time series. All metrics live in the default registry, which
`/metrics` of the API serves.
"""

from __future__ import annotations

import math
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
    multiprocess_mode="mostrecent",
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
    multiprocess_mode="max",  # one process streams a venue
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
CONNECTOR_MARKETS_CLOSED: Final = Gauge(
    "arb_connector_markets_closed",
    "Instruments a venue reports closed now (Capital.com outside opening hours): quiet by schedule, not stale.",
    ["venue"],
    multiprocess_mode="max",  # one process streams a venue
)
CONNECTOR_STALE_SECONDS: Final = Counter(
    "arb_connector_stale_seconds_total",
    "Seconds a venue spent down or stale (its quotes unusable), accumulated when it recovers.",
    ["venue"],
)

# --- coverage (set by the process that runs the scanner, from its grid mirror: `Scanner.export_coverage`) ------------
# Gauges carry a `multiprocess_mode` (how the parent's /metrics combines the values of several processes, see
# `arb.metrics_http`): these are set by the one process that runs the scanner, so the most recent value wins.

VENUES_CONNECTED: Final = Gauge(
    "arb_venues_connected",
    "Centralized exchanges with at least one fresh quote in the grid now, as the scanner's process sees it "
    "(alert: VenueCoverageLow). NaN in a process that runs no scanner.",
    multiprocess_mode="mostrecent",
)
VENUES_REQUIRED: Final = Gauge(
    "arb_venues_required",
    "Centralized exchanges the config requires to be connected (`coverage.min_exchanges`).",
    multiprocess_mode="mostrecent",
)
INSTRUMENTS_COVERED: Final = Gauge(
    "arb_instruments_covered",
    "Instruments with fresh quotes from at least two venues now (comparable: an arbitrage can be seen on them).",
    multiprocess_mode="mostrecent",
)
INSTRUMENTS_REQUIRED: Final = Gauge(
    "arb_instruments_required",
    "Instruments in the configured universe (the denominator of InstrumentCoverageLow).",
    multiprocess_mode="mostrecent",
)
GRID_AGE_SECONDS: Final = Gauge(
    "arb_grid_age_seconds",
    "Seconds since the newest quote in the grid was received (alert: GridStale); +Inf while the grid is empty.",
    multiprocess_mode="mostrecent",
)

for _gauge in (VENUES_CONNECTED, VENUES_REQUIRED, INSTRUMENTS_COVERED, INSTRUMENTS_REQUIRED, GRID_AGE_SECONDS):
    # NaN until a scanner in this process sets them: a process that judges no coverage (the API, a connector
    # worker) must not look like one with zero venues, and no comparison in an alert rule is true on NaN.
    _gauge.set(math.nan)
del _gauge

# --- scanner (arb.scanner) -------------------------------------------------------------------------------------------
# `kind` is one of spot, basis, triangular, transfer; `event` is opened or closed.

SCANNER_SCAN_SECONDS: Final = Histogram(
    "arb_scanner_scan_seconds",
    "Duration of one scanner pass (every instrument the grid changed since the last pass, all kinds).",
    buckets=_FAST_SECONDS,
)
SCANNER_OPPORTUNITIES: Final = Counter(
    "arb_scanner_opportunities_total",
    "Opportunity lifecycle events, by kind (spot, basis, triangular, transfer) and event (opened, closed).",
    ["kind", "event"],
)
SCANNER_OPEN_OPPORTUNITIES: Final = Gauge(
    "arb_scanner_open_opportunities",
    "Opportunities open now, by kind.",
    ["kind"],
    multiprocess_mode="livesum",
)
SCANNER_NET_EDGE_BPS: Final = Histogram(
    "arb_scanner_net_edge_bps",
    "Net edge (after fees, gas and slippage) of each opportunity when it opened, in basis points, by kind.",
    ["kind"],
    buckets=(0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 75.0, 100.0, 150.0, 200.0),
)

# --- executor (arb.executor) -----------------------------------------------------------------------------------------

EXECUTOR_EXECUTIONS: Final = Counter(
    "arb_executor_executions_total",
    "Executions that ended, by outcome: done (legs filled equal), hedged (a residual was closed), failed (nothing "
    "filled), escalated (a residual could not be closed; kill switch engaged), aborted (refused before any order).",
    ["outcome"],
)
EXECUTOR_LEG_LATENCY_SECONDS: Final = Histogram(
    "arb_executor_leg_latency_seconds",
    "Per venue: time from an order being sent to the venue's acknowledgement (order ack latency).",
    ["venue"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
EXECUTOR_SLIPPAGE_BPS: Final = Histogram(
    "arb_executor_slippage_bps",
    "Predicted net edge minus realized edge of each completed execution, in basis points (negative: better than "
    "predicted).",
    buckets=(-100.0, -50.0, -25.0, -10.0, -5.0, -2.0, -1.0, 0.0, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0),
)
EXECUTOR_REALIZED_PNL_USD: Final = Gauge(
    "arb_executor_realized_pnl_usd",
    "Realized PnL of this process's executions since it started, in USD (summed over processes).",
    multiprocess_mode="sum",
)

# --- risk (arb.risk) -------------------------------------------------------------------------------------------------

RISK_TRADING_STATE: Final = Gauge(
    "arb_risk_trading_state",
    "1 for the risk engine's current trading state, 0 for the others; state in active, reducing, halted.",
    ["state"],
    multiprocess_mode="mostrecent",
)
RISK_KILL_SWITCH: Final = Gauge(
    "arb_risk_kill_switch",
    "1 while the kill switch is engaged (trading state halted), 0 otherwise (alert: KillSwitchEngaged).",
    multiprocess_mode="max",
)
RISK_DENIALS: Final = Counter(
    "arb_risk_denials_total",
    "Orders the risk engine denied, by reason (the check's code, `arb.risk.checks.DenyReason`).",
    ["reason"],
)

# --- API (arb.api) ---------------------------------------------------------------------------------------------------
# `route` is the route template (`/api/v1/arbitrage/executions/{execution_id}`), never the raw path, so ids do not
# become series; requests that match no route are counted under route `unmatched`.

API_REQUESTS: Final = Counter(
    "arb_api_requests_total",
    "API requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
API_REQUEST_SECONDS: Final = Histogram(
    "arb_api_request_seconds",
    "API request latency (first byte in to last byte out), by route template and method.",
    ["route", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
