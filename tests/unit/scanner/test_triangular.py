"""Triangular cycles within one venue: which cycles exist, both directions, compounding fees, sizing and filters.

Venue x lists BTC/USDT, ETH/BTC and ETH/USDT (one triangle) and charges 20 bps taker per leg; venue y lists only the
two USDT pairs (no triangle). A cycle's result is per unit of USDT: 1/ask for a leg that buys, bid for one that sells.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from arb.grid.layout import GridLayout
from arb.scanner.costs import CostModel
from arb.scanner.kernel import Books
from arb.scanner.score import Scoring
from arb.scanner.triangular import TriangularScanner
from tests.support import NS
from tests.unit.scanner.support import LIMITS, empty_books, put
from tests.unit.scanner.support_kinds import kinds_settings, spot

SETTINGS = kinds_settings(
    {"x": 0.002, "y": 0.001},
    {
        "BTC/USDT": spot("BTC", "USDT", {"x": "BTC/USDT", "y": "BTC/USDT"}),
        "ETH/BTC": spot("ETH", "BTC", {"x": "ETH/BTC"}),
        "ETH/USDT": spot("ETH", "USDT", {"x": "ETH/USDT", "y": "ETH/USDT"}),
        "SOL/USDT": spot("SOL", "USDT", {"x": "SOL/USDT"}),
    },
    kinds=["triangular"],
)
BTC, ETHBTC, ETH, SOL = 0, 1, 2, 3
X, Y = 0, 1
FEE = 0.002
KEEP = (1 - FEE) ** 3  # what three compounding 20 bps fees leave of a unit
FORWARD, REVERSE = "USDT>BTC>ETH>USDT", "USDT>ETH>BTC>USDT"
ALL = np.ones((4, 2), np.bool_)
TS = np.full((4, 2), NS, np.int64)


def scanner() -> TriangularScanner:
    layout = GridLayout.from_settings(SETTINGS)
    scoring = Scoring(SETTINGS.scanner, layout.venues, [50.0, 50.0], layout.shape[0])
    return TriangularScanner(SETTINGS, layout, CostModel(SETTINGS, layout), LIMITS, scoring)


def books(
    btc: tuple[float, float] = (49_990.0, 50_000.0),
    ethbtc: tuple[float, float] = (0.0499, 0.05),
    eth: tuple[float, float] = (2_520.0, 2_521.0),
    *,
    btc_size: float = 1.0,
    eth_size: float = 10.0,
) -> Books:
    """One level a side on x: (bid, ask) per pair; ETH/BTC holds 20 ETH a side."""
    b = empty_books(4, 2)
    put(b, BTC, X, [(btc[0], btc_size)], [(btc[1], btc_size)])
    put(b, ETHBTC, X, [(ethbtc[0], 20.0)], [(ethbtc[1], 20.0)])
    put(b, ETH, X, [(eth[0], eth_size)], [(eth[1], eth_size)])
    put(b, SOL, X, [(150.0, 10.0)], [(150.1, 10.0)])
    return b


def test_each_triangle_of_a_venue_is_one_cycle_per_direction_starting_from_the_currency_that_quotes_most() -> None:
    cycles = {(c.id, c.legs) for c in scanner().cycles}

    assert cycles == {
        (FORWARD, ("buy BTC/USDT", "buy ETH/BTC", "sell ETH/USDT")),
        (REVERSE, ("buy ETH/USDT", "sell ETH/BTC", "sell BTC/USDT")),
    }  # and none on y, which lacks ETH/BTC


def test_forward_cycle_compounds_three_fees_and_is_sized_by_its_shallowest_leg() -> None:
    s = scanner()

    [opp] = s.evaluate(books(), TS, ALL, None, NS)

    # 1/50,000 BTC per USDT, x 20 ETH per BTC, x 2,520 USDT per ETH = 1.008 USDT per USDT
    assert (opp.kind, opp.instrument, opp.buy_venue, opp.sell_venue) == ("triangular", FORWARD, "x", "x")
    assert opp.legs == ("buy BTC/USDT", "buy ETH/BTC", "sell ETH/USDT")
    assert opp.gross_spread == pytest.approx(0.008)
    assert opp.vwap_sell == pytest.approx(1.008)
    assert opp.net_edge == pytest.approx(1.008 * KEEP - 1)  # 0.0019641
    assert abs(opp.net_edge - (0.008 - 3 * FEE)) > 3e-5  # compounding, not the sum of the fees
    assert opp.fee_buy == pytest.approx(3 * FEE)
    assert (opp.fee_sell, opp.haircut, opp.slippage) == (0.0, 0.0, pytest.approx(0.0))
    # USDT the legs can take: BTC 1 x 50,000; ETH/BTC 20 ETH = 1 BTC = 50,000; ETH/USDT 10 ETH = 25,000
    assert opp.quote_currency == "USDT"
    assert opp.size == pytest.approx(25_000.0)
    assert opp.notional == pytest.approx(25_000.0)
    assert opp.profit == pytest.approx(25_000 * (1.008 * KEEP - 1))
    assert s.cells(opp) == ((BTC, X), (ETHBTC, X), (ETH, X))


def test_reverse_cycle_when_the_cross_pair_is_rich() -> None:
    s = scanner()
    b = books(btc=(50_000.0, 50_010.0), ethbtc=(0.051, 0.0511), eth=(2_499.0, 2_500.0))

    [opp] = s.evaluate(b, TS, ALL, None, NS)

    # 1/2,500 ETH per USDT, x 0.051 BTC per ETH, x 50,000 USDT per BTC = 1.02
    assert opp.instrument == REVERSE
    assert opp.legs == ("buy ETH/USDT", "sell ETH/BTC", "sell BTC/USDT")
    assert opp.net_edge == pytest.approx(1.02 * KEEP - 1)
    # USDT the legs can take: ETH/USDT 10 ETH x 2,500 = 25,000; ETH/BTC 20 ETH = 50,000; BTC 1 = 1/(0.051/2,500)
    assert opp.size == pytest.approx(25_000.0)


def test_a_leg_walks_its_book_within_the_slippage_cap() -> None:
    s = scanner()
    b = books(btc_size=0.2)
    # a second BTC ask 4 bps up (inside the 5 bps cap) and a third 10 bps up (outside it)
    b.ask_px[BTC, X, 1:3] = (50_020.0, 50_050.0)
    b.ask_qty[BTC, X, 1:3] = (0.2, 5.0)

    [opp] = s.evaluate(b, TS, ALL, None, NS)

    assert opp.size == pytest.approx(20_000.0)  # 0.4 BTC within the cap, at the best ask's 50,000
    vwap_btc = (0.2 * 50_000 + 0.2 * 50_020) / 0.4  # 50,010
    assert opp.vwap_sell == pytest.approx(20 * 2_520 / vwap_btc)
    assert opp.slippage == pytest.approx(0.008 - (20 * 2_520 / vwap_btc - 1))
    assert opp.net_edge == pytest.approx(20 * 2_520 / vwap_btc * KEEP - 1)


def test_a_cycle_below_the_minimum_edge_after_fees_makes_nothing() -> None:
    # 1/50,000 x 20 x 2,517.5 = 1.007: 70 bps gross, but three compounding 20 bps fees leave ~1 bp < 10 bps
    assert scanner().evaluate(books(eth=(2_517.5, 2_518.0)), TS, ALL, None, NS) == []


def test_a_stale_leg_makes_nothing() -> None:
    usable = ALL.copy()
    usable[ETHBTC, X] = False

    assert scanner().evaluate(books(), TS, usable, None, NS) == []


def test_a_cycle_smaller_than_the_minimum_notional_makes_nothing() -> None:
    # 0.3 ETH of ETH/USDT bids = 0.3 / (20 / 50,000) = 750 USDT < the $1,000 minimum
    assert scanner().evaluate(books(eth_size=0.3), TS, ALL, None, NS) == []


def test_dirty_rows_reach_only_the_cycles_they_are_a_leg_of() -> None:
    s = scanner()

    assert [o.instrument for o in s.evaluate(books(), TS, ALL, np.array([ETHBTC]), NS)] == [FORWARD]
    assert s.evaluate(books(), TS, ALL, np.array([SOL]), NS) == []


def test_a_triangular_kind_without_cross_pairs_says_so_at_start(caplog: pytest.LogCaptureFixture) -> None:
    settings = kinds_settings({"x": 0.001}, {"BTC/USDT": spot("BTC", "USDT", {"x": "BTC/USDT"})}, kinds=["triangular"])
    layout = GridLayout.from_settings(settings)
    caplog.set_level(logging.WARNING, logger="arb.scanner.triangular")

    s = TriangularScanner(
        settings, layout, CostModel(settings, layout), LIMITS, Scoring(settings.scanner, layout.venues, [50.0], 1)
    )

    assert s.cycles == ()
    assert s.evaluate(empty_books(1, 1), np.zeros((1, 1), np.int64), np.ones((1, 1), np.bool_), None, NS) == []
    assert any("kind_without_candidates kind=triangular" in r.getMessage() for r in caplog.records)
