"""The value type every sentiment source yields, and the one error a source raises."""

from __future__ import annotations

import msgspec


class NewsItem(msgspec.Struct, frozen=True, kw_only=True):
    """One headline (or post) at the time its publisher gave it, in UTC nanoseconds.

    `score` is None until `Scorer.score_items` fills it: fetching and scoring are separate so a stored item can be
    re-scored when the lexicon changes, and so `sentiment_index` never scores the same headline once per call.
    """

    ts_ns: int
    source: str
    title: str
    body: str = ""
    url: str = ""
    assets: tuple[str, ...] = ()
    score: float | None = None

    @property
    def text(self) -> str:
        """What is scored: the headline, or the body where a feed gives no headline."""
        return self.title or self.body


class SourceError(Exception):
    """A source could not be read: network failure, non-2xx status, a payload of the wrong shape, a malformed line.

    The message names the source (and file/line or item index where there is one); it never carries an API token.
    """
