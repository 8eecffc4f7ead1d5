"""Scorer: VADER plus the crypto lexicon, judged on hand-labelled headlines; the transformer option fails loudly."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from arb.strategy.sentiment import NewsItem, Scorer, ScorerError

HEADLINES = Path(__file__).parent / "data" / "headlines.jsonl"


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer()


def test_sign_agreement_on_labelled_headlines_is_at_least_80_percent(scorer: Scorer) -> None:
    rows = [json.loads(line) for line in HEADLINES.read_text().splitlines() if line.strip()]
    labels = [row["label"] for row in rows]
    assert len(rows) >= 50
    assert set(labels) == {1, -1}  # no neutral labels: every headline has a side
    assert abs(labels.count(1) - labels.count(-1)) <= 2  # balanced, so "always positive" scores ~50 %

    agree = sum(
        1 for row in rows if (score := scorer.score(row["headline"])) != 0 and (score > 0) == (row["label"] > 0)
    )

    rate = agree / len(rows)
    print(f"sentiment sign agreement: {agree}/{len(rows)} = {rate:.1%}")
    assert rate >= 0.80


@pytest.mark.parametrize(
    ("text", "sign"),
    [
        ("Bitcoin rallies to a record high", 1),
        ("Ether hits all-time high", 1),
        ("ETF approval boosts ether", 1),
        ("Regulator drops lawsuit against exchange", 1),  # "drops" alone is a price fall; "drops lawsuit" is relief
        ("Exchange token drops 5%", -1),
        ("SEC lawsuit targets exchange", -1),
        ("Project suffers rug pull", -1),
        ("Traders liquidated as bitcoin plunges", -1),
        ("ETF not approved", -1),  # VADER's negation flips the lexicon word
        ("Bitcoin conference to be held in Lisbon in May", 0),
        ("", 0),
    ],
)
def test_market_vocabulary_has_the_sign_a_trader_reads(scorer: Scorer, text: str, sign: int) -> None:
    score = scorer.score(text)

    assert (score > 0) - (score < 0) == sign


def test_scores_stay_in_minus_one_to_one_for_long_emphatic_text(scorer: Scorer) -> None:
    assert scorer.score("HACKED!!! exploit, rug pull, bankruptcy, liquidated, crash " * 200) == pytest.approx(
        -1, abs=1e-3
    )
    assert -1.0 <= scorer.score("HACKED!!! exploit, rug pull, bankruptcy, liquidated, crash " * 200) <= 1.0
    assert 0 < scorer.score("surge rally soar ATH bullish moon " * 200) <= 1.0


def test_score_items_fills_the_score_from_the_headline_or_else_the_body(scorer: Scorer) -> None:
    items = [
        NewsItem(ts_ns=1, source="a", title="Bitcoin surges", body="Exchange hacked", assets=("BTC",)),
        NewsItem(ts_ns=2, source="a", title="", body="Exchange hacked"),
    ]

    scored = scorer.score_items(items)

    assert scored[0].score == scorer.score("Bitcoin surges") > 0
    assert scored[1].score == scorer.score("Exchange hacked") < 0
    assert scored[0].assets == ("BTC",)
    assert items[0].score is None  # the inputs are not changed


def test_a_configured_transformer_path_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "finbert"

    with pytest.raises(ScorerError, match="no such directory"):
        Scorer(str(missing))


@pytest.mark.skipif(importlib.util.find_spec("transformers") is not None, reason="transformers is installed here")
def test_a_configured_transformer_without_the_transformers_package_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # restored after the test (the Scorer sets it to 1)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")

    with pytest.raises(ScorerError, match="`transformers` package is not installed"):
        Scorer(str(tmp_path))
