"""Protocol modules: one per exchange wire format, each citing the exchange documentation it follows.

`protocol_for(ccxt_id)` gives the module for an exchange, or the nearest one for an exchange without its own module
yet (issue 3: such a venue keeps its own id, fees and symbols; only the wire format is borrowed, so a client for it
must be the ccxt class of the protocol it is served with — `native_protocol(ccxt_id)` says whether that is the case).
"""

from __future__ import annotations

from typing import Final

from arb.sim.server import Protocol
from arb.sim.venues.binance import BinanceProtocol
from arb.sim.venues.bybit import BybitProtocol
from arb.sim.venues.coinbase import CoinbaseProtocol
from arb.sim.venues.kraken import KrakenProtocol
from arb.sim.venues.okx import OkxProtocol

PROTOCOLS: Final[dict[str, type[Protocol]]] = {
    "binance": BinanceProtocol,
    "bybit": BybitProtocol,
    "coinbase": CoinbaseProtocol,
    "kraken": KrakenProtocol,
    "okx": OkxProtocol,
}
"""ccxt id -> the protocol module that speaks its format."""

NEAREST: Final[dict[str, str]] = {}
"""ccxt id without a module -> ccxt id of the module that serves it; anything unlisted falls back to binance."""

FALLBACK: Final = "binance"


def protocol_for(ccxt_id: str) -> type[Protocol]:
    """The protocol class to serve venue `ccxt_id` with (its own, else the nearest, else Binance's)."""
    return PROTOCOLS.get(ccxt_id) or PROTOCOLS[NEAREST.get(ccxt_id, FALLBACK)]


def native_protocol(ccxt_id: str) -> bool:
    """Whether `ccxt_id` is served in its own wire format (so its own ccxt class can talk to it)."""
    return ccxt_id in PROTOCOLS


__all__ = ["FALLBACK", "NEAREST", "PROTOCOLS", "BinanceProtocol", "native_protocol", "protocol_for"]
