"""Hourly directional signals: the agent's target position per asset, turned into a direction, a confidence and a
size by the directional risk rules, then published (Redis stream + ledger).

    signals = compute_signals(inputs, agent, model_id=record.id, rules=settings.strategy.risk, book=book)

Each signal is decided at the close of an asset's last bar with data of that bar and earlier only (the features are
causal, the agent sees `observation(features, t, ...)`), so a signal computed live and one recomputed later from the
stored candles are the same. Assets are sized in order of confidence, so when the open-position or leverage cap binds,
the strongest signals get the room.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
import numpy as np
import pandas as pd

from arb.config.schema import DirectionalRisk
from arb.ledger.strategy import SignalRecord
from arb.risk.directional import DirectionalBook, size_position
from arb.strategy.features import feature_matrix, indicators

DIRECTION_THRESHOLD = 1.0 / 3.0
"""|target| above this is long/short, below it flat: the discrete agent's targets are exactly -1, 0, 1; a continuous
(or blended) target must commit to at least a third of full size before it counts as a direction."""


HISTORY_BARS = 500
"""Bars a signal is computed from (the asset's latest). The recursive indicators (EMA 20, MACD 26, RSI and ATR 14)
forget their starting point geometrically: after 450 bars the weight left on it is below 1e-14 (e.g. (13/14)^450 for
ATR), so a signal from the last 500 bars equals one from the whole history to float precision, at a fraction of the
cost."""


class _Decision(Protocol):
    @property
    def target(self) -> float: ...
    @property
    def confidence(self) -> float: ...


class Decider(Protocol):
    """An agent (or ensemble): target position in [-1, 1] and confidence from the features up to bar t."""

    def decide(self, features: np.ndarray, t: int, position: float) -> Any: ...


@dataclass(frozen=True, slots=True)
class AssetInput:
    """One asset's cleaned bars (see `arb.strategy.candles`), its sentiment per bar (None: neutral), and the direction
    of its open directional position (0: none)."""

    asset: str
    bars: pd.DataFrame
    sentiment: np.ndarray | None = None
    position: int = 0


def direction_of(target: float) -> int:
    if not math.isfinite(target):
        raise ValueError(f"agent target must be finite, got {target}")
    if target > DIRECTION_THRESHOLD:
        return 1
    if target < -DIRECTION_THRESHOLD:
        return -1
    return 0


def compute_signals(
    inputs: Sequence[AssetInput],
    agent: Decider,
    *,
    model_id: str,
    rules: DirectionalRisk,
    book: DirectionalBook,
    now_ns: int | None = None,
) -> list[SignalRecord]:
    """One signal per asset at its last bar. An asset with too few bars for the agent's window is an error naming it."""
    created = now_ns if now_ns is not None else time.time_ns()
    drafts = []
    for item in inputs:
        if len(item.bars) < 2:
            raise ValueError(f"{item.asset}: {len(item.bars)} bars; a signal needs the agent's window of history")
        if item.sentiment is not None and len(item.sentiment) != len(item.bars):
            raise ValueError(f"{item.asset}: {len(item.sentiment)} sentiment values for {len(item.bars)} bars")
        frame = item.bars.iloc[-HISTORY_BARS:]
        sentiment_all = None if item.sentiment is None else item.sentiment[-HISTORY_BARS:]
        ind = indicators(frame)
        features = feature_matrix(frame, sentiment_all, ind=ind)
        t = len(frame) - 1
        decision: _Decision = agent.decide(features, t, float(item.position))
        atr = float(ind["atr"].iloc[-1])
        sentiment = 0.0 if sentiment_all is None else float(np.clip(sentiment_all[t], -1.0, 1.0))
        drafts.append((item, float(decision.target), float(decision.confidence), atr, sentiment))
    drafts.sort(key=lambda d: (-d[2], d[0].asset))
    out = []
    for item, target, confidence, atr, sentiment in drafts:
        price = float(item.bars["close"].iloc[-1])
        bar_ns = int(item.bars.index[-1].value)
        direction = direction_of(target)
        if direction == item.position:
            sizing_reason, size, notional, stop, tp = "hold", 0.0, 0.0, None, None
        elif not math.isfinite(atr) or atr <= 0:
            sizing_reason, size, notional, stop, tp = "no_atr", 0.0, 0.0, None, None
        else:
            s = size_position(direction=direction, confidence=confidence, price=price, atr=atr, rules=rules, book=book)
            sizing_reason, size, notional, stop, tp = s.reason, s.size, s.notional_usd, s.stop, s.take_profit
            if s.size > 0:
                book = msgspec.structs.replace(
                    book,
                    open_positions=book.open_positions + 1,
                    open_notional_usd=book.open_notional_usd + s.notional_usd,
                )
        signal = SignalRecord(
            asset=item.asset, bar_ns=bar_ns, model_id=model_id, direction=direction, confidence=confidence,
            sentiment=sentiment, agent_target=target, price=price, atr=atr if math.isfinite(atr) else 0.0,
            size=size, notional_usd=notional, stop=stop, take_profit=tp, reason=sizing_reason, created_ns=created,
        )  # fmt: skip
        out.append(signal)
    out.sort(key=lambda s: s.asset)
    return out


def encode(signal: SignalRecord) -> bytes:
    """The stream's and the API's JSON form of a signal."""
    return msgspec.json.encode(signal)
