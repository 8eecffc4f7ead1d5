"""The grid layout: row/column order shared by Redis, the mirror and the scanner, and the per-venue age limits."""

from __future__ import annotations

import pytest

from arb.config import load_settings
from arb.grid import GridLayout


def test_cells_are_numbered_instrument_major_and_fields_name_them() -> None:
    layout = GridLayout.from_lists(["BTC/USD", "ETH/USD"], ["binance", "kraken", "okx"], 1500)

    assert layout.shape == (2, 3)
    assert layout.cell("BTC/USD", "binance") == 0
    assert layout.cell("ETH/USD", "kraken") == 1 * 3 + 1
    assert layout.field("ETH/USD", "okx") == b"ETH/USD|okx"
    assert layout.fields[layout.cell("BTC/USD", "okx")] == b"BTC/USD|okx"
    assert layout.max_age_ns.tolist() == [1_500_000_000] * 3


def test_per_venue_max_age_is_kept_by_column() -> None:
    layout = GridLayout.from_lists(["X/USD"], ["slow", "fast"], {"slow": 5000, "fast": 250})

    assert layout.max_age_ns_of("fast") == 250_000_000
    assert layout.max_age_ns.tolist() == [5_000_000_000, 250_000_000]


def test_unknown_instrument_or_venue_is_named_in_the_error() -> None:
    layout = GridLayout.from_lists(["BTC/USD"], ["binance"])

    with pytest.raises(KeyError, match="instrument 'DOGE/USD'"):
        layout.cell("DOGE/USD", "binance")
    with pytest.raises(KeyError, match="venue 'ftx'"):
        layout.cell("BTC/USD", "ftx")


@pytest.mark.parametrize(
    ("instruments", "venues", "ages", "message"),
    [
        ([], ["binance"], 1000, "at least one instrument"),
        (["BTC/USD"], [], 1000, "at least one venue"),
        (["BTC/USD", "BTC/USD"], ["binance"], 1000, "appears twice"),
        (["BTC|USD"], ["binance"], 1000, "without '\\|'"),
        (["BTC/USD"], [""], 1000, "must be non-empty"),
        (["BTC/USD"], ["binance"], 0, "must be > 0 ms"),
        (["BTC/USD"], ["binance", "kraken"], {"binance": 100}, "no max quote age for venue\\(s\\) kraken"),
    ],
)
def test_bad_layouts_are_refused_with_the_reason(
    instruments: list[str], venues: list[str], ages: int | dict[str, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        GridLayout.from_lists(instruments, venues, ages)


def test_layout_id_changes_with_order_but_not_with_ages() -> None:
    a = GridLayout.from_lists(["A/USD", "B/USD"], ["x", "y"], 1000)
    b = GridLayout.from_lists(["B/USD", "A/USD"], ["x", "y"], 1000)
    c = GridLayout.from_lists(["A/USD", "B/USD"], ["x", "y"], 2000)

    assert a.layout_id != b.layout_id
    assert a.layout_id == c.layout_id
    assert a != c  # same cells, different staleness policy


def test_layout_from_shipped_settings_has_every_instrument_and_enabled_venue() -> None:
    settings = load_settings()

    layout = GridLayout.from_settings(settings)

    enabled = [vid for vid, v in settings.venues.items() if v.enabled]
    assert layout.instruments == tuple(settings.instruments)
    assert layout.venues == tuple(enabled)
    assert layout.shape == (len(settings.instruments), len(enabled))
    for j, vid in enumerate(enabled):
        assert layout.max_age_ns[j] == settings.venues[vid].max_quote_age_ms * 1_000_000
