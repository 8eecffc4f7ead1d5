"""`arb run`'s live trading panel: what a trader reads while it runs must match the outcomes the loop holds."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

from rich.console import Console

from arb.demo import _executions_view
from arb.executor.engine import Outcome
from arb.risk.checks import TradingState


def outcome(status: str, pnl: str | None, **kw: object) -> Outcome:
    return Outcome(
        execution_id="e", opportunity_id="o", instrument="BTC/USD", buy_venue="binance", sell_venue="okx",
        status=status, realized_pnl_usd=None if pnl is None else Decimal(pnl), **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def render(outcomes: list[Outcome], state: TradingState = TradingState.ACTIVE) -> str:
    session = SimpleNamespace(
        loop=SimpleNamespace(outcomes=outcomes, offered=len(outcomes) + 2, in_flight=1),
        executor=SimpleNamespace(mode="paper"),
        risk=SimpleNamespace(state=state),
    )
    console = Console(record=True, width=200)
    console.print(_executions_view(session, order_faults=3))  # type: ignore[arg-type]
    return console.export_text()


def test_the_panel_totals_the_outcomes_and_shows_the_trading_state() -> None:
    text = render(
        [
            outcome("done", "1.25", amount=Decimal("0.01"), predicted_bps=21.0, realized_bps=20.5),
            outcome("hedged", "-0.25", hedge="unwound on binance"),
            outcome("aborted", None, reason="risk: stale_quote"),
        ],
        TradingState.REDUCING,
    )
    assert "done 1" in text
    assert "hedged 1" in text
    assert "aborted 1" in text
    assert "realized 1.00 USD" in text
    assert "trading state REDUCING" in text
    assert "in flight 1" in text
    assert "unwound on binance" in text
    assert "risk: stale_quote" in text
    assert "20.5" in text


def test_only_the_newest_eight_are_listed_newest_first() -> None:
    outcomes = [outcome("done", "0", amount=Decimal(k + 1)) for k in range(12)]
    text = render(outcomes)
    rows = [line for line in text.splitlines() if "BTC/USD" in line]
    assert len(rows) == 8
    assert " 12 " in rows[0]
    assert " 5 " in rows[-1]
    assert "done 12" in text
