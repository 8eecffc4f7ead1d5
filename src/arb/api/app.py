"""The FastAPI application. For now: liveness of the process and its grid Redis, and Prometheus metrics.

Auth, the arbitrage/portfolio/risk/backtest/strategy routers and the rest come with the API issue; until then the
server refuses to bind anything but loopback (FAULTS S10: no public bind without auth).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from arb.config import Settings


def create_app(settings: Settings, redis_url: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.redis = aioredis.Redis.from_url(redis_url, socket_timeout=settings.grid.socket_timeout_s)
        try:
            yield
        finally:
            await app.state.redis.aclose()

    app = FastAPI(title="arb", version="0.1.0", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz(response: Response) -> dict[str, object]:
        """503 when the grid's Redis does not answer: a probe must not call a blind process healthy."""
        try:
            await app.state.redis.ping()
            grid = "ok"
        except (aioredis.ConnectionError, aioredis.TimeoutError):
            grid = "unreachable"
            response.status_code = 503
        return {
            "status": "ok" if grid == "ok" else "degraded",
            "grid_redis": grid,
            "mode": settings.mode,
            "venues": len(settings.venues),
            "instruments": len(settings.instruments),
        }

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
