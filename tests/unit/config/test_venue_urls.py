"""A CEX venue's `urls: {http, ws}` override (where `arb run --live` points its ccxt client): kept when well formed,
refused naming the key when not."""

from __future__ import annotations

from pathlib import Path

import pytest

from arb.config import ConfigError, load_settings
from arb.demo import configured_venues


def test_a_cex_venue_without_urls_is_reached_at_the_exchange_own_hosts() -> None:
    venues = configured_venues(load_settings())

    binance = venues["binance"]
    assert (binance["http_url"], binance["ws_url"], binance["protocol"]) == (None, None, "binance")
    assert binance["configured"] is True
    assert binance["symbols"] > 100
    assert "capital_com" not in venues  # CEX venues only
    assert "uniswap_v3" not in venues


def test_urls_point_the_venue_elsewhere(tmp_path: Path) -> None:
    user = tmp_path / "user.yaml"
    user.write_text('venues:\n  okx:\n    urls: {http: "https://gw.example:8443/okx", ws: "wss://gw.example/okx"}\n')

    okx = configured_venues(load_settings(user))["okx"]

    assert (okx["http_url"], okx["ws_url"], okx["protocol"]) == (
        "https://gw.example:8443/okx", "wss://gw.example/okx", "okx"
    )  # fmt: skip


def test_a_disabled_venue_is_not_streamed(tmp_path: Path) -> None:
    user = tmp_path / "user.yaml"
    user.write_text("venues:\n  kraken: {enabled: false}\n")

    assert "kraken" not in configured_venues(load_settings(user))


@pytest.mark.parametrize(
    ("urls", "problem"),
    [
        ('{http: "https://a.example"}', "exactly the keys http and ws"),
        ('{http: "ftp://a.example", ws: "wss://a.example"}', "urls.http must be an absolute http/https URL"),
        ('{http: "https://a.example", ws: "https://a.example"}', "urls.ws must be an absolute ws/wss URL"),
        ('{http: "https://", ws: "wss://a.example"}', "urls.http must be an absolute"),
    ],
)
def test_bad_urls_are_refused_naming_the_venue(tmp_path: Path, urls: str, problem: str) -> None:
    user = tmp_path / "user.yaml"
    user.write_text(f"venues:\n  binance:\n    urls: {urls}\n")

    with pytest.raises(ConfigError) as info:
        load_settings(user)

    assert any("venues.binance" in p and problem in p for p in info.value.problems), info.value.problems
