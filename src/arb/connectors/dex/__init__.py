"""Uniswap-family DEX venues (Uniswap v2/v3, SushiSwap, PancakeSwap v2): pool quoting and swap execution over web3.

Modules: `abi` (the official artifacts from Uniswap's npm packages), `v2` (exact constant-product math), `quoting`
(exact amounts at sizes -> a Quote with depth), `pools` (endpoints, batched reads, pool resolution, v2/v3 ladders),
`gas` (swap gas in the quote currency), `connector` (`DexConnector`: per-block quotes into the grid) and `execution`
(`DexGateway`: router swaps with slippage cap, deadline, nonces, receipts). Not uniswap-python: it pins web3 < 7.
"""
