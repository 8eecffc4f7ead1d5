"""fetch_items: JSONL files, time parsing, payload shapes and every way a source can fail, named clearly.

The HTTP cases run through httpx's MockTransport (the client is injectable for exactly this); the real network
stack is exercised in tests/integration/strategy/test_sentiment_sources.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from arb.config.schema import SentimentSource
from arb.strategy.sentiment import SourceError, fetch_items, mask_secrets, parse_time
from arb.strategy.sentiment import sources as sources_module

S = 10**9
TOKEN = "tok-SECRET-42"


def source(kind: str, url: str, **over: object) -> SentimentSource:
    return SentimentSource.model_validate({"name": "news", "kind": kind, "url": url, **over})


def client_for(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


# --- JSONL --------------------------------------------------------------------------------------------------------


async def test_jsonl_items_come_back_oldest_first_with_times_in_utc_ns(tmp_path: Path) -> None:
    path = tmp_path / "news.jsonl"
    rows = [
        {"ts": "2024-03-01T13:00:00+02:00", "title": "Ether rallies", "url": "https://x/1"},
        {"ts": 1_709_287_200, "title": "Bitcoin slides", "body": "Miners sell"},
        {"ts": 1_709_287_200_500, "title": "Quiet day", "assets": ["SOL"]},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows[:2]) + "\n\n" + json.dumps(rows[2]) + "\n")

    items = await fetch_items(source("jsonl", str(path)))

    assert [i.ts_ns for i in items] == [1_709_287_200 * S, 1_709_287_200_500 * 10**6, 1_709_290_800 * S]
    assert [i.title for i in items] == ["Bitcoin slides", "Quiet day", "Ether rallies"]
    assert [i.assets for i in items] == [("BTC",), ("SOL",), ("ETH",)]  # text-mapped, and tagged
    assert items[0].body == "Miners sell"
    assert items[2].url == "https://x/1"
    assert {i.source for i in items} == {"news"}
    assert all(i.score is None for i in items)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "malformed"),
        ('{"ts": 1700000000}', "missing required field `title`"),
        ('{"ts": "2024-03-01T12:00:00", "title": "x"}', "has no UTC offset"),
        ('{"ts": 1700000000000000, "title": "x"}', "too large"),
        ('{"ts": 1700000000, "title": "x", "assets": ["btc"]}', "not an upper-case ticker"),
        ('{"ts": true, "title": "x"}', "Expected `int | float | str`, got `bool`"),
    ],
)
async def test_a_malformed_jsonl_line_is_an_error_naming_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "news.jsonl"
    path.write_text('{"ts": 1700000000, "title": "fine"}\n\n' + line + "\n")

    with pytest.raises(SourceError, match=message) as caught:
        await fetch_items(source("jsonl", str(path)))

    assert f"source news: {path}:3:" in str(caught.value)


async def test_a_missing_jsonl_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"source news: cannot read .*absent\.jsonl"):
        await fetch_items(source("jsonl", str(tmp_path / "absent.jsonl")))


@pytest.mark.parametrize(
    ("value", "ns"),
    [
        ("2024-01-01T00:00:00Z", 1_704_067_200 * S),
        ("2018-03-01T21:00:44.575689Z", 1_519_938_044_575_689_000),
        ("2024-01-01T01:00:00+01:00", 1_704_067_200 * S),
        (1_704_067_200, 1_704_067_200 * S),
        (1_704_067_200.25, 1_704_067_200_250_000_000),
        (1_704_067_200_123.5, 1_704_067_200_123_500_000),
        (1_704_067_200_123, 1_704_067_200_123_000_000),
        (99_999_999_999, 99_999_999_999 * S),  # the last value read as seconds (year 5138)
        (100_000_000_000, 100_000_000_000 * 10**6),  # the first read as milliseconds (1973)
    ],
)
def test_parse_time_reads_iso_and_epoch_seconds_or_milliseconds(value: object, ns: int) -> None:
    assert parse_time(value) == ns


# --- HTTP sources -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/feed", "feeds/local.xml", "feed://x/rss"])
async def test_rss_and_json_sources_take_only_http_urls(url: str) -> None:
    for kind in ("rss", "json"):
        with pytest.raises(SourceError, match=r"url must be http\(s\)"):
            await fetch_items(source(kind, url))


async def test_a_missing_token_variable_is_an_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARB_TEST_NEWS_TOKEN", raising=False)
    src = source("json", "https://cryptopanic.com/api/v1/posts/", token_env="ARB_TEST_NEWS_TOKEN")

    with pytest.raises(SourceError, match="environment variable ARB_TEST_NEWS_TOKEN"):
        await fetch_items(src)


async def test_a_token_for_an_api_of_unknown_style_is_refused_before_sending_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ARB_TEST_NEWS_TOKEN", TOKEN)
    sent: list[httpx.Request] = []
    src = source("json", "https://news.example.org/api", token_env="ARB_TEST_NEWS_TOKEN")

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"results": []})

    with pytest.raises(SourceError, match="set items_key to 'results'"):
        await fetch_items(src, client=client_for(record))

    assert sent == []


async def test_an_error_status_names_the_source_and_status_and_masks_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ARB_TEST_NEWS_TOKEN", TOKEN)
    src = source("json", "https://newsapi.org/v2/everything?q=bitcoin", token_env="ARB_TEST_NEWS_TOKEN")

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["apiKey"] == TOKEN
        assert request.url.params["q"] == "bitcoin"  # the configured query is kept beside the token
        body = {"status": "error", "code": "apiKeyInvalid", "message": f"Your API key {TOKEN} is invalid."}
        return httpx.Response(401, json=body)

    with pytest.raises(SourceError) as caught:
        await fetch_items(src, client=client_for(handler))

    message = str(caught.value)
    assert message.startswith("source news: HTTP 401 from https://newsapi.org/v2/everything?q=bitcoin")
    assert "apiKeyInvalid" in message
    assert TOKEN not in message


async def test_httpx_request_log_lines_carry_no_token(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ARB_TEST_NEWS_TOKEN", TOKEN)
    src = source("json", "https://cryptopanic.com/api/v1/posts/?public=true", token_env="ARB_TEST_NEWS_TOKEN")
    caplog.set_level(logging.INFO)

    items = await fetch_items(src, client=client_for(lambda r: httpx.Response(200, json={"results": []})))

    assert items == []
    assert "auth_token=***" in caplog.text  # httpx's own "HTTP Request: GET ..." line, masked
    assert TOKEN not in caplog.text


def test_mask_secrets_hides_token_like_parameters_and_passwords() -> None:
    masked = mask_secrets("https://user:pw@api.example.org/posts?auth_token=abc&apiKey=def&currencies=BTC")

    assert masked == "https://user:***@api.example.org/posts?auth_token=***&apiKey=***&currencies=BTC"


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (200, b"<html>oops", "response is not JSON"),
        (200, b"[1, 2]", "expected a JSON object, got list"),
        (200, b'{"data": []}', "no list under 'results' \\(CryptoPanic\\) or 'articles' \\(NewsAPI\\)"),
        (200, b'{"results": [{"published_at": "2024-01-01T00:00:00Z"}]}', r"results\[0\]\.title is missing"),
        (200, b'{"results": [{"title": "x", "published_at": "yesterday"}]}', r"results\[0\] time: 'yesterday'"),
        (
            200,
            b'{"results": [{"title": "x", "published_at": 1700000000, "currencies": [{"code": 5}]}]}',
            "not a ticker",
        ),
        (503, b"upstream down", "HTTP 503 .*upstream down"),
        (200, b'{"status": "error", "code": "rateLimited", "message": "Slow down"}', "API status 'error': Slow down"),
    ],
)
async def test_bad_json_responses_are_errors_naming_the_source(status: int, body: bytes, message: str) -> None:
    src = source("json", "https://cryptopanic.com/api/v1/posts/")

    with pytest.raises(SourceError, match=f"source news: .*{message}"):
        await fetch_items(src, client=client_for(lambda r: httpx.Response(status, content=body)))


async def test_newsapi_withdrawn_articles_and_undated_posts_are_skipped_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    payload = {
        "status": "ok",
        "totalResults": 3,
        "articles": [
            {"source": {"id": None, "name": "[Removed]"}, "title": "[Removed]", "publishedAt": "2024-01-01T00:00:00Z"},
            {"source": {"id": "r", "name": "R"}, "title": "Ether ETF outflows mount", "publishedAt": None},
            {
                "source": {"id": "r", "name": "R"},
                "title": "Bitcoin &amp; ether rally",
                "description": "<p>Solana <b>jumps</b></p>",
                "url": "https://r/1",
                "publishedAt": "2024-01-01T10:00:00Z",
            },
        ],
    }
    src = source("json", "https://newsapi.org/v2/everything?q=crypto")
    caplog.set_level(logging.WARNING, logger="arb.strategy.sentiment.sources")

    items = await fetch_items(src, client=client_for(lambda r: httpx.Response(200, json=payload)))

    assert len(items) == 1
    assert items[0].title == "Bitcoin & ether rally"
    assert items[0].body == "Solana jumps"
    assert items[0].assets == ("BTC", "ETH", "SOL")
    assert [r.getMessage() for r in caplog.records] == [
        "sentiment.items_skipped source=news reason=no_time_or_removed count=2"
    ]


async def test_rss_items_without_a_date_are_skipped_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    feed = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
      <item><title>Bitcoin surges</title><pubDate>Mon, 06 Jan 2025 14:30:00 +0100</pubDate></item>
      <item><title>No date one</title></item><item><title>No date two</title></item>
    </channel></rss>"""
    caplog.set_level(logging.WARNING, logger="arb.strategy.sentiment.sources")

    items = await fetch_items(
        source("rss", "https://feeds.example.org/rss"), client=client_for(lambda r: httpx.Response(200, content=feed))
    )

    assert [(i.title, i.ts_ns) for i in items] == [("Bitcoin surges", 1_736_170_200 * S)]  # 13:30 UTC
    assert len(caplog.records) == 1
    assert "count=2" in caplog.records[0].getMessage()


async def test_a_page_that_is_not_a_feed_is_an_error() -> None:
    page = b"<html><body>Not found</body></html>"

    with pytest.raises(SourceError, match="source news: not an RSS or Atom feed"):
        await fetch_items(
            source("rss", "https://feeds.example.org/rss"),
            client=client_for(lambda r: httpx.Response(200, content=page)),
        )


async def test_a_response_over_the_size_cap_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources_module, "MAX_BYTES", 1_000)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(2):
            yield b"x" * 600

    def streamed(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=chunks())  # no Content-Length: counted as read

    with pytest.raises(SourceError, match="exceeds the 1000-byte cap"):
        await fetch_items(source("rss", "https://feeds.example.org/rss"), client=client_for(streamed))
    with pytest.raises(SourceError, match="response of 1200 bytes exceeds"):
        await fetch_items(
            source("rss", "https://feeds.example.org/rss"),
            client=client_for(lambda r: httpx.Response(200, content=b"x" * 1_200)),
        )


async def test_a_network_failure_is_a_source_error_without_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARB_TEST_NEWS_TOKEN", TOKEN)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"connection refused for {request.url}", request=request)

    src = source("json", "https://cryptopanic.com/api/v1/posts/", token_env="ARB_TEST_NEWS_TOKEN")
    with pytest.raises(SourceError, match=r"source news: ConnectError fetching https://cryptopanic\.com") as caught:
        await fetch_items(src, client=client_for(refuse))

    assert TOKEN not in str(caught.value)
    assert "auth_token=***" in str(caught.value)
    assert caught.value.__suppress_context__  # the httpx error (its request URL holds the token) is not chained
