"""Event-driven backtest of a directional policy over 1H bars, with the RL environment's own cost model.

    result = run(bars, decide, settings.strategy.rl, risk=settings.strategy.risk)
    figures = compare(bars, decide, settings.strategy.rl, settings.strategy.risk)

Why its own loop and not the gym env: the env is a training device (random starts, episodes, reward shaping); a
backtest must walk every bar once, in order, with stops, and say what each trade earned. What the two share is the
money: fees, slippage and the liquidation price all come from `arb.strategy.rl.costs`, so a strategy is never judged
on cheaper trading than it was trained on.

Conventions (the contract's decision convention):
- `decide(t, position)` is called at the CLOSE of bar t, with `position` the target level now held (in [-1, 1], 0
  after a forced exit), and returns the target for bar t+1; it must use data of bars <= t only. The engine itself
  reads bar t+1 only while walking bar t+1.
- A target p is a position of notional p · leverage · equity (equity marked at the close of t), filled at close[t]
  as a taker; fees and slippage (`costs.trade_cost` on the traded notional) are paid from the account. A flip is one
  order (its cost split between the closed and the opened trade by quantity). An unchanged target trades nothing:
  the quantity is held, as on an exchange, and its share of equity drifts with the price.
- `equity[i]` is the account marked at the close of bar start+i BEFORE the trade made at that close; `equity[0]` is
  the starting capital, so the cost of a trade shows in the bar it is held over. `positions[i]` is the target held
  over bar start+i (`positions[0]` = 0).
- Forced exits inside bar t+1 (checked against its open/high/low): liquidation at `costs.liquidation_price(entry,
  side, leverage, maintenance_margin)` with the position's effective leverage (notional / account); with `risk`
  given, a stop at entry ∓ atr_stop_multiple·ATR, a trailing stop at trailing_stop_multiple·ATR behind the best
  price since entry (best of the bars BEFORE the one being checked: the order of high and low inside a bar is
  unknown) and a take-profit at entry ± take_profit_multiple·ATR, ATR taken at the entry bar. An adverse level is
  filled at its price, or at the open if the bar opens through it (gap); the take-profit is filled at its limit
  price, never better; a bar that touches both an adverse level and the take-profit is read as hitting the adverse
  one first (conservative). Exit orders pay taker costs. After a forced exit the book stays flat while the policy
  keeps asking for the target it had; any other target is obeyed.
- Stops are set when a trade opens (from flat or on a flip); resizing the same side keeps them.
- At the last bar an open trade is closed at its close with reason `end` WITHOUT an exit cost (it is marked, not
  sold): buy-and-hold returns the price return minus one entry cost.
- An account marked at or below 0 is ruined: the position is closed (`liquidation`), equity stays 0, no more trades.

Baselines, over the same engine and costs (same leverage and liquidation, but no ATR stops: buy-and-hold with a stop
would not be buy-and-hold): `buy_and_hold` (target +1 from the first bar) and `sma_crossover` (target +1 while the
fast SMA is above the slow one, else 0: long/flat, as the classic rule; 0 during the indicators' warm-up).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
import numpy as np
import pandas as pd

from arb.backtest import metrics as metrics_mod
from arb.backtest.metrics import Metrics
from arb.config.schema import DirectionalRisk, RLSettings

Decide = Callable[[int, float], float]
"""decide(t, position) -> target in [-1, 1], from data of bars <= t."""

COLUMNS: Final = ("open", "high", "low", "close")
BASELINES: Final = ("buy_and_hold", "sma_crossover")
SECONDS_PER_YEAR: Final = 365.0 * 86400.0


class Trade(msgspec.Struct, frozen=True, kw_only=True):
    """One round trip, from opening a side to flat (or the other side). Times are bar CLOSE times (UTC): a forced
    exit happened inside the bar that closes at `exit_time`."""

    side: int
    """+1 long, -1 short."""
    size: float
    """|target| at entry."""
    entry_bar: int
    exit_bar: int
    """Positional indices into the bars: the bar at whose close (or, forced exits, inside which) it happened."""
    entry_time: str
    exit_time: str
    entry_price: float
    """Quantity-weighted average of the entry fills."""
    exit_price: float
    """Quantity-weighted average of the exit fills."""
    pnl: float
    """Net of every fee and slippage the trade paid."""
    costs: float
    reason: str
    """How it ended: signal, stop, take_profit, trailing, liquidation or end."""


@dataclass(frozen=True)
class BacktestResult:
    ts: pd.DatetimeIndex
    """Open time of each bar of the curve (equity[i] is marked at the close of bar ts[i])."""
    equity: np.ndarray
    positions: np.ndarray
    trades: list[Trade]
    metrics: Metrics
    periods_per_year: float
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": _iso(self.ts[0]),
            "end": _iso(self.ts[-1]),
            "bars": len(self.ts),
            "metrics": self.metrics.to_dict(),
            "trades": msgspec.to_builtins(self.trades),
        }


@dataclass
class _Open:
    """The trade being held."""

    side: int
    size: float
    entry_bar: int
    entry_value: float
    entry_qty: float
    realized: float = 0.0
    costs: float = 0.0
    exit_value: float = 0.0
    exit_qty: float = 0.0
    # Levels in the trade's signed price space (price · side), so one rule serves both sides: adverse is lower.
    liq: float = -math.inf
    stop: float = -math.inf
    take: float = math.inf
    trail: float = math.inf
    """Distance of the trailing stop behind `best`."""
    best: float = -math.inf


@dataclass
class _Book:
    cash: float
    qty: float = 0.0
    avg: float = 0.0
    target: float = 0.0
    trade: _Open | None = None
    blocked: float | None = None
    ruined: bool = False
    trades: list[tuple[_Open, int, float, str]] = field(default_factory=list)

    def mark(self, price: float) -> float:
        return self.cash + self.qty * (price - self.avg)


def _iso(ts: pd.Timestamp) -> str:
    return str(ts.isoformat())


def _check_bars(bars: pd.DataFrame) -> None:
    missing = [c for c in COLUMNS if c not in bars.columns]
    if missing:
        raise ValueError(f"bars lack column(s) {missing}")
    if not isinstance(bars.index, pd.DatetimeIndex) or bars.index.tz is None:
        raise ValueError("bars must be indexed by a tz-aware UTC DatetimeIndex (bar open times)")
    if not bars.index.is_monotonic_increasing or bars.index.has_duplicates:
        raise ValueError("bar times must be strictly increasing")
    values = bars[list(COLUMNS)].to_numpy(dtype=np.float64)
    bad = ~np.all(np.isfinite(values) & (values > 0), axis=1) | (values[:, 1] < values[:, 2])
    if bad.any():
        raise ValueError(f"bar {bars.index[int(np.argmax(bad))]} has a non-positive, non-finite or high < low price")


def periods_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per year from the median bar spacing (8760 for hourly bars)."""
    if len(index) < 2:
        return metrics_mod.HOURS_PER_YEAR
    step = float(np.median(np.diff(index.as_unit("ns").asi8))) / 1e9
    return SECONDS_PER_YEAR / step


class _Engine:
    def __init__(
        self, bars: pd.DataFrame, decide: Decide, rl: RLSettings, risk: DirectionalRisk | None, atr: np.ndarray | None
    ) -> None:
        from arb.strategy.rl import costs  # the env's money: imported here so metrics-only users need no ML extra

        self.costs = costs
        # Python floats: the loop is scalar, and Trade fields must be plain floats for JSON
        self.o, self.h, self.l, self.c = (bars[k].to_numpy(dtype=np.float64).tolist() for k in COLUMNS)
        self.decide = decide
        self.rl = rl
        self.risk = risk
        self.atr = None if atr is None else atr.tolist()
        self.book = _Book(cash=rl.initial_equity)

    def run(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        n = end - start
        equity = np.empty(n)
        positions = np.zeros(n)
        equity[0] = self.book.cash
        for t in range(start, end):
            if t > start:
                positions[t - start] = self.book.target
                equity[t - start] = self._walk_bar(t)
            if t < end - 1 and not self.book.ruined:
                self._decide(t)
        if self.book.trade is not None:
            self._close(self.book.trade, end - 1, self.c[end - 1], 0.0, "end")
        return equity, positions

    # --- one bar -------------------------------------------------------------------------------------------------
    def _walk_bar(self, t: int) -> float:
        b = self.book
        if b.trade is not None:
            hit = self._forced_exit(b.trade, t)
            if hit is not None:
                b.blocked = b.target
                self._exit(b.trade, t, *hit)
        value = b.mark(self.c[t])
        if value <= 0.0 and not b.ruined:
            if b.trade is not None:
                self._exit(b.trade, t, self.c[t], "liquidation")
            b.cash, b.ruined = 0.0, True
            return 0.0
        if b.trade is not None:
            s = b.trade.side
            b.trade.best = max(b.trade.best, s * (self.h[t] if s > 0 else self.l[t]))
        return max(value, 0.0)

    def _forced_exit(self, tr: _Open, t: int) -> tuple[float, str] | None:
        """The fill price and reason of a forced exit inside bar t, in real prices; None if nothing is hit."""
        s = tr.side
        o = s * self.o[t]
        lo = s * (self.l[t] if s > 0 else self.h[t])
        hi = s * (self.h[t] if s > 0 else self.l[t])
        level, reason = tr.liq, "liquidation"
        trailing = tr.best - tr.trail
        stop, stop_reason = (trailing, "trailing") if trailing > tr.stop else (tr.stop, "stop")
        if stop >= level:
            level, reason = stop, stop_reason
        if o <= level:
            return s * o, reason
        if lo <= level:
            return s * level, reason
        if hi >= tr.take:
            return s * tr.take, "take_profit"
        return None

    # --- decisions -----------------------------------------------------------------------------------------------
    def _decide(self, t: int) -> None:
        b = self.book
        target = float(self.decide(t, b.target))
        if not (math.isfinite(target) and -1.0 <= target <= 1.0):
            raise ValueError(f"decide({t}, {b.target}) returned {target!r}; a target must be a number in [-1, 1]")
        if b.blocked is not None:
            if target == b.blocked:
                return
            b.blocked = None
        if target == b.target:
            return
        price = self.c[t]
        desired = target * self.rl.leverage * b.mark(price) / price
        self._trade(t, desired, price, abs(target))
        b.target = target

    def _trade(self, t: int, desired: float, price: float, size: float) -> None:
        b = self.book
        tr = b.trade
        delta = desired - b.qty
        cost = self.costs.trade_cost(abs(delta) * price, self.rl)
        if tr is None:
            self._open(t, desired, price, cost, size)
        elif desired == 0.0 or (desired > 0) != (tr.side > 0):
            closing = abs(b.qty) / abs(delta)
            self._close(tr, t, price, cost * closing, "signal")
            if desired != 0.0:
                self._open(t, desired, price, cost * (1.0 - closing), size)
        else:
            self._resize(tr, desired, price, cost)

    def _exit(self, tr: _Open, t: int, price: float, reason: str) -> None:
        cost = self.costs.trade_cost(abs(self.book.qty) * price, self.rl)
        self._close(tr, t, price, cost, reason)
        self.book.target = 0.0

    # --- bookkeeping -----------------------------------------------------------------------------------------------
    def _open(self, t: int, qty: float, price: float, cost: float, size: float) -> None:
        b = self.book
        side = 1 if qty > 0 else -1
        tr = _Open(side=side, size=size, entry_bar=t, entry_value=abs(qty) * price, entry_qty=abs(qty), costs=cost)
        b.cash -= cost
        b.qty, b.avg, b.trade = qty, price, tr
        if self.risk is not None and self.atr is not None:
            a = self.atr[t]
            tr.stop = side * price - self.risk.atr_stop_multiple * a
            tr.take = side * price + self.risk.take_profit_multiple * a
            tr.trail = self.risk.trailing_stop_multiple * a
        tr.best = side * price
        self._set_liq(tr)

    def _resize(self, tr: _Open, desired: float, price: float, cost: float) -> None:
        b = self.book
        if abs(desired) > abs(b.qty):
            added = abs(desired - b.qty)
            b.avg = (abs(b.qty) * b.avg + added * price) / abs(desired)
            tr.entry_value += added * price
            tr.entry_qty += added
        else:
            realized = (b.qty - desired) * (price - b.avg)
            b.cash += realized
            tr.realized += realized
            tr.exit_value += abs(b.qty - desired) * price
            tr.exit_qty += abs(b.qty - desired)
        b.cash -= cost
        tr.costs += cost
        b.qty = desired
        self._set_liq(tr)

    def _set_liq(self, tr: _Open) -> None:
        """Liquidation where the account is down to the maintenance margin of the notional held: the contract's
        formula with the position's effective leverage (notional at the average entry / account at that price)."""
        b = self.book
        lev = abs(b.qty) * b.avg / b.cash if b.cash > 0 else math.inf
        tr.liq = tr.side * self.costs.liquidation_price(b.avg, tr.side, lev, self.rl.maintenance_margin)

    def _close(self, tr: _Open, t: int, price: float, cost: float, reason: str) -> None:
        b = self.book
        realized = b.qty * (price - b.avg)
        b.cash += realized - cost
        tr.realized += realized
        tr.costs += cost
        tr.exit_value += abs(b.qty) * price
        tr.exit_qty += abs(b.qty)
        b.trades.append((tr, t, tr.realized - tr.costs, reason))
        b.qty, b.avg, b.trade = 0.0, 0.0, None


def _atr(bars: pd.DataFrame, atr: np.ndarray | None, start: int, end: int) -> np.ndarray:
    if atr is None:
        from arb.strategy.features import indicators

        atr = indicators(bars)["atr"].to_numpy(dtype=np.float64)
    atr = np.asarray(atr, dtype=np.float64)
    if atr.shape != (len(bars),):
        raise ValueError(f"atr has shape {atr.shape}, the bars are {len(bars)}")
    window = atr[start : end - 1]
    bad = ~np.isfinite(window) | (window < 0)
    if bad.any():
        i = start + int(np.argmax(bad))
        raise ValueError(
            f"ATR at bar {i} ({bars.index[i]}) is {atr[i]}: stops need a finite ATR at every decision bar "
            "(start the backtest after the indicators' warm-up)"
        )
    return atr


def run(
    bars: pd.DataFrame,
    decide: Decide,
    rl: RLSettings,
    *,
    risk: DirectionalRisk | None = None,
    start: int = 0,
    end: int | None = None,
    atr: np.ndarray | None = None,
) -> BacktestResult:
    """Backtest `decide` over bars[start:end] (conventions: module docstring). `risk` turns the ATR stops on; `atr`
    overrides `arb.strategy.features.indicators(bars)["atr"]` (one value per bar)."""
    _check_bars(bars)
    end = len(bars) if end is None else end
    if not 0 <= start < end <= len(bars) or end - start < 2:
        raise ValueError(f"start={start}, end={end} over {len(bars)} bars: need 0 <= start, start + 2 <= end <= bars")
    engine = _Engine(bars, decide, rl, risk, _atr(bars, atr, start, end) if risk is not None else None)
    equity, positions = engine.run(start, end)
    index = pd.DatetimeIndex(bars.index)
    ppy = periods_per_year(index)
    step = pd.Timedelta(seconds=SECONDS_PER_YEAR / ppy)
    trades = [
        Trade(
            side=tr.side,
            size=tr.size,
            entry_bar=tr.entry_bar,
            exit_bar=exit_bar,
            entry_time=_iso(index[tr.entry_bar] + step),
            exit_time=_iso(index[exit_bar] + step),
            entry_price=tr.entry_value / tr.entry_qty,
            exit_price=tr.exit_value / tr.exit_qty,
            pnl=pnl,
            costs=tr.costs,
            reason=reason,
        )
        for tr, exit_bar, pnl, reason in engine.book.trades
    ]
    m = metrics_mod.compute(equity, positions, np.array([x.pnl for x in trades]), ppy)
    return BacktestResult(index[start:end], equity, positions, trades, m, ppy, start, end)


# --- baselines ---------------------------------------------------------------------------------------------------
def buy_and_hold(bars: pd.DataFrame) -> Decide:
    """Long, full size, from the first decision to the end."""
    del bars
    return lambda t, position: 1.0


def sma_crossover(bars: pd.DataFrame) -> Decide:
    """Long while sma_fast > sma_slow (of `arb.strategy.features.indicators`), flat otherwise and during warm-up."""
    from arb.strategy.features import indicators

    ind = indicators(bars)
    signal = (ind["sma_fast"] > ind["sma_slow"]).to_numpy(dtype=bool)  # NaN compares False: flat in warm-up
    return lambda t, position: 1.0 if signal[t] else 0.0


@dataclass(frozen=True)
class Comparison:
    """A strategy and its baselines over the same bars and costs."""

    strategy: BacktestResult
    baselines: dict[str, BacktestResult]

    def to_dict(self) -> dict[str, Any]:
        """The CLI's JSON: {"strategy": metrics, "baselines": {name: metrics}} (+ the strategy's trades)."""
        return {
            "strategy": self.strategy.metrics.to_dict(),
            "baselines": {k: v.metrics.to_dict() for k, v in sorted(self.baselines.items())},
            "period": {
                "start": _iso(self.strategy.ts[0]),
                "end": _iso(self.strategy.ts[-1]),
                "bars": len(self.strategy.ts),
            },
            "trades": msgspec.to_builtins(self.strategy.trades),
        }


def run_baselines(
    bars: pd.DataFrame, rl: RLSettings, *, start: int = 0, end: int | None = None
) -> dict[str, BacktestResult]:
    return {
        "buy_and_hold": run(bars, buy_and_hold(bars), rl, start=start, end=end),
        "sma_crossover": run(bars, sma_crossover(bars), rl, start=start, end=end),
    }


def comparison(
    bars: pd.DataFrame,
    strategy_decide: Decide,
    rl: RLSettings,
    risk: DirectionalRisk | None,
    *,
    start: int | None = None,
    end: int | None = None,
) -> Comparison:
    """The strategy (with `risk`'s stops) and both baselines over bars[start:end]; `start` None: the first bar
    after the indicators' warm-up (`arb.strategy.features.WARMUP_BARS`), where ATR stops and SMAs exist."""
    if start is None:
        from arb.strategy.features import WARMUP_BARS

        start = WARMUP_BARS
    strategy = run(bars, strategy_decide, rl, risk=risk, start=start, end=end)
    return Comparison(strategy, run_baselines(bars, rl, start=start, end=end))


def compare(
    bars: pd.DataFrame,
    strategy_decide: Decide,
    rl: RLSettings,
    risk: DirectionalRisk | None,
    *,
    start: int | None = None,
    end: int | None = None,
) -> dict[str, Any]:
    """`comparison(...).to_dict()`: the strategy's metrics beside buy-and-hold's and the SMA crossover's."""
    return comparison(bars, strategy_decide, rl, risk, start=start, end=end).to_dict()
