"""A local Ethereum chain running the official Uniswap v2/v3 bytecode, for tests, benchmarks and the demo.

`local_dex()` (in `arb.sim.chain.local`) starts the node (`anvil` from the npm package, or py-evm in process),
deploys the contracts from Uniswap's npm artifacts, creates pools with liquidity and returns addresses, URLs, keys,
a price-moving trader and the config overrides that point arb's DEX venues at it.
"""
