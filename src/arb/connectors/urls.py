"""Point a real ccxt / ccxt.pro exchange at a local venue by rewriting the hosts in `exchange.urls['api']`.

Why only `urls['api']`: every request ccxt makes (REST, signed REST, WebSocket) is built from that tree (plus the
`{hostname}` placeholder, which the rewrite removes along with the host), so replacing the scheme and host of each
entry while keeping its path sends the unmodified client code to our venue. Nothing else in ccxt is patched, and
the rate limiter stays as it is, so the client behaves as it would against the exchange.

One exception to "keep the path": where a client tells market types apart by *host*, the host's marker is kept in
the path (`_HOST_MARKERS`). ccxt.pro binance files a `depthUpdate` under the spot market only when the socket's URL
contains '/stream' (`is_spot_url`, true of `wss://stream.binance.com`) and under the linear perp otherwise (both have
the id BTCUSDT); on one local host the spot socket would lose that, so its path becomes `/stream/ws` (the local
Binance venue serves spot there and USD-M futures at `/public/ws`, ccxt's `fstream.binance.com/public/ws`).

Never call `set_sandbox_mode` after this: it swaps `urls['api']` for `urls['test']` and the client would talk to
the real testnet (checked with ccxt 4.5.90).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

_WS_SCHEMES = frozenset({"ws", "wss"})
_HTTP_SCHEMES = frozenset({"http", "https"})
_HOST_MARKERS = {"stream.binance.com": "/stream"}
"""Host -> path prefix that keeps what the client reads from the host (see the module docstring)."""


def _base(url: str, allowed: frozenset[str], what: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    if parts.scheme not in allowed or not parts.netloc:
        raise ValueError(f"{what} must be an absolute {'/'.join(sorted(allowed))} URL, got {url!r}")
    return parts.scheme, parts.netloc, parts.path.rstrip("/")


def _rewrite(url: str, http: tuple[str, str, str], ws: tuple[str, str, str], under_ws_key: bool) -> str:
    parts = urlsplit(url)
    if parts.scheme in _WS_SCHEMES or (under_ws_key and parts.scheme not in _HTTP_SCHEMES):
        scheme, netloc, prefix = ws
    elif parts.scheme in _HTTP_SCHEMES:
        scheme, netloc, prefix = http
    else:
        return url  # not a URL (ccxt keeps a few plain strings in the tree); leave it alone
    marker = _HOST_MARKERS.get(parts.hostname or "", "")
    if marker and marker in prefix:
        marker = ""  # the caller's base already carries it
    return urlunsplit((scheme, netloc, prefix + marker + parts.path, parts.query, parts.fragment))


def _walk(node: Any, http: tuple[str, str, str], ws: tuple[str, str, str], under_ws_key: bool) -> Any:
    if isinstance(node, str):
        return _rewrite(node, http, ws, under_ws_key)
    if isinstance(node, dict):
        return {
            key: _walk(value, http, ws, under_ws_key or (isinstance(key, str) and key.lower().startswith("ws")))
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_walk(value, http, ws, under_ws_key) for value in node]
    return node


def point_at_local(exchange: Any, http_url: str, ws_url: str) -> None:
    """Rewrite every host in `exchange.urls['api']` in place: REST entries to `http_url`, WebSocket entries to
    `ws_url`, each keeping its own path (so `https://api.binance.com/api/v3` becomes `{http_url}/api/v3`).

    An entry is a WebSocket one when its scheme is `ws`/`wss` or it sits under a key starting with `ws`; any path in
    `http_url`/`ws_url` is kept as a prefix. Raises ValueError if the exchange has no `urls['api']` to rewrite or a
    URL given is not absolute.
    """
    http = _base(http_url, _HTTP_SCHEMES, "http_url")
    ws = _base(ws_url, _WS_SCHEMES, "ws_url")
    urls = getattr(exchange, "urls", None)
    if not isinstance(urls, dict) or "api" not in urls:
        raise ValueError(f"{type(exchange).__name__} has no urls['api'] to rewrite")
    urls["api"] = _walk(urls["api"], http, ws, under_ws_key=False)
