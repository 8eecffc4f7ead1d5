"""`point_at_local` on the real ccxt classes: every host rewritten, every path kept, nothing else touched."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import ccxt.pro as ccxtpro
import pytest

from arb.connectors.urls import point_at_local

HTTP = "http://127.0.0.1:4001"
WS = "ws://127.0.0.1:4001"


def leaves(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from leaves(v, (*path, str(k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from leaves(v, (*path, str(i)))


@pytest.mark.parametrize("exchange_id", ["binance", "okx", "bybit", "kraken", "coinbase", "kucoin"])
async def test_every_api_url_points_at_the_local_venue_with_its_path_kept(exchange_id: str) -> None:
    exchange = getattr(ccxtpro, exchange_id)()
    try:
        before = dict(leaves(exchange.urls["api"]))
        test_urls = repr(exchange.urls.get("test"))

        point_at_local(exchange, HTTP, WS)

        after = dict(leaves(exchange.urls["api"]))
        assert after.keys() == before.keys()
        for path, url in after.items():
            old, new = urlsplit(before[path]), urlsplit(url)
            assert new.netloc == "127.0.0.1:4001", (path, url)
            assert new.scheme == ("ws" if old.scheme in ("ws", "wss") else "http"), (path, url)
            marker = "/stream" if old.hostname == "stream.binance.com" else ""  # ccxt reads it (urls._HOST_MARKERS)
            assert (new.path, new.query) == (marker + old.path, old.query), (path, before[path], url)
        assert repr(exchange.urls.get("test")) == test_urls  # the sandbox URLs are left alone
    finally:
        await exchange.close()


async def test_binance_rest_and_websocket_entries_land_on_their_own_base() -> None:
    exchange = ccxtpro.binance()
    try:
        point_at_local(exchange, "http://127.0.0.1:4001/prefix/", "ws://127.0.0.1:4002")

        api = exchange.urls["api"]
        assert api["public"] == "http://127.0.0.1:4001/prefix/api/v3"
        assert api["fapiPublic"] == "http://127.0.0.1:4001/prefix/fapi/v1"
        assert api["ws"]["spot"] == "ws://127.0.0.1:4002/stream/ws"  # ccxt's is_spot_url needs '/stream'
        assert api["ws"]["linear"] == "ws://127.0.0.1:4002/ws"  # ccxt adds /public: the futures socket has no marker
        assert api["ws"]["ws-api"]["spot"] == "ws://127.0.0.1:4002/ws-api/v3"
        assert exchange.enableRateLimit is True
    finally:
        await exchange.close()


@pytest.mark.parametrize(
    ("http_url", "ws_url", "message"),
    [
        ("127.0.0.1:4001", WS, "http_url must be an absolute"),
        (HTTP, "http://127.0.0.1:4001", "ws_url must be an absolute"),
    ],
)
async def test_relative_or_wrong_scheme_urls_are_refused(http_url: str, ws_url: str, message: str) -> None:
    exchange = ccxtpro.binance()
    try:
        with pytest.raises(ValueError, match=message):
            point_at_local(exchange, http_url, ws_url)
        assert exchange.urls["api"]["public"] == "https://api.binance.com/api/v3"  # nothing half-applied
    finally:
        await exchange.close()
