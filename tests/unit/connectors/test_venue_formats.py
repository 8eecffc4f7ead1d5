"""Every configured CEX, proven on its own wire format: documented frames -> real ccxt.pro -> Quote (issue 3, point 3).

One contract suite for all venues (see `venue_formats.py`): each venue supplies only `formats/<venue>.json` — its
markets, the REST answers and WebSocket frames of its order-book feed as its docs describe them (cited in the file),
and the book expected after each step. The test plays the file over a loopback server to the real ccxt.pro exchange
class, reads the book after every step with `watch_order_book`, and checks the Quote `quote_from_order_book` makes of
it: top of book, every level, venue time and sequence. Where the venue defines what a broken feed looks like (a
sequence gap, a wrong checksum), the suite checks what ccxt does with it: refuses it (the watch raises), chokes on it
(the error escapes its handler and the watch stalls) or serves it unchecked. The last two are pinned ccxt gaps that
the connector has to cover (a stall watchdog; its own sequence check).

A CEX in venues.yaml without a faithful script is listed in UNVERIFIED with the reason, never silently left out.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import ccxt
import msgspec
import pytest

from arb.config import load_settings
from arb.connectors.quotes import quote_from_order_book
from arb.model import Quote
from tests.unit.connectors.venue_formats import (
    CHECKSUMS,
    Book,
    VenueScript,
    contains,
    frame_text,
    load_script,
    scripted_venues,
    session,
)

UNVERIFIED: dict[str, str] = {}
"""CEX venue id -> why its wire format is not reproduced here (the README lists these as unverified)."""

VENUES = scripted_venues()
SCRIPTS = {venue: load_script(venue) for venue in VENUES}


def expected_quote_fields(book: Book, ts_recv: int) -> dict[str, Any]:
    bids = tuple((float(p), float(s)) for p, s in book.bids)
    asks = tuple((float(p), float(s)) for p, s in book.asks)
    return {
        "bid": bids[0][0],
        "bid_size": bids[0][1],
        "ask": asks[0][0],
        "ask_size": asks[0][1],
        "bids": bids,
        "asks": asks,
        "ts_exchange": book.timestamp * 1_000_000 if book.timestamp is not None else ts_recv,
        "sequence": book.nonce if book.nonce is not None else 0,
    }


_FIELDS = ("bid", "bid_size", "ask", "ask_size", "bids", "asks", "ts_exchange", "sequence")


def quote_fields(quote: Quote) -> dict[str, Any]:
    return {name: getattr(quote, name) for name in _FIELDS}


def test_every_configured_cex_venue_is_scripted_or_listed_as_unverified() -> None:
    cex = {vid for vid, v in load_settings().venues.items() if v.kind == "cex"}

    assert set(VENUES) | set(UNVERIFIED) == cex
    assert not set(VENUES) & set(UNVERIFIED)
    assert len(VENUES) >= 15


@pytest.mark.parametrize("venue", VENUES)
def test_script_watches_the_symbol_configured_for_its_instrument(venue: str) -> None:
    """Where the venue has configured books the script uses one; where it has none (Bitvavo: EUR books only, see
    instruments.yaml) it uses a book in one of the venue's quote currencies."""
    script = SCRIPTS[venue]
    settings = load_settings()
    configured = {i: inst.venues[venue] for i, inst in settings.instruments.items() if venue in inst.venues}

    assert script.venue == venue
    if configured:
        assert configured.get(script.instrument) == script.symbol
    else:
        assert script.symbol.split("/")[1] in settings.venues[venue].quote_currencies


@pytest.mark.parametrize("venue", VENUES)
async def test_documented_book_feed_becomes_the_expected_quotes(venue: str) -> None:
    script = SCRIPTS[venue]

    async with session(script) as s:
        for step in script.steps:
            book = await s.step(step)
            ts_recv = time.time_ns()
            quote = quote_from_order_book(venue, script.instrument, book, ts_recv)

            assert isinstance(quote, Quote), f"{step.name}: {quote}"
            assert quote_fields(quote) == expected_quote_fields(step.expect, ts_recv), step.name

    documented = script.ws_prefix + urlsplit(script.ws_url).path.rstrip("/")
    assert s.venue.ws_paths, "the client never opened a WebSocket"
    assert all(path.startswith(documented) for path in s.venue.ws_paths), (documented, s.venue.ws_paths)
    assert s.venue.unmatched_rest == []
    for wanted in script.expect_sent:
        assert any(contains(sent, wanted) for sent in s.venue.received), f"the client never sent {wanted}"


async def test_binance_spot_diffs_reach_the_spot_book_with_a_plain_local_ws_url() -> None:
    """ccxt's `is_spot_url` looks for '/stream' in the WS URL, and with the spot and perp markets both loaded (both
    have the id BTCUSDT) a URL without it files the spot diffs under the perp (the first book is then the bare REST
    snapshot). `point_at_local` keeps '/stream' on Binance's spot host, so a plain local ws_url works too."""
    script = msgspec.structs.replace(SCRIPTS["binance"], ws_prefix="")
    snapshot = script.rest[0].body

    async with session(script) as s:
        book = await s.step(script.steps[0])
        quote = quote_from_order_book("binance", script.instrument, book, 1)

    assert isinstance(quote, Quote), quote
    assert quote.sequence > snapshot["lastUpdateId"]  # the buffered diffs were applied on top of the snapshot
    assert all(path.startswith("/stream/ws") for path in s.venue.ws_paths), s.venue.ws_paths


def bad_update_venues(kind: str) -> list[str]:
    """Venues whose bad update ccxt `rejects` (the watch raises), lets `escape` its handler, or leaves `unchecked`."""
    out = []
    for venue in VENUES:
        bad = SCRIPTS[venue].bad_update
        if bad is None:
            continue
        found = "unchecked" if bad.raises is None else "escape" if bad.escapes else "rejects"
        if found == kind:
            out.append(venue)
    return out


@pytest.mark.parametrize("venue", bad_update_venues("rejects"))
async def test_broken_update_is_refused_not_applied(venue: str) -> None:
    script = SCRIPTS[venue]
    bad = script.bad_update
    assert bad is not None
    assert bad.raises is not None

    async with session(script) as s:
        for step in script.steps:
            await s.step(step)
        with pytest.raises(getattr(ccxt, bad.raises)):
            await s.step(bad)

        assert (script.symbol not in s.exchange.orderbooks) is bad.book_dropped


@pytest.mark.parametrize("venue", bad_update_venues("escape"))
async def test_broken_update_error_escapes_ccxt_and_stalls_the_watch(
    venue: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Pins a known ccxt gap: the error is raised out of the message handler (asyncio logs it) instead of rejecting
    the watch, so the watch hangs and the book stays at its last good state; the connector's stall watchdog must act."""
    script = SCRIPTS[venue]
    bad = script.bad_update
    assert bad is not None
    assert bad.raises is not None
    error = getattr(ccxt, bad.raises)

    def logged() -> bool:
        return any(r.exc_info is not None and isinstance(r.exc_info[1], error) for r in caplog.records)

    async with session(script) as s:
        for step in script.steps:
            book = await s.step(step)
        last_good = quote_from_order_book(venue, script.instrument, book, 1)

        unanswered = await s.step_unanswered(bad, logged)
        now = quote_from_order_book(venue, script.instrument, s.exchange.orderbooks[script.symbol], 1)

    assert unanswered
    assert now == last_good


@pytest.mark.parametrize("venue", bad_update_venues("unchecked"))
async def test_broken_update_ccxt_does_not_check_is_served_as_is(venue: str) -> None:
    """Pins a known ccxt gap: the venue documents the integrity rule but ccxt applies the update unchecked, so the
    connector must check it itself. If ccxt starts refusing it, this fails and the script should say `raises`."""
    script = SCRIPTS[venue]
    bad = script.bad_update
    assert bad is not None
    assert bad.applied is not None

    async with session(script) as s:
        for step in script.steps:
            await s.step(step)
        book = await s.step(bad)
        ts_recv = time.time_ns()
        quote = quote_from_order_book(venue, script.instrument, book, ts_recv)

    assert isinstance(quote, Quote), quote
    assert quote_fields(quote) == expected_quote_fields(bad.applied, ts_recv)


@pytest.mark.parametrize("venue", [v for v in VENUES if SCRIPTS[v].checksum is not None])
def test_recorded_checksums_follow_the_documented_algorithm(venue: str) -> None:
    script: VenueScript = SCRIPTS[venue]
    assert script.checksum is not None
    algorithm = CHECKSUMS[script.checksum]
    checked = [step for step in script.steps if step.checksum is not None]

    assert checked, "a venue with checksums records at least one"
    for step in checked:
        assert step.checksum is not None
        assert algorithm(step.expect) == step.checksum, step.name
        assert str(step.checksum) in frame_text(step.frames[-1]), step.name


@pytest.mark.parametrize("venue", bad_update_venues("unchecked"))
async def test_guard_covers_the_broken_update_ccxt_does_not_check(venue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every gap ccxt serves unchecked is caught by the venue's guard (`arb.connectors.guards`): replayed through
    `guarded(<ccxt.pro class>, <Guard>)`, the documented flow passes untouched and the guard trips exactly on the bad
    update, which never reaches the book (the watch stays unanswered, the book at its last good state)."""
    import ccxt.pro

    from arb.connectors.guards import guard_class, guarded

    script = SCRIPTS[venue]
    bad = script.bad_update
    assert bad is not None
    guard = guard_class(venue)
    assert guard is not None, f"ccxt applies {venue}'s broken update unchecked and no guard covers it"
    monkeypatch.setattr(ccxt.pro, venue, guarded(getattr(ccxt.pro, venue), guard))
    trips: list[str] = []

    async with session(script) as s:
        s.exchange.arb_on_trip = trips.append
        for step in script.steps:
            book = await s.step(step)
            assert trips == [], step.name
        last_good = quote_from_order_book(venue, script.instrument, book, 1)

        unanswered = await s.step_unanswered(bad, lambda: bool(trips))
        now = quote_from_order_book(venue, script.instrument, s.exchange.orderbooks[script.symbol], 1)

    assert unanswered
    assert len(trips) == 1, trips
    assert s.exchange.arb_tripped == trips[0]
    assert now == last_good
