"""Deterministic execution and client order ids.

Why deterministic: an execution id derived from the opportunity means the ledger's unique intent row stops a second
execution of the same opportunity (FAULTS E4), and client ids derived from the execution id and the order's number
let restart reconciliation and timeout resolution find an order on its venue by a name we knew before sending it.
Format: lowercase letters and digits only, 29 characters: within OKX's `clOrdId` (32 alphanumerics), Binance's
`newClientOrderId` and Bybit's `orderLinkId` (36); a venue with a shorter or stricter field maps it in its gateway.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Final

PREFIX: Final = "arb"


def _digest(text: str, n: int) -> str:
    raw = hashlib.sha256(text.encode()).digest()
    return base64.b32encode(raw).decode().rstrip("=").lower()[:n]


def execution_id(opportunity_id: str, attempt: int = 0) -> str:
    """`ex` + 20 base32 characters of the opportunity id (and attempt, for a deliberate re-execution)."""
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    return "ex" + _digest(opportunity_id if attempt == 0 else f"{opportunity_id}#{attempt}", 20)


def client_id(execution: str, leg: int) -> str:
    """`arb` + 24 base32 characters of the execution id + the order's number (0, 1: the legs; 2+: hedges)."""
    if not 0 <= leg < 100:
        raise ValueError(f"leg must be in 0..99, got {leg}")
    return f"{PREFIX}{_digest(execution, 24)}{leg:02d}"
