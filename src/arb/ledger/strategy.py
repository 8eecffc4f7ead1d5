"""The directional layer's ledger tables: trained model versions, hourly signals, paper positions.

    store = StrategyStore(ledger)
    await store.record_model(model)                  # after `arb strategy train`
    ids = await store.record_signals(signals)        # idempotent per (asset, bar, model)
    await store.open_position(position); await store.close_position(id, exit_price=..., reason="stop", ...)

Why in the ledger (and not only next to the model files): a signal must be traceable to the model, data range and
settings that produced it after the model directory is gone, and every process (CLI, API, the hourly loop) already
opens the ledger. Directional positions have their own table so they never mix with arbitrage inventory.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import Row, Select, insert, select, update

from arb.ledger.schema import STRATEGY_MODELS, STRATEGY_POSITIONS, STRATEGY_SIGNALS
from arb.ledger.store import Ledger


class ModelRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    algo: str
    path: str
    assets: tuple[str, ...]
    data_from_ns: int
    data_to_ns: int
    config: dict[str, Any]
    metrics: dict[str, Any]
    created_ns: int = 0


class SignalRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One signal as published (Redis stream, API) and stored; `id` is 0 until the ledger assigns one."""

    asset: str
    bar_ns: int
    model_id: str
    direction: int
    confidence: float
    sentiment: float
    agent_target: float
    price: float
    atr: float
    size: float
    notional_usd: float
    stop: float | None
    take_profit: float | None
    reason: str
    created_ns: int = 0
    id: int = 0


class PositionRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    asset: str
    venue: str
    side: str
    amount: Decimal
    entry_price: Decimal
    stop: Decimal
    take_profit: Decimal
    trail_distance: Decimal
    opened_ns: int
    signal_id: int
    fees: Decimal
    exit_price: Decimal | None = None
    closed_ns: int | None = None
    close_reason: str | None = None
    realized_pnl: Decimal | None = None


def _model(row: Row[Any]) -> ModelRecord:
    return ModelRecord(
        id=row.id, algo=row.algo, path=row.path, assets=tuple(msgspec.json.decode(row.assets)),
        data_from_ns=row.data_from_ns, data_to_ns=row.data_to_ns, config=msgspec.json.decode(row.config),
        metrics=msgspec.json.decode(row.metrics), created_ns=row.created_ns,
    )  # fmt: skip


def _signal(row: Row[Any]) -> SignalRecord:
    return SignalRecord(**{f: getattr(row, f) for f in SignalRecord.__struct_fields__})


def _position(row: Row[Any]) -> PositionRecord:
    return PositionRecord(**{f: getattr(row, f) for f in PositionRecord.__struct_fields__})


class StrategyStore:
    """The strategy tables of one open ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def record_model(self, model: ModelRecord) -> ModelRecord:
        stored = msgspec.structs.replace(model, created_ns=model.created_ns or time.time_ns())
        async with self._ledger.transaction("record_model") as connection:
            await connection.execute(
                insert(STRATEGY_MODELS).values(
                    id=stored.id, algo=stored.algo, path=stored.path,
                    assets=msgspec.json.encode(list(stored.assets)).decode(), data_from_ns=stored.data_from_ns,
                    data_to_ns=stored.data_to_ns, config=msgspec.json.encode(stored.config).decode(),
                    metrics=msgspec.json.encode(stored.metrics).decode(), created_ns=stored.created_ns,
                )
            )  # fmt: skip
        return stored

    async def models(self, *, algo: str | None = None) -> list[ModelRecord]:
        """Every recorded model, newest first."""
        query = select(STRATEGY_MODELS).order_by(STRATEGY_MODELS.c.created_ns.desc(), STRATEGY_MODELS.c.id.desc())
        if algo is not None:
            query = query.where(STRATEGY_MODELS.c.algo == algo)
        return [_model(r) for r in await self._read("strategy_models", query)]

    async def model(self, model_id: str) -> ModelRecord | None:
        rows = await self._read("strategy_model", select(STRATEGY_MODELS).where(STRATEGY_MODELS.c.id == model_id))
        return _model(rows[0]) if rows else None

    async def record_signals(self, signals: Iterable[SignalRecord]) -> list[SignalRecord]:
        """Store new signals; one already stored for the same (asset, bar, model) is kept as it was (a rerun of the
        same hour must not move a signal a position was opened from). Returns the stored rows, with their ids."""
        now = time.time_ns()
        out: list[SignalRecord] = []
        async with self._ledger.transaction("record_signals") as connection:
            for signal in signals:
                c = STRATEGY_SIGNALS.c
                existing = (
                    await connection.execute(
                        select(STRATEGY_SIGNALS).where(
                            c.asset == signal.asset, c.bar_ns == signal.bar_ns, c.model_id == signal.model_id
                        )
                    )
                ).first()
                if existing is not None:
                    out.append(_signal(existing))
                    continue
                values = msgspec.structs.asdict(signal)
                values.pop("id")
                values["created_ns"] = signal.created_ns or now
                result = await connection.execute(insert(STRATEGY_SIGNALS).values(**values))
                (new_id,) = result.inserted_primary_key or (0,)
                out.append(msgspec.structs.replace(signal, id=int(new_id), created_ns=values["created_ns"]))
        return out

    async def signals(self, *, asset: str | None = None, limit: int = 100) -> list[SignalRecord]:
        """The latest signals, newest bar first."""
        c = STRATEGY_SIGNALS.c
        query = select(STRATEGY_SIGNALS).order_by(c.bar_ns.desc(), c.id.desc()).limit(limit)
        if asset is not None:
            query = query.where(c.asset == asset)
        return [_signal(r) for r in await self._read("strategy_signals", query)]

    async def open_position(self, position: PositionRecord) -> None:
        async with self._ledger.transaction("open_position") as connection:
            await connection.execute(insert(STRATEGY_POSITIONS).values(**msgspec.structs.asdict(position)))

    async def update_stop(self, position_id: str, stop: Decimal) -> None:
        """Move a trailing stop (only ever towards the position's favour; the caller decides that)."""
        async with self._ledger.transaction("update_stop") as connection:
            await connection.execute(
                update(STRATEGY_POSITIONS).where(STRATEGY_POSITIONS.c.id == position_id).values(stop=stop)
            )

    async def close_position(
        self, position_id: str, *, exit_price: Decimal, reason: str, realized_pnl: Decimal, fees: Decimal, ts_ns: int
    ) -> bool:
        """True if the position was open (closing twice is refused by the WHERE, not an error)."""
        c = STRATEGY_POSITIONS.c
        async with self._ledger.transaction("close_position") as connection:
            result = await connection.execute(
                update(STRATEGY_POSITIONS)
                .where(c.id == position_id, c.closed_ns.is_(None))
                .values(
                    exit_price=exit_price, close_reason=reason, realized_pnl=realized_pnl, fees=fees, closed_ns=ts_ns
                )
            )
        return bool(result.rowcount)

    async def positions(self, *, open_only: bool = False) -> list[PositionRecord]:
        c = STRATEGY_POSITIONS.c
        query = select(STRATEGY_POSITIONS).order_by(c.opened_ns, c.id)
        if open_only:
            query = query.where(c.closed_ns.is_(None))
        return [_position(r) for r in await self._read("strategy_positions", query)]

    async def _read(self, operation: str, query: Select[Any]) -> Sequence[Row[Any]]:
        return await self._ledger._read(operation, query)
