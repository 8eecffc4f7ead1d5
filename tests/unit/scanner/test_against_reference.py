"""Property: the vectorised kernel finds exactly what the plain-Python reference finds, with the same numbers.

Each venue symbol is quoted in USDT, USD or USDC: the whole instrument in one currency on some grids, every cell drawn
on its own on others, so pairs that pay no haircut (same currency) and pairs that pay both (different) both occur."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from arb.model import Quote
from arb.scanner import reference
from arb.scanner.costs import CostModel
from arb.scanner.kernel import scan

from .support import LIMITS, empty_books, layout_of, put
from .support import settings as make_settings

VENUES = ("a", "b", "c", "d", "e")


QUOTES = ("USDT", "USD", "USDC")
Grid = tuple[list[str], list[float], dict[tuple[int, int], Quote], dict[tuple[int, int], str]]


@st.composite
def grids(draw: st.DrawFn) -> Grid:
    n_i = draw(st.integers(1, 4))
    n_v = draw(st.integers(2, 5))
    fees = [draw(st.sampled_from([0.0, 0.0002, 0.001, 0.002])) for _ in range(n_v)]
    mixed = draw(st.booleans())
    event("venue quote currencies mixed within a row" if mixed else "one venue quote currency per row")
    cells: dict[tuple[int, int], Quote] = {}
    currency: dict[tuple[int, int], str] = {}
    for i in range(n_i):
        price = draw(st.sampled_from([0.5, 100.0, 65_000.0]))
        row_quote = draw(st.sampled_from(QUOTES))
        for j in range(n_v):
            currency[i, j] = draw(st.sampled_from(QUOTES)) if mixed else row_quote
            if not draw(st.booleans()) and j > 1:
                continue  # not every venue quotes every instrument
            shift = draw(st.integers(-150, 150)) / 1e4  # up to 150 bps off
            half = draw(st.integers(1, 10)) / 1e4
            mid = price * (1 + shift)
            n_levels = draw(st.integers(0, 6))
            gap = draw(st.integers(1, 4)) / 1e4
            sizes = [draw(st.floats(0.0, 5.0)) * 20_000 / price for _ in range(max(n_levels, 1))]
            bids = tuple((mid * (1 - half - k * gap), sizes[k]) for k in range(n_levels))
            asks = tuple((mid * (1 + half + k * gap), sizes[k]) for k in range(n_levels))
            top_size = sizes[0] if sizes[0] > 0 else 1.0
            cells[i, j] = Quote(
                VENUES[j], f"X{i}/USD", mid * (1 - half), top_size, mid * (1 + half), top_size, 1, 1, 0,
                tuple((p, s if k else top_size) for k, (p, s) in enumerate(bids)),
                tuple((p, s if k else top_size) for k, (p, s) in enumerate(asks)),
            )  # fmt: skip
    return [f"X{i}/USD" for i in range(n_i)], fees, cells, currency


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grids(), st.sampled_from([0.0005, 0.001, 0.003]), st.sampled_from([0.0002, 0.0005, 0.002]))
def test_kernel_equals_the_reference_on_random_grids(grid: Grid, min_edge: float, max_slippage: float) -> None:
    instruments, fees, cells, currency = grid
    n_v = len(fees)
    venues = VENUES[:n_v]
    symbols = {x: {v: f"X/{currency[i, j]}" for j, v in enumerate(venues)} for i, x in enumerate(instruments)}
    s = make_settings(dict(zip(venues, fees, strict=True)), symbols)
    costs = CostModel(s, layout_of(s))
    limits = dataclasses.replace(LIMITS, min_edge=min_edge, max_slippage=max_slippage, max_notional_usd=200_000.0)
    books = empty_books(len(instruments), n_v)
    usable = np.zeros((len(instruments), n_v), np.bool_)
    by_instrument: dict[str, dict[str, Quote]] = {x: {} for x in instruments}
    for (i, j), q in cells.items():
        put(books, i, j, [(q.bid, q.bid_size), *q.bids[1:]], [(q.ask, q.ask_size), *q.asks[1:]], depth=bool(q.bids))
        usable[i, j] = True
        by_instrument[q.instrument][q.venue] = q
    cell_costs = {
        (x, v): reference.CellCost(
            fee=float(costs.fee[i, j]), haircut=float(costs.haircut[i, j]), currency=currency[i, j]
        )
        for i, x in enumerate(instruments)
        for j, v in enumerate(venues)
    }

    expected = reference.scan(by_instrument, cell_costs, dict.fromkeys(instruments, 1.0), limits)
    got = scan(books, costs, usable, limits)
    event("opportunities found" if expected else "none found")
    if any(f.haircut > 0 for f in expected):
        event("an opportunity across two quote currencies (pays both haircuts)")
    if any(f.haircut == 0 for f in expected):
        event("an opportunity without a haircut")

    want = {(f.instrument, f.buy_venue, f.sell_venue): f for f in expected}
    have = {(instruments[c.row], venues[c.buy], venues[c.sell]): c for c in got}
    for c in got:  # the rule itself: a haircut only between different venue quote currencies
        a, b = currency[c.row, c.buy], currency[c.row, c.sell]
        assert c.haircut == (0.0 if a == b else costs.haircut[c.row, c.buy] + costs.haircut[c.row, c.sell])
    near_threshold = {k for k, f in want.items() if abs(f.net - min_edge) < 1e-12}
    assert set(have) - near_threshold == set(want) - near_threshold
    for key in set(have) & set(want):
        f, c = want[key], have[key]
        assert c.size == pytest.approx(f.size, rel=1e-12)
        assert c.vwap_buy == pytest.approx(f.vwap_buy, rel=1e-12)
        assert c.vwap_sell == pytest.approx(f.vwap_sell, rel=1e-12)
        assert c.net == pytest.approx(f.net, rel=1e-9, abs=1e-12)
        assert c.haircut == pytest.approx(f.haircut, abs=1e-15)
        assert c.slippage == pytest.approx(f.slippage, rel=1e-9, abs=1e-12)
        assert c.depth_estimated == f.depth_estimated
