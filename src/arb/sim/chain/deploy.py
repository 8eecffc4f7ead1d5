"""Deploy the official Uniswap v2 and v3 contracts, test tokens and pools with liquidity onto a local chain.

Everything is the bytecode Uniswap published on npm (`arb.connectors.dex.abi`): `UniswapV2Factory` +
`UniswapV2Router02` (one pair per venue: "uniswap_v2" and "sushiswap" are two deployments of the same v2 bytecode, as
SushiSwap is a fork with the same fee), `UniswapV3Factory` + `NonfungiblePositionManager` + `SwapRouter` + `QuoterV2`,
`WETH9`, and v2-core's test `ERC20` for the other tokens. That ERC20's `decimals()` is 18 for every token, so the
local chain's token table says 18 where mainnet's USDC has 6; the connector reads decimals on chain and refuses a
mismatch with config. The routers' hard-coded pair init-code hashes match these artifacts (the v2 pair's creation
code hashes to 96e8ac42..., v3's pool to e34f199b..., as on mainnet), so the routers find the pairs deployed here.

Transactions are signed locally (never an unlocked node account), so the same code runs on any node.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final, cast

import msgspec
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import AsyncWeb3
from web3.contract import AsyncContract
from web3.contract.async_contract import AsyncContractFunction
from web3.types import TxParams, TxReceipt

from arb.connectors.dex.abi import artifact, contract

MAX_UINT256: Final = 2**256 - 1
TICK_SPACING: Final = {500: 10, 3000: 60, 10000: 200}
"""The fee tiers UniswapV3Factory enables at deployment, and their tick spacing."""
MAX_TICK: Final = 887272
TOKEN_DECIMALS: Final = 18


class ChainTxFailed(RuntimeError):
    """A set-up transaction reverted (names the contract call)."""


class PoolSpec(msgspec.Struct, frozen=True):
    """One pool to create: `price` quote per base, `base_amount` base tokens of liquidity (the quote side follows)."""

    venue: str
    base: str
    quote: str
    price: Decimal
    base_amount: Decimal
    protocol: str = "uniswap_v2"
    fee: int = 3000
    """v3 fee tier (hundredths of a bip); ignored by v2 (its fee is in the bytecode: 0.3 %)."""


class V2Contracts(msgspec.Struct, frozen=True):
    factory: str
    router: str


class V3Contracts(msgspec.Struct, frozen=True):
    factory: str
    router: str
    quoter: str
    position_manager: str


class DeployedPool(msgspec.Struct, frozen=True):
    venue: str
    pair: str
    """`BASE/QUOTE` as the venue symbol in instruments.yaml."""
    protocol: str
    address: str
    fee: int


class Deployment(msgspec.Struct, frozen=True):
    """Addresses of everything deployed (all EIP-55)."""

    chain_id: int
    weth: str
    tokens: dict[str, str]
    """Symbol -> address, WETH included."""
    v2: dict[str, V2Contracts]
    v3: dict[str, V3Contracts]
    pools: list[DeployedPool]

    def pool(self, venue: str, pair: str) -> DeployedPool:
        for p in self.pools:
            if p.venue == venue and p.pair == pair:
                return p
        raise KeyError(f"no pool {pair} on {venue} in this deployment")


def units(amount: Decimal | int | str) -> int:
    """Token amount -> its integer units (every local token has 18 decimals)."""
    return int(Decimal(amount) * 10**TOKEN_DECIMALS)


class Sender:
    """Signs and sends one account's transactions, one at a time, waiting for each receipt (set-up only)."""

    def __init__(self, w3: AsyncWeb3[Any], key: str, chain_id: int) -> None:
        self.w3 = w3
        self.account: LocalAccount = Account.from_key(key)
        self.chain_id = chain_id
        self._nonce: int | None = None

    @property
    def address(self) -> str:
        return str(self.account.address)

    async def send(self, tx: Mapping[str, Any], *, what: str) -> TxReceipt:
        """Sign, send and wait for the receipt; raises ChainTxFailed if it reverted."""
        tx_hash = await self.submit(tx)
        receipt = await self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.01)
        if receipt["status"] != 1:
            raise ChainTxFailed(f"{what} reverted (tx {tx_hash.hex()})")
        return receipt

    async def submit(self, params: Mapping[str, Any], *, tip_wei: int = 10**9) -> HexBytes:
        """Sign and send without waiting (a test orders a block's transactions this way); returns the hash."""
        if self._nonce is None:
            self._nonce = await self.w3.eth.get_transaction_count(self.account.address, "pending")
        tx: dict[str, Any] = {"value": 0, **params}
        tx.pop("gasPrice", None)
        tx.update({"from": self.account.address, "nonce": self._nonce, "chainId": self.chain_id})
        if "gas" not in tx:
            tx["gas"] = int(await self.w3.eth.estimate_gas(cast(TxParams, tx)) * 1.2) + 10_000
        block = await self.w3.eth.get_block("latest")
        base_fee = int(block.get("baseFeePerGas", 0) or 0)
        tx["maxPriorityFeePerGas"] = tip_wei
        tx["maxFeePerGas"] = 2 * base_fee + tip_wei
        signed = self.account.sign_transaction(tx)
        tx_hash = await self.w3.eth.send_raw_transaction(signed.raw_transaction)
        self._nonce += 1
        return tx_hash

    async def deploy(self, name: str, *args: Any) -> AsyncContract:
        art = artifact(name)
        factory = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        tx = await factory.constructor(*args).build_transaction({"from": self.account.address, "gas": 12_000_000})
        receipt = await self.send(tx, what=f"deploy {name}")
        address = receipt["contractAddress"]
        if address is None:
            raise ChainTxFailed(f"deploy {name}: no contract address in the receipt")
        return self.w3.eth.contract(address=address, abi=art.abi)

    async def call(self, fn: AsyncContractFunction, *, value: int = 0, what: str = "") -> TxReceipt:
        tx: dict[str, Any] = dict(
            await fn.build_transaction(cast(TxParams, {"from": self.account.address, "value": value}))
        )
        tx.pop("gas", None)
        return await self.send(tx, what=what or fn.fn_name)


def sqrt_price_x96(amount0: int, amount1: int) -> int:
    """sqrt(amount1 / amount0) in Q64.96, the price a v3 pool is initialised at (token1 per token0, raw units)."""
    return math.isqrt((amount1 << 192) // amount0)


def full_range(fee: int) -> tuple[int, int]:
    spacing = TICK_SPACING[fee]
    top = MAX_TICK // spacing * spacing
    return -top, top


class Deployer:
    """Deploys a whole local DEX world from one funded account; `run(...)` returns the `Deployment`."""

    def __init__(self, w3: AsyncWeb3[Any], key: str, chain_id: int) -> None:
        self.w3 = w3
        self.tx = Sender(w3, key, chain_id)
        self.chain_id = chain_id
        self.tokens: dict[str, AsyncContract] = {}

    def token(self, symbol: str) -> AsyncContract:
        return self.tokens[symbol]

    async def run(
        self,
        pools: Sequence[PoolSpec],
        *,
        v2_venues: Sequence[str],
        v3_venues: Sequence[str],
        token_supply: Decimal = Decimal(10) ** 12,
        weth_amount: Decimal | None = None,
    ) -> Deployment:
        if weth_amount is None:  # the pools' WETH twice over: the rest funds the trader and executor accounts
            weth_amount = max(Decimal(6000), 2 * sum((p.base_amount for p in pools if p.base == "WETH"), Decimal(0)))
        weth = await self.tx.deploy("WETH9")
        await self.tx.call(weth.functions.deposit(), value=units(weth_amount), what="WETH9.deposit")
        self.tokens["WETH"] = weth
        for symbol in sorted({s for p in pools for s in (p.base, p.quote)} - {"WETH"}):
            self.tokens[symbol] = await self.tx.deploy("ERC20", units(token_supply))
        v2 = {venue: await self._deploy_v2(weth.address) for venue in v2_venues}
        v3 = {venue: await self._deploy_v3(weth.address) for venue in v3_venues}
        deployed = []
        for spec in pools:
            if spec.venue in v2:
                deployed.append(await self._v2_pool(v2[spec.venue], spec))
            elif spec.venue in v3:
                deployed.append(await self._v3_pool(v3[spec.venue], spec))
            else:
                raise ValueError(f"pool {spec.base}/{spec.quote} names venue {spec.venue!r}, which is not deployed")
        return Deployment(
            chain_id=self.chain_id,
            weth=str(weth.address),
            tokens={s: str(c.address) for s, c in self.tokens.items()},
            v2=v2,
            v3=v3,
            pools=deployed,
        )

    async def _deploy_v2(self, weth: str) -> V2Contracts:
        factory = await self.tx.deploy("UniswapV2Factory", self.tx.address)
        router = await self.tx.deploy("UniswapV2Router02", factory.address, weth)
        return V2Contracts(factory=str(factory.address), router=str(router.address))

    async def _deploy_v3(self, weth: str) -> V3Contracts:
        factory = await self.tx.deploy("UniswapV3Factory")
        # The token descriptor only renders NFT metadata (tokenURI); positions work without one.
        npm = await self.tx.deploy("NonfungiblePositionManager", factory.address, weth, "0x" + "00" * 20)
        router = await self.tx.deploy("SwapRouter", factory.address, weth)
        quoter = await self.tx.deploy("QuoterV2", factory.address, weth)
        return V3Contracts(
            factory=str(factory.address),
            router=str(router.address),
            quoter=str(quoter.address),
            position_manager=str(npm.address),
        )

    async def approve(self, token: AsyncContract, spender: str) -> None:
        await self.tx.call(token.functions.approve(spender, MAX_UINT256), what="approve")

    async def _v2_pool(self, contracts: V2Contracts, spec: PoolSpec) -> DeployedPool:
        base, quote = self.token(spec.base), self.token(spec.quote)
        router = contract(self.w3, contracts.router, "UniswapV2Router02")
        for t in (base, quote):
            await self.approve(t, contracts.router)
        base_units, quote_units = units(spec.base_amount), units(spec.base_amount * spec.price)
        deadline = 2**32 - 1
        fn = router.functions.addLiquidity(
            base.address, quote.address, base_units, quote_units, 0, 0, self.tx.address, deadline
        )
        await self.tx.call(fn, what=f"addLiquidity {spec.base}/{spec.quote} on {spec.venue}")
        factory = contract(self.w3, contracts.factory, "UniswapV2Factory")
        pair = await factory.functions.getPair(base.address, quote.address).call()
        return DeployedPool(
            venue=spec.venue, pair=f"{spec.base}/{spec.quote}", protocol="uniswap_v2", address=pair, fee=3000
        )

    async def _v3_pool(self, contracts: V3Contracts, spec: PoolSpec) -> DeployedPool:
        if spec.fee not in TICK_SPACING:
            raise ValueError(f"v3 fee tier {spec.fee} is not enabled by UniswapV3Factory ({sorted(TICK_SPACING)})")
        base, quote = self.token(spec.base), self.token(spec.quote)
        npm = contract(self.w3, contracts.position_manager, "NonfungiblePositionManager")
        base_units, quote_units = units(spec.base_amount), units(spec.base_amount * spec.price)
        (t0, a0), (t1, a1) = sorted([(base, base_units), (quote, quote_units)], key=lambda x: int(x[0].address, 16))
        create = npm.functions.createAndInitializePoolIfNecessary(
            t0.address, t1.address, spec.fee, sqrt_price_x96(a0, a1)
        )
        await self.tx.call(create, what=f"create v3 pool {spec.base}/{spec.quote}")
        for t in (t0, t1):
            await self.approve(t, contracts.position_manager)
        lower, upper = full_range(spec.fee)
        params = (t0.address, t1.address, spec.fee, lower, upper, a0, a1, 0, 0, self.tx.address, 2**32 - 1)
        await self.tx.call(npm.functions.mint(params), what=f"mint v3 position {spec.base}/{spec.quote}")
        factory = contract(self.w3, contracts.factory, "UniswapV3Factory")
        pool = await factory.functions.getPool(base.address, quote.address, spec.fee).call()
        return DeployedPool(
            venue=spec.venue, pair=f"{spec.base}/{spec.quote}", protocol="uniswap_v3", address=pool, fee=spec.fee
        )

    async def fund(self, to: str, amounts: dict[str, Decimal]) -> None:
        """Send tokens from the deployer (which holds every token's supply and the wrapped WETH)."""
        for symbol, amount in amounts.items():
            await self.tx.call(self.token(symbol).functions.transfer(to, units(amount)), what=f"fund {symbol}")
