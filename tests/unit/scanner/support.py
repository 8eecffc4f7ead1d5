"""Small hand-made configurations and books for scanner tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from arb.config.schema import Settings
from arb.grid.layout import GridLayout
from arb.scanner.kernel import Books, Limits

LIMITS = Limits(min_edge=0.001, max_slippage=0.0005, min_notional_usd=1000.0, max_notional_usd=1_000_000.0)


def settings(
    fees: dict[str, float],
    instruments: dict[str, dict[str, str]] | None = None,
    *,
    dex: dict[str, float] | None = None,
    **extra: Any,
) -> Settings:
    """CEX venues with the given taker fees (+ DEX venues on `ethereum` with the given fees); instruments map id ->
    {venue: symbol} (default BTC/USD on every venue as BTC/USDT)."""
    venues: dict[str, Any] = {
        v: {"kind": "cex", "name": v, "region": "eu", "ccxt_id": v, "fees": {"taker": f, "maker": f},
            "quote_currencies": ["USD", "USDT", "USDC", "EUR"]}
        for v, f in fees.items()
    }  # fmt: skip
    for v, f in (dex or {}).items():
        venues[v] = {
            "kind": "dex", "name": v, "region": "us", "chain": "ethereum", "protocol": "uniswap_v2",
            "factory": "0x" + "1" * 40, "router": "0x" + "2" * 40, "fees": {"taker": f, "maker": f},
            "quote_currencies": ["USDC"], "gas_units_swap": 150_000, "max_quote_age_ms": 15000,
        }  # fmt: skip
    if instruments is None:
        instruments = {"BTC/USD": dict.fromkeys(fees, "BTC/USDT")}
    insts = {
        iid: {"asset_class": "crypto_major", "base": iid.split("/")[0], "quote": iid.split("/")[1], "venues": vs}
        for iid, vs in instruments.items()
    }
    return Settings(
        venues=venues,
        instruments=insts,
        quote_equivalence={"USD": {"USD": 0.0, "USDT": 0.0005, "USDC": 0.0002}, "EUR": {"EUR": 0.0}},
        chains={"ethereum": {"chain_id": 1, "native": "ETH", "gas_price_gwei": 20.0,
                             "tokens": {"WETH": {"address": "0x" + "3" * 40, "decimals": 18},
                                        "USDC": {"address": "0x" + "4" * 40, "decimals": 6}}}},
        **extra,
    )  # fmt: skip


def layout_of(s: Settings) -> GridLayout:
    return GridLayout.from_settings(s)


def empty_books(n_i: int, n_v: int, depth: int = 20) -> Books:
    top = (n_i, n_v)
    deep = (n_i, n_v, depth)
    return Books(*(np.full(top, np.nan) for _ in range(4)), *(np.full(deep, np.nan) for _ in range(4)))


def put(
    books: Books,
    i: int,
    j: int,
    bids: list[tuple[float, float]],
    asks: list[tuple[float, float]],
    *,
    depth: bool = True,
) -> None:
    """Set one cell: top of book from the first level of each side, depth from all levels (unless `depth=False`)."""
    books.bid[i, j], books.bid_size[i, j] = bids[0]
    books.ask[i, j], books.ask_size[i, j] = asks[0]
    for px, qty, levels in ((books.bid_px, books.bid_qty, bids), (books.ask_px, books.ask_qty, asks)):
        px[i, j] = np.nan
        qty[i, j] = np.nan
        if depth:
            for k, (p, q) in enumerate(levels):
                px[i, j, k], qty[i, j, k] = p, q
