"""Connectors: one generic ccxt.pro connector, Capital.com and Uniswap-family DEX pools; each yields Quotes."""
