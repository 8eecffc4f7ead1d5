"""Shared by the DEX tests: skip markers (where `./run test` could not install anvil / the Uniswap npm packages),
the local settings, and small chain helpers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from arb.config import load_settings
from arb.config.schema import Chain, Settings, VenueConfig
from arb.connectors.dex.abi import ArtifactsMissing, artifact, contract
from arb.sim.chain.local import LocalDex
from arb.sim.chain.node import anvil_available


def _artifacts_problem() -> str | None:
    try:
        artifact("UniswapV2Router02")
    except ArtifactsMissing as exc:
        return str(exc)
    return None


needs_artifacts = pytest.mark.skipif(_artifacts_problem() is not None, reason=str(_artifacts_problem()))
needs_anvil = pytest.mark.skipif(
    _artifacts_problem() is not None or not anvil_available(),
    reason=_artifacts_problem() or "no anvil binary (./run test installs @foundry-rs/anvil)",
)


def local_settings(dex: LocalDex) -> Settings:
    return dex.apply(load_settings(None))


def venue_symbols(settings: Settings, venue_id: str) -> dict[str, str]:
    """Venue symbol -> instrument for every instrument the venue lists (what a connector is given)."""
    return {sym: iid for iid, inst in settings.instruments.items() for v, sym in inst.venues.items() if v == venue_id}


def venue_and_chain(settings: Settings, venue_id: str) -> tuple[VenueConfig, Chain]:
    return settings.venues[venue_id], settings.chains["ethereum"]


async def v2_router_amounts(dex: LocalDex, venue: str, path: list[str], amount: int, *, out: bool) -> list[int]:
    """The deployed router's own getAmountsOut (out=True) / getAmountsIn for `path` (token symbols)."""
    w3 = dex.trader.w3
    router = contract(w3, dex.deployment.v2[venue].router, "UniswapV2Router02")
    addresses = [dex.deployment.tokens[s] for s in path]
    fn = router.functions.getAmountsOut if out else router.functions.getAmountsIn
    result: list[int] = await fn(amount, addresses).call()
    return result


async def token_balance(dex: LocalDex, symbol: str, holder: str) -> int:
    token = contract(dex.trader.w3, dex.deployment.tokens[symbol], "ERC20")
    return int(await token.functions.balanceOf(holder).call())


def receipt_block(receipt: Mapping[str, Any] | Any) -> int:
    return int(receipt["blockNumber"])
