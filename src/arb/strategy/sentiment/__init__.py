"""News sentiment: items from RSS/Atom, JSON news APIs and JSONL files, mapped to assets, scored, and turned into a
causal per-asset index S(t) in [-1, 1].

    items = await fetch_items(source, aliases=merge_aliases(settings.strategy.sentiment.aliases))
    items = Scorer(settings.strategy.sentiment.transformer_model).score_items(items)
    s = sentiment_index(items, "BTC", times_ns, half_life_hours=..., lookback_hours=...,
                        weights={src.name: src.weight for src in settings.strategy.sentiment.sources})
"""

from arb.strategy.sentiment.assets import DEFAULT_ALIASES, assets_of, merge_aliases
from arb.strategy.sentiment.index import sentiment_index
from arb.strategy.sentiment.items import NewsItem, SourceError
from arb.strategy.sentiment.scoring import Scorer, ScorerError
from arb.strategy.sentiment.sources import fetch_items, mask_secrets, parse_time

__all__ = [
    "DEFAULT_ALIASES",
    "NewsItem",
    "Scorer",
    "ScorerError",
    "SourceError",
    "assets_of",
    "fetch_items",
    "mask_secrets",
    "merge_aliases",
    "parse_time",
    "sentiment_index",
]
