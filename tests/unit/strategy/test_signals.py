"""Signals from agent targets: direction thresholds, sizing by the risk rules in order of confidence, holds, and the
look-ahead rule (a signal at bar t is the same whatever comes after t)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from arb.config.schema import DirectionalRisk
from arb.risk.directional import DirectionalBook
from arb.strategy.signals import AssetInput, compute_signals, direction_of
from tests.support import random_bars

BOOK = DirectionalBook(equity=10_000.0, day_start_equity=10_000.0)


@dataclass(frozen=True)
class Decision:
    target: float
    confidence: float


class Fixed:
    """A decider with a set answer per asset-specific last close (stands in for the agent: what is tested here is
    what the signal layer does with an agent's answer, not the agent)."""

    def __init__(self, answers: dict[float, Decision]) -> None:
        self.answers = answers
        self.seen: list[np.ndarray] = []

    def decide(self, features: np.ndarray, t: int, position: float) -> Decision:
        self.seen.append(features[: t + 1].copy())
        return self.answers[round(float(features[t, 0]), 9)]


def key(frame: pd.DataFrame) -> float:
    from arb.strategy.features import feature_matrix

    return round(float(feature_matrix(frame)[-1, 0]), 9)


@pytest.mark.parametrize(("target", "direction"), [(1.0, 1), (0.34, 1), (1 / 3, 0), (0.0, 0), (-0.5, -1)])
def test_direction_needs_a_third_of_full_size(target: float, direction: int) -> None:
    assert direction_of(target) == direction


def test_the_strongest_signal_gets_the_last_open_position() -> None:
    a, b = random_bars(300, seed=1), random_bars(300, seed=2)
    agent = Fixed({key(a): Decision(1.0, 0.6), key(b): Decision(-1.0, 0.9)})
    rules = DirectionalRisk(max_open_positions=1)

    out = compute_signals(
        [AssetInput("A/USD", a), AssetInput("B/USD", b)], agent, model_id="m", rules=rules, book=BOOK, now_ns=7
    )

    by = {s.asset: s for s in out}
    assert [s.asset for s in out] == ["A/USD", "B/USD"]
    assert (by["B/USD"].direction, by["B/USD"].reason) == (-1, "sized")
    assert by["B/USD"].stop == pytest.approx(by["B/USD"].price + 2 * by["B/USD"].atr)
    assert by["B/USD"].size * 2 * by["B/USD"].atr == pytest.approx(0.01 * BOOK.equity)
    assert (by["A/USD"].direction, by["A/USD"].size, by["A/USD"].reason) == (1, 0.0, "max_open_positions")
    assert by["A/USD"].bar_ns == int(a.index[-1].value)
    assert by["A/USD"].created_ns == 7


def test_a_signal_that_repeats_the_open_position_holds_without_resizing() -> None:
    a = random_bars(300, seed=1)
    agent = Fixed({key(a): Decision(1.0, 0.8)})
    (s,) = compute_signals(
        [AssetInput("A/USD", a, position=1)], agent, model_id="m", rules=DirectionalRisk(), book=BOOK
    )
    assert (s.direction, s.size, s.reason) == (1, 0.0, "hold")


def test_sentiment_reaches_the_agent_and_the_signal_and_nothing_after_t_does() -> None:
    a = random_bars(300, seed=1)
    sentiment = np.linspace(-1, 1, len(a))
    agent = Fixed({key(a): Decision(0.0, 0.5)})
    (s,) = compute_signals([AssetInput("A/USD", a, sentiment)], agent, model_id="m", rules=DirectionalRisk(), book=BOOK)
    assert s.sentiment == pytest.approx(1.0)
    assert agent.seen[0][-1, -1] == pytest.approx(1.0)  # the last feature column is S(t)

    # the same bars up to t, whatever follows: the signal at t is unchanged
    t = 200
    cut = a.iloc[: t + 1]
    agent2 = Fixed({key(cut): Decision(1.0, 0.7)})
    (early,) = compute_signals([AssetInput("A/USD", cut)], agent2, model_id="m", rules=DirectionalRisk(), book=BOOK)
    longer = a.copy()
    longer.iloc[t + 1 :, :4] *= 3.0
    assert early.price == pytest.approx(float(a["close"].iloc[t]))
    assert np.array_equal(agent2.seen[0], seen_features(longer, t))


def seen_features(frame: pd.DataFrame, t: int) -> np.ndarray:
    from arb.strategy.features import feature_matrix

    return feature_matrix(frame)[: t + 1]


def test_too_few_bars_is_refused_naming_the_asset() -> None:
    with pytest.raises(ValueError, match="A/USD"):
        compute_signals(
            [AssetInput("A/USD", random_bars(1, seed=1))], Fixed({}), model_id="m", rules=DirectionalRisk(), book=BOOK
        )


def test_the_last_500_bars_give_the_same_features_as_the_whole_history() -> None:
    from arb.strategy.features import feature_matrix
    from arb.strategy.signals import HISTORY_BARS

    long = random_bars(3_000, seed=5)
    whole = feature_matrix(long)[-1]
    tail = feature_matrix(long.iloc[-HISTORY_BARS:])[-1]
    np.testing.assert_allclose(tail, whole, rtol=1e-5, atol=1e-6)
