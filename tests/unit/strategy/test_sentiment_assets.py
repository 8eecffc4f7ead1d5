"""assets_of: tickers and names, without the false positives that would move an unrelated coin's index."""

from __future__ import annotations

import pytest

from arb.strategy.sentiment import DEFAULT_ALIASES, assets_of, merge_aliases

ALIASES = merge_aliases({"ONE": []})  # Harmony: a ticker that is also a word


@pytest.mark.parametrize(
    ("text", "assets"),
    [
        ("Bitcoin slides as ether rallies", ("BTC", "ETH")),
        ("BTC and ETH options expire", ("BTC", "ETH")),
        ("$btc and $Sol pump", ("BTC", "SOL")),  # cashtags in any case
        ("Solana's SOL token jumps", ("SOL",)),
        ("A solution for sol-gel chemistry", ()),  # SOL only as an upper-case whole word
        ("Bitcoin Cash jumps while bitcoin slides", ("BCH", "BTC")),  # the longer name wins
        ("Ethereum Classic forks", ("ETC",)),
        ("etc. and so on", ()),
        ("One of the biggest ONE-day moves", ()),  # ambiguous ticker, bare
        ("Harmony $ONE rallies", ("ONE",)),
        ("Chainlink (LINK) rises", ("LINK",)),  # name and parenthesised ticker
        ("Click the LINK below", ()),
        ("OP-ED: an APT group hacked a DOT contractor", ()),
        ("Aptos (APT) and Polkadot rally", ("APT", "DOT")),
        ("BTC-USD and XRP/USDT trade higher", ("BTC", "USDT", "XRP")),
        ("BITCOIN ETF APPROVED", ("BTC",)),  # all-caps headline: the name still matches
        ("Near Protocol upgrade", ("NEAR",)),
        ("Prices near record", ()),
        ("Bitcoin's rally; ETH's slump", ("BTC", "ETH")),
        ("Bitcoiner conference", ()),  # whole words only
        ("", ()),
    ],
)
def test_assets_of_maps_headlines_to_assets(text: str, assets: tuple[str, ...]) -> None:
    assert assets_of(text, ALIASES) == assets


def test_an_asset_unknown_to_the_aliases_is_not_reported() -> None:
    assert assets_of("BTC and ZEC rally", {"BTC": ["bitcoin"]}) == ("BTC",)


def test_settings_aliases_are_merged_with_the_defaults() -> None:
    merged = merge_aliases({"BTC": ["Digital Gold", "bitcoin"], "TAO": ["bittensor"]})

    assert merged["BTC"] == ("bitcoin", "xbt", "digital gold")  # no duplicate, names lower-cased
    assert assets_of("Digital  gold and Bittensor rally", merged) == ("BTC", "TAO")
    assert "TAO" not in DEFAULT_ALIASES


def test_merge_without_defaults_keeps_only_the_given_names() -> None:
    assert merge_aliases({"BTC": ["bitcoin"]}, defaults=False) == {"BTC": ("bitcoin",)}


@pytest.mark.parametrize(
    ("aliases", "message"),
    [
        ({"btc": ["bitcoin"]}, "not an upper-case ticker"),
        ({"BTC/USDT": ["bitcoin"]}, "not an upper-case ticker"),
        ({"BTC": [" "]}, "empty name"),
    ],
)
def test_bad_aliases_are_refused_naming_the_entry(aliases: dict[str, list[str]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        merge_aliases(aliases)


def test_one_name_for_two_assets_is_refused() -> None:
    with pytest.raises(ValueError, match="'gold' is given for both"):
        assets_of("gold", {"PAXG": ["gold"], "XAUT": ["gold"]})
