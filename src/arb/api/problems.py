"""Errors as RFC 7807 problem documents (`application/problem+json`), for every failure the API can answer.

Why one shape: a client (or a trader reading a log) gets the same fields for a bad payload, a missing key, a kill
switch and a crash: `type`, `title`, `status`, `detail`, and for validation errors `errors` naming each field. Nothing
from inside the process (a traceback, a URL, a key) is ever put in a problem: an unexpected error answers a generic
500 and is logged with its request id.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON: Final = "application/problem+json"
TITLES: Final = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    422: "Unprocessable request",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
    504: "Gateway timeout",
}


class Problem(Exception):
    """Raise from a route to answer `status` with this problem document (extra members go into the body)."""

    def __init__(
        self, status: int, detail: str, *, title: str | None = None, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title or TITLES.get(status, "Error")
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def invalid(field: str, detail: str, message: str) -> Problem:
    """A 422 naming `field` (`body.x`, `query.x`, `header.X`) the way request validation does: in `detail` and in
    `errors`, for checks the schema cannot express (the settings' instruments and limits)."""
    return Problem(422, f"{field}: {detail}", errors=[{"field": field, "message": message}])


def problem_body(
    status: int, detail: str, *, title: str | None = None, instance: str = "", **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"https://arb.dev/problems/{status}",
        "title": title or TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return body


def response(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    instance: str = "",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, detail, title=title, instance=instance, **extra),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_JSON,
    )


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def _safe(value: Any) -> Any:
    """An input echoed in an error, made JSON-safe (NaN/inf are not JSON) and short."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value if not isinstance(value, str) or len(value) <= 80 else value[:80] + "..."
    return None


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return response(
            exc.status, exc.detail, title=exc.title, instance=request.url.path, headers=exc.headers, **exc.extra
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field(tuple(e.get("loc", ()))), "message": str(e.get("msg", "")), "input": _safe(e.get("input"))}
            for e in exc.errors()
        ]
        fields = ", ".join(sorted({e["field"] for e in errors})) or "request"
        detail = f"invalid {fields}: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return response(422, detail, instance=request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "Error")
        return response(exc.status_code, detail, instance=request.url.path, headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        # logged with its type and route only: the exception's text may quote a URL or a key
        log.error("api.error route=%s method=%s error=%s", request.url.path, request.method, type(exc).__name__)
        return response(500, "the server failed to answer this request; it is logged", instance=request.url.path)
