"""A local Ethereum node for tests, benchmarks and the demo: `anvil` (Foundry), or py-evm in process.

Why anvil first: it is a real node (JSON-RPC over HTTP and WebSocket, `newHeads` / log subscriptions, EIP-1559 base
fee, a mempool with manual / interval mining) that executes bytecode at native speed; the npm package
`@foundry-rs/anvil` ships its binary, so `./run` installs it like the Uniswap artifacts (`npm ci`, no download step of
its own). The in-process fallback (`EthTesterNode`: eth-tester over py-evm) needs no binary but has no URL, no
WebSocket and is ~100x slower; web3 talks to both through its ordinary provider interface.

Both listen only on 127.0.0.1 (anvil) or nowhere (py-evm). Dev keys are the node's well-known test keys: they hold
test ETH on this chain only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

import msgspec
from web3 import AsyncWeb3
from web3.providers.rpc import AsyncHTTPProvider
from web3.types import RPCEndpoint

from arb.connectors.dex.abi import npm_dir
from arb.connectors.dex.pools import Web3Source, http_source, shared_source

log = logging.getLogger(__name__)

ANVIL_ENV: Final = "ARB_ANVIL"
"""Path of an anvil binary to use instead of the one the npm package installed."""
_LISTENING = re.compile(rb"Listening on 127\.0\.0\.1:(\d+)")
START_TIMEOUT_S: Final = 20.0


class NodeUnavailable(RuntimeError):
    """The local node cannot be started (no binary, or it did not come up)."""


def anvil_binary() -> Path:
    """`$ARB_ANVIL`, else the binary of `@foundry-rs/anvil`'s platform package in the npm cache, else `anvil` on
    PATH. Raises NodeUnavailable naming where it looked."""
    configured = os.environ.get(ANVIL_ENV)
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise NodeUnavailable(f"{ANVIL_ENV}={configured} is not a file")
        return path
    found = sorted((npm_dir() / "node_modules" / "@foundry-rs").glob("anvil-*/bin/anvil"))
    if found:
        return found[0]
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise NodeUnavailable(
        f"no anvil binary: not in {npm_dir()}/node_modules/@foundry-rs/anvil-*/bin, not on PATH, {ANVIL_ENV} unset "
        "(./run test installs @foundry-rs/anvil with npm ci)"
    )


class NodeInfo(msgspec.Struct, frozen=True):
    """What a client needs to reach the node (no URLs for the in-process chain: use its `source()`)."""

    http_url: str | None
    ws_url: str | None
    chain_id: int
    keys: tuple[str, ...]
    """Private keys of the funded dev accounts (test ETH on this chain only)."""


class AnvilNode:
    """`async with AnvilNode() as node:` a fresh anvil on a free loopback port; stopped (and awaited) on exit.

    Mining starts as automine (a block per transaction: fast deployment); `set_interval_mining` switches to a block
    every N seconds, `set_automine(False)` to mining on demand (`mine`) so a test can order a block's transactions.
    """

    def __init__(
        self,
        *,
        chain_id: int = 31337,
        accounts: int = 10,
        binary: Path | None = None,
        code_size_limit: int | None = None,
    ) -> None:
        self._binary = binary
        self._chain_id = chain_id
        self._accounts = accounts
        self._code_size_limit = code_size_limit
        self._proc: asyncio.subprocess.Process | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._state: Literal["new", "open", "closed"] = "new"
        self._client: AsyncWeb3[Any] | None = None
        self.info: NodeInfo | None = None

    async def __aenter__(self) -> AnvilNode:
        if self._state != "new":
            raise RuntimeError(f"AnvilNode is {self._state}; a node is started once")
        self._state = "open"
        try:
            await self._start()
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stop()

    async def _start(self) -> None:
        binary = self._binary or anvil_binary()
        self._tmp = tempfile.TemporaryDirectory(prefix="arb-anvil-")
        tmp = Path(self._tmp.name)
        config_out, log_path = tmp / "config.json", tmp / "anvil.log"
        args = [
            str(binary),
            *("--host", "127.0.0.1", "--port", "0"),
            *("--chain-id", str(self._chain_id), "--accounts", str(self._accounts)),
            *("--config-out", str(config_out)),
            # 10M ETH per dev account (anvil's default is 10k): enough to wrap WETH for pools as deep as real ones
            *("--balance", "10000000"),
        ]
        if self._code_size_limit is not None:
            args += ["--code-size-limit", str(self._code_size_limit)]
        # Its log goes to a file: anvil logs every request, and an undrained pipe would block it.
        with log_path.open("wb") as sink:
            self._proc = await asyncio.create_subprocess_exec(
                *args, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        port = None
        while port is None:
            if self._proc.returncode is not None:
                raise NodeUnavailable(f"anvil exited with {self._proc.returncode}: {log_path.read_text()[-500:]}")
            if time.monotonic() > deadline:
                raise NodeUnavailable(f"anvil did not listen within {START_TIMEOUT_S}s")
            match = _LISTENING.search(log_path.read_bytes())
            if match and config_out.is_file():
                port = int(match.group(1))
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._proc.wait(), 0.02)
        keys = tuple(msgspec.json.decode(config_out.read_bytes())["private_keys"])
        self.info = NodeInfo(
            http_url=f"http://127.0.0.1:{port}", ws_url=f"ws://127.0.0.1:{port}", chain_id=self._chain_id, keys=keys
        )
        log.info("chain.anvil_started url=%s chain_id=%d", self.info.http_url, self._chain_id)

    async def _stop(self) -> None:
        if self._state == "closed":
            return
        self._state = "closed"
        if self._client is not None:
            await self._client.provider.disconnect()
            self._client = None
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @property
    def node(self) -> NodeInfo:
        if self.info is None:
            raise RuntimeError("the node is not started; use `async with`")
        return self.info

    def w3(self) -> AsyncWeb3[Any]:
        """A fresh HTTP client of this node (close it with `await w3.provider.disconnect()`)."""
        return AsyncWeb3(AsyncHTTPProvider(self.node.http_url))

    def source(self) -> Web3Source:
        """Opens an HTTP client per session (what `DexConnector` / `DexGateway` take as `source`)."""
        return http_source(self.node.http_url or "")

    async def rpc(self, method: str, *params: Any) -> Any:
        """One raw JSON-RPC call (anvil's `evm_*` / `anvil_*` methods have no web3 wrapper)."""
        if self._client is None:
            self._client = self.w3()
        response = await self._client.provider.make_request(RPCEndpoint(method), list(params))
        if "error" in response:
            raise RuntimeError(f"{method} failed: {response['error']}")
        return response.get("result")

    async def set_automine(self, on: bool) -> None:
        await self.rpc("evm_setAutomine", on)

    async def set_interval_mining(self, seconds: float) -> None:
        """A block every `seconds` (0 turns interval mining off; anvil then mines on demand or per transaction)."""
        await self.rpc("evm_setIntervalMining", seconds)

    async def mine(self, blocks: int = 1) -> None:
        await self.rpc("anvil_mine", hex(blocks))


def anvil_available() -> bool:
    """Whether `AnvilNode` can start here (tests skip with the reason otherwise)."""
    with contextlib.suppress(NodeUnavailable):
        anvil_binary()
        return True
    return False


class EthTesterNode:
    """The in-process fallback: eth-tester over py-evm, one shared web3 client (no URL, no WebSocket: connectors
    use `updates="poll"` and `source()`). Automines a block per transaction unless `set_automine(False)`."""

    def __init__(self) -> None:
        self.info: NodeInfo | None = None
        self._w3: AsyncWeb3[Any] | None = None
        self._tester: Any = None

    async def __aenter__(self) -> EthTesterNode:
        if self._w3 is not None:
            raise RuntimeError("EthTesterNode is started once")
        from web3.providers.eth_tester import AsyncEthereumTesterProvider

        provider = AsyncEthereumTesterProvider()
        self._tester = provider.ethereum_tester
        self._w3 = AsyncWeb3(provider)
        keys = tuple(str(k) for k in self._tester.backend.account_keys)
        self.info = NodeInfo(http_url=None, ws_url=None, chain_id=await self._w3.eth.chain_id, keys=keys)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._w3 = None

    @property
    def node(self) -> NodeInfo:
        if self.info is None:
            raise RuntimeError("the node is not started; use `async with`")
        return self.info

    def w3(self) -> AsyncWeb3[Any]:
        if self._w3 is None:
            raise RuntimeError("the node is not started; use `async with`")
        return self._w3

    def source(self) -> Web3Source:
        return shared_source(self.w3())

    async def set_automine(self, on: bool) -> None:
        if on:
            self._tester.enable_auto_mine_transactions()
        else:
            self._tester.disable_auto_mine_transactions()

    async def mine(self, blocks: int = 1) -> None:
        self._tester.mine_blocks(blocks)
