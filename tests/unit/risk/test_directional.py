"""Sizing a directional signal: equity at risk to an ATR stop, Kelly, leverage, open positions, daily loss stop."""

from __future__ import annotations

import pytest

from arb.config.schema import DirectionalRisk
from arb.risk.directional import DirectionalBook, size_position

RULES = DirectionalRisk()  # 1 % at risk, stop 2 ATR, take-profit 3 ATR, trail 2 ATR, Kelly cap 0.25, 3x, 5 positions
BOOK = DirectionalBook(equity=10_000.0, day_start_equity=10_000.0)


def test_one_percent_of_equity_is_lost_if_the_atr_stop_is_hit() -> None:
    s = size_position(direction=1, confidence=0.6, price=100.0, atr=2.0, rules=RULES, book=BOOK)

    # Kelly at p=0.6, b=3/2: 0.6 - 0.4/1.5 = 0.333 -> capped 0.25 > 1 %: risk 1 % = $100 over a $4 stop = 25 units
    assert s.reason == "sized"
    assert s.size == pytest.approx(25.0)
    assert s.notional_usd == pytest.approx(2_500.0)
    assert (s.stop, s.take_profit, s.trail_distance) == (96.0, 106.0, 4.0)
    assert s.size * (100.0 - s.stop) == pytest.approx(0.01 * BOOK.equity)


def test_a_short_puts_its_stop_above_and_its_target_below() -> None:
    s = size_position(direction=-1, confidence=0.6, price=100.0, atr=2.0, rules=RULES, book=BOOK)
    assert (s.stop, s.take_profit) == (104.0, 94.0)


def test_kelly_lowers_the_stake_of_a_weak_signal_and_refuses_one_without_edge() -> None:
    weak = DirectionalRisk(min_confidence=0.0)
    # p = 0.41, b = 1.5: Kelly 0.41 - 0.59/1.5 = 0.016667 > 1 %: still 1 %; p = 0.405 -> 0.008333 < 1 %
    s = size_position(direction=1, confidence=0.405, price=100.0, atr=2.0, rules=weak, book=BOOK)
    assert s.risk_fraction == pytest.approx(0.405 - 0.595 / 1.5)
    assert s.size == pytest.approx(10_000 * (0.405 - 0.595 / 1.5) / 4.0)
    assert size_position(direction=1, confidence=0.39, price=100.0, atr=2.0, rules=weak, book=BOOK).reason == "no_edge"


def test_leverage_cap_shrinks_the_position_to_the_room_left() -> None:
    tight = DirectionalRisk(leverage_cap=1.0)
    book = DirectionalBook(equity=10_000.0, day_start_equity=10_000.0, open_notional_usd=9_000.0)
    s = size_position(direction=1, confidence=0.6, price=100.0, atr=2.0, rules=tight, book=book)
    assert s.reason == "leverage_capped"
    assert s.notional_usd == pytest.approx(1_000.0)
    full = DirectionalBook(equity=10_000.0, day_start_equity=10_000.0, open_notional_usd=10_000.0)
    assert size_position(direction=1, confidence=0.6, price=100.0, atr=2.0, rules=tight, book=full).size == 0.0


@pytest.mark.parametrize(
    ("book", "confidence", "reason"),
    [
        (BOOK, 0.5, "low_confidence"),
        (DirectionalBook(equity=9_700.0, day_start_equity=10_000.0), 0.6, "daily_loss_stop"),
        (DirectionalBook(equity=10_000.0, day_start_equity=10_000.0, open_positions=5), 0.6, "max_open_positions"),
    ],
)
def test_rules_that_open_nothing_say_which(book: DirectionalBook, confidence: float, reason: str) -> None:
    s = size_position(direction=1, confidence=confidence, price=100.0, atr=2.0, rules=RULES, book=book)
    assert (s.size, s.reason) == (0.0, reason)


def test_a_loss_just_inside_the_daily_stop_still_trades() -> None:
    book = DirectionalBook(equity=9_701.0, day_start_equity=10_000.0)
    assert size_position(direction=1, confidence=0.6, price=100.0, atr=2.0, rules=RULES, book=book).size > 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"price": 0.0}, "price"), ({"atr": float("nan")}, "atr"), ({"confidence": 1.5}, "confidence"),
     ({"direction": 2}, "direction")],
)  # fmt: skip
def test_bad_inputs_are_refused_naming_the_field(kwargs: dict[str, float], field: str) -> None:
    args: dict[str, float] = {"direction": 1, "confidence": 0.6, "price": 100.0, "atr": 2.0} | kwargs
    with pytest.raises(ValueError, match=field):
        size_position(rules=RULES, book=BOOK, **args)  # type: ignore[arg-type]
