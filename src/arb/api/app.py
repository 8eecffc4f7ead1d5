"""The FastAPI application: `/api/v1/*` (every route needs an API key, see `arb.api.auth`), `/metrics` for
Prometheus (no key: a scraper cannot hold one, and it carries no secret), `/healthz` for process probes (no key: it
says only ok or not, nothing about the portfolio or the venues).

The app owns its resources through its lifespan (`async with` all the way down): the grid's Redis, the ledger, the
opportunity stream follower and the backtest jobs. It holds no trading state itself: the trading process (`arb run`)
does, and the API reaches it through Redis (execute requests, the portfolio snapshot, the opportunity stream) and the
ledger (executions, positions, risk state), so an API replica can restart or scale without touching a trade.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Response
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from arb.api import account, arbitrage, backtest, ops
from arb.api.auth import KeyRing, RateLimiter
from arb.api.book import OpportunityBook
from arb.api.problems import install
from arb.api.schemas import ProblemOut
from arb.api.state import ApiState
from arb.config import Settings
from arb.metrics import API_REQUEST_SECONDS, API_REQUESTS

PREFIX = "/api/v1"
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ProblemOut, "description": why, "content": {"application/problem+json": {}}}
    for code, why in (
        (401, "No valid API key"),
        (403, "The key lacks the scope"),
        (404, "Not found for this key"),
        (409, "Nothing was sent (closed, kill switch, in progress)"),
        (422, "Invalid request: `errors` names each field"),
        (429, "Rate limit of the key, or too many backtests (see Retry-After)"),
        (503, "A dependency is absent or unreachable (trading process, grid Redis, directional layer)"),
        (504, "The trading process took the request but did not answer in time"),
    )
}
"""Documented on every route: each error is a problem document (`arb.api.problems`)."""
DESCRIPTION = """\
REST API of `arb`, the multi-exchange arbitrage scanner and executor.

Every route under `/api/v1` needs an API key (`arb api-key create --scope read|trade|admin`), sent as
`Authorization: Bearer <key>` or `X-API-Key: <key>`. Errors are RFC 7807 problem documents
(`application/problem+json`). Executions are paper unless the server's trading process runs live.
"""


class Metrics:
    """Counts every request by route template (never the raw path: ids would become series), method and status. A
    plain ASGI middleware: BaseHTTPMiddleware would cost a task per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            if template != "unmatched" and scope["path"].startswith(PREFIX) and not template.startswith(PREFIX):
                template = PREFIX + template  # a route of an included router knows its path without the prefix
            method = scope.get("method", "")
            API_REQUESTS.labels(template, method, str(status[0])).inc()
            API_REQUEST_SECONDS.labels(template, method).observe(time.perf_counter() - start)


def create_app(settings: Settings, redis_url: str, *, config_path: str | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from arb.grid import GridLayout, PriceGrid
        from arb.ledger import open_ledger
        from arb.ledger.api import ApiStore

        async with AsyncExitStack() as stack:
            grid = await stack.enter_async_context(
                PriceGrid.from_url(redis_url, GridLayout.from_settings(settings), settings.grid)
            )
            ledger = await stack.enter_async_context(open_ledger(settings.database_url.get_secret_value()))
            store = ApiStore(ledger)
            book = await stack.enter_async_context(OpportunityBook(grid))
            jobs = backtest.Jobs(store, limit=settings.api.max_backtest_jobs, config_path=config_path)
            stack.push_async_callback(jobs.close)
            app.state.arb = ApiState(settings, grid, ledger, store, book, jobs)
            app.state.keys = KeyRing(store)
            app.state.limiter = RateLimiter(settings.api.rate_limit_per_s, settings.api.rate_limit_burst)
            yield

    app = FastAPI(title="arb", version="1.0.0", description=DESCRIPTION, lifespan=lifespan)
    install(app)
    for module in (arbitrage, account, ops, backtest):
        app.include_router(module.router, prefix=PREFIX, responses=ERRORS)
    app.add_api_websocket_route(PREFIX + "/stream/opportunities", arbitrage.stream)

    @app.get("/healthz", include_in_schema=False)
    async def healthz(response: Response) -> dict[str, Any]:
        """503 when the grid's Redis does not answer: a probe must not call a blind process healthy."""
        try:
            await app.state.arb.grid.ping()
            return {"status": "ok"}
        except Exception:
            response.status_code = 503
            return {"status": "unavailable"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(Metrics)
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_credentials=settings.api.cors_allow_credentials,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Idempotency-Key", "Content-Type"],
        )
    return app
