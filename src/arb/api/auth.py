"""Who is calling and what they may do: API keys with scopes, checked on every route but `/metrics`, and a rate
limit per key.

Keys are `arb_<id>_<secret>` tokens made by `arb api-key create` (`arb.ledger.api`); a request carries one as
`Authorization: Bearer <token>` or `X-API-Key: <token>`. The API keeps the table of usable keys (id -> hash of the
secret) in memory, re-read from the ledger every `REFRESH_S`, so authenticating costs a hash and a constant-time
compare instead of a database round trip, and a revoked key stops working within `REFRESH_S` on every replica.

Scopes nest: `admin` may do everything, `trade` may also read, `read` only reads. Every failure is the same 401 for
a missing, malformed, unknown, tampered or revoked key (FAULTS S1): the answer never says which, so it cannot be used
to probe for valid key ids.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

import msgspec
from fastapi import Request
from starlette.requests import HTTPConnection

from arb.api.problems import Problem
from arb.ledger.api import ApiRequestRecord, ApiStore, secret_hash, split_token

log = logging.getLogger(__name__)

REFRESH_S: Final = 2.0
IMPLIED: Final = {"read": {"read", "trade", "admin"}, "trade": {"trade", "admin"}, "admin": {"admin"}}
"""Scope asked for -> the key scopes that grant it."""
UNAUTHORIZED: Final = (
    "a valid API key is required (Authorization: Bearer <key> or X-API-Key); create one with `arb api-key create`"
)


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    key_id: str
    name: str
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        return bool(self.scopes & IMPLIED[scope])


class KeyRing:
    """The usable keys, cached from the ledger (see the module docstring)."""

    def __init__(self, store: ApiStore, *, refresh_s: float = REFRESH_S) -> None:
        self._store = store
        self._refresh_s = refresh_s
        self._keys: dict[str, tuple[Principal, str]] = {}
        self._loaded_at = -1e18

    async def principal(self, token: str) -> Principal | None:
        parts = split_token(token)
        if parts is None:
            return None
        now = time.monotonic()
        if now - self._loaded_at >= self._refresh_s:
            rows = await self._store.key_hashes()
            self._keys = {
                k: (Principal(key_id=k, name=rec.name, scopes=rec.scopes), digest) for k, (rec, digest) in rows.items()
            }
            self._loaded_at = now
        found = self._keys.get(parts[0])
        # hash and compare even for an unknown id, so the answer's timing does not tell ids apart
        digest = found[1] if found is not None else "0" * 64
        ok = hmac.compare_digest(secret_hash(parts[1]), digest)
        return found[0] if ok and found is not None else None


class RateLimiter:
    """A token bucket per key: `rate` requests a second sustained, `burst` at once (FAULTS S6)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key_id: str, now: float | None = None) -> float:
        """0 when the request may go; else the seconds until it may."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key_id] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key_id] = (tokens, now)
        return (1.0 - tokens) / self.rate


def token_of(request: HTTPConnection) -> str | None:
    """The key a request or WebSocket carries: `Authorization: Bearer` (another scheme is no key) or `X-API-Key`."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None
    return request.headers.get("x-api-key") or None


async def authenticate(request: Request) -> Principal:
    token = token_of(request)
    keys: KeyRing = request.app.state.keys
    principal = await keys.principal(token) if token else None
    if principal is None:
        raise Problem(401, UNAUTHORIZED, headers={"WWW-Authenticate": 'Bearer realm="arb"'})
    wait = request.app.state.limiter.take(principal.key_id)
    if wait > 0:
        retry = max(1, int(wait + 0.999))
        raise Problem(429, f"rate limit of this key reached; retry in {retry} s", headers={"Retry-After": str(retry)})
    return principal


async def owned(
    request: Request, principal: Principal, kind: str, resource_id: str, noun: str
) -> ApiRequestRecord | None:
    """The API request that created `resource_id` when this key may see it: the key that made it, or any admin key
    (which also sees what no API request made, e.g. the trader's own executions: then None). Otherwise 404, the same
    answer as for an id that does not exist (FAULTS S3: ids of others are not confirmed)."""
    owner: ApiRequestRecord | None = await request.app.state.arb.store.request_for(kind, resource_id)
    if principal.may("admin") or (owner is not None and owner.key_id == principal.key_id):
        return owner
    raise Problem(404, f"no {noun} {resource_id!r} for this key")


def requires(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the caller, authenticated and allowed `scope` (403 naming the scope otherwise, FAULTS S2)."""
    if scope not in IMPLIED:
        raise ValueError(f"unknown scope {scope!r}")

    async def check(request: Request) -> Principal:
        principal = await authenticate(request)
        if not principal.may(scope):
            raise Problem(
                403, f"this API key lacks the {scope!r} scope (it has: {', '.join(sorted(principal.scopes))})"
            )
        return principal

    check.__name__ = f"requires_{scope}"
    return check
