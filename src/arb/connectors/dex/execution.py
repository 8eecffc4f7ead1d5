"""DEX execution for the executor and hedger: a router swap with `amountOutMin` from the slippage cap and a deadline,
signed locally, nonces managed, receipt awaited with a timeout, revert reasons surfaced (FAULTS E18).

What the executor must rely on (`SwapOutcome`):

* `final` is True only once the outcome cannot change: a receipt with `confirmations` blocks on top (FILLED or
  REVERTED), a transaction that was never accepted (REJECTED: simulation reverted, the node refused it), or one whose
  nonce was taken by another transaction (DROPPED: replaced / cancelled). PENDING (sent, no receipt within the
  timeout: not included yet, or the answer was lost) is not final: the swap may still fill. Resolve it with
  `resolve()` (or replace it with `cancel()`), never by sending the swap again.
* `hedgeable` (final and FILLED) is the only state in which the CEX leg may be hedged against this swap, for exactly
  `amount_out` (read from the receipt's Transfer log, not from the quote).
* A swap that would revert is caught by simulation (`eth_estimateGas`) and not sent: REJECTED, no nonce used, no gas
  paid. One that passes simulation and reverts on chain (the price moved past `amountOutMin` before inclusion, the
  deadline passed) is REVERTED with the router's reason ("UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT"), replayed
  with `eth_call` at its block; it used its nonce and paid gas.

Nonces: one lock per account serialises reserve -> sign -> send, so nonces are handed out in order; any send the
node did not accept (an RPC error reply) makes the next send re-read the account's pending nonce from the node, so a
refused transaction never leaves a gap that would stall every later one. A send whose reply was lost (timeout) keeps
its nonce: the transaction may be in the mempool (its hash is known locally, so `resolve` can find it).

MEV protection: with `urls.private_rpc` configured the signed transaction is sent there (a private-mempool endpoint,
so searchers cannot sandwich it) while reads, simulation and receipts use the public RPC. Not testable on a local
chain; the local tests send to the node itself.

Keys: the signing key comes from the environment (`ARB_DEX_PRIVATE_KEY` by default, or a secrets file's value
passed in), is held only by the eth-account `LocalAccount`, and is never logged. Unlocked node accounts are never used.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum
from typing import Any, Final, cast

import msgspec
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3 import AsyncWeb3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import TxParams

from arb.config.schema import Chain, VenueConfig
from arb.connectors.dex.abi import contract
from arb.connectors.dex.pools import DexConfigError, RpcEndpoint, Web3Source, http_source

log = logging.getLogger(__name__)

KEY_ENV: Final = "ARB_DEX_PRIVATE_KEY"
MAX_UINT256: Final = 2**256 - 1
_TRANSFER_TOPIC: Final = keccak(text="Transfer(address,address,uint256)")


def transferred(receipt: Any, token: str, account: str, *, incoming: bool) -> int:
    """Units of ERC-20 `token` moved to (`incoming`) or from `account` by the Transfer logs of `receipt`: what a swap
    really delivered or paid, read from the chain rather than trusted from a quote."""
    me, token = account.lower(), token.lower()
    side = 2 if incoming else 1
    total = 0
    for entry in receipt["logs"]:
        topics = entry["topics"]
        if (
            len(topics) == 3
            and bytes(topics[0]) == _TRANSFER_TOPIC
            and "0x" + bytes(topics[side])[-20:].hex() == me
            and str(entry["address"]).lower() == token
        ):
            total += int.from_bytes(bytes(entry["data"]), "big")
    return total


class SwapStatus(StrEnum):
    FILLED = "filled"
    REVERTED = "reverted"
    REJECTED = "rejected"
    PENDING = "pending"
    DROPPED = "dropped"


class SwapRequest(msgspec.Struct, frozen=True):
    """Sell exactly `amount_in` of `path[0]` for `path[-1]` (token symbols of the venue's chain).

    `expected_out` is what the quote promised; the swap reverts on chain if it would give less than
    `expected_out × (1 − max_slippage)`. `fee_tier` selects the v3 pool (single hop only on v3)."""

    path: tuple[str, ...]
    amount_in: int
    expected_out: int
    max_slippage: float
    deadline_s: float = 60.0
    fee_tier: int | None = None

    def amount_out_min(self) -> int:
        """floor(expected_out × (1 − max_slippage)), exactly (Decimal, no float rounding)."""
        if not 0 <= self.max_slippage < 1:
            raise ValueError(f"max_slippage must be in [0, 1), got {self.max_slippage}")
        if self.expected_out <= 0 or self.amount_in <= 0:
            raise ValueError("amount_in and expected_out must be positive")
        scaled = Decimal(self.expected_out) * (1 - Decimal(str(self.max_slippage)))
        return int(scaled.to_integral_value(rounding=ROUND_FLOOR))


class SwapOutcome(msgspec.Struct, frozen=True):
    """What became of one swap (see the module docstring for `final` and `hedgeable`)."""

    status: SwapStatus
    venue: str
    amount_in: int
    amount_out_min: int
    tx_hash: str | None = None
    nonce: int | None = None
    block: int | None = None
    amount_out: int = 0
    gas_used: int = 0
    fee_wei: int = 0
    reason: str = ""
    final: bool = False
    sent_ns: int = 0

    @property
    def hedgeable(self) -> bool:
        return self.final and self.status == SwapStatus.FILLED


class _Sent(msgspec.Struct, frozen=True):
    tx: dict[str, Any]
    out_token: str


class ExecutionOptions(msgspec.Struct, frozen=True):
    receipt_timeout_s: float = 60.0
    """Wait this long for a receipt; then the outcome is PENDING (not final)."""
    confirmations: int = 1
    """Blocks (including the receipt's own) before a receipt is final; raise it on chains that reorganise."""
    poll_s: float = 0.05
    tip_wei: int | None = None
    """Priority fee; None: the node's `eth_maxPriorityFeePerGas`."""
    max_fee_base_multiple: int = 2
    """maxFeePerGas = this × the latest base fee + tip: room for the base fee to rise for a few blocks."""
    simulate: bool = True
    """Run `eth_estimateGas` first: a swap that would revert is not sent (REJECTED, no gas paid)."""
    gas_limit_multiple: float = 1.5
    """Without simulation the gas limit is the venue's `gas_units_swap` × this; with it, the estimate × 1.2."""
    replacement_bump: float = 1.25
    """A replacement (cancel) pays at least this × the original's fees (nodes require >= 1.1)."""


def account_from_env(env: str = KEY_ENV) -> LocalAccount:
    """The signing account from `$env` (a 0x-prefixed 32-byte hex private key). Raises naming the variable only."""
    raw = os.environ.get(env, "").strip()
    if not raw:
        raise DexConfigError(f"{env} is not set: the DEX gateway needs a signing key")
    try:
        account: LocalAccount = Account.from_key(raw)
    except (ValueError, TypeError) as exc:
        raise DexConfigError(f"{env} is not a valid private key (0x + 64 hex digits)") from exc
    return account


class NonceManager:
    """Next nonce of one account, handed out under a lock; re-read from the node after anything doubtful.

    One per account, shared by every gateway that signs with it (`gateways()` does this): two venues' swaps from the
    same account draw from one sequence."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._next: int | None = None
        self.lock = asyncio.Lock()

    async def take(self, w3: AsyncWeb3[Any]) -> int:
        """The next nonce (call with `lock` held, and `commit` or `forget` after the send)."""
        if self._next is None:
            self._next = await w3.eth.get_transaction_count(self.address, "pending")  # type: ignore[arg-type]
        return self._next

    def commit(self, nonce: int) -> None:
        self._next = nonce + 1

    def forget(self) -> None:
        """The node refused a transaction (or we cannot tell): re-read the pending nonce before the next send."""
        self._next = None

    @property
    def next(self) -> int | None:
        return self._next


class DexGateway:
    """`async with DexGateway(...) as gw: outcome = await gw.swap(request)`. One gateway per venue and account."""

    def __init__(
        self,
        venue_id: str,
        venue: VenueConfig,
        chain: Chain,
        account: LocalAccount,
        *,
        endpoint: RpcEndpoint | None = None,
        source: Web3Source | None = None,
        send_source: Web3Source | None = None,
        options: ExecutionOptions | None = None,
        nonces: NonceManager | None = None,
        now_s: Callable[[], float] = time.time,
    ) -> None:
        if venue.kind != "dex" or venue.router is None or venue.gas_units_swap is None:
            raise DexConfigError(f"venue {venue_id!r} is not a DEX venue with a router")
        if source is None:
            endpoint = endpoint or RpcEndpoint.from_venue(venue_id, venue)
            source = http_source(endpoint.http_url)
            if endpoint.private_url and send_source is None:
                send_source = http_source(endpoint.private_url)
        self.venue_id = venue_id
        self.venue = venue
        self.chain = chain
        self.account = account
        self.options = options or ExecutionOptions()
        self._source = source
        self._send_source = send_source
        self._now_s = now_s
        self._stack: AsyncExitStack | None = None
        self._w3: AsyncWeb3[Any] | None = None
        self._send_w3: AsyncWeb3[Any] | None = None
        if nonces is not None and nonces.address != account.address:
            raise ValueError("the nonce manager belongs to another account")
        self.nonces = nonces or NonceManager(account.address)
        self._sent: dict[str, _Sent] = {}
        """tx hash -> the transaction as sent (for replay of a revert, replacement, and reading the output)."""

    async def __aenter__(self) -> DexGateway:
        if self._stack is not None:
            raise RuntimeError("DexGateway is single-use: open a new one")
        self._stack = AsyncExitStack()
        self._w3 = await self._stack.enter_async_context(self._source())
        self._send_w3 = await self._stack.enter_async_context(self._send_source()) if self._send_source else self._w3
        chain_id = await self._w3.eth.chain_id
        if chain_id != self.chain.chain_id:
            await self._stack.aclose()
            raise DexConfigError(f"venue {self.venue_id!r}: config chain_id {self.chain.chain_id}, node {chain_id}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._stack is not None:
            await self._stack.aclose()

    @property
    def w3(self) -> AsyncWeb3[Any]:
        if self._w3 is None:
            raise RuntimeError("DexGateway is not open; use `async with`")
        return self._w3

    def _token(self, symbol: str) -> str:
        token = self.chain.tokens.get(symbol)
        if token is None:
            raise DexConfigError(f"token {symbol!r} is not in the token table of chain {self.venue.chain!r}")
        return AsyncWeb3.to_checksum_address(token.address)

    def _swap_call(self, request: SwapRequest, amount_out_min: int, deadline: int) -> Any:
        path = [self._token(s) for s in request.path]
        router_address = AsyncWeb3.to_checksum_address(self.venue.router or "")
        me = self.account.address
        if self.venue.protocol == "uniswap_v2":
            router = contract(self.w3, router_address, "UniswapV2Router02")
            return router.functions.swapExactTokensForTokens(request.amount_in, amount_out_min, path, me, deadline)
        if len(path) != 2 or request.fee_tier is None:
            raise ValueError("a v3 swap here is single-hop: a path of two tokens and its pool's fee_tier")
        router = contract(self.w3, router_address, "SwapRouter")
        params = (path[0], path[1], request.fee_tier, me, deadline, request.amount_in, amount_out_min, 0)
        return router.functions.exactInputSingle(params)

    async def _built(self, fn: Any) -> dict[str, Any]:
        """The call as a transaction from our account (gas, fees and nonce are set by the caller)."""
        tx: dict[str, Any] = dict(await fn.build_transaction(cast(TxParams, {"from": self.account.address, "gas": 1})))
        tx.pop("gasPrice", None)
        return tx

    @staticmethod
    def _outcome(base: dict[str, Any], **fields: Any) -> SwapOutcome:
        return SwapOutcome(**base, **fields)

    async def _fees(self) -> tuple[int, int]:
        block = await self.w3.eth.get_block("latest")
        base_fee = int(block.get("baseFeePerGas", 0) or 0)
        tip = self.options.tip_wei if self.options.tip_wei is not None else int(await self.w3.eth.max_priority_fee)
        return self.options.max_fee_base_multiple * base_fee + tip, tip

    # --- sending ----------------------------------------------------------------------------------------------------

    async def send_swap(self, request: SwapRequest) -> SwapOutcome:
        """Simulate (optionally), sign and send; returns PENDING with the hash, or REJECTED (not sent)."""
        amount_out_min = request.amount_out_min()
        deadline = int(self._now_s() + request.deadline_s)
        base = {"venue": self.venue_id, "amount_in": request.amount_in, "amount_out_min": amount_out_min}
        fn = self._swap_call(request, amount_out_min, deadline)
        tx = await self._built(fn)
        max_fee, tip = await self._fees()
        tx.update(maxFeePerGas=max_fee, maxPriorityFeePerGas=tip, chainId=self.chain.chain_id)
        tx.pop("gasPrice", None)
        if self.options.simulate:
            try:
                estimate = await self.w3.eth.estimate_gas(cast(TxParams, {k: v for k, v in tx.items() if k != "gas"}))
            except ContractLogicError as exc:
                return self._outcome(base, status=SwapStatus.REJECTED, reason=f"simulation: {exc}", final=True)
            tx["gas"] = int(estimate * 1.2)
        else:
            tx["gas"] = int((self.venue.gas_units_swap or 0) * self.options.gas_limit_multiple)
        return await self._sign_and_send(tx, base, out_token=self._token(request.path[-1]))

    async def _sign_and_send(
        self, tx: dict[str, Any], base: dict[str, Any], *, nonce: int | None = None, out_token: str = ""
    ) -> SwapOutcome:
        nonces = self.nonces
        if self._send_w3 is None:
            raise RuntimeError("DexGateway is not open; use `async with`")
        async with nonces.lock:
            tx["nonce"] = nonce if nonce is not None else await nonces.take(self.w3)
            signed = self.account.sign_transaction(tx)
            tx_hash = "0x" + bytes(signed.hash).hex()
            sent_ns = time.time_ns()
            try:
                await self._send_w3.eth.send_raw_transaction(signed.raw_transaction)
            except (Web3RPCError, ValueError) as exc:  # the node answered: not accepted, nonce not used
                nonces.forget()
                log.warning("dex.send_refused venue=%s nonce=%d error=%r", self.venue_id, tx["nonce"], str(exc)[:200])
                return self._outcome(base, status=SwapStatus.REJECTED, reason=f"node refused: {exc}", final=True)
            except Exception as exc:  # no answer: it may have reached the mempool; keep the nonce, resolve by hash
                log.warning("dex.send_unknown venue=%s tx=%s error=%r", self.venue_id, tx_hash, str(exc)[:200])
                if nonce is None:
                    nonces.commit(tx["nonce"])
                self._sent[tx_hash] = _Sent(tx, out_token)
                return self._outcome(
                    base, status=SwapStatus.PENDING, tx_hash=tx_hash, nonce=tx["nonce"], reason="send unconfirmed"
                )
            if nonce is None:
                nonces.commit(tx["nonce"])
        self._sent[tx_hash] = _Sent(tx, out_token)
        log.info("dex.swap_sent venue=%s tx=%s nonce=%d", self.venue_id, tx_hash, tx["nonce"])
        return self._outcome(base, status=SwapStatus.PENDING, tx_hash=tx_hash, nonce=tx["nonce"], sent_ns=sent_ns)

    async def swap(self, request: SwapRequest) -> SwapOutcome:
        """Send, then wait for the receipt up to `receipt_timeout_s`: FILLED / REVERTED (final), REJECTED, or
        PENDING (not final: resolve it later; never resend)."""
        outcome = await self.send_swap(request)
        if outcome.status != SwapStatus.PENDING:
            return outcome
        return await self.wait(outcome, self.options.receipt_timeout_s)

    # --- outcomes ---------------------------------------------------------------------------------------------------

    async def wait(self, outcome: SwapOutcome, timeout_s: float) -> SwapOutcome:
        """Poll for the receipt (and confirmations) until `timeout_s`; PENDING if it does not come."""
        deadline = time.monotonic() + timeout_s
        while True:
            resolved = await self.resolve(outcome)
            if resolved.final or time.monotonic() >= deadline:
                return resolved
            await asyncio.sleep(self.options.poll_s)

    async def resolve(self, outcome: SwapOutcome) -> SwapOutcome:
        """The current truth of a sent swap, from its receipt, or from the account's nonce if it has none."""
        if outcome.final or outcome.tx_hash is None:
            return outcome
        receipt = await self._receipt(outcome.tx_hash)
        if receipt is None:
            mined_nonce = await self.w3.eth.get_transaction_count(self.account.address, "latest")
            if outcome.nonce is None or mined_nonce <= outcome.nonce:
                return outcome  # not mined yet (or lost): still pending
            # its nonce is used; look again, as it may have been mined between the two reads
            receipt = await self._receipt(outcome.tx_hash)
            if receipt is None:  # another transaction (a replacement) took the nonce: this one never executes
                return msgspec.structs.replace(
                    outcome, status=SwapStatus.DROPPED, reason="nonce used by another transaction", final=True
                )
        head = await self.w3.eth.block_number
        block = int(receipt["blockNumber"])
        final = head - block + 1 >= self.options.confirmations
        gas_used = int(receipt["gasUsed"])
        fee_wei = gas_used * int(receipt.get("effectiveGasPrice", 0) or 0)
        common = {"block": block, "gas_used": gas_used, "fee_wei": fee_wei, "final": final}
        if receipt["status"] == 1:
            out = self._amount_received(receipt, outcome)
            return msgspec.structs.replace(outcome, status=SwapStatus.FILLED, amount_out=out, reason="", **common)
        reason = await self._revert_reason(outcome.tx_hash, block)
        return msgspec.structs.replace(outcome, status=SwapStatus.REVERTED, reason=reason, **common)

    async def _receipt(self, tx_hash: str) -> Any:
        try:
            return await self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None

    def _amount_received(self, receipt: Any, outcome: SwapOutcome) -> int:
        """Sum of the output token's Transfer logs to us in this receipt (the router's final transfer)."""
        sent = self._sent.get(outcome.tx_hash or "")
        if sent is None or not sent.out_token:
            return 0
        return transferred(receipt, sent.out_token, self.account.address, incoming=True)

    async def _revert_reason(self, tx_hash: str, block: int) -> str:
        sent = self._sent.get(tx_hash)
        if sent is None:
            return "reverted"
        tx = sent.tx
        call = {k: tx[k] for k in ("from", "to", "data", "value", "gas") if k in tx}
        try:
            await self.w3.eth.call(call, block)  # type: ignore[arg-type]
        except ContractLogicError as exc:
            return str(exc.message or exc)
        except Web3RPCError as exc:
            return f"reverted ({exc})"
        return "reverted (the reason did not reproduce when replayed at its block)"

    async def cancel(self, outcome: SwapOutcome) -> SwapOutcome:
        """Replace a PENDING swap by a 0-value transfer to ourselves with the same nonce and higher fees. Returns the
        replacement's outcome (PENDING); `resolve` the original afterwards: DROPPED if the replacement won, FILLED /
        REVERTED if the swap was mined first."""
        if outcome.status != SwapStatus.PENDING or outcome.nonce is None or outcome.tx_hash is None:
            raise ValueError(f"only a pending swap can be cancelled, got {outcome.status}")
        original = self._sent[outcome.tx_hash].tx
        bump = self.options.replacement_bump
        max_fee, tip = await self._fees()
        tx = {
            "from": self.account.address,
            "to": self.account.address,
            "value": 0,
            "data": "0x",
            "gas": 21_000,
            "chainId": self.chain.chain_id,
            "maxPriorityFeePerGas": max(tip, int(original["maxPriorityFeePerGas"] * bump) + 1),
            "maxFeePerGas": max(max_fee, int(original["maxFeePerGas"] * bump) + 1),
        }
        base = {"venue": self.venue_id, "amount_in": 0, "amount_out_min": 0}
        return await self._sign_and_send(tx, base, nonce=outcome.nonce)

    async def ensure_allowance(self, symbol: str, amount: int) -> SwapOutcome | None:
        """Approve the router for `symbol` (unlimited) when its allowance is below `amount`; None if it was enough."""
        token = contract(self.w3, self._token(symbol), "ERC20")
        router = AsyncWeb3.to_checksum_address(self.venue.router or "")
        if await token.functions.allowance(self.account.address, router).call() >= amount:
            return None
        fn = token.functions.approve(router, MAX_UINT256)
        tx = await self._built(fn)
        max_fee, tip = await self._fees()
        tx.update(maxFeePerGas=max_fee, maxPriorityFeePerGas=tip, chainId=self.chain.chain_id, gas=80_000)
        tx.pop("gasPrice", None)
        sent = await self._sign_and_send(tx, {"venue": self.venue_id, "amount_in": 0, "amount_out_min": 0})
        return await self.wait(sent, self.options.receipt_timeout_s) if sent.status == SwapStatus.PENDING else sent


@asynccontextmanager
async def gateways(
    venues: Sequence[tuple[str, VenueConfig]], chain: Chain, account: LocalAccount, **kwargs: Any
) -> AsyncIterator[dict[str, DexGateway]]:
    """Open one gateway per venue (same account and chain), closed together."""
    nonces = NonceManager(account.address)
    async with AsyncExitStack() as stack:
        yield {
            vid: await stack.enter_async_context(DexGateway(vid, v, chain, account, nonces=nonces, **kwargs))
            for vid, v in venues
        }
