"""Property-based checks of the API against its own OpenAPI schema (schemathesis, bounded examples): for every
operation, generated requests (valid and invalid) never make the server fail (no 500), and every response, errors
included, matches what the schema documents (status code, content type, body).

The app runs under uvicorn on loopback (a real HTTP server, lifespan once) with the session's real Redis and a SQLite
ledger; the client uses an admin key, so every operation is reached past its auth. 503 is the one 5xx a route may
answer, and only as a documented problem naming an absent dependency (no trading process, no directional layer).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
import uvicorn
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from arb.api.app import create_app
from tests.integration.api.conftest import api_settings, make_keys

pytestmark = pytest.mark.timeout(300)
CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance, negative_data_rejection]
"""Conformance of every answer, and invalid input refused; not `positive_data_acceptance`: the schema cannot say which
instruments and venues the server's settings hold, so a schema-valid but unknown one is (rightly) a 422."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, _session_redis_url: str) -> Iterator[dict[str, str]]:
    import asyncio

    tmp: Path = tmp_path_factory.mktemp("schema")
    settings = api_settings(tmp, _session_redis_url, execute_wait_s=0.2, rate_limit_per_s=100_000.0,
                            rate_limit_burst=1_000_000)  # fmt: skip
    keys = asyncio.run(make_keys(settings))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, _session_redis_url), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))  # fmt: skip
    thread = threading.Thread(target=server.run, name="schema-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield {"base_url": f"http://127.0.0.1:{port}", "key": keys["admin"]}
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def api_schema(served: dict[str, str]) -> Any:
    return schemathesis.openapi.from_url(served["base_url"] + "/openapi.json")


def test_no_request_makes_the_api_fail_and_every_answer_matches_the_schema(
    api_schema: Any, served: dict[str, str]
) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10
    checked: dict[str, int] = {}
    for operation in operations:
        label = operation.label

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(max_examples=25, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck))  # fmt: skip
        def one(case: Any) -> None:
            case.headers = {**(case.headers or {}), "X-API-Key": served["key"]}
            case.headers.pop("Authorization", None)
            response = case.call_and_validate(base_url=served["base_url"], checks=CHECKS)
            status = response.status_code
            assert status < 500 or status == 503, (case.method, case.path, status, response.text)
            if status >= 400:
                assert response.headers["content-type"][0].startswith("application/problem+json")
                body = response.json()
                assert body["status"] == status
                assert body["detail"]
            checked[label] = checked.get(label, 0) + 1  # noqa: B023 - one() runs within this iteration

        one()
    assert len(checked) == len(operations)
