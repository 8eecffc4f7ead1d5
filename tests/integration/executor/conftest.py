"""The executor tests' PostgreSQL ledger: the run's throw-away database of `tests/integration/ledger` (emptied for
each test), or a skip saying why there is none. SQLite (a file in tmp_path) is every test's default."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import URL

from arb.ledger import open_ledger
from tests.integration.ledger.conftest import _pg_database, _pg_reset

__all__ = ["_pg_database", "pg_ledger_url"]


@pytest.fixture
async def pg_ledger_url(_pg_database: URL | str) -> str:
    if isinstance(_pg_database, str):
        pytest.skip(_pg_database)
    url = _pg_database.render_as_string(hide_password=False)
    if not await _pg_reset(_pg_database):
        async with open_ledger(url):
            pass
    return url
