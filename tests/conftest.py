"""Shared fixtures: a real redis-server for the whole session, flushed before every test.

`ARB_TEST_REDIS_URL` points the suite at an existing server instead (its db is flushed, so give it a spare db number).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from arb.grid.embedded import EmbeddedRedis


@pytest.fixture(scope="session")
def _session_redis_url() -> Iterator[str]:
    external = os.environ.get("ARB_TEST_REDIS_URL")
    if external:
        yield external
        return
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture
async def redis_url(_session_redis_url: str) -> AsyncIterator[str]:
    client = aioredis.Redis.from_url(_session_redis_url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    return _session_redis_url


@pytest.fixture
def private_redis() -> Iterator[EmbeddedRedis]:
    """A redis-server of the test's own, which it may stop and restart (FAULTS M8)."""
    server = EmbeddedRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()
