"""The official Uniswap contract artifacts (ABI + creation bytecode), read from the npm packages Uniswap publishes.

Why from npm and not copied into the repo: the ABIs and bytecode are then exactly what Uniswap released
(`@uniswap/v2-core` / `v2-periphery` `build/*.json`, `@uniswap/v3-core` / `v3-periphery` hardhat `artifacts/`), and the
repo vendors nothing. `./run` installs them with `npm ci` from `src/arb/sim/chain/npm/package-lock.json` into the
git-ignored `.cache/dex-chain`; `ARB_DEX_NPM_DIR` points elsewhere (a deploy image installs them at build time).

The same files serve the connector (ABIs) and the local chain (`arb.sim.chain`, which also deploys the bytecode).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Final

import msgspec
from web3 import AsyncWeb3
from web3.contract import AsyncContract

NPM_DIR_ENV: Final = "ARB_DEX_NPM_DIR"
"""A directory holding `node_modules/@uniswap/...` (default: `.cache/dex-chain` at the repository root)."""

_REPO_ROOT: Final = Path(__file__).resolve().parents[4]

ARTIFACTS: Final[dict[str, str]] = {
    # v2 (waffle builds: {"abi": [...], "bytecode": "6080..."})
    "UniswapV2Factory": "@uniswap/v2-core/build/UniswapV2Factory.json",
    "UniswapV2Pair": "@uniswap/v2-core/build/UniswapV2Pair.json",
    "ERC20": "@uniswap/v2-core/build/ERC20.json",  # v2-core's test token: constructor(totalSupply), 18 decimals
    "UniswapV2Router02": "@uniswap/v2-periphery/build/UniswapV2Router02.json",
    "WETH9": "@uniswap/v2-periphery/build/WETH9.json",
    # v3 (hardhat artifacts: {"abi": [...], "bytecode": "0x6080..."})
    "UniswapV3Factory": "@uniswap/v3-core/artifacts/contracts/UniswapV3Factory.sol/UniswapV3Factory.json",
    "UniswapV3Pool": "@uniswap/v3-core/artifacts/contracts/UniswapV3Pool.sol/UniswapV3Pool.json",
    "NonfungiblePositionManager": (
        "@uniswap/v3-periphery/artifacts/contracts/NonfungiblePositionManager.sol/NonfungiblePositionManager.json"
    ),
    "SwapRouter": "@uniswap/v3-periphery/artifacts/contracts/SwapRouter.sol/SwapRouter.json",
    "QuoterV2": "@uniswap/v3-periphery/artifacts/contracts/lens/QuoterV2.sol/QuoterV2.json",
}


class ArtifactsMissing(RuntimeError):
    """The Uniswap npm packages are not installed where arb looks for them."""


class Artifact(msgspec.Struct, frozen=True):
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    """Creation bytecode, 0x-prefixed; empty for an interface-only artifact."""


def npm_dir() -> Path:
    """Where `node_modules` with the Uniswap (and anvil) packages is: `$ARB_DEX_NPM_DIR` or `.cache/dex-chain`."""
    configured = os.environ.get(NPM_DIR_ENV)
    return Path(configured) if configured else _REPO_ROOT / ".cache" / "dex-chain"


@functools.cache
def _load(name: str, root: Path) -> Artifact:
    relative = ARTIFACTS.get(name)
    if relative is None:
        raise ValueError(f"unknown Uniswap artifact {name!r}; known: {', '.join(sorted(ARTIFACTS))}")
    path = root / "node_modules" / relative
    if not path.is_file():
        raise ArtifactsMissing(
            f"{path} not found: install the Uniswap npm packages (./run test does it; or "
            f"`npm ci` in a copy of src/arb/sim/chain/npm and set {NPM_DIR_ENV} to that directory)"
        )
    raw = msgspec.json.decode(path.read_bytes())
    abi = raw.get("abi")
    bytecode = raw.get("bytecode") or ""
    if not isinstance(abi, list) or not isinstance(bytecode, str):
        raise ArtifactsMissing(f"{path} is not a contract artifact (no abi list / bytecode string)")
    if bytecode and not bytecode.startswith("0x"):
        bytecode = "0x" + bytecode
    return Artifact(name=name, abi=abi, bytecode=bytecode)


def artifact(name: str) -> Artifact:
    """The named official artifact (see `ARTIFACTS`), read once per process."""
    return _load(name, npm_dir())


def abi(name: str) -> list[dict[str, Any]]:
    return artifact(name).abi


def contract(w3: AsyncWeb3[Any], address: str, name: str) -> AsyncContract:
    """The deployed contract at `address` (any case) with the official ABI `name`."""
    return w3.eth.contract(address=AsyncWeb3.to_checksum_address(address), abi=abi(name))
