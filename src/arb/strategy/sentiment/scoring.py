"""Headline sentiment in [-1, 1]: VADER with a crypto/finance lexicon, optionally blended with a local transformer.

Why VADER: it is deterministic, needs no model download, scores a headline in tens of microseconds and handles
negation ("not approved") and intensifiers ("sharply"); what it lacks is market vocabulary, which `lexicon` adds.
A transformer (e.g. a FinBERT-style classifier) reads context better but costs a model on disk; when
`transformer_model` names one, the two scores are averaged with `TRANSFORMER_BLEND` weight on the transformer.
The model is only ever loaded from that local path (`local_files_only=True`, `HF_HUB_OFFLINE=1`): a trading host
must not reach for the network at start-up, and a configured model that cannot be loaded is an error, never a quiet
fall back to VADER alone.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from arb.strategy.sentiment.items import NewsItem
from arb.strategy.sentiment.lexicon import LEXICON, join_phrases

TRANSFORMER_BLEND = 0.5
"""Weight of the transformer's score in the blend (VADER gets the rest)."""

_MAX_CHARS = 2_000
"""Text beyond this is not scored: a headline is short, and a long body would dominate VADER's sum."""


class ScorerError(ValueError):
    """The configured transformer model cannot be used (missing path, transformers absent, unknown labels)."""


class Scorer:
    """Scores text; one instance per process is enough (VADER's lexicon load takes ~0.1 s)."""

    def __init__(self, transformer_model: str | None = None) -> None:
        self._vader = SentimentIntensityAnalyzer()
        self._vader.lexicon.update(LEXICON)
        self._transformer = _load_transformer(transformer_model) if transformer_model else None

    def score(self, text: str) -> float:
        """Compound sentiment of `text` in [-1, 1]; 0 for text with no sentiment-bearing words."""
        text = text[:_MAX_CHARS]
        vader = float(self._vader.polarity_scores(join_phrases(text))["compound"])
        if self._transformer is None:
            return vader
        blended = (1 - TRANSFORMER_BLEND) * vader + TRANSFORMER_BLEND * self._transformer(text)
        return max(-1.0, min(1.0, blended))

    def score_items(self, items: Iterable[NewsItem]) -> list[NewsItem]:
        """The items with `score` filled from their text (headline, or body where there is no headline)."""
        return [msgspec.structs.replace(item, score=self.score(item.text)) for item in items]


def _load_transformer(model: str) -> Callable[[str], float]:
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ScorerError(
            f"strategy.sentiment.transformer_model={model!r}: no such directory (models are never downloaded; "
            "install one locally or unset the setting)"
        )
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        transformers: Any = importlib.import_module("transformers")
    except ImportError as exc:
        raise ScorerError(
            f"strategy.sentiment.transformer_model={model!r} is set but the `transformers` package is not installed"
        ) from exc
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        classifier = transformers.AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError... depending on what is missing
        raise ScorerError(f"strategy.sentiment.transformer_model={model!r} cannot be loaded: {exc}") from exc
    signs = _label_signs(classifier.config.id2label, model)
    pipeline = transformers.pipeline("text-classification", model=classifier, tokenizer=tokenizer, top_k=None)

    def score(text: str) -> float:
        # Expected sentiment: Σ sign(label) · p(label), in [-1, 1].
        out = pipeline(text, truncation=True)
        rows = out[0] if out and isinstance(out[0], list) else out
        value = sum(signs[str(row["label"]).lower()] * float(row["score"]) for row in rows)
        return 0.0 if math.isnan(value) else max(-1.0, min(1.0, value))

    return score


def _label_signs(id2label: dict[int, str], model: str) -> dict[str, float]:
    signs: dict[str, float] = {}
    for label in id2label.values():
        name = str(label).lower()
        if name.startswith("pos") or name == "bullish":
            signs[name] = 1.0
        elif name.startswith("neg") or name == "bearish":
            signs[name] = -1.0
        elif name.startswith("neu"):
            signs[name] = 0.0
        else:
            raise ScorerError(
                f"strategy.sentiment.transformer_model={model!r}: label {label!r} is not positive/negative/neutral, "
                "so its output cannot be read as a sentiment"
            )
    if 1.0 not in signs.values() or -1.0 not in signs.values():
        raise ScorerError(f"strategy.sentiment.transformer_model={model!r}: needs both a positive and a negative label")
    return signs
