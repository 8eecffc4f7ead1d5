"""Sim: local venues on 127.0.0.1 that speak real exchange protocols, for the demo, tests and benchmarks.

Why: no exchange is reachable from here, and users will point arb at the real ones, so the connectors are exercised
through the unmodified ccxt / ccxt.pro code against venues that follow each exchange's documented wire format, with a
market whose right answers are known (injected dislocations, recorded as ground truth) and faults on demand.

    settings = load_settings()
    async with SimExchangeGroup.from_settings(settings, ["binance", "okx"], truth=TruthLog("truth.jsonl")) as group:
        exchange = ccxt.pro.binance()
        point_at_local(exchange, *group.urls()["binance"])       # arb.connectors.urls
        group.market.inject("binance", "BTC/USD", bps=50, duration_ms=2000)
        group.venues["binance"].faults.skip_sequence()          # or POST /_sim/faults {"fault": "skip_sequence"}

Rooms: `market` (true prices, books, dislocations), `truth` (ground-truth sinks), `faults` (the per-venue fault
switchboard), `server` (the aiohttp framework: `SimVenue`, `SimExchangeGroup`, `Protocol`), `venues.<exchange>`
(one protocol module per wire format; `venues.protocol_for` picks one for a ccxt id).

Names are imported lazily (PEP 562) so importing `arb.sim` does not pull in aiohttp and numpy until they are used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from arb.lazy import lazy_getattr

if TYPE_CHECKING:
    from arb.sim.faults import Faults
    from arb.sim.market import (
        Book,
        BookUpdate,
        Dislocation,
        DislocationSchedule,
        InstrumentSpec,
        Market,
        MarketConfig,
    )
    from arb.sim.server import Connection, Protocol, SimExchangeGroup, SimVenue
    from arb.sim.truth import TRUTH_STREAM, TruthLog, read_truth_file, read_truth_stream
    from arb.sim.venues import BinanceProtocol, protocol_for

_EXPORTS = {
    "Faults": "arb.sim.faults",
    "Book": "arb.sim.market",
    "BookUpdate": "arb.sim.market",
    "Dislocation": "arb.sim.market",
    "DislocationSchedule": "arb.sim.market",
    "InstrumentSpec": "arb.sim.market",
    "Market": "arb.sim.market",
    "MarketConfig": "arb.sim.market",
    "Connection": "arb.sim.server",
    "Protocol": "arb.sim.server",
    "SimExchangeGroup": "arb.sim.server",
    "SimVenue": "arb.sim.server",
    "TRUTH_STREAM": "arb.sim.truth",
    "TruthLog": "arb.sim.truth",
    "read_truth_file": "arb.sim.truth",
    "read_truth_stream": "arb.sim.truth",
    "BinanceProtocol": "arb.sim.venues",
    "protocol_for": "arb.sim.venues",
}

__all__ = [
    "TRUTH_STREAM",
    "BinanceProtocol",
    "Book",
    "BookUpdate",
    "Connection",
    "Dislocation",
    "DislocationSchedule",
    "Faults",
    "InstrumentSpec",
    "Market",
    "MarketConfig",
    "Protocol",
    "SimExchangeGroup",
    "SimVenue",
    "TruthLog",
    "protocol_for",
    "read_truth_file",
    "read_truth_stream",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
