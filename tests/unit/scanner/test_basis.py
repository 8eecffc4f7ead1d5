"""Basis (buy spot, sell its linear perpetual): the edge, the funding's sign and size, and what makes no opportunity.

Venue a charges 10 bps taker, venue b 5 bps; there are no haircuts (the instruments are quoted in USDT itself); funding
is held for 24 h, so a rate per 8 h interval counts three times. Single-level books make every VWAP the top price.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from arb.config.schema import Settings
from arb.grid.funding import NS_PER_HOUR, FundingRate
from arb.grid.layout import GridLayout
from arb.scanner.basis import BasisScanner
from arb.scanner.costs import CostModel
from arb.scanner.kernel import Books
from arb.scanner.score import Scoring
from tests.support import NS
from tests.unit.scanner.support import LIMITS, empty_books, put
from tests.unit.scanner.support_kinds import kinds_settings, perp, spot

SETTINGS = kinds_settings(
    {"a": 0.001, "b": 0.0005},
    {
        "BTC/USDT": spot("BTC", "USDT", {"a": "BTC/USDT", "b": "BTC/USDT"}),
        "BTC/USDT-PERP": perp("BTC", "USDT", "BTC/USDT", {"a": "BTC/USDT:USDT", "b": "BTC/USDT:USDT"}),
    },
    kinds=["basis"],
    basis_holding_hours=24.0,
)
SPOT, PERP = 0, 1
A, B = 0, 1


def scanner() -> BasisScanner:
    layout = GridLayout.from_settings(SETTINGS)
    costs = CostModel(SETTINGS, layout)
    scoring = Scoring(SETTINGS.scanner, layout.venues, [50.0, 50.0], layout.shape[0])
    return BasisScanner(SETTINGS, layout, costs, LIMITS, scoring)


def books(perp_bid: float = 50_200.0) -> Books:
    """Spot a at 50,000 ask; perp b bid as given. The other two cells are priced so that no other pair pays."""
    b = empty_books(2, 2)
    put(b, SPOT, A, [(49_990.0, 2.0)], [(50_000.0, 2.0)])
    put(b, SPOT, B, [(50_140.0, 2.0)], [(50_150.0, 2.0)])
    put(b, PERP, A, [(50_100.0, 2.0)], [(50_110.0, 2.0)])
    put(b, PERP, B, [(perp_bid, 2.0)], [(perp_bid + 10.0, 2.0)])
    return b


def rate(per_8h: float, venue: str = "b", ts_ns: int = NS) -> dict[tuple[str, str], FundingRate]:
    return {("BTC/USDT-PERP", venue): FundingRate(venue=venue, instrument="BTC/USDT-PERP", rate=per_8h,
                                                  interval_h=8.0, ts_ns=ts_ns)}  # fmt: skip


def funded(s: BasisScanner, per_8h: float = 0.0001) -> BasisScanner:
    s.set_funding({**rate(per_8h, "a"), **rate(per_8h, "b")})
    return s


ALL = np.ones((2, 2), np.bool_)
TS = np.full((2, 2), NS, np.int64)


def test_cash_and_carry_earns_the_basis_minus_fees_plus_the_funding_the_short_perp_receives() -> None:
    s = funded(scanner())

    [opp] = s.evaluate(books(), TS, ALL, None, NS)

    assert (opp.kind, opp.instrument, opp.buy_venue, opp.sell_venue) == ("basis", "BTC/USDT-PERP", "a", "b")
    assert opp.legs == ("BTC/USDT", "BTC/USDT:USDT")
    assert opp.size == pytest.approx(2.0)  # both legs hold 2 BTC; $1M per-trade limit is far
    assert (opp.vwap_buy, opp.vwap_sell) == (50_000.0, 50_200.0)
    assert opp.gross_spread == pytest.approx(0.004)  # 200 / 50,000
    assert (opp.fee_buy, opp.fee_sell) == (0.001, 0.0005)
    assert opp.funding == pytest.approx(0.0003)  # 1 bp per 8 h, held 24 h
    assert opp.net_edge == pytest.approx(0.004 - 0.0015 + 0.0003)
    assert opp.profit == pytest.approx(0.0028 * 100_000)
    assert opp.quote_currency == "USDT"
    assert s.cells(opp) == ((SPOT, A), (PERP, B))


@pytest.mark.parametrize(
    ("per_8h", "perp_bid", "net"),
    [
        (-0.0001, 50_200.0, 0.004 - 0.0015 - 0.0003),  # shorts pay: a cost
        (-0.001, 50_200.0, None),  # 30 bps of funding paid over 24 h eats the 25 bps left after fees
        (0.0, 50_100.0, None),  # 20 bps gross - 15 bps fees = 5 bps: below the 10 bps minimum ...
        (0.0002, 50_100.0, 0.002 - 0.0015 + 0.0006),  # ... until 6 bps of funding received lift it over
    ],
)
def test_funding_sign_and_size_move_the_edge(per_8h: float, perp_bid: float, net: float | None) -> None:
    s = funded(scanner(), per_8h)

    found = s.evaluate(books(perp_bid), TS, ALL, None, NS)

    assert [o.net_edge for o in found] == ([] if net is None else [pytest.approx(net)])


def test_a_perp_below_its_spot_makes_nothing_as_only_cash_and_carry_is_scanned() -> None:
    s = funded(scanner(), -0.001)  # shorts pay 3 bps/8 h: a reverse trade (long perp) would be paid to wait
    b = books(perp_bid=49_700.0)
    put(b, PERP, A, [(49_700.0, 2.0)], [(49_710.0, 2.0)])

    assert s.evaluate(b, TS, ALL, None, NS) == []


def test_spot_and_perp_on_the_same_venue_is_a_basis_too() -> None:
    s = funded(scanner())
    b = books(perp_bid=50_000.0)  # nothing a -> b any more
    put(b, PERP, A, [(50_200.0, 2.0)], [(50_210.0, 2.0)])

    [opp] = s.evaluate(b, TS, ALL, None, NS)

    assert (opp.buy_venue, opp.sell_venue) == ("a", "a")
    assert opp.net_edge == pytest.approx(0.004 - 0.002 + 0.0003)


def test_a_perp_without_a_funding_rate_makes_nothing_and_says_why_once(caplog: pytest.LogCaptureFixture) -> None:
    s = scanner()
    caplog.set_level(logging.INFO, logger="arb.scanner.basis")

    assert s.evaluate(books(), TS, ALL, None, NS) == []
    assert s.evaluate(books(), TS, ALL, None, NS + 1) == []

    assert s.blocked == {("BTC/USDT-PERP", "a"): "no funding rate", ("BTC/USDT-PERP", "b"): "no funding rate"}
    unusable = [r.getMessage() for r in caplog.records if "basis_funding_unusable" in r.getMessage()]
    assert len(unusable) == 2  # one per perp cell, not one per pass
    assert "perp=BTC/USDT-PERP venue=b" in unusable[1]

    funded(s)
    assert len(s.evaluate(books(), TS, ALL, None, NS)) == 1
    assert s.blocked == {}
    assert any("basis_funding_usable perp=BTC/USDT-PERP venue=b" in r.getMessage() for r in caplog.records)


def test_funding_older_than_two_intervals_is_stale_on_the_far_side_of_the_boundary_only() -> None:
    s = scanner()
    published = NS - 16 * NS_PER_HOUR  # two 8 h intervals before NS
    s.set_funding(rate(0.0001, "b", ts_ns=published))

    assert len(s.evaluate(books(), TS, ALL, None, NS)) == 1  # exactly two intervals old: still usable
    assert s.evaluate(books(), TS, ALL, None, NS + 1) == []
    assert s.blocked[("BTC/USDT-PERP", "b")] == "funding rate 16.0 h old (interval 8 h)"


@pytest.mark.parametrize("stale_cell", [(PERP, B), (SPOT, A)], ids=["perp quote", "spot quote"])
def test_a_stale_leg_quote_makes_nothing(stale_cell: tuple[int, int]) -> None:
    s = funded(scanner())
    usable = ALL.copy()
    usable[stale_cell] = False

    assert s.evaluate(books(), TS, usable, None, NS) == []


def test_dirty_rows_reach_the_perps_of_either_leg() -> None:
    s = funded(scanner())

    assert len(s.evaluate(books(), TS, ALL, np.array([SPOT]), NS)) == 1
    assert len(s.evaluate(books(), TS, ALL, np.array([PERP]), NS)) == 1


def test_a_basis_kind_without_perps_finds_nothing_and_says_so_at_start(caplog: pytest.LogCaptureFixture) -> None:
    settings = kinds_settings({"a": 0.001}, {"BTC/USDT": spot("BTC", "USDT", {"a": "BTC/USDT"})}, kinds=["basis"])
    layout = GridLayout.from_settings(settings)
    scoring = Scoring(settings.scanner, layout.venues, [50.0], 1)

    s = BasisScanner(settings, layout, CostModel(settings, layout), LIMITS, scoring)

    assert s.perps == ()
    assert s.evaluate(empty_books(1, 1), np.zeros((1, 1), np.int64), np.ones((1, 1), np.bool_), None, NS) == []
    assert any("kind_without_candidates kind=basis" in r.getMessage() for r in caplog.records)


def test_a_basis_pair_pays_the_haircut_only_when_spot_and_perp_are_quoted_in_different_currencies() -> None:
    # BTC/USD spot: a lists it as BTC/USD, b as BTC/USDT; its perp is b's BTC/USDT:USDT (USDT haircut 5 bps)
    settings = Settings(
        venues={
            v: {"kind": "cex", "name": v, "region": "eu", "ccxt_id": v, "fees": {"taker": f, "maker": f},
                "quote_currencies": ["USD", "USDT"]}
            for v, f in (("a", 0.001), ("b", 0.0005))
        },
        instruments={
            "BTC/USD": spot("BTC", "USD", {"a": "BTC/USD", "b": "BTC/USDT"}),
            "BTC/USD-PERP": perp("BTC", "USD", "BTC/USD", {"b": "BTC/USDT:USDT"}),
        },
        quote_equivalence={"USD": {"USD": 0.0, "USDT": 0.0005}},
        scanner={"kinds": ["basis"], "basis_holding_hours": 24.0},
    )  # fmt: skip
    layout = GridLayout.from_settings(settings)
    scoring = Scoring(settings.scanner, layout.venues, [50.0, 50.0], layout.shape[0])
    s = BasisScanner(settings, layout, CostModel(settings, layout), LIMITS, scoring)
    s.set_funding({("BTC/USD-PERP", "b"): FundingRate(venue="b", instrument="BTC/USD-PERP", rate=0.0001,
                                                      interval_h=8.0, ts_ns=NS)})  # fmt: skip
    b = empty_books(2, 2)
    put(b, SPOT, A, [(49_990.0, 2.0)], [(50_000.0, 2.0)])
    put(b, SPOT, B, [(49_990.0, 2.0)], [(50_000.0, 2.0)])
    put(b, PERP, B, [(50_200.0, 2.0)], [(50_210.0, 2.0)])
    usable = np.array([[True, True], [False, True]])

    found = {o.buy_venue: o for o in s.evaluate(b, TS, usable, None, NS)}

    assert (found["a"].haircut, found["b"].haircut) == (pytest.approx(0.0005), 0.0)  # USD vs USDT; USDT vs USDT
    assert found["a"].net_edge == pytest.approx(0.004 - 0.0015 - 0.0005 + 0.0003)
    assert found["b"].net_edge == pytest.approx(0.004 - 0.001 + 0.0003)
