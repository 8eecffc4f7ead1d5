"""Exact ladders -> a Quote whose depth walks to the exact amount at every ladder size."""

from __future__ import annotations

import pytest

from arb.connectors.dex.quoting import Ladder, ladder_quote, ladder_sizes
from arb.model import Quote


def quote_of(ladder: Ladder, base_decimals: int = 0, quote_decimals: int = 0) -> Quote | str:
    return ladder_quote(
        "uniswap_v2",
        "ETH/USD",
        ladder,
        base_decimals=base_decimals,
        quote_decimals=quote_decimals,
        block=7,
        ts_exchange=1,
        ts_recv=2,
    )


def test_levels_are_the_marginal_prices_between_ladder_sizes() -> None:
    ladder = Ladder(sells=((1, 100), (3, 290), (6, 560)), buys=((1, 110), (3, 340)))

    q = quote_of(ladder)

    assert isinstance(q, Quote)
    assert q.bids == ((100.0, 1.0), (95.0, 2.0), (90.0, 3.0))  # (290-100)/2, (560-290)/3
    assert q.asks == ((110.0, 1.0), (115.0, 2.0))  # (340-110)/2
    assert (q.bid, q.bid_size, q.ask, q.ask_size) == (100.0, 1.0, 110.0, 1.0)
    assert q.sequence == 7  # the block number


def test_decimals_scale_prices_and_sizes() -> None:
    # 1e18 base (18 decimals) sells for 3000e6 quote (6 decimals): price 3000, size 1
    q = quote_of(Ladder(sells=((10**18, 3000 * 10**6),), buys=((10**18, 3010 * 10**6),)), 18, 6)
    assert isinstance(q, Quote)
    assert q.bids == ((3000.0, 1.0),)
    assert q.asks == ((3010.0, 1.0),)


def test_a_slice_that_does_not_worsen_is_merged_and_cumulative_amounts_stay_exact() -> None:
    # 100 -> 290 -> 480: the second slice (190/2 = 95) and third (190/2 = 95) are equal: merged into (95, 4)
    q = quote_of(Ladder(sells=((1, 100), (3, 290), (5, 480)), buys=((1, 110),)))
    assert isinstance(q, Quote)
    assert q.bids == ((100.0, 1.0), (95.0, 4.0))
    assert sum(p * s for p, s in q.bids) == 480


def test_a_dust_size_that_yields_nothing_is_skipped() -> None:
    q = quote_of(Ladder(sells=((1, 0), (10, 900)), buys=((10, 1100),)))
    assert isinstance(q, Quote)
    assert q.bids == ((90.0, 10.0),)


def test_a_pool_that_cannot_price_a_side_gives_no_quote() -> None:
    assert quote_of(Ladder(sells=((1, 100),), buys=())) == "one-sided: the pool cannot price both sides (no liquidity)"


def test_ladder_sizes_are_fractions_of_the_reserve() -> None:
    assert ladder_sizes(1_000_000, (0.001, 0.01, 0.1)) == [1000, 10_000, 100_000]
    assert ladder_sizes(10, (0.001, 0.5)) == [5]  # 0.01 of a unit rounds to nothing and is dropped


@pytest.mark.parametrize("fractions", [(), (0.1, 0.01), (0.5, 1.0), tuple(i / 100 for i in range(1, 22))])
def test_bad_ladder_fractions_are_refused(fractions: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="ladder fractions"):
        ladder_sizes(10**18, fractions)
