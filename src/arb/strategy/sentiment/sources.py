"""Reading news items from the three source kinds of `strategy.sentiment.sources`.

- `rss`: RSS 2.0 or Atom. The bytes are fetched here (httpx, timeout, size cap) and handed to feedparser wrapped in
  a BytesIO: feedparser given a string may fetch a URL or open a file itself, which a source must never do.
  An item's time is its `published` or, failing that, `updated` date (feedparser normalises both to UTC); an item
  with neither is skipped and counted, never stamped "now" (a made-up time would put old news in the present).
- `json`: the two news-API shapes
  CryptoPanic, `GET /api/v1/posts/?auth_token=…` (https://cryptopanic.com/developers/api/): `{"count", "next",
  "results": [{"kind", "title", "published_at", "url", "source": {"title", "domain"}, "currencies": [{"code",
  "title", "slug"}], "votes": {...}}]}` — the `currencies` codes tag assets directly;
  NewsAPI, `GET /v2/everything?apiKey=…` (https://newsapi.org/docs/endpoints/everything): `{"status": "ok",
  "totalResults", "articles": [{"source": {"id", "name"}, "author", "title", "description", "url", "urlToImage",
  "publishedAt", "content"}]}` — an article NewsAPI has withdrawn comes back titled "[Removed]" and is skipped.
  `items_key` names the list; None picks `results` or `articles`, whichever the payload has. The token (from the
  environment variable `token_env`) goes in the `auth_token` query parameter for CryptoPanic-style sources and in
  `apiKey` for NewsAPI-style ones; it is masked in every message and in httpx's own request log line.
- `jsonl`: a local file, one object per line: `ts` (ISO 8601 with an offset, or epoch seconds / milliseconds),
  `title`, optional `body`, `url`, `assets`.

Each item's assets are the union of what its publisher tagged (CryptoPanic `currencies`, JSONL `assets`) and what
`assets_of` finds in its title and body.
"""

from __future__ import annotations

import asyncio
import calendar
import io
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import feedparser
import httpx
import msgspec

from arb.config.schema import SentimentSource
from arb.logs import mask_url
from arb.strategy.sentiment.assets import assets_of, merge_aliases
from arb.strategy.sentiment.items import NewsItem, SourceError

log = logging.getLogger(__name__)

TIMEOUT_S = 15.0
MAX_BYTES = 8 * 1024 * 1024
"""A response larger than this is refused: a news feed is kilobytes, a bigger body is a misconfigured URL."""

_SECRET_PARAMS = frozenset({"auth_token", "apikey", "api_key", "token", "access_token", "key"})
_TICKER = re.compile(r"^[A-Z0-9]{1,15}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_REMOVED = "[Removed]"

ApiStyle = Literal["cryptopanic", "newsapi"]
_TOKEN_PARAM: Mapping[ApiStyle, str] = {"cryptopanic": "auth_token", "newsapi": "apiKey"}
_STYLE_OF_KEY: Mapping[str, ApiStyle] = {"results": "cryptopanic", "articles": "newsapi"}


async def fetch_items(
    source: SentimentSource,
    *,
    client: httpx.AsyncClient | None = None,
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> list[NewsItem]:
    """The source's current items, oldest first. `aliases` maps text to assets (default: `merge_aliases()`).

    `client` is used for rss/json when given (and left open); otherwise one is opened and closed here.
    Raises SourceError naming the source for anything that stops the source from being read.
    """
    names = merge_aliases() if aliases is None else aliases
    if source.kind == "jsonl":
        items, skipped = await asyncio.to_thread(_read_jsonl, source, names)
    else:
        body, content_type = await _download(source, client)
        if source.kind == "rss":
            items, skipped = _parse_feed(source, body, content_type, names)
        else:
            items, skipped = _parse_json(source, body, names)
    if skipped:
        log.warning("sentiment.items_skipped source=%s reason=no_time_or_removed count=%d", source.name, skipped)
    log.info("sentiment.fetched source=%s kind=%s items=%d", source.name, source.kind, len(items))
    items.sort(key=lambda item: item.ts_ns)
    return items


def mask_secrets(url: str) -> str:
    """The URL with its password and the values of token-like query parameters replaced by `***`."""
    parts = urlsplit(mask_url(url))
    if not parts.query:
        return urlunsplit(parts)
    query = [
        (k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


class _MaskSecretsFilter(logging.Filter):
    """httpx logs every request URL at INFO, query string included; CryptoPanic's token rides in that query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(mask_secrets(str(arg)) if isinstance(arg, httpx.URL) else arg for arg in record.args)
        return True


_httpx_log = logging.getLogger("httpx")
if not any(isinstance(f, _MaskSecretsFilter) for f in _httpx_log.filters):
    _httpx_log.addFilter(_MaskSecretsFilter())


# --- HTTP ---------------------------------------------------------------------------------------------------------


def api_style(source: SentimentSource) -> ApiStyle:
    """Which API a json source speaks, hence which query parameter carries its token.

    From `items_key` when it is `results`/`articles`, else from the host (cryptopanic.com, newsapi.org).
    """
    style = _STYLE_OF_KEY.get(source.items_key or "")
    if style is not None:
        return style
    host = (urlsplit(source.url).hostname or "").lower()
    if "cryptopanic" in host:
        return "cryptopanic"
    if "newsapi" in host:
        return "newsapi"
    raise SourceError(
        f"source {source.name}: token_env is set but the API style is unknown; set items_key to 'results' "
        "(CryptoPanic style, token sent as auth_token) or 'articles' (NewsAPI style, token sent as apiKey)"
    )


def _token_params(source: SentimentSource) -> tuple[dict[str, str], str | None]:
    if source.token_env is None:
        return {}, None
    token = os.environ.get(source.token_env, "").strip()
    if not token:
        raise SourceError(f"source {source.name}: environment variable {source.token_env} (its API token) is not set")
    return {_TOKEN_PARAM[api_style(source)]: token}, token


async def _download(source: SentimentSource, client: httpx.AsyncClient | None) -> tuple[bytes, str]:
    scheme = urlsplit(source.url).scheme.lower()
    if scheme not in ("http", "https"):
        raise SourceError(f"source {source.name}: url must be http(s) for kind {source.kind}, got {scheme or 'none'!r}")
    params, token = _token_params(source)
    where = mask_secrets(source.url)
    http = client or httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=True)
    try:
        # merged into the configured query (httpx's `params=` would replace it: ?q=bitcoin would be lost)
        url = httpx.URL(source.url).copy_merge_params(params)
        async with http.stream("GET", url, timeout=TIMEOUT_S) as response:
            if not response.is_success:
                detail = _redact(await _read_snippet(response), token)
                raise SourceError(f"source {source.name}: HTTP {response.status_code} from {where}: {detail}")
            body = await _read_body(response, source)
            return body, response.headers.get("content-type", "")
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        # `from None`: the httpx exception carries the request, whose URL holds the token.
        raise SourceError(
            f"source {source.name}: {type(exc).__name__} fetching {where}: {_redact(str(exc), token)}"
        ) from None
    finally:
        if client is None:
            await http.aclose()


async def _read_body(response: httpx.Response, source: SentimentSource) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BYTES:
        raise SourceError(f"source {source.name}: response of {declared} bytes exceeds the {MAX_BYTES}-byte cap")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BYTES:
            raise SourceError(f"source {source.name}: response exceeds the {MAX_BYTES}-byte cap")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_snippet(response: httpx.Response, limit: int = 300) -> str:
    """The start of an error response, for the message (APIs explain a 401 or 429 in the body)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return " ".join(b"".join(chunks)[:limit].decode("utf-8", "replace").split())


def _redact(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


# --- RSS / Atom ---------------------------------------------------------------------------------------------------


def _parse_feed(
    source: SentimentSource, body: bytes, content_type: str, aliases: Mapping[str, Sequence[str]]
) -> tuple[list[NewsItem], int]:
    headers = {"content-type": content_type} if content_type else {}
    feed: Any = feedparser.parse(io.BytesIO(body), response_headers=headers, resolve_relative_uris=False)
    if not feed.version:
        problem = feed.get("bozo_exception") or "no <rss> or <feed> root"
        raise SourceError(f"source {source.name}: not an RSS or Atom feed ({problem})")
    if feed.bozo:
        log.warning("sentiment.feed_not_well_formed source=%s problem=%r", source.name, str(feed.bozo_exception))
    items: list[NewsItem] = []
    skipped = 0
    for entry in feed.entries:
        stamp = entry.get("published_parsed") or entry.get("updated_parsed")
        title = _plain(entry.get("title", ""))
        body_text = _plain(entry.get("summary", ""))
        if stamp is None or not (title or body_text):
            skipped += 1
            continue
        ts_ns = calendar.timegm(stamp) * 1_000_000_000
        items.append(_item(source, ts_ns, title, body_text, str(entry.get("link", "")), (), aliases))
    return items, skipped


class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _plain(markup: object) -> str:
    """Feed titles and summaries may carry HTML; sentiment and asset matching read the text only."""
    text = str(markup)
    if "<" in text or "&" in text:
        parser = _TextOnly()
        parser.feed(text)
        parser.close()
        text = "".join(parser.parts)
    return " ".join(text.split())


# --- JSON APIs ----------------------------------------------------------------------------------------------------


def _parse_json(
    source: SentimentSource, body: bytes, aliases: Mapping[str, Sequence[str]]
) -> tuple[list[NewsItem], int]:
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise SourceError(f"source {source.name}: response is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SourceError(f"source {source.name}: expected a JSON object, got {type(data).__name__}")
    if data.get("status") == "error":  # NewsAPI's error envelope (normally with a non-2xx status, handled earlier)
        message = _redact(str(data.get("message", "")), os.environ.get(source.token_env or "", "") or None)
        raise SourceError(f"source {source.name}: API status {data.get('status')!r}: {message}")
    key = source.items_key or next((k for k in _STYLE_OF_KEY if isinstance(data.get(k), list)), None)
    rows = data.get(key) if key is not None else None
    if not isinstance(rows, list):
        wanted = repr(source.items_key) if source.items_key else "'results' (CryptoPanic) or 'articles' (NewsAPI)"
        raise SourceError(f"source {source.name}: no list under {wanted}; keys are {sorted(data)}")
    items: list[NewsItem] = []
    skipped = 0
    for index, row in enumerate(rows):
        item = _json_item(source, row, f"{key}[{index}]", aliases)
        if item is None:
            skipped += 1
        else:
            items.append(item)
    return items, skipped


def _json_item(
    source: SentimentSource, row: object, where: str, aliases: Mapping[str, Sequence[str]]
) -> NewsItem | None:
    if not isinstance(row, dict):
        raise SourceError(f"source {source.name}: {where} is not an object")
    title = row.get("title")
    if title == _REMOVED:
        return None
    if not isinstance(title, str):
        raise SourceError(f"source {source.name}: {where}.title is missing or not a string")
    stamp = row.get("published_at", row.get("publishedAt"))
    if stamp is None:
        return None
    try:
        ts_ns = parse_time(stamp)
    except ValueError as exc:
        raise SourceError(f"source {source.name}: {where} time: {exc}") from None
    description = row.get("description")
    url = row.get("url")
    tagged: list[str] = []
    currencies = row.get("currencies") or []
    if not isinstance(currencies, list):
        raise SourceError(f"source {source.name}: {where}.currencies is not a list")
    for position, currency in enumerate(currencies):
        code = currency.get("code") if isinstance(currency, dict) else None
        if not isinstance(code, str) or not _TICKER.match(code.upper()):
            raise SourceError(f"source {source.name}: {where}.currencies[{position}].code is not a ticker: {code!r}")
        tagged.append(code.upper())
    return _item(
        source,
        ts_ns,
        _plain(title),
        _plain(description) if isinstance(description, str) else "",
        url if isinstance(url, str) else "",
        tagged,
        aliases,
    )


# --- local JSONL --------------------------------------------------------------------------------------------------


class _JsonlRow(msgspec.Struct):
    ts: str | int | float
    title: str
    body: str = ""
    url: str = ""
    assets: list[str] = []


def _read_jsonl(source: SentimentSource, aliases: Mapping[str, Sequence[str]]) -> tuple[list[NewsItem], int]:
    path = Path(source.url).expanduser()
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise SourceError(f"source {source.name}: cannot read {path}: {exc.strerror or exc}") from None
    decoder = msgspec.json.Decoder(_JsonlRow)
    items: list[NewsItem] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = decoder.decode(line)
            ts_ns = parse_time(row.ts)
            tagged = [_checked_ticker(asset) for asset in row.assets]
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            raise SourceError(f"source {source.name}: {path}:{number}: {exc}") from None
        items.append(_item(source, ts_ns, row.title.strip(), row.body.strip(), row.url, tagged, aliases))
    return items, 0


def _checked_ticker(asset: str) -> str:
    if not _TICKER.match(asset):
        raise ValueError(f"asset {asset!r} is not an upper-case ticker like 'BTC'")
    return asset


# --- shared -------------------------------------------------------------------------------------------------------


def parse_time(value: object) -> int:
    """UTC nanoseconds from ISO 8601 with an offset, or epoch seconds (< 1e11) or milliseconds (< 1e14).

    A time without an offset is refused: guessing its zone could move news hours into the future of a bar.
    """
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 time") from None
        if moment.tzinfo is None:
            raise ValueError(f"{value!r} has no UTC offset")
        return ((moment - _EPOCH) // timedelta(microseconds=1)) * 1_000
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is neither an ISO 8601 string nor an epoch number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite epoch time")
    magnitude = abs(value)
    if magnitude < 1e11:  # seconds; a float keeps microseconds (its precision at today's epoch is ~0.2 µs)
        return value * 1_000_000_000 if isinstance(value, int) else round(value * 1e6) * 1_000
    if magnitude < 1e14:  # milliseconds
        return value * 1_000_000 if isinstance(value, int) else round(value * 1e3) * 1_000
    raise ValueError(f"{value!r} is too large for epoch seconds or milliseconds (micro/nanoseconds are not accepted)")


def _item(
    source: SentimentSource,
    ts_ns: int,
    title: str,
    body: str,
    url: str,
    tagged: Sequence[str],
    aliases: Mapping[str, Sequence[str]],
) -> NewsItem:
    found = assets_of(f"{title}\n{body}", aliases)
    return NewsItem(
        ts_ns=ts_ns,
        source=source.name,
        title=title,
        body=body,
        url=url,
        assets=tuple(sorted(set(tagged) | set(found))),
    )
