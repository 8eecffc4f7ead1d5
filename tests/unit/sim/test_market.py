"""The market process without sockets: dislocations (exact size and timing), book invariants, diffs, ground truth."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import msgspec
import pytest

from arb.sim.market import (
    Book,
    BookUpdate,
    Dislocation,
    DislocationSchedule,
    InstrumentSpec,
    Market,
    MarketConfig,
)
from arb.sim.truth import TruthLog, read_truth_file
from tests.support import MS, NS

SPECS = [
    InstrumentSpec.derive("BTC/USD", base="BTC", asset_class="crypto_major"),
    InstrumentSpec.derive("ETH/USD", base="ETH", asset_class="crypto_major"),
    InstrumentSpec.derive("SHIB/USD", base="SHIB", asset_class="crypto_major"),
]
SYMBOLS = {"BTC/USD": "BTC/USDT", "ETH/USD": "ETH/USDT", "SHIB/USD": "SHIB/USDT"}
STILL = MarketConfig(seed=3, volatility_bps=0.0, venue_noise_bps=0.0)
"""A market whose only moves are the ones a test makes."""


def market(config: MarketConfig = STILL, **kwargs: object) -> Market:
    m = Market(SPECS, config, now_ns=lambda: NS, **kwargs)  # type: ignore[arg-type]
    m.add_venue("binance", SYMBOLS)
    m.add_venue("kraken", {"BTC/USD": "BTC/USD", "ETH/USD": "ETH/USD"})
    return m


def mid_ticks(book: Book) -> float:
    return (book.bid_top + book.ask_top) / 2


def assert_sound(book: Book, depth: int) -> None:
    bids, asks = book.levels()
    assert len(bids) == depth
    assert len(asks) == depth
    assert bids[0].price < asks[0].price, f"crossed: {bids[0]} >= {asks[0]}"
    assert [lv.price for lv in bids] == sorted({lv.price for lv in bids}, reverse=True)
    assert [lv.price for lv in asks] == sorted({lv.price for lv in asks})
    assert all(lv.size > 0 and math.isfinite(lv.size) for lv in bids + asks)
    assert (bids[0].price, bids[0].size, asks[0].price, asks[0].size) == book.top()


def test_derived_instruments_have_plausible_prices_ticks_and_steps() -> None:
    btc, eth, shib = SPECS

    assert (btc.price, btc.tick, btc.step) == (65000.0, 0.01, 1e-05)
    assert (eth.tick, eth.step) == (0.01, 0.0001)
    assert shib.tick == 1e-08
    assert shib.step == 1.0
    unknown = InstrumentSpec.derive("ZZZ/USD", base="ZZZ", asset_class="crypto_alt")
    assert unknown == InstrumentSpec.derive("ZZZ/USD", base="ZZZ", asset_class="crypto_alt")  # same every run
    assert 0.01 <= unknown.price <= 50.0


def test_a_dislocation_shifts_the_venue_center_by_exactly_n_bps_until_it_ends() -> None:
    m = market()
    before = m.center("binance", "BTC/USD")

    d = m.inject("binance", "BTC/USD", bps=37.5, duration_ms=250, now_ns=NS)

    assert m.center("binance", "BTC/USD") / before == pytest.approx(1.00375, rel=1e-12)
    m.step(NS + 250 * MS - 1)  # the last nanosecond of the dislocation
    assert m.center("binance", "BTC/USD") / before == pytest.approx(1.00375, rel=1e-12)
    m.step(NS + 250 * MS)  # its end is exclusive
    assert m.center("binance", "BTC/USD") == before
    assert (d.start_ns, d.end_ns, d.bps, d.symbol) == (NS, NS + 250 * MS, 37.5, "BTC/USDT")
    assert d.active_at(NS + 250 * MS - 1)
    assert not d.active_at(NS + 250 * MS)


def test_a_dislocation_moves_that_book_at_once_and_leaves_every_other_book_alone() -> None:
    m = market()
    btc = m.book("binance", "BTC/USD")
    bid, _, ask, _ = btc.top()
    others = {(v, i): m.book(v, i).top()[::2] for v, i in [("kraken", "BTC/USD"), ("binance", "ETH/USD")]}

    m.inject("binance", "BTC/USD", bps=-50, duration_ms=1000, now_ns=NS)

    new_bid, _, new_ask, _ = btc.top()
    assert new_bid / bid == pytest.approx(0.995, abs=2 * btc.tick / bid)
    assert new_ask / ask == pytest.approx(0.995, abs=2 * btc.tick / ask)
    assert {k: m.book(*k).top()[::2] for k in others} == others


def test_overlapping_dislocations_multiply_and_each_ends_on_its_own() -> None:
    m = market()
    before = m.center("binance", "ETH/USD")

    m.inject("binance", "ETH/USD", bps=100, duration_ms=100, now_ns=NS)
    m.inject("binance", "ETH/USD", bps=-20, duration_ms=300, now_ns=NS)

    assert m.center("binance", "ETH/USD") / before == pytest.approx(1.01 * 0.998, rel=1e-12)
    m.expire(NS + 100 * MS)
    assert m.center("binance", "ETH/USD") / before == pytest.approx(0.998, rel=1e-12)
    m.expire(NS + 300 * MS)
    assert m.center("binance", "ETH/USD") == before
    assert m.active == []


def test_books_stay_uncrossed_with_full_depth_through_a_wild_walk() -> None:
    cfg = MarketConfig(seed=11, volatility_bps=40.0, venue_noise_bps=5.0, book_update_hz=10.0, depth=25)
    m = market(cfg)
    seen = 0

    for k in range(1, 400):
        seen += m.step(NS + k * 100 * MS)
        for feed in m.feeds.values():
            for book in feed.books:
                assert_sound(book, depth=25)

    assert seen > 1000  # the walk really refreshed the books


def test_replaying_the_diffs_on_a_snapshot_rebuilds_every_book_exactly() -> None:
    m = market(MarketConfig(seed=5, volatility_bps=20.0, book_update_hz=10.0))
    feed = m.feed("binance")
    snapshot = {b.symbol: (b.update_id, dict(b.bids), dict(b.asks)) for b in feed.books}
    received: list[BookUpdate] = []
    feed.add_listener(received.extend)

    for k in range(1, 200):
        m.step(NS + k * 100 * MS)
    m.inject("binance", "SHIB/USD", bps=80, duration_ms=50, now_ns=NS + 200 * 100 * MS)

    for book in feed.books:
        last_id, bids, asks = snapshot[book.symbol]
        for upd in (u for u in received if u.book is book):
            assert upd.first_id == last_id + 1  # an unbroken chain, as Binance's U/u
            assert upd.last_id >= upd.first_id
            for side, changes in ((bids, upd.bids), (asks, upd.asks)):
                for tick, size in changes:
                    if size == 0.0:
                        side.pop(tick, None)
                    else:
                        side[tick] = size
            last_id = upd.last_id
        assert (last_id, bids, asks) == (book.update_id, book.bids, book.asks)


def test_each_book_refreshes_about_book_update_hz_times_a_second() -> None:
    m = market(MarketConfig(seed=2, book_update_hz=4.0))

    for k in range(1, 101):  # 10 s at 10 Hz
        m.step(NS + k * 100 * MS)

    per_book_per_s = m.updates / 10 / 5
    assert 3.0 < per_book_per_s < 5.0


def test_every_dislocation_goes_to_the_truth_file(tmp_path: Path) -> None:
    path = tmp_path / "truth" / "dislocations.jsonl"
    m = market(truth=TruthLog(path))

    a = m.inject("binance", "BTC/USD", bps=25, duration_ms=500, now_ns=NS)
    b = m.inject("kraken", "ETH/USD", bps=-40, duration_ms=1500, now_ns=NS + MS)

    recorded = read_truth_file(path)
    assert [msgspec.structs.replace(d, books={}) for d in recorded] == [a, b]
    # each record carries every venue's book of the instrument as it was right after the shift
    shifted_bid = recorded[0].books["binance"][0][0][0]
    assert shifted_bid == m.book("binance", "BTC/USD").levels()[0][0].price
    assert set(recorded[1].books) == {v for v in m.feeds if "ETH/USD" in m.feeds[v].by_instrument}
    assert b == Dislocation(
        id=2, venue="kraken", instrument="ETH/USD", symbol="ETH/USD", bps=-40.0, start_ns=NS + MS,
        end_ns=NS + MS + 1500 * MS, source="manual",
    )  # fmt: skip


def test_while_a_dislocation_lasts_each_refresh_of_its_instrument_records_every_venues_book(tmp_path: Path) -> None:
    path = tmp_path / "truth.jsonl"
    m = market(
        MarketConfig(seed=3, volatility_bps=50.0, venue_noise_bps=0.0, book_update_hz=10.0), truth=TruthLog(path)
    )
    m.step(NS)
    d = m.inject("binance", "BTC/USD", bps=30, duration_ms=500, now_ns=NS)

    m.step(NS + 100 * MS)  # 10 Hz over 100 ms: books refresh, the walk moves kraken's BTC away from the start
    m.step(NS + 200 * MS)
    kraken_bid = m.book("kraken", "BTC/USD").levels()[0][0].price
    m.step(NS + 700 * MS)  # the dislocation has ended: no more moments

    recorded = read_truth_file(path)
    assert [r.id for r in recorded] == [d.id]
    moments = recorded[0].moments
    assert [x.ts_ns for x in moments] == [NS + 100 * MS, NS + 200 * MS]
    last = moments[-1].books
    assert set(last) == {"binance", "kraken"}
    assert last["kraken"][0][0][0] == kraken_bid
    assert last["kraken"] != recorded[0].books["kraken"]  # what the venues offered moved after the start


def test_a_truth_file_with_a_moment_of_an_unknown_dislocation_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "truth.jsonl"
    path.write_bytes(b'{"id": 7, "ts_ns": 1, "books": {}}\n')
    with pytest.raises(ValueError, match=r"never recorded: \[7\]"):
        read_truth_file(path)


def test_a_schedule_injects_random_dislocations_within_its_ranges_and_records_them() -> None:
    schedule = DislocationSchedule(rate_per_min=600, bps=(30, 60), duration_ms=(200, 400), venues=("kraken",))
    truth = TruthLog()
    m = market(truth=truth, schedule=schedule)

    for k in range(1, 51):  # 5 s at 10 dislocations a second
        m.step(NS + k * 100 * MS)

    # ~50 drawn; those landing on an instrument already dislocated are skipped (kraken lists few in this market)
    assert 12 <= len(truth.records) <= 80
    for d in truth.records:
        others = [o for o in truth.records if o is not d and o.instrument == d.instrument]
        assert all(o.end_ns <= d.start_ns or o.start_ns >= d.end_ns for o in others), "overlap on one instrument"
        assert d.venue == "kraken"
        assert d.source == "schedule"
        assert 30 <= abs(d.bps) <= 60
        assert 200 * MS <= d.end_ns - d.start_ns <= 400 * MS
    assert {d.id for d in truth.records} == set(range(1, len(truth.records) + 1))


@pytest.mark.parametrize(
    ("venue", "instrument", "bps", "duration_ms", "message"),
    [
        ("okx", "BTC/USD", 10, 100, "venue okx is not in the market"),
        ("kraken", "SHIB/USD", 10, 100, "kraken does not list SHIB/USD"),
        ("binance", "BTC/USD", 0, 100, "bps must be"),
        ("binance", "BTC/USD", float("nan"), 100, "bps must be"),
        ("binance", "BTC/USD", 10, 0, "duration_ms must be"),
    ],
)
def test_inject_refuses_what_it_cannot_do_and_names_why(
    venue: str, instrument: str, bps: float, duration_ms: float, message: str
) -> None:
    m = market()

    with pytest.raises((KeyError, ValueError), match=message):
        m.inject(venue, instrument, bps, duration_ms)

    assert m.active == []


def test_adding_a_venue_again_keeps_its_books_but_other_symbols_are_refused() -> None:
    m = market()
    feed = m.feed("kraken")

    assert m.add_venue("kraken", {"BTC/USD": "BTC/USD", "ETH/USD": "ETH/USD"}) is feed
    with pytest.raises(ValueError, match="already in the market with other symbols"):
        m.add_venue("kraken", {"BTC/USD": "XBT/USD"})


def test_a_regular_market_refreshes_every_book_exactly_at_its_rate() -> None:
    """The demo's market: no book goes quieter than 1 / book_update_hz (so none outlives its quote-age limit)."""
    specs = [InstrumentSpec.derive(i, base=i.split("/")[0], asset_class="crypto_major") for i in ("BTC/USD", "ETH/USD")]
    m = Market(specs, MarketConfig(seed=3, tick_hz=20.0, book_update_hz=2.0, regular=True))
    m.add_venue("binance", {"BTC/USD": "BTC/USDT", "ETH/USD": "ETH/USDT"})
    m.add_venue("kraken", {"BTC/USD": "BTC/USD"})
    refreshed: dict[tuple[str, str], list[int]] = {}
    for venue in ("binance", "kraken"):
        m.feed(venue).add_listener(
            lambda ups: [refreshed.setdefault((u.book.venue, u.book.instrument), []).append(u.ts_ns) for u in ups]
        )

    for k in range(0, 201):  # 10 s in 50 ms steps
        m.step(NS + k * 50 * MS)

    assert set(refreshed) == {("binance", "BTC/USD"), ("binance", "ETH/USD"), ("kraken", "BTC/USD")}
    for times in refreshed.values():
        assert 19 <= len(times) <= 21  # 2 a second for 10 s
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert max(gaps) <= 550 * MS  # every 500 ms, give or take one step
