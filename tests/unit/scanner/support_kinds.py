"""Hand-made configurations for the basis and triangular kinds: USDT-quoted spot, perps, and BTC-quoted cross pairs."""

from __future__ import annotations

from typing import Any

from arb.config.schema import Settings


def spot(base: str, quote: str, venues: dict[str, str]) -> dict[str, Any]:
    return {"asset_class": "crypto_major", "base": base, "quote": quote, "venues": venues}


def perp(base: str, quote: str, underlying: str, venues: dict[str, str]) -> dict[str, Any]:
    return {**spot(base, quote, venues), "type": "perp", "underlying": underlying}


def kinds_settings(
    fees: dict[str, float], instruments: dict[str, dict[str, Any]], *, kinds: list[str], **scanner: Any
) -> Settings:
    """CEX venues with the given taker fees quoting USDT and BTC (no haircuts: USDT is its own quote currency here),
    `scanner.kinds` as given; BTC is worth $50,000 for the USD thresholds."""
    venues = {
        v: {"kind": "cex", "name": v, "region": "eu", "ccxt_id": v, "fees": {"taker": f, "maker": f},
            "quote_currencies": ["USDT", "BTC"]}
        for v, f in fees.items()
    }  # fmt: skip
    return Settings(
        venues=venues,
        instruments=instruments,
        quote_equivalence={"USDT": {"USDT": 0.0}, "BTC": {"BTC": 0.0}},
        scanner={"kinds": kinds, "usd_per_quote": {"USDT": 1.0, "BTC": 50_000.0}, **scanner},
    )
