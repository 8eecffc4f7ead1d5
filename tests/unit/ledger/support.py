"""Builders for the ledger's tests: opportunities and their lifecycle events with sound defaults."""

from __future__ import annotations

from arb.model import Opportunity, OpportunityEvent, OpportunityEventType

NS = 1_700_000_000_000_000_000
MS = 1_000_000


def opportunity(id: str = "opp-1", *, net_edge: float = 0.002, **over: object) -> Opportunity:
    fields: dict[str, object] = {
        "kind": "spot",
        "instrument": "BTC/USDT",
        "buy_venue": "binance",
        "sell_venue": "kraken",
        "quote_currency": "USDT",
        "size": 0.5,
        "notional": 50_000.0,
        "best_ask_buy": 100_000.0,
        "best_bid_sell": 100_300.0,
        "vwap_buy": 100_000.0,
        "vwap_sell": 100_250.0,
        "gross_spread": 0.003,
        "fee_buy": 0.0001,
        "fee_sell": 0.0002,
        "gas": 0.0,
        "haircut": 0.0001,
        "slippage": 0.0005,
        "profit": net_edge * 50_000.0,
        "expected_profit": net_edge * 50_000.0 * 0.9,
        "decay": 0.9,
        "liquidity_score": 0.8,
        "execution_time_s": 0.25,
        "risk_factor": 1.5,
        "priority": net_edge * 50_000.0 * 0.9 * 0.8 / (0.25 * 1.5),
        "buy_quote_age_ms": 3.5,
        "sell_quote_age_ms": 7.25,
        "transfer_cost": 1.5,
        "wallet": "open",
        "ts": NS,
    }
    fields.update(over)
    return Opportunity(id=id, net_edge=net_edge, **fields)  # type: ignore[arg-type]


def event(
    type: OpportunityEventType,
    id: str = "opp-1",
    *,
    ts: int = NS,
    opened_ns: int = NS,
    net_edge: float = 0.002,
    peak: float | None = None,
    updates: int = 0,
    close_reason: str = "",
    **over: object,
) -> OpportunityEvent:
    return OpportunityEvent(
        type=type,
        opportunity=opportunity(id, net_edge=net_edge, ts=ts, **over),
        opened_ns=opened_ns,
        ts=ts,
        peak_net_edge=net_edge if peak is None else peak,
        updates=updates,
        close_reason=close_reason,
    )


def lifecycle(
    id: str = "opp-1", *, opened_ns: int = NS, edges: tuple[float, ...] = (0.002, 0.004, 0.003)
) -> list[OpportunityEvent]:
    """opened at edges[0], one update per further edge (1 ms apart), closed ("edge") 1 ms after the last, as the
    scanner would emit them (peak and update count carried along)."""
    events = [event("opened", id, ts=opened_ns, opened_ns=opened_ns, net_edge=edges[0])]
    peak = edges[0]
    for k, edge in enumerate(edges[1:], start=1):
        peak = max(peak, edge)
        events.append(
            event("updated", id, ts=opened_ns + k * MS, opened_ns=opened_ns, net_edge=edge, peak=peak, updates=k)
        )
    last = events[-1]
    events.append(
        event(
            "closed",
            id,
            ts=opened_ns + len(edges) * MS,
            opened_ns=opened_ns,
            net_edge=edges[-1],
            peak=peak,
            updates=last.updates,
            close_reason="edge",
        )
    )
    return events
