"""`local_dex()`: a local chain with the official Uniswap contracts deployed, pools with liquidity, a trader who moves
prices with real swaps, and the config that points arb's DEX venues at it.

How the local addresses override config: `LocalDex.overrides()` is a user-config fragment (the shape of a user YAML
file: `venues.<id>.{factory, router, quoter, urls: {rpc, ws}}` and `chains.ethereum.{chain_id, tokens}`), deep-merged
over the shipped config by `arb.config.load_settings(path)` when written to a file (`write_user_config`), or applied
to already-loaded settings with `apply(settings)`. Nothing else changes: the instruments keep their venue symbols
(`WETH/USDC`), which resolve through the (overridden) token table to the local token addresses. PancakeSwap lives on
BSC, which is not simulated (its pairs charge 0.25 % and its bytecode is not Uniswap's), so the fragment disables it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal

import msgspec
import yaml
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3.types import TxReceipt

from arb.config.schema import Chain, Settings, Token, VenueConfig
from arb.connectors.dex.abi import contract
from arb.connectors.dex.pools import RpcEndpoint, Web3Source
from arb.sim.chain.deploy import MAX_UINT256, Deployer, Deployment, PoolSpec, Sender
from arb.sim.chain.node import AnvilNode, EthTesterNode

Backend = Literal["anvil", "eth-tester"]
CHAIN: Final = "ethereum"
V2_VENUES: Final = ("uniswap_v2", "sushiswap")
V3_VENUES: Final = ("uniswap_v3",)
DEFAULT_PRICES: Final[Mapping[str, Decimal]] = {
    "WETH": Decimal(3000),
    "WBTC": Decimal(60000),
    "LINK": Decimal(15),
    "UNI": Decimal(8),
    "AAVE": Decimal(150),
}
"""USD(C) per token: set them to the CEX sims' prices so the DEX and CEX legs of the demo agree."""
_MIN_SQRT_RATIO: Final = 4295128739
_MAX_SQRT_RATIO: Final = 1461446703485210103287273855359110891338541519


def default_pools(
    prices: Mapping[str, Decimal] = DEFAULT_PRICES, liquidity_usd: Decimal = Decimal(3_000_000)
) -> list[PoolSpec]:
    """The pools behind every DEX symbol of the shipped instruments on Ethereum venues: uniswap_v2 WETH/USDC and
    WBTC/USDC, sushiswap WETH/USDC, uniswap_v3 (0.3 % tier) WETH, WBTC, LINK, UNI and AAVE against USDC; each holds
    `liquidity_usd` on each side."""

    def spec(venue: str, base: str, protocol: str = "uniswap_v2") -> PoolSpec:
        return PoolSpec(venue, base, "USDC", prices[base], liquidity_usd / prices[base], protocol=protocol, fee=3000)

    v2 = [spec("uniswap_v2", "WETH"), spec("uniswap_v2", "WBTC"), spec("sushiswap", "WETH")]
    v3 = [spec("uniswap_v3", b, "uniswap_v3") for b in ("WETH", "WBTC", "LINK", "UNI", "AAVE")]
    return v2 + v3


class Trader:
    """Another account on the chain that moves pool prices with real router swaps."""

    def __init__(self, sender: Sender, deployment: Deployment) -> None:
        self.tx = sender
        self.w3 = sender.w3
        self.deployment = deployment

    def _address(self, symbol: str) -> str:
        return self.deployment.tokens[symbol]

    async def swap(
        self, venue: str, sell: str, buy: str, amount_in: int, *, wait: bool = True, tip_wei: int = 10**9
    ) -> TxReceipt | HexBytes:
        """Sell `amount_in` units of `sell` for `buy` through the venue's router (no slippage limit: the trader is the
        market). `wait=False` returns the hash without waiting (to order a block's transactions by tip)."""
        deadline = 2**32 - 1
        if venue in self.deployment.v2:
            router = contract(self.w3, self.deployment.v2[venue].router, "UniswapV2Router02")
            path = [self._address(sell), self._address(buy)]
            fn = router.functions.swapExactTokensForTokens(amount_in, 0, path, self.tx.address, deadline)
        else:
            return await self._v3_swap(venue, sell, buy, amount_in, 0, wait=wait, tip_wei=tip_wei)
        return await self._send(fn, wait=wait, tip_wei=tip_wei, what=f"trader swap on {venue}")

    async def _v3_swap(
        self, venue: str, sell: str, buy: str, amount_in: int, limit: int, *, wait: bool, tip_wei: int
    ) -> TxReceipt | HexBytes:
        pool = self.deployment.pool(venue, _pair_of(self.deployment, venue, sell, buy))
        router = contract(self.w3, self.deployment.v3[venue].router, "SwapRouter")
        token_in, token_out = self._address(sell), self._address(buy)
        if limit == 0:
            limit = _MIN_SQRT_RATIO + 1 if int(token_in, 16) < int(token_out, 16) else _MAX_SQRT_RATIO - 1
        params = (token_in, token_out, pool.fee, self.tx.address, 2**32 - 1, amount_in, 0, limit)
        return await self._send(
            router.functions.exactInputSingle(params), wait=wait, tip_wei=tip_wei, what=f"trader swap on {venue}"
        )

    async def _send(self, fn: Any, *, wait: bool, tip_wei: int, what: str) -> TxReceipt | HexBytes:
        tx = await fn.build_transaction({"from": self.tx.address, "value": 0, "gas": 400_000})
        if wait:
            return await self.tx.send(tx, what=what)
        return await self.tx.submit(tx, tip_wei=tip_wei)

    async def mid_price(self, venue: str, pair: str) -> Decimal:
        """The pool's fee-free mid, quote per base (v2: reserve ratio; v3: slot0's sqrt price)."""
        pool = self.deployment.pool(venue, pair)
        base, quote = pair.split("/")
        base_is_0 = int(self._address(base), 16) < int(self._address(quote), 16)
        if pool.protocol == "uniswap_v2":
            pair_c = contract(self.w3, pool.address, "UniswapV2Pair")
            r0, r1, _ = await pair_c.functions.getReserves().call()
            return Decimal(r1) / Decimal(r0) if base_is_0 else Decimal(r0) / Decimal(r1)
        pool_c = contract(self.w3, pool.address, "UniswapV3Pool")
        sqrt_x96 = (await pool_c.functions.slot0().call())[0]
        p1_per_0 = (Decimal(sqrt_x96) / Decimal(2**96)) ** 2
        return p1_per_0 if base_is_0 else 1 / p1_per_0

    async def move_price(self, venue: str, pair: str, target: Decimal) -> TxReceipt:
        """Swap so the pool's mid moves to `target` (quote per base): this is how a CEX–DEX opportunity is injected.

        v3: exact, with the swap's sqrtPriceLimit at the target. v2: the constant-product amount for the target mid,
        grossed up by the 0.3 % fee (lands within a few bps of it)."""
        pool = self.deployment.pool(venue, pair)
        base, quote = pair.split("/")
        base_addr, quote_addr = self._address(base), self._address(quote)
        base_is_0 = int(base_addr, 16) < int(quote_addr, 16)
        now = await self.mid_price(venue, pair)
        if target <= 0:
            raise ValueError(f"target price must be positive, got {target}")
        raising = target > now  # buy base with quote
        sell, buy = (quote, base) if raising else (base, quote)
        if pool.protocol == "uniswap_v3":
            p1_per_0 = target if base_is_0 else 1 / target
            limit = int((p1_per_0.sqrt()) * Decimal(2**96))
            balance = await self._balance(sell)
            receipt = await self._v3_swap(venue, sell, buy, balance, limit, wait=True, tip_wei=10**9)
            return receipt  # type: ignore[return-value]
        pair_c = contract(self.w3, pool.address, "UniswapV2Pair")
        r0, r1, _ = await pair_c.functions.getReserves().call()
        rb, rq = (r0, r1) if base_is_0 else (r1, r0)
        k = Decimal(rb) * Decimal(rq)
        rb_new = (k / target).sqrt()
        if raising:
            amount = (k / rb_new - Decimal(rq)) / Decimal("0.997")
        else:
            amount = (rb_new - Decimal(rb)) / Decimal("0.997")
        receipt = await self.swap(venue, sell, buy, int(amount))
        return receipt  # type: ignore[return-value]

    async def _balance(self, symbol: str) -> int:
        token = contract(self.w3, self._address(symbol), "ERC20")
        return int(await token.functions.balanceOf(self.tx.address).call())


def _pair_of(deployment: Deployment, venue: str, a: str, b: str) -> str:
    for p in deployment.pools:
        if p.venue == venue and p.pair in (f"{a}/{b}", f"{b}/{a}"):
            return p.pair
    raise KeyError(f"no {a}/{b} pool on {venue}")


class Accounts(msgspec.Struct, frozen=True):
    """Keys of the local chain's roles (test keys of a throwaway chain; never use them anywhere else)."""

    deployer: str
    trader: str
    executor: str

    def executor_account(self) -> LocalAccount:
        account: LocalAccount = Account.from_key(self.executor)
        return account


class LocalDex:
    """A running local chain with Uniswap deployed (from `local_dex()`)."""

    def __init__(
        self, node: AnvilNode | EthTesterNode, deployment: Deployment, accounts: Accounts, trader: Trader
    ) -> None:
        self.node = node
        self.deployment = deployment
        self.accounts = accounts
        self.trader = trader

    @property
    def rpc(self) -> RpcEndpoint | None:
        """The node's URLs (None for the in-process chain, which has none: use `source()`)."""
        info = self.node.node
        return None if info.http_url is None else RpcEndpoint(http_url=info.http_url, ws_url=info.ws_url)

    def source(self) -> Web3Source:
        return self.node.source()

    def overrides(self) -> dict[str, Any]:
        """The user-config fragment pointing the DEX venues and the Ethereum token table at this chain."""
        d = self.deployment
        urls: dict[str, str] = {}
        rpc = self.rpc
        if rpc is not None:
            urls = {"rpc": rpc.http_url, **({"ws": rpc.ws_url} if rpc.ws_url else {})}
        venues: dict[str, Any] = {"pancakeswap": {"enabled": False}}
        for vid, c2 in d.v2.items():
            venues[vid] = {"factory": c2.factory, "router": c2.router, "urls": urls}
        for vid, c3 in d.v3.items():
            venues[vid] = {"factory": c3.factory, "router": c3.router, "quoter": c3.quoter, "urls": urls}
        tokens = {s: {"address": a, "decimals": 18} for s, a in d.tokens.items()}
        return {"venues": venues, "chains": {CHAIN: {"chain_id": d.chain_id, "tokens": tokens}}}

    def write_user_config(self, path: Path) -> Path:
        """Write `overrides()` as a user YAML file for `load_settings(path)` / `arb --config path`."""
        path.write_text(yaml.safe_dump(self.overrides(), sort_keys=True))
        return path

    def apply(self, settings: Settings) -> Settings:
        """`settings` with the local venues and chain (the same merge as a user file, on loaded settings)."""
        o = self.overrides()
        venues = {
            vid: v.model_copy(update=o["venues"][vid]) if vid in o["venues"] else v
            for vid, v in settings.venues.items()
        }
        chain = settings.chains[CHAIN]
        tokens = {**chain.tokens, **{s: Token(**t) for s, t in o["chains"][CHAIN]["tokens"].items()}}
        chains = {
            **settings.chains,
            CHAIN: chain.model_copy(update={"chain_id": self.deployment.chain_id, "tokens": tokens}),
        }
        return settings.model_copy(update={"venues": venues, "chains": chains})

    def venue(self, settings: Settings, venue_id: str) -> tuple[VenueConfig, Chain]:
        """One venue's config and its chain, pointed at this chain."""
        applied = self.apply(settings)
        return applied.venues[venue_id], applied.chains[CHAIN]


@asynccontextmanager
async def local_dex(
    *,
    backend: Backend = "anvil",
    pools: Sequence[PoolSpec] | None = None,
    fund_executor: Mapping[str, Decimal] | None = None,
) -> AsyncIterator[LocalDex]:
    """Start a chain, deploy Uniswap v2 (as uniswap_v2 and sushiswap) and v3, create `pools` (default
    `default_pools()`), fund and approve a trader and an executor account; stop everything on exit.

    Mining stays automatic (a block per transaction) on exit of set-up; for a demo call
    `dex.node.set_interval_mining(seconds)` (anvil) so blocks (and fresh quotes) come steadily."""
    specs = list(pools) if pools is not None else default_pools()
    node: AnvilNode | EthTesterNode = AnvilNode() if backend == "anvil" else EthTesterNode()
    async with node:
        info = node.node
        w3 = node.w3()
        try:
            deployer = Deployer(w3, info.keys[0], info.chain_id)
            v2 = [v for v in V2_VENUES if any(p.venue == v for p in specs)]
            v3 = [v for v in V3_VENUES if any(p.venue == v for p in specs)]
            deployment = await deployer.run(specs, v2_venues=v2, v3_venues=v3)
            accounts = Accounts(deployer=info.keys[0], trader=info.keys[1], executor=info.keys[2])
            trader_sender = Sender(w3, accounts.trader, info.chain_id)
            executor_sender = Sender(w3, accounts.executor, info.chain_id)
            symbols = sorted(deployment.tokens)
            liquidity = {s: sum((p.base_amount for p in specs if p.base == s), Decimal(0)) for s in symbols}
            liquidity["USDC"] = sum((p.base_amount * p.price for p in specs), Decimal(0))
            await deployer.fund(trader_sender.address, {s: liquidity[s] / 2 for s in symbols if liquidity[s] > 0})
            executor_funds = fund_executor or {s: liquidity[s] / 20 for s in symbols if liquidity[s] > 0}
            await deployer.fund(executor_sender.address, dict(executor_funds))
            spenders = [c.router for c in deployment.v2.values()] + [c.router for c in deployment.v3.values()]
            for sender in (trader_sender, executor_sender):
                for s in symbols:
                    token = contract(w3, deployment.tokens[s], "ERC20")
                    for spender in spenders:
                        await sender.call(token.functions.approve(spender, MAX_UINT256), what="approve")
            yield LocalDex(node, deployment, accounts, Trader(trader_sender, deployment))
        finally:
            if isinstance(node, AnvilNode):
                await w3.provider.disconnect()
