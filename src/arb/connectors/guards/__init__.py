"""Connector-side sequence guards, for venues where ccxt.pro applies a broken update without noticing.

Why: ccxt.pro checks Binance's `U`/`u` chain and OKX's `prevSeqId` chain itself, but for some venues and fields
(Bybit's `u`, Coinbase's per-connection `sequence_num`, OKX's and Kraken's CRC32 checksums) it merges whatever
arrives. A gap there leaves a wrong book that still looks alive (FAULTS M3). A guard sees every decoded WebSocket
message before ccxt does and says when one breaks the venue's documented sequence; the connector then drops it and
everything after it and rebuilds that venue's books from fresh snapshots (`arb.connectors.ccxt_pro`).

A guard for ccxt id `x` lives in `arb.connectors.guards.x` as class `XGuard` (`BybitGuard`) with one method,
`check(message) -> str | None`; a new venue needs that module and nothing else.

The guarded client is a subclass of the ccxt.pro class overriding `handle_message` (ccxt's documented extension
point: every frame of every connection goes through it); ccxt's own code, URLs and options are untouched.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol


class Guard(Protocol):
    def check(self, message: Any) -> str | None:
        """None if `message` keeps the venue's sequence; else a short reason ("seq gap BTCUSDT 41 -> 43")."""


def guard_class(ccxt_id: str) -> type[Guard] | None:
    """The guard for `ccxt_id`, or None when ccxt.pro checks that venue's sequence itself (or it has none)."""
    name = f"{__name__}.{ccxt_id}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise
    cls_name = f"{ccxt_id.capitalize()}Guard"
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise ImportError(f"{name} defines no {cls_name}")
    return cls  # type: ignore[no-any-return]


def guarded(exchange_cls: type[Any], guard: type[Guard]) -> type[Any]:
    """A subclass of the ccxt.pro class whose `handle_message` consults a fresh `guard` per exchange instance.

    After the first problem the exchange is *tripped*: every later message is dropped too (a book that missed an
    update must not take the next one), and `arb_on_trip(reason)` is called once, so the owner can rebuild.
    """

    class Guarded(exchange_cls):  # type: ignore[misc]
        arb_on_trip: Callable[[str], None] | None = None

        def __init__(self, config: Any = None) -> None:
            super().__init__(config or {})
            self.arb_guard = guard()
            self.arb_tripped: str | None = None

        def handle_message(self, client: Any, message: Any) -> Any:
            if self.arb_tripped is not None:
                return None
            problem = self.arb_guard.check(message)
            if problem is None:
                return super().handle_message(client, message)
            self.arb_tripped = problem
            if self.arb_on_trip is not None:
                self.arb_on_trip(problem)
            return None

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{exchange_cls.__name__}"
    return Guarded


__all__ = ["Guard", "guard_class", "guarded"]
