"""Runs one connector per configured CEX venue and says what is live.

Why a supervisor: each connector survives its own venue's faults, but someone has to own their tasks (start, cancel
and await them), and coverage is a property of all of them together: which venues are connected, which instruments
have quotes from two or more venues (the only ones a cross-venue spread can exist for).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping

import msgspec

from arb import tasks
from arb.config.schema import Settings, VenueConfig
from arb.connectors.ccxt_pro import (
    CcxtConnector,
    ConnectorOptions,
    ExchangeFactory,
    LocalEndpoint,
    Sink,
    VenueStatus,
    catching_frame_errors,
    ccxt_pro_factory,
)

log = logging.getLogger(__name__)


class Coverage(msgspec.Struct, frozen=True):
    venues_connected: int
    venues_total: int
    venues: dict[str, VenueStatus]


def venue_symbols(settings: Settings, venue_id: str) -> dict[str, str]:
    """That venue's symbol -> canonical instrument id, from instruments.yaml."""
    return {inst.venues[venue_id]: iid for iid, inst in settings.instruments.items() if venue_id in inst.venues}


def _spoken_as(settings: Settings, cfg: VenueConfig, ccxt_id: str) -> VenueConfig:
    """`cfg` talking through ccxt class `ccxt_id`, with that exchange's client settings (book limit, subscribe
    size) from its own venue entry when there is one: they follow the wire format, not the venue."""
    update: dict[str, object] = {"ccxt_id": ccxt_id}
    for other in settings.venues.values():
        if other.kind == "cex" and other.ccxt_id == ccxt_id:
            update.update(book_limit=other.book_limit, symbols_per_subscribe=other.symbols_per_subscribe)
            break
    return cfg.model_copy(update=update)


class ConnectorSupervisor:
    """`async with ConnectorSupervisor(settings, writer.put).running():` streams every enabled CEX venue."""

    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        *,
        venues: list[str] | None = None,
        endpoints: Mapping[str, LocalEndpoint] | None = None,
        ccxt_ids: Mapping[str, str] | None = None,
        options: ConnectorOptions | None = None,
        exchange_factory: ExchangeFactory = ccxt_pro_factory,
    ) -> None:
        """`ccxt_ids` overrides the ccxt class per venue: a local venue served in another exchange's wire format
        (arb.sim.venues.NEAREST) is spoken to with that exchange's class, keeping its own id, fees and symbols."""
        endpoints = endpoints or {}
        ccxt_ids = ccxt_ids or {}
        chosen = venues or [v for v, cfg in settings.venues.items() if cfg.kind == "cex" and cfg.enabled]
        self.connectors: dict[str, CcxtConnector] = {}
        for vid in chosen:
            cfg = settings.venues.get(vid)
            if cfg is None or cfg.kind != "cex":
                raise ValueError(f"venue {vid!r} is not a configured CEX venue")
            if vid in ccxt_ids and ccxt_ids[vid] != cfg.ccxt_id:
                cfg = _spoken_as(settings, cfg, ccxt_ids[vid])
            symbols = venue_symbols(settings, vid)
            if not symbols:
                log.warning("supervisor.venue_without_instruments venue=%s", vid)
                continue
            self.connectors[vid] = CcxtConnector(
                vid, cfg, symbols, sink, endpoint=endpoints.get(vid), options=options, exchange_factory=exchange_factory
            )

    def coverage(self) -> Coverage:
        statuses = {vid: c.status for vid, c in self.connectors.items()}
        return Coverage(
            venues_connected=sum(1 for s in statuses.values() if s.state == "connected"),
            venues_total=len(statuses),
            venues=statuses,
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ConnectorSupervisor]:
        with catching_frame_errors(self.connectors.values()):
            started = [tasks.spawn(c.run(), name=f"connector-{vid}") for vid, c in self.connectors.items()]
            try:
                yield self
            finally:
                for task in started:
                    await tasks.cancel_and_wait(task)
