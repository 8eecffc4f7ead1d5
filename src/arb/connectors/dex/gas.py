"""What one swap costs in gas, in the instrument's quote currency: gas units × (base fee + tip) × native price.

Why attached per block: the base fee moves every block (EIP-1559), and on a cheap trade gas is most of the cost. The
units are the venue's `gas_units_swap` estimate until the execution path measured real swaps (`observe_gas_used`
keeps an EWMA of receipts' gasUsed). The native token's price in the quote currency comes from the connector's own
pool of the wrapped native (WETH/USDC prices ETH in USDC); where there is none the cost stays unpriced (None), never 0.
"""

from __future__ import annotations

import msgspec


class GasQuote(msgspec.Struct, frozen=True):
    """Gas of one swap on `venue` for `instrument` at `block`."""

    venue: str
    instrument: str
    block: int
    gas_units: int
    base_fee_wei: int
    tip_wei: int
    native_cost: float
    """gas_units × (base fee + tip) in the native token (ETH)."""
    quote_cost: float | None
    """The same in the instrument's quote currency; None while the native token has no price in it."""


def swap_gas_native(gas_units: int, base_fee_wei: int, tip_wei: int) -> float:
    """Cost of one swap in native-token units (1e18 wei each)."""
    if gas_units <= 0 or base_fee_wei < 0 or tip_wei < 0:
        raise ValueError(f"gas units must be positive and fees non-negative: {gas_units}, {base_fee_wei}, {tip_wei}")
    return gas_units * (base_fee_wei + tip_wei) / 1e18


class GasUnits:
    """The gas-units estimate of a venue's swap: config's value, then an EWMA of measured `gasUsed`."""

    def __init__(self, configured: int, *, alpha: float = 0.2) -> None:
        if configured <= 0 or not 0 < alpha <= 1:
            raise ValueError("configured gas units must be positive and alpha in (0, 1]")
        self._value = float(configured)
        self._alpha = alpha
        self.measured = 0

    @property
    def value(self) -> int:
        return round(self._value)

    def observe_gas_used(self, gas_used: int) -> None:
        if gas_used <= 0:
            raise ValueError(f"gasUsed must be positive, got {gas_used}")
        self._value = float(gas_used) if self.measured == 0 else self._value + self._alpha * (gas_used - self._value)
        self.measured += 1
