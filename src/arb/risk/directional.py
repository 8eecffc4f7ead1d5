"""Position sizing of directional signals: a fixed fraction of equity at risk to an ATR stop, capped by Kelly,
leverage, the number of open positions and a daily loss stop (`strategy.risk`, the spec's "strict risk rules").

    sizing = size_position(direction=1, confidence=0.62, price=100.0, atr=2.0, rules=settings.strategy.risk,
                           book=DirectionalBook(equity=10_000, day_start_equity=10_000))

Why risk-to-stop sizing: the loss if the stop is hit is what a user sets ("1 % of equity per trade"), whatever the
asset's volatility; the ATR stop widens in volatile markets and the size shrinks with it. Kelly (from the signal's
confidence as the win probability and take-profit / stop as the payoff ratio) only ever lowers that fraction: a weak
signal stakes less, a signal with no edge stakes nothing.
"""

from __future__ import annotations

import math

import msgspec

from arb.config.schema import DirectionalRisk
from arb.risk.portfolio import kelly_fraction


class DirectionalBook(msgspec.Struct, frozen=True, kw_only=True):
    """The directional book's state when a signal is sized (separate from arbitrage inventory)."""

    equity: float
    day_start_equity: float
    open_positions: int = 0
    open_notional_usd: float = 0.0


class Sizing(msgspec.Struct, frozen=True, kw_only=True):
    """What to open: `size` in base units (0: nothing, `reason` says why), its USD notional, stop, take-profit and
    trailing distance in price units, and the fraction of equity at risk to the stop."""

    direction: int
    size: float
    notional_usd: float
    stop: float | None
    take_profit: float | None
    trail_distance: float | None
    risk_fraction: float
    reason: str


def _none(direction: int, reason: str) -> Sizing:
    return Sizing(
        direction=direction, size=0.0, notional_usd=0.0, stop=None, take_profit=None, trail_distance=None,
        risk_fraction=0.0, reason=reason,
    )  # fmt: skip


def size_position(
    *, direction: int, confidence: float, price: float, atr: float, rules: DirectionalRisk, book: DirectionalBook
) -> Sizing:
    """Size one new position. Reasons for no position: `flat` (direction 0), `low_confidence`, `daily_loss_stop`,
    `max_open_positions`, `no_edge` (Kelly ≤ 0), `leverage_cap` (no room left); `sized` or `leverage_capped` else."""
    if direction not in (-1, 0, 1):
        raise ValueError(f"direction: must be -1, 0 or 1, got {direction}")
    for name, value in (("price", price), ("atr", atr), ("equity", book.equity)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name}: must be a positive finite number, got {value}")
    if not 0.0 <= confidence <= 1.0:
        raise ValueError(f"confidence: must be in [0, 1], got {confidence}")
    if direction == 0:
        return _none(0, "flat")
    if confidence < rules.min_confidence:
        return _none(direction, "low_confidence")
    if book.equity - book.day_start_equity <= -rules.daily_loss_stop * book.day_start_equity:
        return _none(direction, "daily_loss_stop")
    if book.open_positions >= rules.max_open_positions:
        return _none(direction, "max_open_positions")
    stop_distance = rules.atr_stop_multiple * atr
    payoff = rules.take_profit_multiple / rules.atr_stop_multiple
    kelly = kelly_fraction(confidence, payoff, cap=rules.kelly_cap)
    if kelly <= 0.0:
        return _none(direction, "no_edge")
    risk_fraction = min(rules.risk_per_trade, kelly)
    size = book.equity * risk_fraction / stop_distance
    room = rules.leverage_cap * book.equity - book.open_notional_usd
    if room <= 0.0:
        return _none(direction, "leverage_cap")
    reason = "sized"
    if size * price > room:
        size, reason = room / price, "leverage_capped"
        risk_fraction = size * stop_distance / book.equity
    return Sizing(
        direction=direction,
        size=size,
        notional_usd=size * price,
        stop=price - direction * stop_distance,
        take_profit=price + direction * rules.take_profit_multiple * atr,
        trail_distance=rules.trailing_stop_multiple * atr,
        risk_fraction=risk_fraction,
        reason=reason,
    )
