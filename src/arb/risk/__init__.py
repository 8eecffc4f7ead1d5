"""The risk engine: the gate between a decision and an order (DESIGN: `scanner -> (risk) -> executor`).

* `arb.risk.checks`: `check(request, context, limits, state=, now_ns=) -> Approved | Denied`, the pure pre-trade check
  with its coded `DenyReason`s, and the `TradingState` ACTIVE / REDUCING / HALTED it runs under;
* `arb.risk.engine`: `RiskEngine`, the check under a persisted trading state (kill switch), denials as events;
* `arb.risk.store`: the records it persists and the `TradingStateStore` / `RiskEventSink` interfaces the ledger
  implements (in-memory versions for tests);
* `arb.risk.portfolio`: VaR, max drawdown, capped Kelly fraction, exposure by venue and asset (numpy);
* `arb.risk.reference`: the same check written naively, the oracle for tests and the benchmark's baseline.
"""

from arb.risk.checks import (
    Approved,
    Denied,
    DenyReason,
    OrderIntent,
    OrderRequest,
    RiskContext,
    RiskLimits,
    TradingState,
    account_check,
    check,
    required_funds,
)
from arb.risk.engine import RiskEngine
from arb.risk.store import (
    DenialRecord,
    MemoryEventSink,
    MemoryStateStore,
    RiskEventSink,
    TradingStateRecord,
    TradingStateStore,
)

__all__ = [
    "Approved",
    "DenialRecord",
    "Denied",
    "DenyReason",
    "MemoryEventSink",
    "MemoryStateStore",
    "OrderIntent",
    "OrderRequest",
    "RiskContext",
    "RiskEngine",
    "RiskEventSink",
    "RiskLimits",
    "TradingState",
    "TradingStateRecord",
    "TradingStateStore",
    "account_check",
    "check",
    "required_funds",
]
