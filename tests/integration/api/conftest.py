"""The API through its real app: an httpx client on the ASGI app (lifespan run), the session's real redis-server and
a real SQLite ledger in tmp_path; keys made with `ApiStore` on that ledger, as `arb api-key create` makes them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from arb.api.app import create_app
from arb.config import Settings, load_settings
from arb.config.schema import ApiSettings
from arb.ledger import open_ledger
from arb.ledger.api import ApiStore


@dataclass
class Api:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    keys: dict[str, str]
    """scope -> token of a key with only that scope."""

    def auth(self, scope: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[scope]}


def api_settings(tmp_path: Path, redis_url: str, **api: Any) -> Settings:
    base = load_settings()
    return base.model_copy(
        update={
            "database_url": SecretStr(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"),
            "redis_url": SecretStr(redis_url),
            "api": ApiSettings(**{"tapes_dir": str(tmp_path / "tapes"), **api}),
        }
    )


async def make_keys(settings: Settings) -> dict[str, str]:
    async with open_ledger(settings.database_url.get_secret_value()) as ledger:
        store = ApiStore(ledger)
        return {scope: (await store.create_key(f"test-{scope}", {scope}))[1] for scope in ("read", "trade", "admin")}


@pytest.fixture
def api_factory(tmp_path: Path, redis_url: str) -> Callable[..., Any]:
    @asynccontextmanager
    async def make(**api: Any) -> AsyncIterator[Api]:
        settings = api_settings(tmp_path, redis_url, **api)
        keys = await make_keys(settings)
        app = create_app(settings, redis_url)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://arb.test") as client:
                await app.state.arb.book.caught_up.wait()
                yield Api(app, client, settings, keys)

    return make


@pytest.fixture
async def api(api_factory: Callable[..., Any]) -> AsyncIterator[Api]:
    async with api_factory() as a:
        yield a
