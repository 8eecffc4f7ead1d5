"""Ledger URLs: what the ledger accepts, and that a password never shows in what it says."""

from __future__ import annotations

import pytest

from arb.ledger.errors import UnsupportedDatabase
from arb.ledger.migrate import check_url, create_engine, head_revision, mask


def test_a_password_is_masked() -> None:
    assert mask("postgresql+asyncpg://arb:s3cr%40t@db:5432/arb") == "postgresql+asyncpg://arb:***@db:5432/arb"
    assert mask("sqlite+aiosqlite:///arb.db") == "sqlite+aiosqlite:///arb.db"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql+aiomysql://arb:s3cret@db/arb", "only SQLite and PostgreSQL are supported"),
        ("sqlite+pysqlite:///arb.db", "needs an asyncio driver"),
        ("postgresql+psycopg2://arb:s3cret@db/arb", "driver 'psycopg2' is not available|needs an asyncio driver"),
        ("postgresql+nosuchdriver://arb:s3cret@db/arb", "driver 'nosuchdriver' is not available"),
        ("sqlite+aiosqlite://", "in-memory SQLite database vanishes"),
        ("sqlite+aiosqlite:///:memory:", "in-memory SQLite database vanishes"),
        ("not a url s3cret", "not a SQLAlchemy URL"),
    ],
)
def test_an_unusable_url_is_refused_saying_why_without_its_password(url: str, says: str) -> None:
    with pytest.raises(UnsupportedDatabase, match=says) as refused:
        create_engine(url)  # checks the URL, then the driver; connects to nothing

    assert "s3cret" not in str(refused.value)
    assert isinstance(refused.value, ValueError)


@pytest.mark.parametrize(
    "url", ["sqlite+aiosqlite:///arb.db", "sqlite+aiosqlite:////var/lib/arb/arb.db", "postgresql+asyncpg://db/arb"]
)
def test_sqlite_files_and_postgresql_are_accepted(url: str) -> None:
    assert check_url(url).render_as_string() == url


def test_the_code_knows_its_newest_schema_revision() -> None:
    assert head_revision() == "0004"
