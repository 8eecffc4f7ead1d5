"""The execution path's pure rules: amountOutMin from the slippage cap (exact), the signing key from env."""

from __future__ import annotations

import pytest

from arb.connectors.dex.execution import SwapOutcome, SwapRequest, SwapStatus, account_from_env
from arb.connectors.dex.pools import DexConfigError


def request(expected_out: int, max_slippage: float) -> SwapRequest:
    return SwapRequest(path=("WETH", "USDC"), amount_in=10**18, expected_out=expected_out, max_slippage=max_slippage)


def test_amount_out_min_is_the_floor_of_expected_times_one_minus_the_cap() -> None:
    assert request(1_000_000, 0.005).amount_out_min() == 995_000
    assert request(999, 0.003).amount_out_min() == 996  # 996.003 floored
    assert request(3 * 10**21 + 7, 0.001).amount_out_min() == 2_997_000_000_000_000_000_006  # exact, past float's 2**53
    assert request(10, 0.0).amount_out_min() == 10


@pytest.mark.parametrize(("expected", "cap"), [(100, 1.0), (100, -0.01), (0, 0.01)])
def test_a_cap_outside_zero_to_one_or_a_non_positive_amount_is_refused(expected: int, cap: float) -> None:
    with pytest.raises(ValueError, match=r"max_slippage|positive"):
        request(expected, cap).amount_out_min()


@pytest.mark.parametrize(
    ("status", "final", "hedgeable"),
    [
        (SwapStatus.FILLED, True, True),
        (SwapStatus.FILLED, False, False),  # a receipt without enough confirmations yet
        (SwapStatus.PENDING, False, False),
        (SwapStatus.REVERTED, True, False),
        (SwapStatus.REJECTED, True, False),
        (SwapStatus.DROPPED, True, False),
    ],
)
def test_only_a_final_fill_may_be_hedged(status: SwapStatus, final: bool, hedgeable: bool) -> None:
    outcome = SwapOutcome(status=status, venue="uniswap_v2", amount_in=1, amount_out_min=1, final=final)
    assert outcome.hedgeable is hedgeable


def test_the_signing_key_comes_from_the_environment_and_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARB_DEX_PRIVATE_KEY", "0x1234")
    with pytest.raises(DexConfigError, match="ARB_DEX_PRIVATE_KEY is not a valid private key") as err:
        account_from_env()
    assert "1234" not in str(err.value)
    monkeypatch.delenv("ARB_DEX_PRIVATE_KEY")
    with pytest.raises(DexConfigError, match="is not set"):
        account_from_env()
    monkeypatch.setenv("ARB_DEX_PRIVATE_KEY", "0x" + "00" * 31 + "01")
    assert account_from_env().address == "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"  # the well-known key-1 address
