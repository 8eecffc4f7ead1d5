"""News sources end to end over real HTTP: a local server (started here, on 127.0.0.1) serves an RSS 2.0 feed, an
Atom feed, a CryptoPanic-style and a NewsAPI-style JSON API that check their tokens; the items are mapped to assets,
scored by the real Scorer and turned into the sentiment index."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import numpy as np
import pytest
from aiohttp import web

from arb.config.schema import SentimentSettings, SentimentSource
from arb.strategy.sentiment import NewsItem, Scorer, SourceError, fetch_items, merge_aliases, sentiment_index

CP_TOKEN = "cp-token-123"
NA_TOKEN = "na-key-456"
H = 3_600 * 10**9
T0 = 1_735_732_800 * 10**9  # 2025-01-01T12:00:00Z

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Wire: markets</title><link>http://127.0.0.1/</link><description>d</description>
<item><title>Bitcoin surges to record high as ETF inflows swell</title><link>http://127.0.0.1/a/1</link>
  <pubDate>Wed, 01 Jan 2025 10:00:00 GMT</pubDate>
  <description>&lt;p&gt;Demand &lt;b&gt;accelerates&lt;/b&gt;&lt;/p&gt;</description></item>
<item><title>Solana network suffers outage, halting blocks</title><link>http://127.0.0.1/a/2</link>
  <pubDate>Wed, 01 Jan 2025 13:00:00 +0200</pubDate></item>
<item><title>Undated item about bitcoin</title><link>http://127.0.0.1/a/3</link></item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Desk</title><id>urn:desk</id><updated>2025-01-01T12:00:00Z</updated>
<entry><title>Ether rallies as staking demand strengthens</title><id>urn:1</id>
  <link href="http://127.0.0.1/b/1"/><updated>2025-01-01T11:00:00Z</updated></entry>
<entry><title type="html">Crypto exchange &lt;em&gt;hacked&lt;/em&gt;, bitcoin stolen</title><id>urn:2</id>
  <link href="http://127.0.0.1/b/2"/><published>2025-01-01T06:00:00Z</published>
  <updated>2025-01-01T09:00:00Z</updated></entry>
</feed>"""

CRYPTOPANIC = {
    "count": 2,
    "next": None,
    "results": [
        {
            "kind": "news",
            "domain": "example.org",
            "source": {"title": "Example", "region": "en", "domain": "example.org", "path": None},
            "title": "Regulators reject application, token plunges",
            "published_at": "2025-01-01T11:30:00.123456Z",
            "slug": "x",
            "currencies": [{"code": "XRP", "title": "XRP", "slug": "ripple", "url": "https://x/"}],
            "id": 1,
            "url": "https://cryptopanic.com/news/1/x",
            "created_at": "2025-01-01T11:30:00.123456Z",
            "votes": {"negative": 3, "positive": 0, "important": 1},
        },
        {
            "kind": "news",
            "title": "Bitcoin rebounds as short sellers capitulate",
            "published_at": "2025-01-01T12:00:00Z",
            "currencies": [{"code": "BTC", "title": "Bitcoin", "slug": "bitcoin", "url": "https://x/"}],
            "id": 2,
            "url": "https://cryptopanic.com/news/2/y",
        },
    ],
}

NEWSAPI = {
    "status": "ok",
    "totalResults": 2,
    "articles": [
        {
            "source": {"id": "wire", "name": "Wire"},
            "author": "A. Reporter",
            "title": "Bitcoin slumps as miners dump coins",
            "description": "Selling pressure builds.",
            "url": "https://news.example/1",
            "urlToImage": None,
            "publishedAt": "2025-01-01T08:00:00Z",
            "content": "Bitcoin fell... [+1200 chars]",
        },
        {
            "source": {"id": None, "name": "[Removed]"},
            "author": None,
            "title": "[Removed]",
            "description": "[Removed]",
            "url": "https://removed.com",
            "urlToImage": None,
            "publishedAt": "1970-01-01T00:00:00Z",
            "content": "[Removed]",
        },
    ],
}


@pytest.fixture
async def news_server() -> AsyncIterator[str]:
    async def rss(_: web.Request) -> web.Response:
        return web.Response(body=RSS.encode(), content_type="application/rss+xml", charset="utf-8")

    async def atom(_: web.Request) -> web.Response:
        return web.Response(body=ATOM.encode(), content_type="application/atom+xml", charset="utf-8")

    async def cryptopanic(request: web.Request) -> web.Response:
        if request.query.get("auth_token") != CP_TOKEN:
            return web.json_response({"status": "Incomplete", "info": "Token not found"}, status=401)
        return web.json_response(CRYPTOPANIC)

    async def newsapi(request: web.Request) -> web.Response:
        if request.query.get("apiKey") != NA_TOKEN:
            body = {"status": "error", "code": "apiKeyInvalid", "message": "Your API key is invalid or incorrect."}
            return web.json_response(body, status=401)
        assert request.query.get("q") == "crypto"
        return web.json_response(NEWSAPI)

    app = web.Application()
    app.router.add_get("/rss.xml", rss)
    app.router.add_get("/atom.xml", atom)
    app.router.add_get("/api/v1/posts/", cryptopanic)
    app.router.add_get("/v2/everything", newsapi)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def settings_for(base: str) -> SentimentSettings:
    return SentimentSettings.model_validate(
        {
            "sources": [
                {"name": "wire_rss", "kind": "rss", "url": f"{base}/rss.xml", "weight": 1.0},
                {"name": "desk_atom", "kind": "rss", "url": f"{base}/atom.xml", "weight": 0.5},
                {
                    "name": "panic",
                    "kind": "json",
                    "url": f"{base}/api/v1/posts/?public=true",
                    "items_key": "results",
                    "token_env": "ARB_TEST_CRYPTOPANIC_TOKEN",
                    "weight": 2.0,
                },
                {
                    "name": "newsapi",
                    "kind": "json",
                    "url": f"{base}/v2/everything?q=crypto",
                    "token_env": "ARB_TEST_NEWSAPI_KEY",
                    "items_key": "articles",
                    "weight": 1.0,
                },
            ],
            "half_life_hours": 6.0,
            "lookback_hours": 24.0,
        }
    )


async def test_four_sources_over_http_feed_the_scored_causal_index(
    news_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARB_TEST_CRYPTOPANIC_TOKEN", CP_TOKEN)
    monkeypatch.setenv("ARB_TEST_NEWSAPI_KEY", NA_TOKEN)
    settings = settings_for(news_server)
    aliases = merge_aliases(settings.aliases)

    fetched = await asyncio.gather(*(fetch_items(src, aliases=aliases) for src in settings.sources))

    by_source = {src.name: items for src, items in zip(settings.sources, fetched, strict=True)}
    assert [(i.title, i.ts_ns, i.assets) for i in by_source["wire_rss"]] == [
        ("Bitcoin surges to record high as ETF inflows swell", T0 - 2 * H, ("BTC",)),
        ("Solana network suffers outage, halting blocks", T0 - 1 * H, ("SOL",)),  # 13:00+02:00 is 11:00Z
    ]  # the undated item is skipped, not stamped "now"
    assert by_source["wire_rss"][0].body == "Demand accelerates"
    assert [(i.title, i.ts_ns, i.assets) for i in by_source["desk_atom"]] == [
        ("Crypto exchange hacked, bitcoin stolen", T0 - 6 * H, ("BTC",)),  # published wins over updated
        ("Ether rallies as staking demand strengthens", T0 - 1 * H, ("ETH",)),
    ]
    assert [(i.ts_ns, i.assets, i.url) for i in by_source["panic"]] == [
        (T0 - H // 2 + 123_456_000, ("XRP",), "https://cryptopanic.com/news/1/x"),  # tagged by `currencies`
        (T0, ("BTC",), "https://cryptopanic.com/news/2/y"),
    ]
    assert [(i.title, i.ts_ns, i.body, i.assets) for i in by_source["newsapi"]] == [
        ("Bitcoin slumps as miners dump coins", T0 - 4 * H, "Selling pressure builds.", ("BTC",))
    ]  # the "[Removed]" article is dropped

    scorer = Scorer(settings.transformer_model)
    items = scorer.score_items(item for batch in fetched for item in batch)
    scores = {i.title: i.score for i in items}
    assert scores["Bitcoin surges to record high as ETF inflows swell"] > 0
    assert scores["Crypto exchange hacked, bitcoin stolen"] < 0
    assert scores["Bitcoin slumps as miners dump coins"] < 0
    assert scores["Ether rallies as staking demand strengthens"] > 0
    assert scores["Regulators reject application, token plunges"] < 0

    weights = {src.name: src.weight for src in settings.sources}
    times = T0 + np.arange(-8, 30, dtype=np.int64) * H
    index = sentiment_index(
        items,
        "BTC",
        times,
        half_life_hours=settings.half_life_hours,
        lookback_hours=settings.lookback_hours,
        weights=weights,
    )

    np.testing.assert_allclose(index, direct_index(items, "BTC", times, weights, 6.0, 24.0), rtol=1e-12, atol=1e-15)
    assert index[0] == 0.0  # 8 h before T0: no BTC news yet
    only_hack = index[times == T0 - 6 * H][0]  # only the hack counts, half weight: S = 0.5 · score
    assert only_hack == pytest.approx(0.5 * scores["Crypto exchange hacked, bitcoin stolen"])
    assert index[-1] == 0.0  # 29 h after T0 every item is past the 24 h lookback
    assert np.all(np.abs(index) <= 1.0)
    eth = sentiment_index(items, "ETH", times, half_life_hours=6.0, lookback_hours=24.0, weights=weights)
    assert eth[times == T0 - 1 * H][0] == pytest.approx(0.5 * scores["Ether rallies as staking demand strengthens"])


def direct_index(
    items: list[NewsItem], asset: str, times: np.ndarray, weights: dict[str, float], half_life: float, lookback: float
) -> list[float]:
    out = []
    for t in times:
        raw = evidence = 0.0
        for i in items:
            if asset in i.assets and t - lookback * H <= i.ts_ns <= t:
                decay = weights[i.source] * 0.5 ** ((t - i.ts_ns) / (half_life * H))
                raw += decay * (i.score or 0.0)
                evidence += decay
        out.append(raw / max(evidence, 1.0))
    return out


@pytest.mark.parametrize("name", ["panic", "newsapi"])
async def test_a_wrong_token_gets_401_and_a_clear_error_without_the_token(
    news_server: str, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("ARB_TEST_CRYPTOPANIC_TOKEN", "wrong-cp-token")
    monkeypatch.setenv("ARB_TEST_NEWSAPI_KEY", "wrong-na-key")
    src: SentimentSource = next(s for s in settings_for(news_server).sources if s.name == name)

    with pytest.raises(SourceError, match=f"source {name}: HTTP 401 from {news_server}/") as caught:
        await fetch_items(src)

    assert "wrong-" not in str(caught.value)
    assert ("Token not found" if name == "panic" else "apiKeyInvalid") in str(caught.value)


async def test_a_server_that_is_gone_is_a_source_error() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    src = SentimentSource(name="gone", kind="rss", url=f"http://127.0.0.1:{port}/rss.xml")

    with pytest.raises(SourceError, match=f"source gone: ConnectError fetching http://127.0.0.1:{port}/rss.xml"):
        await fetch_items(src)
