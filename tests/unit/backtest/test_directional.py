"""The directional backtest: money to the cent on hand series, stops inside bars, baselines, no look-ahead."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from arb.backtest.directional import BacktestResult, Decide, buy_and_hold, compare, run, sma_crossover
from arb.config.schema import DirectionalRisk, RLSettings

RL = RLSettings(taker_fee=0.001, slippage_bps=10.0, slippage_ref_notional=10_000.0, initial_equity=10_000.0)
RISK = DirectionalRisk(atr_stop_multiple=2.0, take_profit_multiple=3.0, trailing_stop_multiple=2.0)


def cost(notional: float, rl: RLSettings = RL) -> float:
    """The contract's taker cost, by hand: |n|·fee + |n|·bps/1e4·sqrt(|n|/ref)."""
    n = abs(notional)
    return n * rl.taker_fee + n * rl.slippage_bps / 1e4 * math.sqrt(n / rl.slippage_ref_notional)


def make_bars(ohlc: Sequence[tuple[float, float, float, float]]) -> pd.DataFrame:
    a = np.array(ohlc, dtype=np.float64)
    idx = pd.date_range("2024-01-01", periods=len(a), freq="h", tz="UTC", name="ts")
    return pd.DataFrame(
        {
            "open": a[:, 0],
            "high": a[:, 1],
            "low": a[:, 2],
            "close": a[:, 3],
            "volume": 1.0,
            "filled": False,
            "clipped": False,
        },
        index=idx,
    )


def closes(values: Sequence[float]) -> pd.DataFrame:
    """Bars that open at the previous close and never range beyond open/close."""
    rows = []
    prev = values[0]
    for c in values:
        rows.append((prev, max(prev, c), min(prev, c), c))
        prev = c
    return make_bars(rows)


def script(targets: Sequence[float]) -> Decide:
    return lambda t, position: targets[t]


def random_bars(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0.0, 0.01, n))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0.0, 0.01, n))
    return make_bars(list(zip(open_, high, low, close, strict=True)))


def test_fees_slippage_and_marks_match_the_hand_computation_to_the_cent() -> None:
    bars = closes([100.0, 110.0, 99.0, 105.0, 120.0])

    r = run(bars, script([1.0, 1.0, -1.0, 0.0]), RL)

    c0 = cost(10_000.0)  # buy 100 @ 100
    short_qty = (10_000.0 - c0 - 100.0) / 99.0  # equity at close 2 = 9980 - 100, all short @ 99
    c2 = cost((100.0 + short_qty) * 99.0)  # one flip order: sell 100 + short_qty
    c3 = cost(short_qty * 105.0)  # buy back
    expected = [
        10_000.0,
        10_000.0 - c0 + 100 * 10.0,
        10_000.0 - c0 - 100.0,
        10_000.0 - c0 - 100.0 - c2 - short_qty * 6.0,
        10_000.0 - c0 - 100.0 - c2 - short_qty * 6.0 - c3,
    ]
    np.testing.assert_allclose(r.equity, expected, rtol=0, atol=0.005)
    np.testing.assert_array_equal(r.positions, [0.0, 1.0, 1.0, -1.0, 0.0])
    long, short = r.trades
    close_share = 100.0 / (100.0 + short_qty)
    assert (long.side, long.entry_price, long.exit_price, long.reason) == (1, 100.0, 99.0, "signal")
    assert long.pnl == pytest.approx(-100.0 - c0 - c2 * close_share, abs=0.005)
    assert (short.side, short.entry_price, short.exit_price, short.reason) == (-1, 99.0, 105.0, "signal")
    assert short.pnl == pytest.approx(-short_qty * 6.0 - c2 * (1 - close_share) - c3, abs=0.005)
    assert long.pnl + short.pnl == pytest.approx(r.equity[-1] - r.equity[0], abs=1e-9)
    assert (long.entry_time, short.exit_time) == ("2024-01-01T01:00:00+00:00", "2024-01-01T04:00:00+00:00")
    assert r.metrics.trades == 2
    assert r.metrics.exposure == pytest.approx(3 / 5)


def test_an_unchanged_target_holds_the_quantity_without_trading() -> None:
    bars = closes([100.0, 200.0, 50.0, 100.0])

    r = run(bars, script([0.5, 0.5, 0.5]), RL)

    c0 = cost(5_000.0)  # 50 units, held through +100 % and -75 %
    np.testing.assert_allclose(r.equity, [10_000.0, 15_000.0 - c0, 7_500.0 - c0, 10_000.0 - c0], atol=0.005)
    assert len(r.trades) == 1
    assert r.trades[0].reason == "end"
    assert r.trades[0].size == 0.5


def test_resizing_a_position_realizes_the_reduced_part() -> None:
    bars = closes([100.0, 110.0, 120.0, 120.0])

    r = run(bars, script([1.0, 0.5, 0.0]), RL)

    c0 = cost(10_000.0)
    eq1 = 10_000.0 - c0 + 1_000.0
    keep = 0.5 * eq1 / 110.0
    c1 = cost((100.0 - keep) * 110.0)
    c2 = cost(keep * 120.0)
    (trade,) = r.trades
    assert trade.pnl == pytest.approx(100 * 10.0 + keep * 10.0 - c0 - c1 - c2, abs=0.005)
    assert trade.exit_price == pytest.approx(((100.0 - keep) * 110.0 + keep * 120.0) / 100.0)
    assert r.equity[-1] == pytest.approx(10_000.0 + trade.pnl, abs=1e-9)


def stop_run(
    ohlc: Sequence[tuple[float, float, float, float]], targets: Sequence[float], **risk: float
) -> BacktestResult:
    bars = make_bars(ohlc)
    return run(bars, script(targets), RL, risk=RISK.model_copy(update=risk), atr=np.full(len(bars), 2.0))


def test_a_stop_inside_a_bar_fills_at_the_stop_price() -> None:
    # long @ 100, ATR 2: stop 96; bar 1 trades down to 95
    r = stop_run([(100, 100, 100, 100), (100, 101, 95, 97), (97, 97, 97, 97)], [1.0, 1.0])

    (trade,) = r.trades
    assert (trade.reason, trade.exit_price, trade.exit_bar) == ("stop", 96.0, 1)
    assert trade.pnl == pytest.approx(-400.0 - cost(10_000.0) - cost(9_600.0), abs=0.005)
    np.testing.assert_array_equal(r.positions, [0.0, 1.0, 0.0])


def test_a_bar_gapping_through_the_stop_fills_at_its_open() -> None:
    r = stop_run([(100, 100, 100, 100), (94, 95, 90, 92), (92, 92, 92, 92)], [1.0, 1.0])

    assert (r.trades[0].reason, r.trades[0].exit_price) == ("stop", 94.0)


def test_a_short_stop_is_above_the_entry() -> None:
    r = stop_run([(100, 100, 100, 100), (100, 105, 99, 103), (103, 103, 103, 103)], [-1.0, -1.0])

    assert (r.trades[0].side, r.trades[0].reason, r.trades[0].exit_price) == (-1, "stop", 104.0)


def test_take_profit_fills_at_its_limit_price() -> None:
    # long @ 100, ATR 2: take-profit 106, touched by a high of 107
    r = stop_run([(100, 100, 100, 100), (101, 107, 100, 105), (105, 105, 105, 105)], [1.0, 1.0])

    (trade,) = r.trades
    assert (trade.reason, trade.exit_price) == ("take_profit", 106.0)
    assert trade.pnl == pytest.approx(600.0 - cost(10_000.0) - cost(10_600.0), abs=0.005)


def test_a_bar_touching_stop_and_take_profit_is_read_as_the_stop() -> None:
    r = stop_run([(100, 100, 100, 100), (100, 107, 95, 101), (101, 101, 101, 101)], [1.0, 1.0])

    assert (r.trades[0].reason, r.trades[0].exit_price) == ("stop", 96.0)


def test_trailing_stop_follows_the_best_price_of_earlier_bars() -> None:
    # long @ 100, ATR 2, trail 4: bar 1 reaches 110 (trail -> 106, not used inside bar 1), bar 2 falls to 105
    ohlc = [(100, 100, 100, 100), (100, 110, 99, 109), (108, 109, 105, 106), (106, 106, 106, 106)]

    r = stop_run(ohlc, [1.0, 1.0, 1.0], take_profit_multiple=10.0)

    (trade,) = r.trades
    assert (trade.reason, trade.exit_price, trade.exit_bar) == ("trailing", 106.0, 2)


def test_after_a_stop_the_book_stays_flat_until_the_target_changes() -> None:
    ohlc = [(100, 100, 100, 100), (100, 100, 99, 100), (100, 100, 95, 97)] + [(97, 97, 97, 97)] * 3
    seen: list[float] = []
    targets = [1.0, 1.0, 1.0, 0.0, 1.0]

    def decide(t: int, position: float) -> float:
        seen.append(position)
        return targets[t]

    r = run(make_bars(ohlc), decide, RL, risk=RISK, atr=np.full(6, 2.0))

    np.testing.assert_array_equal(r.positions, [0.0, 1.0, 1.0, 0.0, 0.0, 1.0])
    assert seen == [0.0, 1.0, 0.0, 0.0, 0.0]  # told it is flat after the stop in bar 2
    assert [t.reason for t in r.trades] == ["stop", "end"]
    assert r.trades[1].entry_bar == 4


def test_leverage_liquidates_at_the_contract_price() -> None:
    rl = RL.model_copy(update={"leverage": 3.0, "maintenance_margin": 0.005})
    bars = make_bars([(100, 100, 100, 100), (99, 99, 60, 65), (65, 65, 65, 65)])

    r = run(bars, script([1.0, 1.0]), rl)

    c0 = cost(30_000.0, rl)
    lev = 30_000.0 / (10_000.0 - c0)  # effective leverage: notional over the account after the entry cost
    liq = 100.0 * (1.0 - 1.0 / lev + 0.005)
    (trade,) = r.trades
    assert trade.reason == "liquidation"
    assert trade.exit_price == pytest.approx(liq)
    assert r.equity[1] == pytest.approx(10_000.0 - c0 - 300.0 * (100.0 - liq) - cost(300.0 * liq, rl), abs=0.005)
    # what is left is the maintenance margin of the notional at entry, less the exit cost
    assert r.equity[1] == pytest.approx(0.005 * 30_000.0 - cost(300.0 * liq, rl), abs=0.005)


def test_buy_and_hold_on_a_rising_series_earns_the_price_return_less_one_entry_cost() -> None:
    bars = closes([100.0 + i for i in range(10)])

    r = run(bars, buy_and_hold(bars), RL)

    assert r.metrics.total_return == pytest.approx(0.09 - cost(10_000.0) / 10_000.0, abs=1e-12)
    assert [t.reason for t in r.trades] == ["end"]


def test_trade_pnls_add_up_to_the_equity_change() -> None:
    bars = random_bars(300, seed=3)
    rng = np.random.default_rng(4)
    targets = rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], size=300)

    r = run(bars, script(list(targets)), RL, risk=RISK, atr=np.full(300, 1.0))

    assert {t.reason for t in r.trades} >= {"signal", "stop"}
    assert sum(t.pnl for t in r.trades) == pytest.approx(r.equity[-1] - r.equity[0], abs=1e-6)


def test_decisions_see_nothing_after_their_bar() -> None:
    # stops sized by the real (causal) ATR of arb.strategy.features; a policy that reads closes <= t only
    bars = random_bars(200, seed=5)
    cut = 120

    def momentum(b: pd.DataFrame) -> Decide:
        close = b["close"].to_numpy()
        return lambda t, position: float(np.sign(close[t] - close[t - 3]))

    perturbed = bars.copy()
    factor = np.random.default_rng(6).uniform(0.8, 1.2, size=(200 - cut - 1, 1))
    perturbed.iloc[cut + 1 :, :4] = perturbed.iloc[cut + 1 :, :4].to_numpy() * factor
    perturbed["high"] = perturbed[["open", "high", "close"]].max(axis=1)
    perturbed["low"] = perturbed[["open", "low", "close"]].min(axis=1)

    a = run(bars, momentum(bars), RL, risk=RISK, start=20)
    b = run(perturbed, momentum(perturbed), RL, risk=RISK, start=20)

    i = cut - 20  # equity[i] is marked at the close of bar 20 + i
    np.testing.assert_array_equal(a.equity[: i + 1], b.equity[: i + 1])
    np.testing.assert_array_equal(a.positions[: i + 2], b.positions[: i + 2])
    assert [t for t in a.trades if t.exit_bar <= cut] == [t for t in b.trades if t.exit_bar <= cut]
    assert {t.reason for t in a.trades} & {"stop", "trailing", "take_profit"}  # the stops were in play
    assert not np.array_equal(a.equity, b.equity)


def test_a_target_outside_minus_one_one_is_refused_naming_the_bar() -> None:
    with pytest.raises(ValueError, match=r"decide\(1, 1.0\) returned 1.5"):
        run(closes([1.0, 2.0, 3.0]), script([1.0, 1.5]), RL)


@pytest.mark.parametrize(("start", "end"), [(-1, None), (2, 2), (0, 9), (2, 3)])
def test_a_bad_range_is_refused(start: int, end: int | None) -> None:
    with pytest.raises(ValueError, match="start="):
        run(closes([1.0, 2.0, 3.0]), script([0.0, 0.0]), RL, start=start, end=end)


def test_bars_without_prices_are_refused() -> None:
    with pytest.raises(ValueError, match="lack column"):
        run(closes([1.0, 2.0]).drop(columns=["low"]), script([0.0]), RL)


def test_stops_without_a_finite_atr_at_a_decision_bar_are_refused() -> None:
    atr = np.array([np.nan, 1.0, 1.0])
    with pytest.raises(ValueError, match="ATR at bar 0"):
        run(closes([1.0, 2.0, 3.0]), script([0.0, 0.0]), RL, risk=RISK, atr=atr)


def test_the_first_decision_bar_sees_its_start_not_earlier_money() -> None:
    bars = closes([100.0, 50.0, 100.0, 110.0])

    r = run(bars, buy_and_hold(bars), RL, start=2)

    assert r.equity[0] == 10_000.0
    assert r.equity[-1] == pytest.approx(10_000.0 - cost(10_000.0) + 1_000.0, abs=0.005)
    assert r.trades[0].entry_bar == 2


def test_sma_crossover_is_long_only_after_the_warm_up_on_a_rising_series() -> None:
    bars = closes([100.0 * 1.001**i for i in range(300)])
    from arb.strategy.features import indicators

    first = int(np.argmax(indicators(bars)["sma_slow"].notna().to_numpy()))

    r = run(bars, sma_crossover(bars), RL)

    (trade,) = r.trades
    assert (trade.side, trade.entry_bar, trade.reason) == (1, first, "end")


def test_compare_gives_the_strategy_and_both_baselines_as_json_numbers() -> None:
    bars = random_bars(300, seed=8)

    out = compare(bars, lambda t, p: -1.0 if t % 50 < 25 else 1.0, RL, RISK)

    keys = {"sharpe", "sortino", "calmar", "max_drawdown", "win_rate", "profit_factor", "total_return", "trades"}
    assert keys <= out["strategy"].keys()
    assert set(out["baselines"]) == {"buy_and_hold", "sma_crossover"}
    for figures in [out["strategy"], *out["baselines"].values()]:
        assert keys <= figures.keys()
    assert out["baselines"]["buy_and_hold"]["trades"] == 1
    json.dumps(out, allow_nan=False)
