"""Finding a venue's pools on chain and reading their state, many pools per JSON-RPC round trip.

Why raw batched `eth_call`s: a block's refresh of 50 pools is then one HTTP/WebSocket message out and one back
(`getReserves` answers are three words, decoded by hand), where web3's per-call path costs a round trip and an ABI
decode each. The in-process py-evm provider has no batch; there the calls run one by one through web3 (it is
in-process, so a round trip costs nothing).

Pools are resolved once per session from the venue's factory (`getPair`; v3: `getPool` for each fee tier, taking the
pool with the most in-range liquidity), and the tokens' on-chain `decimals()` are checked against the chain's token
table: a mismatch would scale every price by a power of ten, so it is an error, not a warning.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import msgspec
from web3 import AsyncWeb3
from web3.providers.persistent import WebSocketProvider
from web3.providers.rpc import AsyncHTTPProvider

from arb.config.schema import Chain, VenueConfig
from arb.connectors.dex import v2
from arb.connectors.dex.abi import contract
from arb.connectors.dex.quoting import Ladder, ladder_sizes

log = logging.getLogger(__name__)

ZERO_ADDRESS: Final = "0x" + "00" * 20
DEFAULT_V3_TIERS: Final = (500, 3000, 10000)
_GET_RESERVES: Final = "0x0902f1ac"
_BALANCE_OF: Final = "0x70a08231"

Protocol = Literal["uniswap_v2", "uniswap_v3"]
Web3Source = Callable[[], AbstractAsyncContextManager[AsyncWeb3[Any]]]
"""Opens a web3 client for one session (a URL's provider, or the in-process chain's shared one)."""


class DexConfigError(ValueError):
    """The venue's config does not match the chain (missing pool, wrong decimals, bad URL): names what is wrong."""


class RpcEndpoint(msgspec.Struct, frozen=True):
    """Where a DEX venue's node is. `private_url`: where swaps are *sent* for MEV protection (a private-mempool RPC
    such as a builder's "protect" endpoint); reads and receipts still use `http_url`."""

    http_url: str
    ws_url: str | None = None
    private_url: str | None = None

    @classmethod
    def from_venue(cls, venue_id: str, venue: VenueConfig) -> RpcEndpoint:
        """From the venue's `urls: {rpc, ws, private_rpc}` (rpc required)."""
        urls = venue.urls
        unknown = sorted(set(urls) - {"rpc", "ws", "private_rpc"})
        if unknown:
            raise DexConfigError(f"venues.{venue_id}.urls: unknown keys {unknown} (rpc, ws, private_rpc)")
        if "rpc" not in urls:
            raise DexConfigError(f"venues.{venue_id}.urls.rpc is required to reach the chain")
        for key, schemes in (("rpc", ("http", "https")), ("private_rpc", ("http", "https")), ("ws", ("ws", "wss"))):
            if key in urls:
                parts = urlsplit(urls[key])
                if parts.scheme not in schemes or not parts.netloc:
                    raise DexConfigError(f"venues.{venue_id}.urls.{key} must be a {'/'.join(schemes)} URL")
        return cls(http_url=urls["rpc"], ws_url=urls.get("ws"), private_url=urls.get("private_rpc"))


def http_source(url: str) -> Web3Source:
    @asynccontextmanager
    async def open_client() -> AsyncIterator[AsyncWeb3[Any]]:
        w3 = AsyncWeb3(AsyncHTTPProvider(url, request_kwargs={"timeout": 10}))
        try:
            yield w3
        finally:
            await w3.provider.disconnect()

    return open_client


def ws_source(url: str) -> Web3Source:
    @asynccontextmanager
    async def open_client() -> AsyncIterator[AsyncWeb3[Any]]:
        async with AsyncWeb3(WebSocketProvider(url)) as w3:
            yield w3

    return open_client


def shared_source(w3: AsyncWeb3[Any]) -> Web3Source:
    """An already-connected client that sessions borrow and do not close (the in-process py-evm chain)."""

    @asynccontextmanager
    async def borrow() -> AsyncIterator[AsyncWeb3[Any]]:
        yield w3

    return borrow


_BATCH_LOCKS: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()
"""web3's persistent (WebSocket) provider matches a batch's reply by one fixed id, so two batches in flight on one
connection would take each other's replies: batches on a provider go one at a time."""


async def eth_calls(w3: AsyncWeb3[Any], calls: Sequence[tuple[str, str]], block: int) -> list[bytes | None]:
    """`eth_call` each (to, data) at `block`; None for a call that reverted. One round trip where the provider
    batches; raises for transport errors (the session then reconnects)."""
    if not calls:
        return []
    provider = w3.provider
    if isinstance(provider, AsyncHTTPProvider | WebSocketProvider):
        tag = hex(block)
        requests: list[tuple[Any, Any]] = [("eth_call", [{"to": to, "data": data}, tag]) for to, data in calls]
        lock = _BATCH_LOCKS.setdefault(provider, asyncio.Lock())
        async with lock:
            responses = await provider.make_batch_request(requests)
        if not isinstance(responses, list) or len(responses) != len(calls):
            detail = responses.get("error") if isinstance(responses, dict) else f"{len(responses)} replies"
            raise ConnectionError(f"batch of {len(calls)} eth_calls failed: {detail}")
        out: list[bytes | None] = []
        for r in responses:
            result = r.get("result")
            out.append(bytes.fromhex(result[2:]) if isinstance(result, str) and "error" not in r else None)
        return out

    async def one(to: str, data: str) -> bytes | None:
        try:
            return bytes(await w3.eth.call({"to": to, "data": data}, block))  # type: ignore[typeddict-item]
        except Exception:  # a revert: that pool/size has no answer at this block
            return None

    return list(await asyncio.gather(*(one(to, data) for to, data in calls)))


class TokenRef(msgspec.Struct, frozen=True):
    symbol: str
    address: str
    decimals: int


class PoolRef(msgspec.Struct, frozen=True):
    """One pool of one venue, as the connector quotes it."""

    venue: str
    instrument: str
    symbol: str
    protocol: Protocol
    address: str
    base: TokenRef
    quote: TokenRef
    base_is_token0: bool
    fee_num: int = 0
    """v2: the pair's fee numerator out of 10 000 (9970 = 0.3 %)."""
    fee_tier: int = 0
    """v3: the pool's fee in hundredths of a bip (3000 = 0.3 %)."""
    quoter: str = ""
    """v3: the QuoterV2 the ladder is read from."""


def _token(chain_name: str, chain: Chain, symbol: str) -> TokenRef:
    token = chain.tokens.get(symbol)
    if token is None:
        raise DexConfigError(f"token {symbol!r} is not in the token table of chain {chain_name!r}")
    return TokenRef(symbol=symbol, address=AsyncWeb3.to_checksum_address(token.address), decimals=token.decimals)


async def _check_decimals(w3: AsyncWeb3[Any], chain_name: str, token: TokenRef) -> None:
    erc20 = contract(w3, token.address, "ERC20")
    on_chain = await erc20.functions.decimals().call()
    if on_chain != token.decimals:
        raise DexConfigError(
            f"chains.{chain_name}.tokens.{token.symbol}.decimals is {token.decimals} but the token at "
            f"{token.address} says {on_chain}"
        )


async def resolve_pools(
    w3: AsyncWeb3[Any], venue_id: str, venue: VenueConfig, chain: Chain, symbols: Mapping[str, str]
) -> tuple[list[PoolRef], list[str]]:
    """The pools of `symbols` (venue symbol -> instrument) on the venue's factory, and the symbols without one."""
    if venue.kind != "dex" or venue.factory is None or venue.protocol is None or venue.chain is None:
        raise DexConfigError(f"venue {venue_id!r} is not a configured DEX venue")
    chain_id = await w3.eth.chain_id
    if chain_id != chain.chain_id:
        raise DexConfigError(f"chains.{venue.chain}.chain_id is {chain.chain_id} but the node says {chain_id}")
    protocol: Protocol = venue.protocol
    factory = contract(w3, venue.factory, "UniswapV2Factory" if protocol == "uniswap_v2" else "UniswapV3Factory")
    checked: set[str] = set()
    pools: list[PoolRef] = []
    missing: list[str] = []
    for symbol, instrument in symbols.items():
        base_sym, _, quote_sym = symbol.partition("/")
        base, quote = _token(venue.chain, chain, base_sym), _token(venue.chain, chain, quote_sym)
        for t in (base, quote):
            if t.symbol not in checked:
                await _check_decimals(w3, venue.chain, t)
                checked.add(t.symbol)
        base_is_token0 = int(base.address, 16) < int(quote.address, 16)
        pool = PoolRef(
            venue=venue_id,
            instrument=instrument,
            symbol=symbol,
            protocol=protocol,
            address="",
            base=base,
            quote=quote,
            base_is_token0=base_is_token0,
        )
        if protocol == "uniswap_v2":
            address = await factory.functions.getPair(base.address, quote.address).call()
            if int(address, 16) == 0:
                missing.append(symbol)
                continue
            fee_num = v2.fee_numerator(venue.fees.taker)
            pools.append(msgspec.structs.replace(pool, address=address, fee_num=fee_num))
        else:
            best = await _best_v3_pool(w3, factory, base, quote, venue.fee_tiers or list(DEFAULT_V3_TIERS))
            if best is None:
                missing.append(symbol)
                continue
            if not venue.quoter:
                raise DexConfigError(f"venues.{venue_id}.quoter is required to quote a v3 pool")
            quoter = AsyncWeb3.to_checksum_address(venue.quoter)
            address, tier = best
            pools.append(msgspec.structs.replace(pool, address=address, fee_tier=tier, quoter=quoter))
    for symbol in missing:
        log.warning("dex.no_pool venue=%s symbol=%s", venue_id, symbol)
    return pools, missing


async def _best_v3_pool(
    w3: AsyncWeb3[Any], factory: Any, base: TokenRef, quote: TokenRef, tiers: Sequence[int]
) -> tuple[str, int] | None:
    best: tuple[int, str, int] | None = None
    for tier in tiers:
        address = await factory.functions.getPool(base.address, quote.address, tier).call()
        if int(address, 16) == 0:
            continue
        pool = contract(w3, address, "UniswapV3Pool")
        liquidity = await pool.functions.liquidity().call()
        if liquidity > 0 and (best is None or liquidity > best[0]):
            best = (liquidity, address, tier)
    return None if best is None else (best[1], best[2])


def _word(data: bytes, i: int) -> int:
    return int.from_bytes(data[32 * i : 32 * i + 32], "big")


def _balance_call(token: str, holder: str) -> tuple[str, str]:
    return token, _BALANCE_OF + holder[2:].lower().rjust(64, "0")


async def v2_ladders(
    w3: AsyncWeb3[Any], pools: Sequence[PoolRef], block: int, fractions: Sequence[float]
) -> list[Ladder | None]:
    """Every v2 pool's ladder at `block` from one batch of `getReserves` (None: no reserves / call failed)."""
    results = await eth_calls(w3, [(p.address, _GET_RESERVES) for p in pools], block)
    ladders: list[Ladder | None] = []
    for pool, data in zip(pools, results, strict=True):
        if data is None or len(data) < 64:
            ladders.append(None)
            continue
        r0, r1 = _word(data, 0), _word(data, 1)
        rb, rq = (r0, r1) if pool.base_is_token0 else (r1, r0)
        if rb == 0 or rq == 0:
            ladders.append(None)
            continue
        sizes = ladder_sizes(rb, fractions)
        ladders.append(
            Ladder(
                sells=tuple(v2.sell_ladder(sizes, rb, rq, pool.fee_num)),
                buys=tuple(v2.buy_ladder(sizes, rb, rq, pool.fee_num)),
            )
        )
    return ladders


async def v3_ladders(
    w3: AsyncWeb3[Any], pools: Sequence[PoolRef], block: int, fractions: Sequence[float]
) -> list[Ladder | None]:
    """Every v3 pool's ladder at `block` from the on-chain QuoterV2 (the pool's own swap code, run in an eth_call):
    `quoteExactInputSingle` base -> quote for sells, `quoteExactOutputSingle` quote -> base for buys; sizes are
    fractions of each pool's base-token balance. Two batches for all pools: the balances, then every size."""
    if not pools:
        return []
    balances = await eth_calls(w3, [_balance_call(p.base.address, p.address) for p in pools], block)
    plans: list[tuple[PoolRef, list[int]] | None] = []
    calls: list[tuple[str, str]] = []
    for pool, balance in zip(pools, balances, strict=True):
        if balance is None or _word(balance, 0) == 0:
            plans.append(None)
            continue
        sizes = ladder_sizes(_word(balance, 0), fractions)
        quoter = contract(w3, pool.quoter, "QuoterV2")
        b, q, fee = pool.base.address, pool.quote.address, pool.fee_tier
        calls += [(pool.quoter, quoter.encode_abi("quoteExactInputSingle", [(b, q, s, fee, 0)])) for s in sizes]
        calls += [(pool.quoter, quoter.encode_abi("quoteExactOutputSingle", [(q, b, s, fee, 0)])) for s in sizes]
        plans.append((pool, sizes))
    results = iter(await eth_calls(w3, calls, block))
    ladders: list[Ladder | None] = []
    for plan in plans:
        if plan is None:
            ladders.append(None)
            continue
        sizes = plan[1]
        sold = [next(results) for _ in sizes]
        bought = [next(results) for _ in sizes]
        sells = tuple((s, _word(r, 0)) for s, r in zip(sizes, sold, strict=True) if r is not None)
        buys = tuple((s, _word(r, 0)) for s, r in zip(sizes, bought, strict=True) if r is not None)
        ladders.append(Ladder(sells=sells, buys=buys))
    return ladders
