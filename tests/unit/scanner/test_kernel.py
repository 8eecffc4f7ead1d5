"""The spread matrix on hand-computed books: fees, haircuts, VWAP at size, slippage and notional caps, gas."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from arb.grid.codec import fresh_mask
from arb.scanner.costs import CostModel, ScannerConfigError
from arb.scanner.kernel import Limits, scan, screen_rows, usable_rows

from .support import LIMITS, empty_books, layout_of, put, settings


def model(fees: dict[str, float], **kw: object) -> CostModel:
    s = settings(fees, **kw)  # type: ignore[arg-type]
    return CostModel(s, layout_of(s))


def test_net_edge_charges_both_taker_fees_and_no_haircut_when_both_legs_are_quoted_in_usdt() -> None:
    costs = model({"a": 0.001, "b": 0.002})  # BTC/USD listed as BTC/USDT on both venues
    books = empty_books(1, 2)
    put(books, 0, 0, [(99.0, 10.0)], [(100.0, 10.0)])
    put(books, 0, 1, [(101.0, 10.0)], [(102.0, 10.0)])
    usable = np.ones((1, 2), np.bool_)

    [c] = scan(books, costs, usable, LIMITS)

    assert (c.buy, c.sell) == (0, 1)
    assert c.size == 10.0
    assert c.gross == pytest.approx(0.01)
    assert c.haircut == 0.0  # bought and sold for USDT: the profit stays in USDT, no notional changes currency
    assert c.net == pytest.approx(0.01 - 0.001 - 0.002)
    assert c.notional == pytest.approx(1000.0)
    assert c.slippage == pytest.approx(0.0)
    assert not c.depth_estimated


@pytest.mark.parametrize(
    ("buy_symbol", "sell_symbol", "haircut"),
    [
        ("BTC/USDT", "BTC/USD", 0.0005),  # USDT haircut + USD's 0
        ("BTC/USD", "BTC/USDT", 0.0005),
        ("BTC/USDT", "BTC/USDC", 0.0007),  # 5 bps + 2 bps: the notional moves from USDT to USDC
        ("BTC/USDC", "BTC/USDC", 0.0),
        ("BTC/USD", "BTC/USD", 0.0),
    ],
)
def test_a_pair_pays_both_legs_haircuts_only_across_different_quote_currencies(
    buy_symbol: str, sell_symbol: str, haircut: float
) -> None:
    costs = model({"a": 0.001, "b": 0.002}, instruments={"BTC/USD": {"a": buy_symbol, "b": sell_symbol}})
    books = empty_books(1, 2)
    put(books, 0, 0, [(99.0, 10.0)], [(100.0, 10.0)])  # buy on a
    put(books, 0, 1, [(101.0, 10.0)], [(102.0, 10.0)])  # sell on b
    usable = np.ones((1, 2), np.bool_)

    [c] = scan(books, costs, usable, LIMITS)

    assert (c.buy, c.sell) == (0, 1)
    assert c.haircut == pytest.approx(haircut, abs=1e-15)
    assert c.net == pytest.approx(0.01 - 0.001 - 0.002 - haircut)
    assert costs.pair_haircut(0, 0, 0, 1) == pytest.approx(haircut, abs=1e-15)


def test_the_cost_model_names_each_cells_venue_quote_currency() -> None:
    costs = model({"a": 0.0, "b": 0.0, "c": 0.0}, instruments={"BTC/USD": {"a": "BTC/USDT", "b": "BTC/USD"}})

    assert [costs.venue_quote(0, j) for j in (0, 1)] == ["USDT", "USD"]
    assert costs.quote_code[0, 2] == -1  # c does not list BTC/USD
    with pytest.raises(ScannerConfigError, match="BTC/USD is not listed on c"):
        costs.venue_quote(0, 2)


def test_vwap_walks_several_levels_and_size_is_the_smaller_depth_within_the_slippage_cap() -> None:
    costs = model({"a": 0.0, "b": 0.0})
    books = empty_books(1, 2)
    # buy side: cap 100 * 1.0005 = 100.05 keeps the first three levels (10 + 20 + 50 = 80)
    put(books, 0, 0, [(99.0, 1.0)], [(100.0, 10.0), (100.02, 20.0), (100.04, 50.0), (100.1, 100.0)])
    # sell side: cap 101 * 0.9995 = 100.9495 keeps both levels (130)
    put(books, 0, 1, [(101.0, 30.0), (100.99, 100.0), (100.0, 500.0)], [(102.0, 1.0)])
    usable = np.ones((1, 2), np.bool_)

    [c] = scan(books, costs, usable, LIMITS)

    assert c.size == pytest.approx(80.0)
    assert c.vwap_buy == pytest.approx((100.0 * 10 + 100.02 * 20 + 100.04 * 50) / 80)  # 100.03
    assert c.vwap_sell == pytest.approx((101.0 * 30 + 100.99 * 50) / 80)  # 100.99375
    realised = (c.vwap_sell - c.vwap_buy) / c.vwap_buy
    assert c.slippage == pytest.approx(0.01 - realised)
    assert c.net == pytest.approx(realised)  # no fees, and USDT on both legs pays no haircut


def test_size_is_capped_by_the_per_trade_notional_limit() -> None:
    costs = model({"a": 0.0, "b": 0.0})
    books = empty_books(1, 2)
    put(books, 0, 0, [(99.0, 100.0)], [(100.0, 100.0)])
    put(books, 0, 1, [(101.0, 100.0)], [(102.0, 100.0)])
    limits = dataclasses.replace(LIMITS, max_notional_usd=2_500.0)

    [c] = scan(books, costs, np.ones((1, 2), np.bool_), limits)

    assert c.size == pytest.approx(25.0)
    assert c.notional == pytest.approx(2_500.0)


def test_too_little_depth_within_the_cap_for_the_minimum_notional_is_no_opportunity() -> None:
    costs = model({"a": 0.0, "b": 0.0})
    books = empty_books(1, 2)
    # 9 units within the cap on the buy side = $900 < $1,000; the deeper level is beyond the 5 bps cap
    put(books, 0, 0, [(99.0, 100.0)], [(100.0, 9.0), (100.06, 100.0)])
    put(books, 0, 1, [(101.0, 100.0)], [(102.0, 100.0)])

    assert scan(books, costs, np.ones((1, 2), np.bool_), LIMITS) == []
    loose = dataclasses.replace(LIMITS, max_slippage=0.001)
    [c] = scan(books, costs, np.ones((1, 2), np.bool_), loose)
    assert c.size == pytest.approx(100.0)  # the sell side's 100 now binds


def test_edge_below_the_threshold_after_costs_is_not_reported() -> None:
    costs = model({"a": 0.004, "b": 0.004})
    books = empty_books(1, 2)
    put(books, 0, 0, [(99.0, 10.0)], [(100.0, 20.0)])
    put(books, 0, 1, [(100.85, 10.0)], [(102.0, 20.0)])  # 85 bps gross - 80 fees = 5 bps < 10 bps

    assert scan(books, costs, np.ones((1, 2), np.bool_), LIMITS) == []


def test_unusable_cells_stale_or_unhealthy_are_never_paired() -> None:
    costs = model({"a": 0.0, "b": 0.0, "c": 0.0})
    books = empty_books(1, 3)
    put(books, 0, 0, [(99.0, 10.0)], [(100.0, 20.0)])
    put(books, 0, 1, [(101.0, 10.0)], [(102.0, 20.0)])
    put(books, 0, 2, [(100.5, 10.0)], [(101.5, 20.0)])
    usable = np.ones((1, 3), np.bool_)
    usable[0, 1] = False  # b is stale or its venue is down

    found = scan(books, costs, usable, LIMITS)

    assert [(c.buy, c.sell) for c in found] == [(0, 2)]


def test_top_of_book_only_venues_use_the_impact_model_and_say_so() -> None:
    costs = model({"a": 0.0, "b": 0.0})
    books = empty_books(1, 2)
    put(books, 0, 0, [(99.0, 10.0)], [(100.0, 20.0)], depth=False)
    put(books, 0, 1, [(101.0, 10.0), (100.99, 50.0)], [(102.0, 20.0)])
    limits = dataclasses.replace(LIMITS, impact=0.0002, depth_multiple=1.0)

    [c] = scan(books, costs, np.ones((1, 2), np.bool_), limits)

    assert c.depth_estimated
    # buy side estimated: at most 20 (top size x 1), and 20 x 5 bps / 2 bps = 50; the sell side's 60 does not bind
    assert c.size == pytest.approx(20.0)
    assert c.vwap_buy == pytest.approx(100.0 * (1 + 0.0002 * 20 / 20))


def test_dex_gas_is_a_fixed_cost_per_swap_so_it_weighs_less_on_a_bigger_trade() -> None:
    s = settings({"a": 0.0}, {"ETH/USD": {"a": "ETH/USD", "uni": "WETH/USDC"}}, dex={"uni": 0.0})
    costs = CostModel(s, layout_of(s))
    books = empty_books(1, 2)
    put(books, 0, 0, [(2990.0, 10.0)], [(3000.0, 10.0)])  # buy on the CEX
    put(books, 0, 1, [(3060.0, 10.0)], [(3070.0, 10.0)])  # sell on the DEX
    usable = np.ones((1, 2), np.bool_)
    assert scan(books, costs, usable, LIMITS) == []  # gas unpriced: NaN, never taken as zero

    costs.price_gas({"ETH": 3000.0})
    [c] = scan(books, costs, usable, LIMITS)

    gas_usd = 150_000 * 20e-9 * 3000.0  # 9.0 USD per swap, one swap (the CEX leg pays none)
    assert costs.gas_quote[0, 1] == pytest.approx(gas_usd)
    assert c.size == pytest.approx(10.0)
    assert c.gas == pytest.approx(gas_usd / 30_000.0)
    assert c.net == pytest.approx(0.02 - gas_usd / 30_000.0 - 0.0002)  # bought for USD, sold for USDC: 0 + 2 bps


def test_a_fee_from_the_venues_market_data_overrides_the_configured_one() -> None:
    costs = model({"a": 0.001, "b": 0.001})
    assert costs.override_fees({("BTC/USD", "b"): 0.0002, ("XRP/USD", "b"): 0.0}) == 1
    assert costs.fee[0, 1] == pytest.approx(0.0002)
    with pytest.raises(ScannerConfigError, match="taker fee of BTC/USD on a"):
        costs.override_fees({("BTC/USD", "a"): -0.0001})


def test_a_quote_currency_without_a_usd_rate_is_refused_at_start() -> None:
    s = settings({"a": 0.001}, {"BTC/CAD": {"a": "BTC/CAD"}})
    with pytest.raises(ScannerConfigError, match="usd_per_quote has no rate for quote currency CAD"):
        CostModel(s, layout_of(s))


def test_the_screen_never_drops_a_row_that_has_an_opportunity() -> None:
    costs = model({"a": 0.001, "b": 0.003})
    books = empty_books(1, 2)
    put(books, 0, 0, [(99.0, 10.0)], [(100.0, 20.0)])
    put(books, 0, 1, [(100.51, 10.0)], [(102.0, 20.0)])  # 51 bps gross - 40 fees = 11 bps (USDT/USDT: no haircut)
    usable = np.ones((1, 2), np.bool_)
    assert screen_rows(books.bid, books.ask, costs.fee, usable, 0.001).tolist() == [0]
    [c] = scan(books, costs, usable, LIMITS)
    assert c.net == pytest.approx(0.0011, abs=1e-9)


def test_the_screen_never_assumes_a_haircut_a_same_currency_pair_does_not_pay() -> None:
    # every cell of the row carries the 5 bps USDT haircut, yet the USDT/USDT pair pays none: 35 bps gross - 20 fees
    # = 15 bps clears 10 bps, though 35 < 10 + 2 x (10 + 5) would have dropped the row
    costs = model({"a": 0.001, "b": 0.001})
    books = empty_books(1, 2)
    put(books, 0, 0, [(99.0, 10.0)], [(100.0, 20.0)])
    put(books, 0, 1, [(100.35, 10.0)], [(102.0, 20.0)])
    usable = np.ones((1, 2), np.bool_)

    assert screen_rows(books.bid, books.ask, costs.fee, usable, 0.001).tolist() == [0]
    [c] = scan(books, costs, usable, LIMITS)
    assert c.net == pytest.approx(0.0015, abs=1e-9)


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="max_slippage must be a finite number >= 0"):
        Limits(min_edge=0.001, max_slippage=float("nan"), min_notional_usd=1, max_notional_usd=2)
    with pytest.raises(ValueError, match="max_notional_usd must be >= min_notional_usd"):
        Limits(min_edge=0.001, max_slippage=0.001, min_notional_usd=10, max_notional_usd=2)


def test_usable_rows_marks_fresh_listed_cells_of_up_venues_in_unpaused_rows_only() -> None:
    now, limit = 10_000, 1_000
    ts = np.array([[now - limit, now - limit - 1, 0], [now + limit, now + limit + 1, now], [now, now, now]], np.int64)
    listed = np.ones((3, 3), np.bool_)
    listed[2, 0] = False
    venue_up = np.array([True, True, False])
    paused = np.array([False, False, False])
    rows = np.array([0, 1, 2], np.int64)

    usable = usable_rows(rows, ts, np.full(3, limit, np.int64), listed, venue_up, paused, now)

    # age exactly at the limit is fresh, 1 ns more is stale, no quote (ts 0) is unusable; stamped in the future by
    # up to the limit is fresh, beyond it is a clock fault; unlisted cell and venue down are unusable
    assert usable.tolist() == [[True, False, False], [True, False, False], [False, True, False]]
    paused[1] = True
    assert not usable_rows(rows, ts, np.full(3, limit, np.int64), listed, venue_up, paused, now)[1].any()
    assert not usable_rows(np.array([1], np.int64), ts, np.full(3, limit, np.int64), listed, venue_up,
                           np.zeros(3, np.bool_), now)[[0, 2]].any()  # fmt: skip  # rows not asked for: False


def test_usable_rows_agrees_with_the_mirrors_fresh_rule_on_random_grids() -> None:
    rng = np.random.default_rng(7)
    n_i, n_v, now = 40, 9, 5_000_000_000
    max_age = rng.integers(1, 3_000_000_000, n_v).astype(np.int64)
    for _ in range(50):
        ts = now - rng.integers(-4_000_000_000, 4_000_000_000, (n_i, n_v))
        ts[rng.random((n_i, n_v)) < 0.2] = 0
        listed, venue_up, paused = rng.random((n_i, n_v)) < 0.8, rng.random(n_v) < 0.8, rng.random(n_i) < 0.1
        rows = np.unique(rng.integers(0, n_i, rng.integers(1, n_i)))
        ages = np.where(ts > 0, now - ts, np.iinfo(np.int64).max)
        fresh = (ts > 0) & fresh_mask(ages, max_age[None, :])
        expected = np.zeros((n_i, n_v), np.bool_)
        expected[rows] = (fresh & listed & venue_up[None, :] & ~paused[:, None])[rows]

        assert np.array_equal(usable_rows(rows, ts, max_age, listed, venue_up, paused, now), expected)
