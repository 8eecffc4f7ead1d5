"""The directional paper book: positions opened and closed from signals, managed with stop-loss, take-profit and a
trailing stop on each new bar, booked in the ledger's `strategy_positions` (never in arbitrage inventory).

    book = PaperBook(StrategyStore(ledger), rl=settings.strategy.rl, venue="binance")
    await book.on_bar("BTC/USD", bar)           # stops first: the bar's range may have hit one
    await book.apply(signal)                     # then the signal at that bar's close

Fills use the same cost model as the RL environment and the backtest (`arb.strategy.rl.costs.trade_cost`: taker fee +
size-dependent slippage), so paper results, backtests and training agree on what a trade costs. A stop inside a bar
fills at the stop, or at the bar's open when the bar gapped through it (the conservative price).
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal

import msgspec

from arb.config.schema import RLSettings
from arb.ledger.strategy import PositionRecord, SignalRecord, StrategyStore
from arb.strategy.rl.costs import trade_cost

log = logging.getLogger(__name__)


class Bar(msgspec.Struct, frozen=True, kw_only=True):
    ts_ns: int
    open: float
    high: float
    low: float
    close: float


def _d(x: float) -> Decimal:
    return Decimal(repr(float(x)))


class PaperBook:
    """One venue's directional paper positions (at most one per asset)."""

    def __init__(self, store: StrategyStore, *, rl: RLSettings, venue: str) -> None:
        self._store = store
        self._rl = rl
        self._venue = venue

    async def open_positions(self) -> dict[str, PositionRecord]:
        return {p.asset: p for p in await self._store.positions(open_only=True)}

    async def on_bar(self, asset: str, bar: Bar) -> PositionRecord | None:
        """Apply one new bar to the asset's open position: close it at a stop / take-profit the bar reached, else
        trail the stop behind the bar's best price. Returns the closed position, if one closed."""
        position = (await self.open_positions()).get(asset)
        if position is None or bar.ts_ns <= position.opened_ns:
            return None
        long = position.side == "buy"
        stop, tp = float(position.stop), float(position.take_profit)
        if long and bar.low <= stop:
            return await self._close(position, min(stop, bar.open), "stop", bar.ts_ns)
        if not long and bar.high >= stop:
            return await self._close(position, max(stop, bar.open), "stop", bar.ts_ns)
        if long and bar.high >= tp:
            return await self._close(position, max(tp, bar.open), "take_profit", bar.ts_ns)
        if not long and bar.low <= tp:
            return await self._close(position, min(tp, bar.open), "take_profit", bar.ts_ns)
        trail = float(position.trail_distance)
        moved = max(stop, bar.high - trail) if long else min(stop, bar.low + trail)
        if moved != stop:
            await self._store.update_stop(position.id, _d(moved))
        return None

    async def apply(self, signal: SignalRecord, *, trading_state: str = "active") -> PositionRecord | None:
        """Act on a stored signal (it needs its ledger id): close an open position it contradicts, open one it sizes.
        Returns the position opened, if any. The trading state is the arbitrage engine's (`arb kill-switch`): while it
        is not `active` a signal still closes positions but opens none, as the risk engine lets only reducing orders
        through then."""
        if signal.id <= 0:
            raise ValueError("apply a signal after the ledger stored it (it has no id)")
        position = (await self.open_positions()).get(signal.asset)
        side = {1: "buy", -1: "sell"}.get(signal.direction)
        if position is not None and position.side != side:
            await self._close(position, signal.price, "signal", signal.bar_ns)
            position = None
        if position is not None or side is None or signal.size <= 0 or signal.stop is None:
            return None
        if trading_state != "active":
            log.warning(
                "strategy.open_refused asset=%s side=%s reason=trading_state_%s", signal.asset, side, trading_state
            )
            return None
        notional = signal.size * signal.price
        opened = PositionRecord(
            id=f"d-{signal.model_id}-{signal.asset}-{signal.bar_ns}",
            asset=signal.asset,
            venue=self._venue,
            side=side,
            amount=_d(signal.size),
            entry_price=_d(signal.price),
            stop=_d(signal.stop),
            take_profit=_d(signal.take_profit if signal.take_profit is not None else signal.price),
            trail_distance=_d(abs(signal.price - signal.stop)),
            opened_ns=signal.bar_ns,
            signal_id=signal.id,
            fees=_d(trade_cost(notional, self._rl)),
        )
        await self._store.open_position(opened)
        log.info(
            "strategy.position_opened asset=%s side=%s amount=%.8g price=%.8g stop=%.8g",
            opened.asset, side, signal.size, signal.price, signal.stop,
        )  # fmt: skip
        return opened

    async def _close(self, position: PositionRecord, price: float, reason: str, ts_ns: int) -> PositionRecord:
        amount = float(position.amount)
        sign = 1.0 if position.side == "buy" else -1.0
        exit_cost = trade_cost(amount * price, self._rl)
        fees = float(position.fees) + exit_cost
        pnl = sign * amount * (price - float(position.entry_price)) - fees
        await self._store.close_position(
            position.id, exit_price=_d(price), reason=reason, realized_pnl=_d(pnl), fees=_d(fees),
            ts_ns=ts_ns or time.time_ns(),
        )  # fmt: skip
        log.info("strategy.position_closed asset=%s reason=%s price=%.8g pnl=%.2f", position.asset, reason, price, pnl)
        return msgspec.structs.replace(
            position, exit_price=_d(price), close_reason=reason, realized_pnl=_d(pnl), fees=_d(fees), closed_ns=ts_ns
        )
