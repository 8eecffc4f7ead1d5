"""DEX quote refresh benchmark: prints ONE JSON object on stdout (`./run bench dex`).

50 Uniswap v2 pairs (the official bytecode on anvil, tokens T00..T49 against USDC), one `DexConnector` quoting all of
them on every block. Measured:

* `refresh_ms_http`: one block's refresh (all 50 pairs read at that block in one batched JSON-RPC call, ladders of
  10 sizes per side computed exactly, 50 Quotes with depth + gas handed to the sink): median, p99, max over --blocks
  blocks; `refresh_ms_ws` the same reads over web3's WebSocket provider (why the connector reads over HTTP);
* `block_to_quotes_ms`: the live path (`newHeads` over WebSocket, reads over HTTP): from asking anvil to mine a
  block to the 50th quote of that block reaching the sink (mining, the header notification, the refresh);
* `quotes_per_s_at_median`: 50 / median HTTP refresh.

Issue target: report the quote refresh time for 50 v2 pools per block (an Ethereum block is 12 s; the budget that
matters is "well inside a block"). Logs go to stderr; the only stdout line is the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from arb.config import load_settings
from arb.config.schema import Chain, Token
from arb.connectors.dex.connector import DexConnector, DexOptions, Header
from arb.connectors.dex.pools import http_source, resolve_pools, ws_source
from arb.model import Quote
from arb.sim.chain.deploy import PoolSpec
from arb.sim.chain.local import local_dex
from arb.tasks import cancel_and_wait, spawn

N_POOLS = 50


def stats_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "median": round(statistics.median(ordered) * 1e3, 3),
        "p99": round(p99 * 1e3, 3),
        "max": round(ordered[-1] * 1e3, 3),
    }


async def wait_until(check: Callable[[], bool], every_s: float, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():  # noqa: ASYNC110 - the benchmark polls plain counters the connector updates
            await asyncio.sleep(every_s)


async def timed_refreshes(connector: DexConnector, source: Any, dex: Any, blocks: int) -> list[float]:
    samples: list[float] = []
    async with source() as w3:
        connector.pools, _ = await resolve_pools(w3, "uniswap_v2", connector.venue, connector.chain, connector.symbols)
        for _ in range(blocks):
            await dex.node.mine()
            raw = await w3.eth.get_block("latest")
            header = Header(int(raw["number"]), int(raw["timestamp"]), int(raw["baseFeePerGas"]))
            started = time.perf_counter()
            published = await connector.refresh(w3, header)
            samples.append(time.perf_counter() - started)
            if published != N_POOLS:
                raise RuntimeError(f"refresh published {published} quotes, expected {N_POOLS}")
    return samples


async def run(blocks: int) -> dict[str, Any]:
    specs = [
        PoolSpec("uniswap_v2", f"T{i:02d}", "USDC", Decimal(1 + i), Decimal(100_000) / Decimal(1 + i))
        for i in range(N_POOLS)
    ]
    started = time.perf_counter()
    async with local_dex(pools=specs, fund_executor={}) as dex:
        setup_s = time.perf_counter() - started
        rpc = dex.rpc
        if rpc is None or rpc.ws_url is None:
            raise RuntimeError("the benchmark needs anvil's URLs")
        ws_url = rpc.ws_url
        settings = dex.apply(load_settings(None))
        venue = settings.venues["uniswap_v2"]
        tokens = {s: Token(address=a, decimals=18) for s, a in dex.deployment.tokens.items()}
        chain = Chain(chain_id=dex.deployment.chain_id, native="ETH", tokens=tokens)
        symbols = {f"T{i:02d}/USDC": f"T{i:02d}/USD" for i in range(N_POOLS)}
        sink: list[Quote] = []

        def connector(updates: str) -> DexConnector:
            return DexConnector(
                "uniswap_v2",
                venue,
                chain,
                symbols,
                sink.append,
                endpoint=rpc,
                options=DexOptions(updates=updates),  # type: ignore[arg-type]
            )

        http = await timed_refreshes(connector("poll"), http_source(rpc.http_url), dex, blocks)
        ws = await timed_refreshes(connector("subscribe"), ws_source(ws_url), dex, blocks)

        live = connector("subscribe")
        arrivals: dict[int, list[float]] = {}

        def record(q: Quote) -> None:
            arrivals.setdefault(q.sequence, []).append(time.perf_counter())

        live.sink = record
        task = spawn(live.run(), name="bench-dex-live")
        end_to_end: list[float] = []
        try:
            await wait_until(lambda: live.status.state == "connected", 0.01)
            for _ in range(blocks):
                before = live.last_block
                asked = time.perf_counter()
                await dex.node.mine()
                await wait_until(lambda: live.last_block > before, 0.0005)  # noqa: B023 - awaited here
                end_to_end.append(arrivals[live.last_block][-1] - asked)
                if len(arrivals[live.last_block]) != N_POOLS:
                    raise RuntimeError("a live block did not quote every pool")
        finally:
            await cancel_and_wait(task, timeout_s=10)
    return {
        "benchmark": "dex",
        "pools": N_POOLS,
        "protocol": "uniswap_v2",
        "ladder_sizes_per_side": len(DexOptions().fractions),
        "blocks": blocks,
        "node": "anvil (@foundry-rs/anvil), official Uniswap v2 bytecode",
        "refresh_ms_http": stats_ms(http),
        "refresh_ms_ws": stats_ms(ws),
        "block_to_quotes_ms": stats_ms(end_to_end),
        "quotes_per_s_at_median": round(N_POOLS / statistics.median(http)),
        "setup_s": round(setup_s, 2),
        "python": platform.python_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=100, help="blocks measured per method (default 100)")
    parser.add_argument("--quick", action="store_true", help="20 blocks")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    print(json.dumps(asyncio.run(run(20 if args.quick else args.blocks))))


if __name__ == "__main__":
    main()
