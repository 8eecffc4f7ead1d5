"""Which cells the grid has: ordered instruments × ordered venues, and how old a quote may get on each venue.

Why a layout object and not the Settings: the grid, the mirror and the scanner only need the two orderings and the
per-venue age limits, and tests build one from two lists. The order matters: it is the row/column order of every numpy
array (mirror, snapshot) and the cell order of the top-of-book blob in Redis, so every process reading one Redis grid
must use the same layout. `layout_id` (a hash of both orderings) is stored with the grid and checked on every read and
write, so two processes with different configs fail loudly instead of misreading each other's cells.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Final

import msgspec
import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from arb.config.schema import Settings

FIELD_SEPARATOR: Final = "|"
"""Hash fields are `{instrument}|{venue}`; neither id may contain it."""

DEFAULT_MAX_AGE_MS: Final = 2000
MAX_ID_BYTES: Final = 256
"""Longest instrument or venue id (UTF-8); the write script frames a hash field with a 16-bit length."""


class GridLayout:
    """Ordered instrument ids (rows) and venue ids (columns) with each venue's max quote age.

    Immutable after construction; cheap lookups are precomputed because the write path and the mirror resolve a cell
    for every quote.
    """

    __slots__ = (
        "_cells",
        "_fields",
        "_instrument_index",
        "_max_age_ns",
        "_venue_index",
        "instruments",
        "layout_id",
        "venues",
    )

    def __init__(self, instruments: Iterable[str], venues: Iterable[str], max_age_ms: Mapping[str, int]) -> None:
        self.instruments: tuple[str, ...] = tuple(instruments)
        self.venues: tuple[str, ...] = tuple(venues)
        for kind, ids in (("instrument", self.instruments), ("venue", self.venues)):
            if not ids:
                raise ValueError(f"grid layout needs at least one {kind}")
            seen: set[str] = set()
            for x in ids:
                if not x or FIELD_SEPARATOR in x or len(x.encode()) > MAX_ID_BYTES:
                    raise ValueError(
                        f"{kind} id {x!r} must be non-empty, at most {MAX_ID_BYTES} bytes, without {FIELD_SEPARATOR!r}"
                    )
                if x in seen:
                    raise ValueError(f"{kind} id {x!r} appears twice in the grid layout")
                seen.add(x)
        missing = [v for v in self.venues if v not in max_age_ms]
        if missing:
            raise ValueError(f"no max quote age for venue(s) {', '.join(missing)}")
        bad = [f"{v}={max_age_ms[v]}" for v in self.venues if max_age_ms[v] <= 0]
        if bad:
            raise ValueError(f"max quote age must be > 0 ms: {', '.join(bad)}")
        ages = np.array([max_age_ms[v] for v in self.venues], dtype=np.int64) * 1_000_000
        ages.flags.writeable = False
        self._max_age_ns: npt.NDArray[np.int64] = ages
        self._instrument_index = {x: i for i, x in enumerate(self.instruments)}
        self._venue_index = {v: j for j, v in enumerate(self.venues)}
        n_v = len(self.venues)
        self._cells: dict[tuple[str, str], int] = {
            (x, v): i * n_v + j for i, x in enumerate(self.instruments) for j, v in enumerate(self.venues)
        }
        self._fields: tuple[bytes, ...] = tuple(
            f"{x}{FIELD_SEPARATOR}{v}".encode() for x in self.instruments for v in self.venues
        )
        digest = hashlib.sha256(msgspec.msgpack.encode([self.instruments, self.venues])).hexdigest()[:16]
        self.layout_id: str = f"{len(self.instruments)}x{n_v}-{digest}"

    @classmethod
    def from_lists(
        cls, instruments: Iterable[str], venues: Iterable[str], max_age_ms: int | Mapping[str, int] = DEFAULT_MAX_AGE_MS
    ) -> GridLayout:
        """For tests and tools: one age for every venue, or a mapping venue -> ms."""
        vs = tuple(venues)
        ages = {v: max_age_ms for v in vs} if isinstance(max_age_ms, int) else dict(max_age_ms)
        return cls(instruments, vs, ages)

    @classmethod
    def from_settings(cls, settings: Settings) -> GridLayout:
        """Every configured instrument (config order) × every *enabled* venue (config order).

        Disabled venues get no column: nothing writes to them, and an empty column would only cost the scanner time.
        """
        venues = {vid: v for vid, v in settings.venues.items() if v.enabled}
        return cls(settings.instruments.keys(), venues.keys(), {vid: v.max_quote_age_ms for vid, v in venues.items()})

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.instruments), len(self.venues)

    @property
    def n_cells(self) -> int:
        return len(self.instruments) * len(self.venues)

    @property
    def max_age_ns(self) -> npt.NDArray[np.int64]:
        """Per venue (column), read-only; broadcast against (instruments × venues) arrays as `max_age_ns[None, :]`."""
        return self._max_age_ns

    @property
    def cells(self) -> Mapping[tuple[str, str], int]:
        """(instrument, venue) -> flat cell index `i * n_venues + j`; the hot path's lookup."""
        return self._cells

    @property
    def fields(self) -> tuple[bytes, ...]:
        """Hash field of every cell, by flat cell index."""
        return self._fields

    def instrument_index(self, instrument: str) -> int:
        try:
            return self._instrument_index[instrument]
        except KeyError:
            raise KeyError(f"instrument {instrument!r} is not in the grid layout") from None

    def venue_index(self, venue: str) -> int:
        try:
            return self._venue_index[venue]
        except KeyError:
            raise KeyError(f"venue {venue!r} is not in the grid layout") from None

    def has_instrument(self, instrument: str) -> bool:
        return instrument in self._instrument_index

    def has_venue(self, venue: str) -> bool:
        return venue in self._venue_index

    def cell(self, instrument: str, venue: str) -> int:
        """Flat index of a cell; KeyError naming the unknown instrument or venue."""
        idx = self._cells.get((instrument, venue))
        if idx is None:
            return self.instrument_index(instrument) * len(self.venues) + self.venue_index(venue)
        return idx

    def field(self, instrument: str, venue: str) -> bytes:
        return self._fields[self.cell(instrument, venue)]

    def max_age_ns_of(self, venue: str) -> int:
        return int(self._max_age_ns[self.venue_index(venue)])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GridLayout) and (self.layout_id, self.max_age_tuple()) == (
            other.layout_id,
            other.max_age_tuple(),
        )

    def __hash__(self) -> int:
        return hash((self.layout_id, self.max_age_tuple()))

    def max_age_tuple(self) -> tuple[int, ...]:
        return tuple(int(x) for x in self._max_age_ns)

    def __repr__(self) -> str:
        return f"GridLayout({len(self.instruments)} instruments x {len(self.venues)} venues, id={self.layout_id})"
