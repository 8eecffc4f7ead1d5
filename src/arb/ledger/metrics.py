"""Prometheus metrics of the ledger (same conventions as `arb.metrics`: `arb_<room>_<what>_<unit>`, small closed
label sets). Kept in this room while the ledger is young; `arb.metrics` may re-export them."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

LEDGER_EVENTS_WRITTEN: Final = Counter(
    "arb_ledger_events_written_total",
    "Opportunity events committed to the ledger as a row of opportunity_events, by type (opened, updated, closed).",
    ["type"],
)
LEDGER_EVENTS_COALESCED: Final = Counter(
    "arb_ledger_events_coalesced_total",
    "`updated` events without a row of their own because a later update of the same opportunity in the same batch "
    "superseded them (by design: at most one `updated` row per opportunity per batch; the opportunity's row still "
    "ends at its latest state).",
)
LEDGER_EVENTS_DROPPED: Final = Counter(
    "arb_ledger_events_dropped_total",
    "Opportunity events lost, by reason: `overflow` (pending events hit the writer's bound during a database outage; "
    "only `updated` ones go, superseded ones first), `refused` (the database rejected an opportunity's data; a bug, "
    "logged as an error), `shutdown` (the database was still unavailable when the writer closed). Alert on any.",
    ["reason"],
)
LEDGER_WRITE_FAILURES: Final = Counter(
    "arb_ledger_write_failures_total",
    "Ledger write transactions that failed and are retried (database unreachable, locked, too slow). The events are "
    "kept; a rate > 0 for long means the pending buffer is filling.",
)
LEDGER_WRITER_PENDING: Final = Gauge(
    "arb_ledger_writer_pending",
    "Opportunity events waiting to be written (sampled at each flush attempt; the last writer to flush sets it).",
    multiprocess_mode="mostrecent",
)
LEDGER_WRITE_SECONDS: Final = Histogram(
    "arb_ledger_write_seconds",
    "Time of one ledger write transaction (a batch of up to max_batch events), successful or not.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
