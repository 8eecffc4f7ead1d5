"""Building venues from the settings (no sockets): who is served, with which symbols and which protocol."""

from __future__ import annotations

import pytest

import arb.sim
from arb.config import load_settings
from arb.sim.server import SimExchangeGroup
from arb.sim.venues import BinanceProtocol, native_protocol, protocol_for


def test_every_enabled_cex_venue_is_served_with_exactly_its_configured_symbols() -> None:
    settings = load_settings()

    group = SimExchangeGroup.from_settings(settings)

    cex = {vid for vid, v in settings.venues.items() if v.kind == "cex" and v.enabled}
    assert set(group.venues) == cex
    for vid, venue in group.venues.items():
        configured = {iid: i.venues[vid] for iid, i in settings.instruments.items() if vid in i.venues}
        assert venue.feed.symbols == configured
        assert len(venue.market_ids) == len(set(venue.market_ids))  # no two symbols share a venue id
    assert group.venues["binance"].book_for_symbol("BTC/USDT").instrument == "BTC/USD"
    assert group.venues["kraken"].book_for_symbol("BTC/USD").instrument == "BTC/USD"


def test_a_venue_that_is_not_an_enabled_cex_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="capital_com, nowhere"):
        SimExchangeGroup.from_settings(load_settings(), ["binance", "capital_com", "nowhere"])


def test_venues_without_a_module_borrow_the_binance_protocol_and_say_so() -> None:
    assert protocol_for("binance") is BinanceProtocol
    assert native_protocol("binance")
    assert protocol_for("mexc") is BinanceProtocol
    assert not native_protocol("mexc")


def test_the_package_exports_resolve_lazily() -> None:
    assert arb.sim.SimVenue.__name__ == "SimVenue"
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = arb.sim.Nope  # type: ignore[attr-defined]
