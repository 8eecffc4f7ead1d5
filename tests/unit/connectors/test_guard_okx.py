"""The OKX guard on messages in the documented format (docs-v5 "WS / Order book channel"): chain, M5, checksum, M7."""

from __future__ import annotations

import zlib
from typing import Any

import pytest

from arb.connectors.guards.okx import OkxGuard

ARG = {"channel": "books", "instId": "BTC-USDT"}


def crc(check_string: str) -> int:
    value = zlib.crc32(check_string.encode())
    return value - 2**32 if value >= 2**31 else value


def books(action: str, bids: list[list[str]], asks: list[list[str]], prev: int, seq: int, checksum: int) -> Any:
    data = {"asks": asks, "bids": bids, "ts": "1597026383085", "checksum": checksum, "prevSeqId": prev, "seqId": seq}
    return {"arg": ARG, "action": action, "data": [data]}


# The docs' snapshot levels; the book after it, read bid/ask alternately, best first.
SNAP_BIDS = [["8476.97", "256", "0", "12"], ["8475.55", "101", "0", "1"], ["8475.3", "1", "0", "1"]]
SNAP_ASKS = [["8476.98", "415", "0", "13"], ["8477", "7", "0", "2"]]
SNAP_CHECK = "8476.97:256:8476.98:415:8475.55:101:8477:7:8475.3:1"
# An update that resizes the best bid, deletes the best ask and adds a bid between the first two.
UPD_BIDS = [["8476.97", "250", "0", "11"], ["8476", "3", "0", "1"]]
UPD_ASKS = [["8476.98", "0", "0", "0"]]
UPD_CHECK = "8476.97:250:8477:7:8476:3:8475.55:101:8475.3:1"


def snapshot(seq: int = 123456, checksum: int | None = None) -> Any:
    return books("snapshot", SNAP_BIDS, SNAP_ASKS, -1, seq, crc(SNAP_CHECK) if checksum is None else checksum)


def test_a_snapshot_and_a_chained_update_with_their_checksums_pass() -> None:
    guard = OkxGuard()

    assert guard.check({"event": "subscribe", "arg": ARG, "connId": "a4d3ae55"}) is None
    assert guard.check(snapshot()) is None
    assert guard.check(books("update", UPD_BIDS, UPD_ASKS, 123456, 123460, crc(UPD_CHECK))) is None
    assert (guard.keepalives, guard.restarts, guard.unchained) == (0, 0, 0)


def test_only_the_best_25_levels_a_side_count_and_a_missing_side_is_skipped() -> None:
    bids = [[f"{100 - i}", f"{i + 1}", "0", "1"] for i in range(30)]
    asks = [[f"{101 + i}.5", "2", "0", "1"] for i in range(3)]
    fields = []
    for i in range(25):
        fields += [f"{100 - i}", f"{i + 1}"]
        if i < 3:
            fields += [f"{101 + i}.5", "2"]
    guard = OkxGuard()

    assert guard.check(books("snapshot", bids[::-1], asks, -1, 7, crc(":".join(fields)))) is None  # any row order


def test_a_keepalive_and_a_sequence_restart_are_accepted_and_counted_not_gaps() -> None:
    guard = OkxGuard()
    guard.check(snapshot())
    check = crc(SNAP_CHECK)

    assert guard.check(books("update", [], [], 123456, 123456, check)) is None  # keep-alive
    assert guard.check(books("update", [], [], 123456, 3, check)) is None  # restart after maintenance
    assert guard.check(books("update", UPD_BIDS, UPD_ASKS, 3, 5, crc(UPD_CHECK))) is None  # chains on from 3
    assert (guard.keepalives, guard.restarts, guard.unchained) == (1, 1, 0)


def test_a_gap_is_left_to_ccxt_and_the_book_goes_unverified_until_a_new_snapshot_even_a_lower_one() -> None:
    guard = OkxGuard()
    guard.check(snapshot(seq=500))

    assert guard.check(books("update", UPD_BIDS, UPD_ASKS, 499, 510, crc(UPD_CHECK))) is None
    assert guard.unchained == 1
    assert guard.check(books("update", UPD_BIDS, [], 510, 515, 12345)) is None  # no true copy: nothing to verify
    assert guard.check(snapshot(seq=20)) is None  # resubscribed after maintenance: lower seqId, fresh book
    problem = guard.check(books("update", UPD_BIDS, UPD_ASKS, 20, 21, 12345))
    assert problem == f"checksum mismatch (sent 12345, book gives {crc(UPD_CHECK)}) at seqId 21 books BTC-USDT"


def test_a_wrong_checksum_is_refused_and_a_zero_checksum_is_not_checked() -> None:
    refused = OkxGuard()
    production = OkxGuard()

    assert refused.check(snapshot(checksum=crc(SNAP_CHECK) ^ 1)) is not None
    assert production.check(snapshot(checksum=0)) is None  # OKX sends 0 since 2026-06-23
    assert production.check(books("update", UPD_BIDS, UPD_ASKS, 123456, 123457, 0)) is None


@pytest.mark.parametrize(
    ("bids", "seq", "problem"),
    [
        ([["NaN", "1", "0", "1"]], 123457, "malformed books BTC-USDT: level ['NaN', '1'] out of range"),
        ([["8470", "-1", "0", "1"]], 123457, "malformed books BTC-USDT: level ['8470', '-1'] out of range"),
        ([["8470", "one", "0", "1"]], 123457, "malformed books BTC-USDT: level ['8470', 'one'] is not decimal"),
        (
            [[8470, 1, 0, 1]],
            123457,
            "malformed books BTC-USDT: level [8470, 1, 0, 1] is not [price, size, ...] strings",
        ),
        ("not a list of levels", 123457, "malformed books BTC-USDT: bids is not a list"),
        ([], "123457", "malformed books BTC-USDT: seqId '123457' is not an integer"),
    ],
)
def test_levels_and_fields_that_ccxt_would_take_silently_are_refused(bids: Any, seq: Any, problem: str) -> None:
    guard = OkxGuard()
    guard.check(snapshot())

    assert guard.check(books("update", bids, [], 123456, seq, 0)) == problem


def test_top_of_book_channels_are_checked_for_bad_levels_and_everything_else_passes() -> None:
    guard = OkxGuard()
    top = {
        "asks": [["8477", "7", "0", "2"]],
        "bids": [["8476.97", "256", "0", "12"]],
        "ts": "1651826598363",
        "seqId": 5,
    }
    bbo = {"arg": {"channel": "bbo-tbt", "instId": "BTC-USDT"}, "data": [top]}
    nan_bbo = {"arg": bbo["arg"], "data": [{**bbo["data"][0], "bids": [["NaN", "1", "0", "1"]]}]}

    assert guard.check(bbo) is None
    assert guard.check(nan_bbo) == "malformed bbo-tbt BTC-USDT: level ['NaN', '1'] out of range"
    assert guard.check("pong") is None
    assert guard.check({"event": "notice", "code": "64008", "msg": "...", "connId": "a4d3ae55"}) is None
    assert guard.check({"event": "error", "code": "60018", "msg": "...", "connId": "a4d3ae55"}) is None
    assert guard.check({"arg": {"channel": "tickers", "instId": "BTC-USDT"}, "data": [{"bidPx": "NaN"}]}) is None


def test_an_unsubscribe_forgets_the_book() -> None:
    guard = OkxGuard()
    guard.check(snapshot())

    assert guard.check({"event": "unsubscribe", "arg": ARG, "connId": "a4d3ae55"}) is None
    assert guard.check(books("update", UPD_BIDS, UPD_ASKS, 1, 2, 12345)) is None  # nothing left to check against
    assert guard.unchained == 0
