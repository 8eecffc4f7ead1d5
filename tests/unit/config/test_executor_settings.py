"""The `executor:` section's `rebalance_drift`: the shipped file states the default, and a bad value names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from arb.config import ConfigError, load_settings
from arb.config.schema import ExecutorSettings


def test_shipped_executor_settings_state_the_schema_defaults() -> None:
    settings = load_settings()

    assert settings.executor == ExecutorSettings()
    assert settings.executor.rebalance_drift == 0.25


def test_env_overrides_the_rebalance_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARB_EXECUTOR__REBALANCE_DRIFT", "0.1")

    assert load_settings().executor.rebalance_drift == 0.1


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.2", ".nan", "lots"])
def test_a_bad_rebalance_drift_is_refused_naming_the_key(tmp_path: Path, value: str) -> None:
    user = tmp_path / "user.yaml"
    user.write_text(f"executor:\n  rebalance_drift: {value}\n")

    with pytest.raises(ConfigError) as info:
        load_settings(user)

    [problem] = info.value.problems
    assert problem.startswith(f"{user}:2: executor.rebalance_drift: "), problem
