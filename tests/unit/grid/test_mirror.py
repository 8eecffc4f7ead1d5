"""The numpy mirror without Redis: applying quotes, ages, and the rule that nothing is fresh unless provably so."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from arb.grid import GridLayout, GridMirror, GridSnapshot, PriceGrid, codec
from arb.grid.store import FeedPosition
from tests.support import MS, NS, Clock, quote

LAYOUT = GridLayout.from_lists(
    ["BTC/USD", "ETH/USD"], ["binance", "kraken", "dex"], {"binance": 1000, "kraken": 1000, "dex": 10_000}
)


@pytest.fixture
async def mirror() -> AsyncIterator[GridMirror]:
    clock = Clock()
    grid = PriceGrid.from_url("redis://127.0.0.1:9/0", LAYOUT, now_ns=clock)  # never connected in these tests
    try:
        m = grid.mirror()
        m._set_valid(True)  # as after a rebuild; these tests are about the arrays
        yield m
    finally:
        await grid.aclose()


def test_an_empty_mirror_has_nan_prices_and_nothing_fresh(mirror: GridMirror) -> None:
    assert mirror.bid.shape == (2, 3)
    assert np.isnan(mirror.bid).all()
    assert np.isnan(mirror.ask_size).all()
    assert (mirror.ts_recv == 0).all()
    assert not mirror.fresh_mask(NS).any()
    assert (mirror.ages_ns(NS) == np.iinfo(np.int64).max).all()


def test_apply_puts_each_quote_in_its_cell(mirror: GridMirror) -> None:
    applied = mirror.apply([quote(), quote("dex", "ETH/USD", bid=10.0, ask=11.0, bid_size=3.0, sequence=9)])

    assert applied == 2
    assert mirror.bid[0, 0] == 100.0
    assert mirror.ask[0, 0] == 100.5
    assert (mirror.bid[1, 2], mirror.ask[1, 2], mirror.bid_size[1, 2], mirror.sequence[1, 2]) == (10.0, 11.0, 3.0, 9)
    assert mirror.ts_exchange[0, 0] == NS - 5 * MS
    assert mirror.present.tolist() == [[True, False, False], [False, False, True]]


def test_within_a_batch_the_last_quote_for_a_cell_wins(mirror: GridMirror) -> None:
    mirror.apply(
        [quote(bid=1.0, ask=2.0, sequence=1), quote(bid=3.0, ask=4.0, sequence=2), quote(bid=2.0, ask=3.0, sequence=3)]
    )

    assert (mirror.bid[0, 0], mirror.sequence[0, 0]) == (2.0, 3)


def test_unknown_and_unsound_quotes_are_skipped_and_counted_not_applied(mirror: GridMirror) -> None:
    applied = mirror.apply(
        [
            quote("ftx"),
            quote(instrument="DOGE/USD"),
            quote(bid=101.0, ask=100.0),
            quote(ask_size=-1.0),
            quote(sequence=5),
        ]
    )

    assert applied == 1
    assert mirror.sequence[0, 0] == 5
    assert mirror.skipped == {"unknown_venue": 1, "unknown_instrument": 1, "invalid_quote": 2}


def test_staleness_on_both_sides_of_each_venues_limit(mirror: GridMirror) -> None:
    mirror.apply([quote("binance"), quote("dex")])

    at_limit = NS + 1000 * MS
    assert mirror.fresh_mask(at_limit)[0].tolist() == [True, False, True]
    assert mirror.fresh_mask(at_limit + 1)[0].tolist() == [False, False, True]  # binance: 1 ns too old
    assert mirror.fresh_mask(NS + 10_000 * MS + 1)[0].tolist() == [False, False, False]
    assert mirror.ages_ns(at_limit)[0, 0] == 1000 * MS


def test_a_quote_from_further_in_the_future_than_the_limit_is_not_fresh(mirror: GridMirror) -> None:
    mirror.apply([quote(ts_recv=NS + 1000 * MS + 1)])

    assert not mirror.fresh_mask(NS)[0, 0]
    assert mirror.fresh_mask(NS + 1)[0, 0]


def test_nothing_is_fresh_while_the_mirror_is_invalid(mirror: GridMirror) -> None:
    mirror.apply([quote(), quote("kraken")])
    assert mirror.fresh_mask(NS).sum() == 2

    mirror._set_valid(False)

    assert not mirror.valid
    assert not mirror.fresh_mask(NS).any()
    assert mirror.bid[0, 0] == 100.0  # the data stays for inspection; it is just not usable


def test_default_clock_is_the_grids(mirror: GridMirror) -> None:
    mirror.apply([quote()])
    clock = mirror.grid.now_ns
    assert isinstance(clock, Clock)

    clock.now = NS + 1000 * MS + 1

    assert not mirror.fresh_mask()[0, 0]


def test_load_replaces_every_cell_and_takes_the_snapshots_position(mirror: GridMirror) -> None:
    mirror.apply([quote("kraken", "ETH/USD")])
    records = np.zeros(LAYOUT.n_cells, codec.CELL_DTYPE)
    records[0]["bid"], records[0]["ask"], records[0]["ts_recv"], records[0]["magic"] = 7.0, 8.0, NS, codec.CELL_MAGIC
    snapshot = GridSnapshot(LAYOUT, records, taken_ns=NS, position=FeedPosition(12, "5-0"), skipped={})
    bid_view = mirror.bid

    mirror.load(snapshot)

    assert mirror.bid[0, 0] == 7.0
    assert np.isnan(mirror.bid[1, 1])  # the old ETH/kraken quote is gone
    assert mirror.position == FeedPosition(12, "5-0")
    assert bid_view is mirror.bid  # updated in place: references taken earlier stay current


def test_a_snapshot_of_another_layout_is_refused(mirror: GridMirror) -> None:
    other = GridLayout.from_lists(["BTC/USD"], ["binance"])
    snapshot = GridSnapshot(other, np.zeros(1, codec.CELL_DTYPE), taken_ns=NS, position=FeedPosition(), skipped={})

    with pytest.raises(ValueError, match="does not fit"):
        mirror.load(snapshot)
