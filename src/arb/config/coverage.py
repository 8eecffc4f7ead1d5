"""What the configuration covers: instruments per venue and asset class, against the spec's coverage floor.

Kept apart from the CLI because the API and the coverage alerts report the same figures.
"""

from __future__ import annotations

from collections import Counter
from typing import Final, get_args

import msgspec
import numpy as np
import numpy.typing as npt

from arb.config.schema import Settings
from arb.model import AssetClass

ASSET_CLASSES: tuple[str, ...] = get_args(AssetClass)
MIN_FRESH_VENUES: Final = 2
"""An instrument is covered while at least this many venues quote it fresh (one venue is no arbitrage)."""


def instruments_covered(fresh: npt.NDArray[np.bool_]) -> int:
    """Covered instruments in a fresh mask (instrument x venue, the grid's layout): one definition for the demo, the
    API's health and the InstrumentCoverageLow alert's gauge."""
    return int((fresh.sum(axis=1) >= MIN_FRESH_VENUES).sum())


class VenueCoverage(msgspec.Struct, frozen=True):
    id: str
    kind: str
    region: str
    by_class: dict[str, int]
    total: int


class Coverage(msgspec.Struct, frozen=True):
    venues: list[VenueCoverage]
    instruments_by_class: dict[str, int]
    instruments_total: int
    instruments_multi_venue: int
    """Instruments listed on two or more venues: the ones a cross-venue spread can exist for."""
    exchanges: int
    """Enabled centralized exchanges."""
    min_exchanges: int
    min_instruments: int

    @property
    def ok(self) -> bool:
        return self.exchanges >= self.min_exchanges and self.instruments_total >= self.min_instruments


class InstrumentCounts(msgspec.Struct, frozen=True):
    """`arb instruments --count --json` prints exactly this."""

    total: int
    by_class: dict[str, int]
    """Spot instruments by asset class."""
    perps: int = 0
    """Linear perpetuals (`type: perp`, in `total` but not in `by_class`: each is its spot instrument's derivative)."""


def instrument_counts(settings: Settings, asset_class: str | None = None) -> InstrumentCounts:
    wanted = [i for i in settings.instruments.values() if asset_class in (None, i.asset_class)]
    counts: Counter[str] = Counter(i.asset_class for i in wanted if i.type == "spot")
    by_class = {c: counts.get(c, 0) for c in ASSET_CLASSES if asset_class in (None, c)}
    perps = sum(1 for i in wanted if i.type == "perp")
    return InstrumentCounts(total=sum(by_class.values()) + perps, by_class=by_class, perps=perps)


def coverage(settings: Settings) -> Coverage:
    per_venue: dict[str, Counter[str]] = {vid: Counter() for vid in settings.venues}
    for inst in settings.instruments.values():
        for vid in inst.venues:
            per_venue[vid][inst.asset_class] += 1
    venues = [
        VenueCoverage(
            id=vid,
            kind=v.kind,
            region=v.region,
            by_class={c: per_venue[vid].get(c, 0) for c in ASSET_CLASSES},
            total=sum(per_venue[vid].values()),
        )
        for vid, v in settings.venues.items()
        if v.enabled
    ]
    by_class: Counter[str] = Counter(i.asset_class for i in settings.instruments.values())
    return Coverage(
        venues=venues,
        instruments_by_class={c: by_class.get(c, 0) for c in ASSET_CLASSES},
        instruments_total=len(settings.instruments),
        instruments_multi_venue=sum(
            1 for i in settings.instruments.values() if sum(settings.venues[v].enabled for v in i.venues) >= 2
        ),
        exchanges=sum(1 for v in settings.venues.values() if v.kind == "cex" and v.enabled),
        min_exchanges=settings.coverage.min_exchanges,
        min_instruments=settings.coverage.min_instruments,
    )
