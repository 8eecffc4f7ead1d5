"""The `risk:` section: the shipped limits.yaml states the schema's defaults, and overrides are checked strictly."""

from __future__ import annotations

from pathlib import Path

import pytest

from arb.config import ConfigError, load_settings
from arb.config.schema import RiskSettings


def test_shipped_limits_state_the_schema_defaults() -> None:
    assert load_settings().risk == RiskSettings()


def test_env_overrides_a_risk_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARB_RISK__MAX_ORDER_NOTIONAL_USD", "250")

    assert load_settings().risk.max_order_notional_usd == 250.0


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("max_drawdown: 1.5", "risk.max_drawdown"),
        ("daily_loss_limit_usd: -5", "risk.daily_loss_limit_usd"),
        ("var_confidence: [0.4]", "risk.var_confidence"),
        ("max_daily_loss: 5", "risk.max_daily_loss"),
    ],
)
def test_a_bad_risk_limit_is_refused_naming_the_key(tmp_path: Path, line: str, key: str) -> None:
    user = tmp_path / "user.yaml"
    user.write_text(f"risk:\n  {line}\n")

    with pytest.raises(ConfigError) as info:
        load_settings(user)

    assert any(key in p for p in info.value.problems), info.value.problems
