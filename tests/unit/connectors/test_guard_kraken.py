"""KrakenGuard on Kraken v2 `book` messages decoded the way ccxt decodes them (orjson: floats, padding lost).

The first vector is a real Kraken session (ALGO/USD, 2024): a snapshot and the update after it, with the checksums
Kraken sent. The others are built the way the guide says and checksummed here with the guide's algorithm on the wire
strings (https://docs.kraken.com/api/docs/guides/spot-ws-book-v2), independently of the guard's own code.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson
import pytest

from arb.connectors.guards import guard_class
from arb.connectors.guards.kraken import KrakenGuard

REAL_SNAPSHOT = (
    '{"channel":"book","type":"snapshot","data":[{"symbol":"ALGO/USD","bids":[{"price":0.12291,"qty":27039.62776299},'
    '{"price":0.12290,"qty":8136.33288180},{"price":0.12287,"qty":10984.20817349},{"price":0.12283,"qty":28027.05025639},'
    '{"price":0.12280,"qty":9705.60000000},{"price":0.12279,"qty":15215.53522714},{"price":0.12275,"qty":4067.00000000},'
    '{"price":0.12274,"qty":30639.39949109},{"price":0.12268,"qty":2531.96119986},{"price":0.12267,"qty":16299.00000000}],'
    '"asks":[{"price":0.12307,"qty":600.00000000},{"price":0.12308,"qty":4042.11919517},'
    '{"price":0.12312,"qty":10284.53891000},{"price":0.12314,"qty":16155.08885299},{"price":0.12315,"qty":5186.05778473},'
    '{"price":0.12316,"qty":32828.24000000},{"price":0.12317,"qty":7751.65718582},{"price":0.12318,"qty":32298.82000000},'
    '{"price":0.12319,"qty":1864.66899600},{"price":0.12322,"qty":4718.99755630}],"checksum":2375857985}]}'
)
REAL_UPDATE = (
    '{"channel":"book","type":"update","data":[{"symbol":"ALGO/USD","bids":[{"price":0.12275,"qty":6597.51731160}],'
    '"asks":[],"checksum":1100635717,"timestamp":"2024-10-03T02:46:57.050170Z"}]}'
)


def decoded(text: str) -> Any:
    return orjson.loads(text)  # what ccxt hands to handle_message


def docs_checksum(asks: list[tuple[str, str]], bids: list[tuple[str, str]]) -> int:
    def token(s: str) -> str:
        return s.replace(".", "").lstrip("0")

    return zlib.crc32("".join(token(p) + token(q) for p, q in [*asks[:10], *bids[:10]]).encode())


def book_message(kind: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]], checksum: int) -> Any:
    def side(levels: list[tuple[str, str]]) -> str:
        return ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in levels)

    return decoded(
        f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"BTC/USD","bids":[{side(bids)}],"asks":[{side(asks)}],'
        f'"checksum":{checksum},"timestamp":"2025-01-01T00:00:00.000000Z"}}]}}'
    )


ACK = {
    "method": "subscribe",
    "result": {"channel": "book", "depth": 10, "snapshot": True, "symbol": "BTC/USD"},
    "success": True,
    "time_in": "2025-01-01T00:00:00.000000Z",
    "time_out": "2025-01-01T00:00:00.000000Z",
}
BIDS = [(f"{65000 - i}.{i}", f"0.{i + 1:02d}000000") for i in range(10)]  # 65000.0 .. 64991.9, qty 0.01000000 ..
ASKS = [(f"{65001 + i}.5", f"{i + 1}.00000000") for i in range(10)]


@pytest.fixture
def guard() -> KrakenGuard:
    g = KrakenGuard()
    assert g.check(ACK) is None
    assert g.check(book_message("snapshot", BIDS, ASKS, docs_checksum(ASKS, BIDS))) is None
    return g


def test_the_registry_finds_the_kraken_guard() -> None:
    assert guard_class("kraken") is KrakenGuard


def test_a_real_kraken_snapshot_and_update_pass_with_the_precision_learned_from_the_checksum() -> None:
    guard = KrakenGuard()

    assert guard.check(decoded(REAL_SNAPSHOT)) is None
    assert guard.check(decoded(REAL_UPDATE)) is None
    assert guard.books["ALGO/USD"].decimals == (5, 8)  # 0.12290 and 9705.60000000: the padding floats dropped


def test_an_update_that_does_not_produce_the_sent_checksum_is_refused() -> None:
    guard = KrakenGuard()
    guard.check(decoded(REAL_SNAPSHOT))
    other = REAL_UPDATE.replace('"qty":6597.51731160', '"qty":6597.51731161')  # an update we did not see

    assert "checksum 1100635717" in str(guard.check(decoded(other)))


def test_a_level_pushed_out_of_the_depth_is_trimmed_without_a_delete(guard: KrakenGuard) -> None:
    # A better bid arrives: the 10th bid leaves the top 10 but no qty 0 is sent for it.
    bids = [("65000.5", "0.50000000"), *BIDS[:9]]
    assert guard.check(book_message("update", [bids[0]], [], docs_checksum(ASKS, bids))) is None
    # While outside the depth that level was deleted on the venue (unseen); now the best bid goes and the venue
    # publishes its new 10th, a level *below* the one we trimmed: only a trimmed copy reproduces the checksum.
    new_tenth = ("64990.0", "3.00000000")
    bids = [*bids[1:], new_tenth]
    message = book_message("update", [("65000.5", "0.00000000"), new_tenth], [], docs_checksum(ASKS, bids))

    assert guard.check(message) is None
    assert len(guard.books["BTC/USD"].bids) == 10


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ('"bids":"not a list of levels"', "not a list"),
        ('"bids":[{"price":"NaN","qty":0.01000000}]', "finite numbers"),
        ('"bids":[{"price":65000.1,"qty":-1.00000000}]', "finite numbers"),
        ('"bids":[{"price":65002.5,"qty":0.01000000}]', "crossed"),
    ],
)
def test_malformed_or_crossing_updates_are_refused(guard: KrakenGuard, change: str, reason: str) -> None:
    text = orjson.dumps(book_message("update", [BIDS[0]], [], docs_checksum(ASKS, BIDS))).decode()
    text = text.replace(text[text.index('"bids":') : text.index(',"asks"')], change)

    assert reason in str(guard.check(decoded(text)))


def test_a_string_checksum_is_refused(guard: KrakenGuard) -> None:
    message = book_message("update", [BIDS[0]], [], 0)
    message["data"][0]["checksum"] = "123"

    assert "not an integer" in str(guard.check(message))


def test_a_snapshot_whose_checksum_no_precision_explains_is_refused() -> None:
    guard = KrakenGuard()

    assert "matches no price/qty precision" in str(guard.check(book_message("snapshot", BIDS, ASKS, 12345)))


def test_pinned_decimals_are_used_instead_of_learning_them() -> None:
    guard = KrakenGuard(decimals={"BTC/USD": (2, 8)})  # the wire has 1 price decimal: nothing can match

    assert "snapshot checksum" in str(guard.check(book_message("snapshot", BIDS, ASKS, docs_checksum(ASKS, BIDS))))


def test_an_update_before_the_snapshot_or_after_unsubscribing_is_refused(guard: KrakenGuard) -> None:
    update = book_message("update", [BIDS[0]], [], docs_checksum(ASKS, BIDS))
    unsubscribed = {"method": "unsubscribe", "result": {"channel": "book", "depth": 10, "symbol": "BTC/USD"}}

    assert "before its snapshot" in str(KrakenGuard().check(update))
    assert guard.check({**unsubscribed, "success": True}) is None
    assert "before its snapshot" in str(guard.check(update))


def test_a_fresh_snapshot_heals_a_book_that_failed() -> None:
    guard = KrakenGuard()
    guard.check(decoded(REAL_SNAPSHOT))
    assert guard.check(decoded(REAL_UPDATE.replace("1100635717", "1"))) is not None

    assert guard.check(decoded(REAL_SNAPSHOT)) is None
    assert guard.check(decoded(REAL_UPDATE)) is None


@pytest.mark.parametrize(
    "message",
    [
        {"channel": "heartbeat"},
        {"channel": "status", "type": "update", "data": [{"api_version": "v2", "system": "online"}]},
        {"method": "pong", "req_id": 3, "time_in": "x", "time_out": "x"},
        {"channel": "ticker", "type": "update", "data": [{"symbol": "BTC/USD", "bid": 1.0, "ask": 2.0}]},
        {"error": "Already subscribed", "method": "subscribe", "success": False, "symbol": "BTC/USD"},
        "not a dict",
    ],
)
def test_messages_other_than_book_data_pass(message: Any) -> None:
    assert KrakenGuard().check(message) is None
