"""Scoring the scanner against ground truth: true edges from the recorded books, recall, precision, latency."""

from __future__ import annotations

import msgspec
import pytest

from arb.model import Opportunity, OpportunityEvent
from arb.scanner.costs import CostModel
from arb.scanner.truth import score, true_edge
from arb.sim.market import BooksAt, Dislocation
from tests.support import MS, NS

from .support import LIMITS, layout_of, settings

SETTINGS = settings({"a": 0.001, "b": 0.001, "c": 0.001}, {"BTC/USD": dict.fromkeys("abc", "BTC/USD")})
COSTS = CostModel(SETTINGS, layout_of(SETTINGS))


def books(shifted: str, bps: float) -> dict[str, tuple[list[tuple[float, float]], list[tuple[float, float]]]]:
    out = {}
    for v in "abc":
        mid = 100.0 * (1 + bps / 1e4) if v == shifted else 100.0
        out[v] = ([(mid * 0.9999, 100.0), (mid * 0.9998, 100.0)], [(mid * 1.0001, 100.0), (mid * 1.0002, 100.0)])
    return out


def dislocation(i: int, venue: str, bps: float, start: int = NS) -> Dislocation:
    return Dislocation(id=i, venue=venue, instrument="BTC/USD", symbol="BTC/USD", bps=bps, start_ns=start,
                       end_ns=start + 1000 * MS, books=books(venue, bps))  # fmt: skip


def opened(buy: str, sell: str, ts: int) -> OpportunityEvent:
    o = Opportunity(id=f"{buy}>{sell}@{ts}", instrument="BTC/USD", buy_venue=buy, sell_venue=sell, size=1.0,
                    vwap_buy=100.0, vwap_sell=101.0, gross_spread=0.01, fee_buy=0.001, fee_sell=0.001, gas=0.0,
                    haircut=0.0, slippage=0.0, net_edge=0.008, expected_profit=1.0, liquidity_score=1.0,
                    execution_time_s=0.05, risk_factor=1.0, priority=1.0, buy_quote_age_ms=1.0,
                    sell_quote_age_ms=1.0)  # fmt: skip
    return OpportunityEvent(type="opened", opportunity=o, opened_ns=ts, ts=ts, peak_net_edge=0.008)


def test_the_true_edge_is_the_best_pair_through_the_dislocated_venue_in_the_shifts_direction() -> None:
    up = true_edge(dislocation(1, "c", 50.0), COSTS, LIMITS)
    assert up is not None
    assert up.sell == "c"
    # c's book is 50 bps up; both levels of each side are within the 5 bps cap, so 200 units at the VWAPs:
    # buy (100.01 + 100.02) / 2, sell 100.5 * (0.9999 + 0.9998) / 2; minus 20 bps of fees
    assert up.net_bps == pytest.approx(((100.5 * 0.99985) / 100.015 - 1) * 1e4 - 20, abs=1e-6)
    down = true_edge(dislocation(2, "a", -50.0), COSTS, LIMITS)
    assert down is not None
    assert down.buy == "a"
    small = true_edge(dislocation(3, "b", 15.0), COSTS, LIMITS)
    assert small is not None
    assert small.net_bps < 0  # 15 bps cannot pay 20 bps of fees: still scored, as "below"


def test_recall_precision_and_latency_count_what_matched_in_time() -> None:
    truth = [
        dislocation(1, "c", 60.0, NS),  # ~38 bps net: must be found
        dislocation(2, "a", -60.0, NS + 5000 * MS),  # must be found: buy on a
        dislocation(3, "b", 15.0, NS + 10_000 * MS),  # below: must not be reported
        dislocation(4, "b", 80.0, NS + 20_000 * MS),  # missed
    ]
    events = [
        opened("a", "c", NS + 12 * MS),
        opened("b", "c", NS + 30 * MS),
        opened("a", "b", NS + 5040 * MS),  # buy on the dislocated a: matches 2
        opened("b", "a", NS + 5050 * MS),  # wrong direction for 2: a false positive
        opened("a", "b", NS + 10_005 * MS),  # during 3, which is below threshold: a false positive
    ]

    report = score(truth, events, COSTS, LIMITS)

    assert (report.above, report.below, report.borderline) == (3, 1, 0)
    assert report.found == 2
    assert report.missed == [4]
    assert report.recall == pytest.approx(2 / 3)
    assert (report.true_positives, report.false_positives) == (3, 2)
    assert report.precision == pytest.approx(3 / 5)
    assert report.detection_latency_ms_p50 == pytest.approx(26.0)  # 12 ms and 40 ms
    assert report.detection_latency_ms_max == pytest.approx(40.0)


def test_an_edge_the_other_venues_opened_later_is_true_from_that_moment_and_latency_counts_from_it() -> None:
    # c shifted up 15 bps: below the threshold at the start; 300 ms later a and b fell 40 bps, so selling on c
    # then clears it. An event before that moment is a false positive, one after it is found, timed from it.
    later = books("c", 15.0)
    for v in "ab":
        bids, asks = later[v]
        later[v] = ([(p * (1 - 40 / 1e4), q) for p, q in bids], [(p * (1 - 40 / 1e4), q) for p, q in asks])
    d = msgspec.structs.replace(dislocation(1, "c", 15.0), moments=[BooksAt(id=1, ts_ns=NS + 300 * MS, books=later)])

    early = score([d], [opened("a", "c", NS + 100 * MS)], COSTS, LIMITS)
    assert (early.above, early.found, early.false_positives) == (1, 0, 1)

    report = score([d], [opened("a", "c", NS + 320 * MS)], COSTS, LIMITS)
    assert (report.above, report.found, report.false_positives) == (1, 1, 0)
    assert report.detection_latency_ms_max == pytest.approx(20.0)


def test_an_event_after_the_dislocation_ended_plus_grace_does_not_count() -> None:
    truth = [dislocation(1, "c", 60.0, NS)]
    late = [opened("a", "c", NS + 1000 * MS + 301 * MS)]
    report = score(truth, late, COSTS, LIMITS, grace_ms=300.0)
    assert report.found == 0
    assert report.false_positives == 1


def test_a_window_scores_only_its_part_of_the_run_but_warm_up_dislocations_still_explain_events() -> None:
    truth = [
        dislocation(1, "c", 60.0, NS),  # during warm-up: not scored, yet real
        dislocation(2, "a", -60.0, NS + 5000 * MS),  # scored
        dislocation(3, "b", 80.0, NS + 9500 * MS),  # after the window: not scored even though missed
    ]
    events = [
        opened("a", "c", NS + 12 * MS),  # before the window: ignored
        opened("b", "c", NS + 1200 * MS),  # in the window, explained by the warm-up dislocation 1 (+ grace)
        opened("a", "b", NS + 5040 * MS),
    ]

    report = score(truth, events, COSTS, LIMITS, window=(NS + 1100 * MS, NS + 9000 * MS))

    assert (report.dislocations, report.above, report.found, report.missed) == (1, 1, 1, [])
    assert (report.opened, report.true_positives, report.false_positives) == (2, 2, 0)
    assert report.detection_latency_ms_max == pytest.approx(40.0)


def test_a_dislocation_in_the_window_detected_just_after_it_is_found() -> None:
    truth = [dislocation(1, "c", 60.0, NS + 8990 * MS)]
    report = score(truth, [opened("a", "c", NS + 9020 * MS)], COSTS, LIMITS, window=(NS, NS + 9000 * MS))
    assert (report.above, report.found, report.opened) == (1, 1, 0)
    assert report.detection_latency_ms_max == pytest.approx(30.0)
