"""The money of the directional layer: fees, slippage, liquidation price and the RL reward, as pure functions.

Why one module of plain functions: the gym env trains on these numbers and the backtest (`arb.backtest.directional`)
judges on them, so an agent is never evaluated on cheaper trading than it learnt with. Everything here is a float in,
float out, with no state, so each formula is tested by hand.
"""

from __future__ import annotations

import math

from arb.config.schema import RewardWeights, RLSettings

__all__ = ["fee", "liquidation_price", "reward", "slippage", "trade_cost"]


def fee(traded_notional: float, rate: float) -> float:
    """Exchange fee on a trade: |notional| · rate (the sign of the notional is the side, not the size)."""
    if not math.isfinite(traded_notional):
        raise ValueError(f"traded_notional must be finite, got {traded_notional}")
    if not (math.isfinite(rate) and rate >= 0.0):
        raise ValueError(f"fee rate must be a finite number >= 0, got {rate}")
    return abs(traded_notional) * rate


def slippage(traded_notional: float, bps: float, ref_notional: float) -> float:
    """Cost of walking the book: |n| · bps/1e4 · sqrt(|n| / ref_notional).

    Why square root: market impact grows roughly with the square root of size (the usual empirical law), so a trade
    of `ref_notional` slips exactly `bps`, four times that size slips twice the bps.
    """
    if not math.isfinite(traded_notional):
        raise ValueError(f"traded_notional must be finite, got {traded_notional}")
    if not (math.isfinite(bps) and bps >= 0.0):
        raise ValueError(f"slippage bps must be a finite number >= 0, got {bps}")
    if not (math.isfinite(ref_notional) and ref_notional > 0.0):
        raise ValueError(f"slippage ref_notional must be a finite number > 0, got {ref_notional}")
    n = abs(traded_notional)
    return n * bps / 1e4 * math.sqrt(n / ref_notional)


def trade_cost(traded_notional: float, rl: RLSettings, *, maker: bool = False) -> float:
    """Fee plus slippage of one order of `traded_notional` (quote currency) under `rl`'s cost settings.

    `maker=True` charges the maker fee; the env and the backtest trade with market orders (taker) only, since a
    limit order's fill is not known from hourly candles. Slippage applies to both (a maker order is picked off when
    the price runs through it, which is the same adverse move).
    """
    rate = rl.maker_fee if maker else rl.taker_fee
    return fee(traded_notional, rate) + slippage(traded_notional, rl.slippage_bps, rl.slippage_ref_notional)


def liquidation_price(entry: float, side: int, leverage: float, maintenance_margin: float) -> float:
    """Price at which a position opened at `entry` with `leverage` is down to its maintenance margin.

    long: entry · (1 − 1/leverage + mm); short: entry · (1 + 1/leverage − mm). At that price the loss is
    notional · (1/leverage − mm): the margin put up, less the maintenance margin that must remain.

    The result is the formula's value as is: at leverage <= 1/(1 + mm) a long's price is <= 0 (it can never be
    liquidated), and `leverage=inf` (an account with no margin left) gives entry · (1 ± mm), just beside the entry.
    """
    if side not in (1, -1):
        raise ValueError(f"side must be 1 (long) or -1 (short), got {side!r}")
    if not (math.isfinite(entry) and entry > 0.0):
        raise ValueError(f"entry price must be a finite number > 0, got {entry}")
    if math.isnan(leverage) or leverage <= 0.0:
        raise ValueError(f"leverage must be > 0, got {leverage}")
    if not (math.isfinite(maintenance_margin) and 0.0 <= maintenance_margin < 1.0):
        raise ValueError(f"maintenance_margin must be in [0, 1), got {maintenance_margin}")
    if side == 1:
        return entry * (1.0 - 1.0 / leverage + maintenance_margin)
    return entry * (1.0 + 1.0 / leverage - maintenance_margin)


def reward(pnl: float, sharpe: float, drawdown: float, risk: float, step: int, weights: RewardWeights) -> float:
    """The RL reward of one step:

        reward = α·pnl + β·sharpe − (γ + ε·[step < early_steps])·drawdown − δ·risk

    with (α, β, γ, δ, ε, early_steps) = weights.(alpha, beta, gamma, delta, early_drawdown, early_steps), and, as the
    env computes them (`arb.strategy.rl.env`):
    - pnl: the step's change of marked equity as a fraction of the equity before the step (after all costs);
    - sharpe: a rolling Sharpe-like term of the step returns (an exponentially weighted mean / standard deviation,
      clipped to [-1, 1]);
    - drawdown: how much the drawdown from the equity peak grew this step (>= 0: the penalty adds up to the depth of
      every fall, and recovering is paid by the pnl term, not twice);
    - risk: the equity swing the position was exposed to, |position|·leverage·|bar return| (>= 0);
    - step: 0 for the first step of an episode; a drawdown in the first `early_steps` steps weighs ε more.
    """
    for name, value in (("pnl", pnl), ("sharpe", sharpe), ("drawdown", drawdown), ("risk", risk)):
        if not math.isfinite(value):
            raise ValueError(f"reward input {name} must be finite, got {value}")
    if drawdown < 0.0 or risk < 0.0:
        raise ValueError(f"drawdown and risk must be >= 0, got drawdown={drawdown} risk={risk}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    dd_weight = weights.gamma + (weights.early_drawdown if step < weights.early_steps else 0.0)
    return weights.alpha * pnl + weights.beta * sharpe - dd_weight * drawdown - weights.delta * risk
