"""What every route reads: the settings and the open resources of the API process (one per app, made in its
lifespan; no module-level globals, so two apps in one process, as in tests, never share state)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request

if TYPE_CHECKING:
    from arb.api.backtest import Jobs
    from arb.api.book import OpportunityBook
    from arb.config import Settings
    from arb.grid import PriceGrid
    from arb.ledger import Ledger
    from arb.ledger.api import ApiStore


@dataclass
class ApiState:
    settings: Settings
    grid: PriceGrid
    ledger: Ledger
    store: ApiStore
    book: OpportunityBook
    jobs: Jobs


def state(request: Request) -> ApiState:
    s: ApiState = request.app.state.arb
    return s
