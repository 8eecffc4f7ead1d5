"""The API's key format, scopes and per-key rate limit, as a client meets them (no I/O)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from arb.api.auth import IMPLIED, Principal, RateLimiter
from arb.config import load_settings
from arb.ledger.api import check_scopes, split_token


@pytest.mark.parametrize(
    "token",
    ["", "arb_", "arb_0123456789ab", "arb_0123456789ab_", "xyz_0123456789ab_s", "arb_0123456789AB_s", "arb_0123_s"],
)
def test_a_malformed_token_is_not_a_key(token: str) -> None:
    assert split_token(token) is None


def test_a_token_splits_into_its_id_and_secret_even_when_the_secret_has_underscores() -> None:
    assert split_token("arb_0123456789ab_se_cr_et") == ("0123456789ab", "se_cr_et")


def test_scopes_nest_admin_over_trade_over_read() -> None:
    def may(scopes: set[str], scope: str) -> bool:
        return Principal(key_id="k", name="n", scopes=frozenset(scopes)).may(scope)

    assert may({"admin"}, "read")
    assert may({"admin"}, "trade")
    assert may({"admin"}, "admin")
    assert may({"trade"}, "read")
    assert may({"trade"}, "trade")
    assert not may({"trade"}, "admin")
    assert may({"read"}, "read")
    assert not may({"read"}, "trade")
    assert set(IMPLIED) == {"read", "trade", "admin"}


@pytest.mark.parametrize(("scopes", "problem"), [({"root"}, "unknown scope 'root'"), (set(), "at least one scope")])
def test_an_unknown_or_empty_scope_set_is_refused_naming_it(scopes: set[str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        check_scopes(scopes)


def test_the_rate_limit_allows_the_burst_then_the_rate_and_says_how_long_to_wait() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a", now=0.0) == pytest.approx(0.5)  # one token comes back every 0.5 s
    assert limiter.take("b", now=0.0) == 0.0  # another key has its own bucket
    assert limiter.take("a", now=0.5) == 0.0
    assert limiter.take("a", now=0.5) > 0.0


def test_the_settings_never_show_the_database_or_redis_password() -> None:
    settings = load_settings().model_copy(
        update={
            "database_url": SecretStr("postgresql+asyncpg://arb:s3cr3t-db@127.0.0.1/arb"),
            "redis_url": SecretStr("redis://:s3cr3t-redis@127.0.0.1:6379/0"),
        }
    )
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert "s3cr3t" not in text
