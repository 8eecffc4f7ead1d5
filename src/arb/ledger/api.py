"""The REST API's ledger tables: API keys (hashed) and idempotent, owned requests.

    store = ApiStore(ledger)
    key, token = await store.create_key("desk", {"read", "trade"})   # token shown once; only its hash is kept
    record = await store.authenticate(token)                          # None: unknown, tampered or revoked
    req, created = await store.begin_request(key.id, "execute", "idem-1", sha, resource_id="...")

Why in the ledger: keys and the record of who asked for which execution must survive restarts and be shared by every
API replica, and the ledger is the one durable store every process already opens. Why a row per idempotent request
(unique on key, kind and idempotency key): two concurrent requests with the same key race on the INSERT, and exactly
one wins; the other reads the winner's row and answers what it answers (FAULTS E4 at the API's door).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final

import msgspec
from sqlalchemy import Row, Select, insert, select, update
from sqlalchemy.exc import IntegrityError

from arb.ledger.schema import API_KEYS, API_REQUESTS
from arb.ledger.store import Ledger

SCOPES: Final = ("read", "trade", "admin")
"""`read`: every GET; `trade`: execute, start backtests; `admin`: the kill switch and everything else."""
TOKEN_PREFIX: Final = "arb_"  # noqa: S105 - a prefix, not a secret


class ApiKeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    scopes: frozenset[str]
    created_ns: int
    revoked_ns: int | None = None


class ApiRequestRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    key_id: str
    kind: str
    idempotency_key: str
    request_sha256: str
    resource_id: str
    status: str
    result: dict[str, Any]
    created_ns: int
    updated_ns: int


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed token `arb_<id>_<secret>`, else None (never an exception: it is user input)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    key_id, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
    if not sep or len(key_id) != 12 or not secret or not all(c in "0123456789abcdef" for c in key_id):
        return None
    return key_id, secret


def check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    wanted = frozenset(scopes)
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r} (scopes: {', '.join(SCOPES)})")
    if not wanted:
        raise ValueError(f"a key needs at least one scope ({', '.join(SCOPES)})")
    return wanted


def _key(row: Row[Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row.id,
        name=row.name,
        scopes=frozenset(s for s in row.scopes.split(",") if s),
        created_ns=row.created_ns,
        revoked_ns=row.revoked_ns,
    )


def _request(row: Row[Any]) -> ApiRequestRecord:
    return ApiRequestRecord(
        id=row.id,
        key_id=row.key_id,
        kind=row.kind,
        idempotency_key=row.idempotency_key,
        request_sha256=row.request_sha256,
        resource_id=row.resource_id,
        status=row.status,
        result=msgspec.json.decode(row.result) if row.result else {},
        created_ns=row.created_ns,
        updated_ns=row.updated_ns,
    )


class ApiStore:
    """The API tables of one open ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def create_key(self, name: str, scopes: Iterable[str]) -> tuple[ApiKeyRecord, str]:
        """A new key and its token (`arb_<id>_<secret>`): the only time the secret exists outside the caller."""
        wanted = check_scopes(scopes)
        if not name.strip():
            raise ValueError("a key needs a name (who or what uses it)")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        record = ApiKeyRecord(id=key_id, name=name.strip(), scopes=wanted, created_ns=time.time_ns())
        async with self._ledger.transaction("create_api_key") as connection:
            await connection.execute(
                insert(API_KEYS).values(
                    id=key_id, name=record.name, scopes=",".join(sorted(wanted)),
                    secret_sha256=secret_hash(secret), created_ns=record.created_ns, revoked_ns=None,
                )
            )  # fmt: skip
        return record, f"{TOKEN_PREFIX}{key_id}_{secret}"

    async def keys(self) -> list[ApiKeyRecord]:
        rows = await self._read("api_keys", select(API_KEYS).order_by(API_KEYS.c.created_ns))
        return [_key(r) for r in rows]

    async def key_hashes(self) -> dict[str, tuple[ApiKeyRecord, str]]:
        """Every usable key with its secret's hash: what the API caches to authenticate without a query per request."""
        rows = await self._read("api_keys", select(API_KEYS).where(API_KEYS.c.revoked_ns.is_(None)))
        return {r.id: (_key(r), r.secret_sha256) for r in rows}

    async def authenticate(self, token: str) -> ApiKeyRecord | None:
        parts = split_token(token)
        if parts is None:
            return None
        rows = await self._read("authenticate", select(API_KEYS).where(API_KEYS.c.id == parts[0]))
        if not rows or rows[0].revoked_ns is not None:
            return None
        if not hmac.compare_digest(secret_hash(parts[1]), rows[0].secret_sha256):
            return None
        return _key(rows[0])

    async def revoke_key(self, key_id: str) -> bool:
        """True if the key existed and was usable; revoking twice is harmless."""
        async with self._ledger.transaction("revoke_api_key") as connection:
            result = await connection.execute(
                update(API_KEYS)
                .where(API_KEYS.c.id == key_id, API_KEYS.c.revoked_ns.is_(None))
                .values(revoked_ns=time.time_ns())
            )
        return bool(result.rowcount)

    async def begin_request(
        self, key_id: str, kind: str, idempotency_key: str, request_sha256: str, *, resource_id: str, status: str
    ) -> tuple[ApiRequestRecord, bool]:
        """The request's row and True when this call created it; the existing row and False when the same key already
        made a request of this kind with this idempotency key (whatever its body: the caller compares the hashes)."""
        now = time.time_ns()
        values = {
            "key_id": key_id, "kind": kind, "idempotency_key": idempotency_key, "request_sha256": request_sha256,
            "resource_id": resource_id, "status": status, "result": "{}", "created_ns": now, "updated_ns": now,
        }  # fmt: skip
        try:
            async with self._ledger.transaction("begin_api_request") as connection:
                await connection.execute(insert(API_REQUESTS).values(**values))
            created = True
        except IntegrityError:
            created = False
        c = API_REQUESTS.c
        query = select(API_REQUESTS).where(c.key_id == key_id, c.kind == kind, c.idempotency_key == idempotency_key)
        rows = await self._read("api_request", query)
        return _request(rows[0]), created

    async def finish_request(
        self, request_id: int, *, status: str, result: dict[str, Any], resource_id: str | None = None
    ) -> None:
        values: dict[str, Any] = {"status": status, "result": msgspec.json.encode(result).decode()}
        values["updated_ns"] = time.time_ns()
        if resource_id is not None:
            values["resource_id"] = resource_id
        async with self._ledger.transaction("finish_api_request") as connection:
            await connection.execute(update(API_REQUESTS).where(API_REQUESTS.c.id == request_id).values(**values))

    async def request_for(self, kind: str, resource_id: str) -> ApiRequestRecord | None:
        """The request that created `resource_id` (an execution or job id), whoever made it; None if the API did not."""
        c = API_REQUESTS.c
        rows = await self._read("api_request", select(API_REQUESTS).where(c.kind == kind, c.resource_id == resource_id))
        return _request(rows[0]) if rows else None

    async def requests_of(self, key_id: str, kind: str, *, status: Sequence[str] = ()) -> list[ApiRequestRecord]:
        c = API_REQUESTS.c
        query = select(API_REQUESTS).where(c.key_id == key_id, c.kind == kind)
        if status:
            query = query.where(c.status.in_(status))
        return [_request(r) for r in await self._read("api_requests", query.order_by(c.id))]

    async def _read(self, operation: str, query: Select[Any]) -> Sequence[Row[Any]]:
        return await self._ledger._read(operation, query)
