"""Cell format and entry checks: the fast paths must agree with `quote_problems`, bad entries are skipped and named."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arb.grid import GridLayout, codec
from arb.model import Quote, encode_quote, encode_quotes, quote_is_sound, quote_problems
from tests.support import NS, quote

LAYOUT = GridLayout.from_lists(["BTC/USD", "ETH/USD", "SOL/USD"], ["binance", "kraken"], 1000)


prices = st.one_of(
    st.floats(min_value=-10, max_value=1e6),
    st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan, 1e-300]),
)
levels = st.lists(st.tuples(prices, prices), max_size=22).map(tuple)
quotes = st.builds(
    Quote,
    venue=st.sampled_from(["binance", "kraken", "ftx"]),
    instrument=st.sampled_from(["BTC/USD", "ETH/USD", "DOGE/USD"]),
    bid=prices,
    bid_size=prices,
    ask=prices,
    ask_size=prices,
    ts_exchange=st.integers(min_value=-5, max_value=2**62),
    ts_recv=st.integers(min_value=-5, max_value=2**62),
    sequence=st.integers(min_value=0, max_value=2**62),
    bids=st.one_of(st.just(()), levels),
    asks=st.one_of(st.just(()), levels),
)


@settings(max_examples=400, deadline=None)
@given(quotes)
def test_fast_soundness_check_agrees_with_quote_problems(q: Quote) -> None:
    assert quote_is_sound(q) == (not quote_problems(q))


@settings(max_examples=80, deadline=None)
@given(st.lists(quotes, max_size=30))
def test_pack_rejects_exactly_the_unknown_and_unsound_quotes(batch: list[Quote]) -> None:
    packed = codec.pack(LAYOUT, batch)

    expected_bad = [k for k, q in enumerate(batch) if (q.instrument, q.venue) not in LAYOUT.cells or quote_problems(q)]
    assert [r.position for r in packed.rejected] == expected_bad
    kept = [q for k, q in enumerate(batch) if k not in set(expected_bad)]
    assert packed.quotes == kept
    assert packed.cells == [LAYOUT.cell(q.instrument, q.venue) for q in kept]
    assert packed.records["bid"].tolist() == [q.bid for q in kept]
    assert packed.records["ts_recv"].tolist() == [q.ts_recv for q in kept]
    assert packed.records["n_bids"].tolist() == [len(q.bids) for q in kept]


def test_pack_names_the_problem_and_the_reason() -> None:
    batch = [quote(), quote(bid=101.0, ask=100.0), quote(venue="ftx"), quote(instrument="DOGE/USD")]

    rejected = codec.pack(LAYOUT, batch).rejected

    assert [(r.position, r.reason) for r in rejected] == [
        (1, "invalid_quote"),
        (2, "unknown_venue"),
        (3, "unknown_instrument"),
    ]
    assert "crossed book" in rejected[0].problem
    assert "'ftx'" in rejected[1].problem


def test_pack_refuses_quotes_built_with_wrong_types_instead_of_crashing() -> None:
    bad = quote(bid="100")  # Quote construction does not check types; only decoding does
    huge = quote(ts_recv=2**70)

    rejected = codec.pack(LAYOUT, [quote(), bad, huge]).rejected

    assert [r.position for r in rejected] == [1, 2]


@pytest.mark.parametrize("n", [0, 1, 15, 16, 300, 65_535, 65_536])
def test_msgpack_array_is_byte_identical_to_encoding_the_list(n: int) -> None:
    qs = [quote(sequence=k % 7) for k in range(n)]

    assert codec.msgpack_array([encode_quote(q) for q in qs]) == encode_quotes(qs)


def test_str16_frames_bytes_the_way_redis_cmsgpack_reads_them() -> None:
    assert codec.str16(b"ab") == b"\xda\x00\x02ab"
    assert codec.str16(b"x" * 70_000)[:5] == b"\xdb" + (70_000).to_bytes(4, "big")


def test_blob_is_venue_major_and_decodes_to_instrument_major_cells() -> None:
    n_i, n_v = LAYOUT.shape
    blob = np.zeros(LAYOUT.n_cells, codec.CELL_DTYPE)
    for i in range(n_i):
        for j in range(n_v):
            cell = blob[j * n_i + i]  # venue-major position
            cell["bid"], cell["ask"] = 10.0 * i + j + 1, 10.0 * i + j + 1.5
            cell["ts_recv"], cell["magic"] = NS, codec.CELL_MAGIC
    skips = codec.Skips("test")

    records = codec.decode_blob(LAYOUT, blob.tobytes(), skips)

    assert records["bid"].reshape(LAYOUT.shape).tolist() == [[10.0 * i + j + 1 for j in range(n_v)] for i in range(n_i)]
    assert not skips
    assert codec.blob_index(LAYOUT).tolist() == [j * n_i + i for i in range(n_i) for j in range(n_v)]


def test_empty_or_short_blob_reads_as_empty_cells() -> None:
    skips = codec.Skips("test")
    one_cell = np.zeros(1, codec.CELL_DTYPE)
    one_cell["bid"], one_cell["ask"], one_cell["ts_recv"], one_cell["magic"] = 1.0, 2.0, NS, codec.CELL_MAGIC

    assert (codec.decode_blob(LAYOUT, None, skips)["magic"] == 0).all()
    records = codec.decode_blob(LAYOUT, one_cell.tobytes(), skips)

    assert records["magic"].tolist().count(codec.CELL_MAGIC) == 1
    assert records["bid"][0] == 1.0  # blob position 0 is (instrument 0, venue 0)
    assert not skips


def test_garbage_unsound_and_oversized_blob_cells_are_skipped_and_counted() -> None:
    n = LAYOUT.n_cells
    cells = np.zeros(n, codec.CELL_DTYPE)
    cells["bid"], cells["ask"], cells["ts_recv"], cells["magic"] = 1.0, 2.0, NS, codec.CELL_MAGIC
    cells[1]["magic"] = 0xDEADBEEF  # not a cell we wrote
    cells[2]["bid"] = math.nan
    cells[3]["bid"], cells[3]["ask"] = 3.0, 2.0  # crossed
    cells[4]["ask_size"] = -1.0
    blob = cells.tobytes() + b"extra"
    skips = codec.Skips("test")

    records = codec.decode_blob(LAYOUT, blob, skips)

    assert skips.counts == {"bad_blob": 1, "undecodable": 1, "invalid_quote": 3}
    assert (records["magic"] == codec.CELL_MAGIC).sum() == n - 4


def test_hash_entries_are_checked_field_by_field() -> None:
    good = encode_quote(quote(venue="kraken", instrument="ETH/USD"))
    crossed = encode_quote(quote(bid=5.0, ask=4.0))
    skips = codec.Skips("test")

    assert codec.decode_hash_entry(LAYOUT, b"ETH/USD|kraken", good, skips) == (
        LAYOUT.cell("ETH/USD", "kraken"),
        quote(venue="kraken", instrument="ETH/USD"),
    )
    assert not skips
    entries = [
        (b"no-separator", good, "bad_field"),
        (b"\xff\xfe|kraken", good, "bad_field"),
        (b"DOGE/USD|kraken", good, "unknown_instrument"),
        (b"ETH/USD|ftx", good, "unknown_venue"),
        (b"ETH/USD|kraken", b"\xc1not msgpack", "undecodable"),
        (b"ETH/USD|kraken", msgspec.msgpack.encode({"bid": 1}), "undecodable"),
        (b"BTC/USD|binance", good, "field_mismatch"),
        (b"BTC/USD|binance", crossed, "invalid_quote"),
    ]
    for field, value, _reason in entries:
        assert codec.decode_hash_entry(LAYOUT, field, value, skips) is None
    assert skips.counts == {
        "bad_field": 2,
        "unknown_instrument": 1,
        "unknown_venue": 1,
        "undecodable": 2,
        "field_mismatch": 1,
        "invalid_quote": 1,
    }


def test_one_undecodable_quote_in_a_feed_entry_costs_only_itself() -> None:
    good = [quote(sequence=1), quote(sequence=2)]
    payload = codec.msgpack_array([encode_quote(good[0]), msgspec.msgpack.encode(["junk"]), encode_quote(good[1])])
    skips = codec.Skips("test")

    assert codec.decode_feed_quotes(payload, "1-0", skips) == good
    assert skips.counts == {"undecodable": 1}
    assert codec.decode_feed_quotes(b"\xc1\xc1", "2-0", skips) == []
    assert skips.counts == {"undecodable": 1, "feed_undecodable": 1}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(b"1", 1), (b"42", 42), (None, None), (b"0", None), (b"-3", None), (b"x", None), (b"9" * 20, None)],
)
def test_feed_counter_must_be_a_positive_integer(raw: bytes | None, expected: int | None) -> None:
    assert codec.parse_counter(raw) == expected


def test_freshness_boundary_is_inclusive_and_symmetric() -> None:
    max_age = np.array([1000], dtype=np.int64)
    ages = np.array([-1001, -1000, 0, 1000, 1001], dtype=np.int64)

    assert codec.fresh_mask(ages, max_age).tolist() == [False, True, True, True, False]
