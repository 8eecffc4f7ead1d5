"""arb: multi-exchange arbitrage scanner and executor."""

__version__ = "0.1.0"
