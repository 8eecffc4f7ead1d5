"""Swap gas: units × (base fee + tip) in the native token; the units estimate follows measured gasUsed."""

from __future__ import annotations

import pytest

from arb.connectors.dex.gas import GasUnits, swap_gas_native


def test_swap_gas_in_the_native_token() -> None:
    # 150 000 gas × (20 gwei + 2 gwei) = 3.3e15 wei = 0.0033 ETH
    assert swap_gas_native(150_000, 20 * 10**9, 2 * 10**9) == pytest.approx(0.0033)


def test_the_units_estimate_starts_at_config_and_follows_receipts() -> None:
    units = GasUnits(150_000, alpha=0.5)
    assert units.value == 150_000
    units.observe_gas_used(110_000)  # the first measurement replaces the guess
    assert units.value == 110_000
    units.observe_gas_used(120_000)  # then an EWMA: 110000 + 0.5 × 10000
    assert units.value == 115_000


def test_nonsense_gas_is_refused() -> None:
    with pytest.raises(ValueError, match="gas units"):
        swap_gas_native(0, 1, 1)
    with pytest.raises(ValueError, match="gasUsed"):
        GasUnits(1).observe_gas_used(0)
