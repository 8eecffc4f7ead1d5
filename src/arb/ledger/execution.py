"""The execution ledger: intents (write-ahead), orders and their transitions, fills, trading state, risk events.

    store = ledger.execution()
    await store.write_intent(intent, orders)          # before anything is sent; DuplicateIntent stops a second send
    await store.transition(cid, OrderStatus.SENT, now, detail="create_order")
    await store.transition(cid, OrderStatus.FILLED, now, detail="ws", filled=Decimal("0.5"), average_price=px)
    await store.book_fill(fill)                       # False when (venue, trade_id) was booked already
    await store.set_intent_status(intent.id, IntentStatus.DONE, ts=now, realized_pnl=pnl)
    positions = await store.positions()               # {(venue, asset): Decimal}, from fills only

Why write-ahead: an order that leaves without an intent row is an order the process can forget (killed right after
sending). With the intent and its orders (status new) committed first, restart reconciliation knows every client id
that may exist on a venue (`open_intents`, `open_orders`) and resolves each by query, never by resending (FAULTS
E2, E4, E8, E9). `write_intent` raises (LedgerUnavailable, DuplicateIntent, InvalidRecord) instead of returning on
failure, so a caller that sends only after it returned cannot send unrecorded orders. On LedgerUnavailable the
commit's outcome may be unknown: send nothing; a retry answered DuplicateIntent means the first write did land
(read it back with `intent`).

Transitions. `transition` checks the order state machine (`arb.model.ORDER_TRANSITIONS`) and the filled amount
(never decreases, never exceeds the order's amount: FAULTS E7), then updates the order and writes its
`order_events` row in one transaction; a refused transition writes nothing. Each transaction starts with a write
to the order's row, which takes the row's write lock first (PostgreSQL: a row lock, SQLite: the database's write
lock, waited for with the busy timeout), so concurrent transitions of one order serialise instead of losing one,
and a SQLite reader is never caught holding a stale snapshot when it upgrades to a writer. Reporting the current
state again (the same status, filled, venue order id and price: a venue repeats itself) is a no-op that writes
nothing.

Fills are venue truth. `book_fill` books each (venue, trade_id) once (INSERT ... ON CONFLICT DO NOTHING), whatever
the order's row says: an overfill refused by `transition` is still booked as a fill, so `positions()` equals what
the venue did (FAULTS E19). `positions()` nets, per venue and asset, base +amount on a buy and -amount on a sell,
quote -price*amount on a buy and +price*amount on a sell, and the fee off its fee currency. Every symbol is read as
`BASE/QUOTE` (a linear perpetual `BTC/USDT:USDT` as BTC and USDT, delta-equivalent; its amounts must be in base
units). Money is summed in Python with exact decimals (see `arb.ledger.schema.Money`), which reads every fill; a
positions snapshot table is the step to take when fills reach millions.

Errors (all `arb.ledger.errors.LedgerError`s):
├── LedgerUnavailable  the database failed the operation (retry later; a write's outcome may be unknown)
├── DuplicateIntent    an intent of that id is already in the ledger (FAULTS E4: never send an execution twice)
├── DuplicateOrder     a client id (or an intent's leg number) is already in the ledger
├── RecordNotFound     no intent / order of that id (also a LookupError)
├── InvalidRecord      a value the ledger refuses, naming the field (also a ValueError)
└── IllegalFillUpdate  a filled amount that decreases or exceeds the order's amount (also a ValueError)
and `arb.model.IllegalTransition` (a ValueError) for a status change the state machine does not allow.
"""

from __future__ import annotations

import contextlib
import decimal
import logging
import math
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import msgspec
from sqlalchemy import Column, Connection, Row, RowMapping, Select, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from arb.ledger.errors import OUTAGE_ERRORS, CorruptRecord, LedgerError, LedgerUnavailable, describe
from arb.ledger.records import (
    TRADING_STATES,
    IntentRecord,
    OrderEventRecord,
    OrderRecord,
    RiskEventRecord,
    TradingStateName,
    TradingStateRecord,
)
from arb.ledger.schema import FILLS, INTENTS, ORDER_EVENTS, ORDERS, RISK_EVENTS, TRADING_STATE
from arb.model import (
    FINAL_INTENT_STATUSES,
    FINAL_STATUSES,
    ExecutionIntent,
    Fill,
    IllegalTransition,
    IntentStatus,
    Leg,
    Order,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    check_intent_transition,
    check_transition,
)

if TYPE_CHECKING:
    from arb.ledger.store import Ledger

log = logging.getLogger(__name__)

MAX_LIMIT: Final = 10_000
_INT64_MAX: Final = 2**63 - 1
_MONEY: Final = decimal.Context(prec=80, traps=[decimal.InvalidOperation, decimal.Overflow, decimal.Inexact])
"""Sums and products of booked money: 80 significant digits is exact for any amount a venue can report; an inexact
result raises instead of being rounded quietly."""
_OPEN_ORDER_STATUSES: Final = tuple(s.value for s in OrderStatus if s not in FINAL_STATUSES)
_OPEN_INTENT_STATUSES: Final = tuple(s.value for s in IntentStatus if s not in FINAL_INTENT_STATUSES)
_JSON: Final = msgspec.json.Encoder()
_LEGS_DECODER: Final = msgspec.json.Decoder(tuple[Leg, ...])
_DATA: Final = msgspec.json.Decoder(dict[str, Any])
_E = TypeVar("_E", bound=Enum)


class DuplicateIntent(LedgerError):
    """An intent of this id is already in the ledger: the execution was planned (and perhaps sent) before."""

    def __init__(self, intent_id: str) -> None:
        super().__init__(f"execution intent {intent_id!r} is already in the ledger; an execution is never sent twice")
        self.intent_id = intent_id


class DuplicateOrder(LedgerError):
    """A client order id, or an intent's leg number, is already in the ledger."""


class RecordNotFound(LedgerError, LookupError):
    """No intent or order of the given id."""


class InvalidRecord(LedgerError, ValueError):
    """A value the ledger refuses; the message names the record and the field."""


class IllegalFillUpdate(LedgerError, ValueError):
    """A filled amount that would decrease, or exceed the order's amount (an overfill): refused, nothing written."""

    def __init__(self, client_id: str, problem: str, *, old: Decimal, new: Decimal, amount: Decimal) -> None:
        super().__init__(f"order {client_id!r}: {problem} (filled {old} -> {new}, order amount {amount})")
        self.client_id = client_id
        self.old = old
        self.new = new
        self.amount = amount


class ExecutionStore:
    """The execution and risk tables of an open ledger (`Ledger.execution()`); usable while the ledger is open.

    Every method is one transaction; reads see committed data only. Methods raise LedgerUnavailable when the
    database fails them (see the module docstring for the other errors).
    """

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        dialect = ledger.engine.dialect.name
        self._insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self._intent_insert = self._insert(INTENTS).on_conflict_do_nothing()  # built once: the write-ahead's hot path

    # -- intents -----------------------------------------------------------------------------------------------

    async def write_intent(self, intent: ExecutionIntent, orders: Sequence[Order] = ()) -> IntentRecord:
        """Write `intent` (status planned) and, in the same transaction, its `orders` (status new, legs numbered
        0..n-1): the write-ahead that must succeed before anything is sent.

        Raises DuplicateIntent when an intent of that id exists (nothing is written), InvalidRecord for a bad value,
        LedgerUnavailable when the database fails (the outcome may be unknown: send nothing)."""
        _check_intent(intent)
        rows = [_order_row(intent.id, leg, order, f"orders[{leg}]") for leg, order in enumerate(orders)]
        values = {
            "id": intent.id,
            "opportunity_id": intent.opportunity_id,
            "instrument": intent.instrument,
            "mode": intent.mode,
            "created_ns": intent.ts,
            "predicted_net_edge_bps": intent.predicted_net_edge_bps,
            "predicted_profit": intent.predicted_profit,
            "legs": _JSON.encode(tuple(msgspec.structs.replace(leg, order=None) for leg in intent.legs)).decode(),
            "status": IntentStatus.PLANNED.value,
            "updated_ns": intent.ts,
        }
        # The write-ahead is on every execution's critical path: one synchronous transaction without aiosqlite's
        # thread hops (`Ledger.write_now`), the first statement a write (no lock to take first), and no lookup for
        # a new intent's client ids (the UNIQUE constraints still refuse a clash).
        insert = self._intent_insert

        def work(connection: Connection) -> None:
            if connection.execute(insert, values).rowcount != 1:
                log.warning("ledger.duplicate_intent id=%s", intent.id)
                raise DuplicateIntent(intent.id)
            _insert_orders(connection, intent.id, rows, check_clash=False)

        with _mapped_errors("write_intent"):
            await self._ledger.write_now(work)
        log.info(
            "ledger.intent_written id=%s opportunity=%s mode=%s orders=%d", intent.id, intent.opportunity_id,
            intent.mode, len(rows),
        )  # fmt: skip
        return IntentRecord(intent=intent, status=IntentStatus.PLANNED, updated_ns=intent.ts)

    async def set_intent_status(
        self, intent_id: str, status: IntentStatus, *, ts: int, realized_pnl: Decimal | None = None
    ) -> IntentRecord:
        """Move an intent to `status` at `ts` (checked against `arb.model.INTENT_TRANSITIONS`; the current status
        again is allowed), booking `realized_pnl` (quote currency) at `ts` when given. Reaching a final status sets
        `final_ns`; leaving one (a late fill reopened it for hedging) clears it."""
        new = _enum(IntentStatus, status, "status", f"intent {intent_id!r}")
        _check_ts(ts, "ts", f"intent {intent_id!r}")
        if realized_pnl is not None:
            _check_money(realized_pnl, "realized_pnl", f"intent {intent_id!r}", positive=False)
        async with self._write("set_intent_status") as connection:
            row = await self._locked(connection, INTENTS.c.id, intent_id, f"execution intent {intent_id!r}")
            old = IntentStatus(row["status"])
            try:
                check_intent_transition(old, new)
            except IllegalTransition as e:
                raise IllegalTransition(old, new, subject=f"intent {intent_id!r}") from e
            if new in FINAL_INTENT_STATUSES:
                final_ns = row["final_ns"] if old == new and row["final_ns"] is not None else ts
            else:
                final_ns = None
            values: dict[str, Any] = {"status": new.value, "updated_ns": ts, "final_ns": final_ns}
            if realized_pnl is not None:
                values |= {"realized_pnl": realized_pnl, "realized_ns": ts}
            await connection.execute(update(INTENTS).where(INTENTS.c.id == intent_id).values(values))
        log.info("ledger.intent_status id=%s from=%s to=%s pnl=%s", intent_id, old.value, new.value, realized_pnl)
        return _intent_record({**row, **values})

    async def intent(self, intent_id: str) -> IntentRecord | None:
        """One intent by its id, or None."""
        rows = await self._read("intent", select(INTENTS).where(INTENTS.c.id == intent_id))
        return _intent_record(rows[0]._mapping) if rows else None

    async def open_intents(self) -> list[IntentRecord]:
        """Intents not in a final status (planned, sending, hedging, escalated), oldest first: what restart
        reconciliation must settle before trading starts."""
        query = (
            select(INTENTS)
            .where(INTENTS.c.status.in_(_OPEN_INTENT_STATUSES))
            .order_by(INTENTS.c.created_ns, INTENTS.c.id)
        )
        return [_intent_record(row._mapping) for row in await self._read("open_intents", query)]

    async def realized_pnl_since(self, ts_ns: int) -> Decimal:
        """Realized PnL booked at or after `ts_ns` (quote currency, summed exactly): what the daily loss limit reads."""
        _check_ts(ts_ns, "ts_ns", "realized_pnl_since")
        query = select(INTENTS.c.realized_pnl).where(
            INTENTS.c.realized_ns >= ts_ns, INTENTS.c.realized_pnl.is_not(None)
        )
        rows = await self._read("realized_pnl_since", query)
        return _sum(row.realized_pnl for row in rows)

    async def realized_pnls(self, limit: int = 500) -> list[Decimal]:
        """The realized PnL of the last `limit` executions that booked one, oldest first: the sample the API's VaR
        is computed on."""
        query = (
            select(INTENTS.c.realized_pnl)
            .where(INTENTS.c.realized_pnl.is_not(None))
            .order_by(INTENTS.c.realized_ns.desc())
            .limit(limit)
        )
        rows = await self._read("realized_pnls", query)
        return [row.realized_pnl for row in reversed(rows)]

    # -- orders ------------------------------------------------------------------------------------------------

    async def add_orders(
        self, intent_id: str, orders: Sequence[Order], *, legs: Sequence[int] | None = None
    ) -> list[OrderRecord]:
        """Add orders (status new) to an intent already written, numbered `legs` (default 0..n-1; hedge orders take
        numbers after the planned legs'), each with its creation row in `order_events`; all or none.

        Raises RecordNotFound for an unknown intent, DuplicateOrder for a client id or leg number already there."""
        numbers = list(range(len(orders))) if legs is None else list(legs)
        if len(numbers) != len(orders):
            raise InvalidRecord(f"add_orders: {len(orders)} orders but {len(numbers)} leg numbers")
        pairs = enumerate(zip(numbers, orders, strict=True))
        rows = [_order_row(intent_id, n, order, f"orders[{i}]") for i, (n, order) in pairs]
        async with self._write("add_orders") as connection:
            if not (await connection.execute(select(INTENTS.c.id).where(INTENTS.c.id == intent_id))).first():
                raise RecordNotFound(f"execution intent {intent_id!r} is not in the ledger")
            await connection.run_sync(_insert_orders, intent_id, rows)
        return [_order_record(row) for row in rows]

    async def transition(
        self,
        client_id: str,
        new_status: OrderStatus,
        ts: int,
        *,
        detail: str,
        venue_order_id: str | None = None,
        filled: Decimal | None = None,
        average_price: Decimal | None = None,
    ) -> OrderRecord:
        """Move an order to `new_status` at `ts`, with `filled` (cumulative) / `average_price` / `venue_order_id`
        when the venue told them, and write the `order_events` row; one transaction.

        FILLED without `filled` means the whole amount. Refused, writing nothing: a transition the state machine does
        not allow (IllegalTransition), a filled amount that decreases or exceeds the amount (IllegalFillUpdate),
        partially_filled without 0 < filled < amount, filled with filled != amount, rejected with a fill, a different
        venue order id than the one recorded (InvalidRecord). The current status again with nothing new is a no-op;
        with a new venue order id or average price only, it is recorded as a row from == to."""
        subject = f"order {client_id!r}"
        new = _enum(OrderStatus, new_status, "new_status", subject)
        _check_ts(ts, "ts", subject)
        if not isinstance(detail, str):
            raise InvalidRecord(f"{subject}: detail must be a str, got {type(detail).__name__}")
        if filled is not None:
            _check_money(filled, "filled", subject, positive=False)
            if filled < 0:
                raise InvalidRecord(f"{subject}: filled must not be negative, got {filled}")
        if average_price is not None:
            _check_money(average_price, "average_price", subject)
        if venue_order_id is not None and (not isinstance(venue_order_id, str) or not venue_order_id):
            raise InvalidRecord(f"{subject}: venue_order_id must be a non-empty str, got {venue_order_id!r}")
        async with self._write("transition") as connection:
            row = await self._locked(connection, ORDERS.c.client_id, client_id, subject)
            old = OrderStatus(row["status"])
            amount: Decimal = row["amount"]
            if filled is None:
                filled = amount if new == OrderStatus.FILLED else row["filled"]
            if venue_order_id is not None and row["venue_order_id"] not in (None, venue_order_id):
                raise InvalidRecord(
                    f"{subject}: venue_order_id {venue_order_id!r} differs from the recorded {row['venue_order_id']!r}"
                )
            voi = row["venue_order_id"] if venue_order_id is None else venue_order_id
            avg = row["average_price"] if average_price is None else average_price
            if new == old and filled == row["filled"]:
                if voi == row["venue_order_id"] and avg == row["average_price"]:
                    return _order_record(row)  # a repeat of what the ledger knows: nothing to write
            else:
                try:
                    check_transition(old, new)
                except IllegalTransition as e:
                    raise IllegalTransition(old, new, subject=subject) from e
            _check_filled(client_id, new, row["filled"], filled, amount)
            values = {
                "status": new.value,
                "filled": filled,
                "venue_order_id": voi,
                "average_price": avg,
                "updated_ns": ts,
            }
            await connection.execute(update(ORDERS).where(ORDERS.c.client_id == client_id).values(values))
            await connection.execute(
                ORDER_EVENTS.insert().values(
                    client_id=client_id, from_status=old.value, to_status=new.value, ts_ns=ts, detail=detail,
                    filled=filled,
                )
            )  # fmt: skip
        log.debug(
            "ledger.order_transition client_id=%s from=%s to=%s filled=%s", client_id, old.value, new.value, filled
        )
        return _order_record({**row, **values})

    async def order(self, client_id: str) -> OrderRecord | None:
        """One order by its client id, or None."""
        rows = await self._read("order", select(ORDERS).where(ORDERS.c.client_id == client_id))
        return _order_record(rows[0]._mapping) if rows else None

    async def orders_of(self, intent_id: str) -> list[OrderRecord]:
        """The orders of one intent, by leg number."""
        query = select(ORDERS).where(ORDERS.c.intent_id == intent_id).order_by(ORDERS.c.leg)
        return [_order_record(row._mapping) for row in await self._read("orders_of", query)]

    async def open_orders(self) -> list[OrderRecord]:
        """Orders not in a final status (new, sent, acked, partially_filled, unknown), oldest first: what restart
        reconciliation must resolve by client id before trading starts."""
        query = (
            select(ORDERS)
            .where(ORDERS.c.status.in_(_OPEN_ORDER_STATUSES))
            .order_by(ORDERS.c.created_ns, ORDERS.c.client_id)
        )
        return [_order_record(row._mapping) for row in await self._read("open_orders", query)]

    async def recent_orders(self, limit: int = 50) -> list[OrderRecord]:
        """The newest `limit` orders (any status), newest first."""
        if not 1 <= limit <= 10_000:
            raise InvalidRecord(f"recent_orders: limit must be 1..10000, got {limit}")
        query = select(ORDERS).order_by(ORDERS.c.created_ns.desc(), ORDERS.c.client_id).limit(limit)
        return [_order_record(row._mapping) for row in await self._read("recent_orders", query)]

    async def order_history(self, client_id: str) -> list[OrderEventRecord]:
        """Every transition of one order, oldest first (its creation first); empty for an unknown client id."""
        e = ORDER_EVENTS.c
        query = (
            select(e.client_id, e.from_status, e.to_status, e.ts_ns, e.detail, e.filled)
            .where(e.client_id == client_id)
            .order_by(e.id)
        )
        return [
            OrderEventRecord(
                client_id=row.client_id,
                from_status=None if row.from_status is None else OrderStatus(row.from_status),
                to_status=OrderStatus(row.to_status),
                ts_ns=row.ts_ns,
                detail=row.detail,
                filled=row.filled,
            )
            for row in await self._read("order_history", query)
        ]

    # -- fills and positions -----------------------------------------------------------------------------------

    async def book_fill(self, fill: Fill) -> bool:
        """Book one venue fill; False (nothing written) when this venue's trade id was booked already.

        A repeat whose fields differ from the booked fill is logged (`ledger.fill_conflict`; an error when the
        booked one belongs to another order): the first booking stands."""
        _check_fill(fill)
        values = {
            "venue": fill.venue,
            "trade_id": fill.trade_id,
            "client_id": fill.client_id,
            "symbol": fill.symbol,
            "side": Side(fill.side).value,
            "price": fill.price,
            "amount": fill.amount,
            "fee": fill.fee,
            "fee_currency": fill.fee_currency,
            "ts_ns": fill.ts,
        }
        statement = self._insert(FILLS).values(values).on_conflict_do_nothing(index_elements=["venue", "trade_id"])
        existing: Fill | None = None
        async with self._write("book_fill") as connection:
            booked = (await connection.execute(statement)).rowcount == 1
            if not booked:
                query = select(FILLS).where(FILLS.c.venue == fill.venue, FILLS.c.trade_id == fill.trade_id)
                existing = _fill((await connection.execute(query)).one()._mapping)
        if booked:
            log.debug("ledger.fill_booked venue=%s trade_id=%s client_id=%s", fill.venue, fill.trade_id, fill.client_id)
        elif existing != fill:
            # Another order's trade id (the venue reused it, or this ledger holds another account's history): this
            # fill goes unbooked and the PnL and positions are wrong until someone looks; hence an error, not noise.
            other_order = existing is not None and existing.client_id != fill.client_id
            log.log(
                logging.ERROR if other_order else logging.WARNING,
                "ledger.fill_conflict venue=%s trade_id=%s other_order=%s booked=%s reported=%s", fill.venue,
                fill.trade_id, other_order, _JSON.encode(existing).decode(), _JSON.encode(fill).decode(),
            )  # fmt: skip
        return booked

    async def fills(self, client_id: str | None = None) -> list[Fill]:
        """Booked fills, oldest first (by time, then booking order); only those of `client_id` when given."""
        query = select(FILLS)
        if client_id is not None:
            query = query.where(FILLS.c.client_id == client_id)
        query = query.order_by(FILLS.c.ts_ns, FILLS.c.id)
        return [_fill(row._mapping) for row in await self._read("fills", query)]

    async def positions(self) -> dict[tuple[str, str], Decimal]:
        """Net holdings change per (venue, asset) from the booked fills, exact (see the module docstring for the
        convention); an asset that was traded and is flat again is there with 0."""
        f = FILLS.c
        query = select(f.venue, f.symbol, f.side, f.price, f.amount, f.fee, f.fee_currency)
        out: dict[tuple[str, str], Decimal] = {}
        zero = Decimal(0)
        with decimal.localcontext(_MONEY):
            for row in await self._read("positions", query):
                base, quote = _assets(row.symbol)
                sign = 1 if row.side == Side.BUY.value else -1
                out[(row.venue, base)] = out.get((row.venue, base), zero) + sign * row.amount
                out[(row.venue, quote)] = out.get((row.venue, quote), zero) - sign * row.price * row.amount
                if row.fee:
                    key = (row.venue, row.fee_currency)
                    out[key] = out.get(key, zero) - row.fee
        return out

    # -- trading state and risk events -------------------------------------------------------------------------

    async def save_trading_state(self, state: str, reason: str, actor: str, ts: int) -> TradingStateRecord:
        """Record a change of the trading state: ACTIVE / REDUCING / HALTED, by name or by value (`arb.risk`'s
        `TradingState` members pass as they are), stored as the value (lowercase). The latest saved is what
        `load_trading_state` returns, also after a restart."""
        name = state.value if isinstance(state, Enum) else state
        value = name.lower() if isinstance(name, str) else name
        if value not in TRADING_STATES:
            raise InvalidRecord(f"trading state: state must be one of ACTIVE/REDUCING/HALTED, got {state!r}")
        for name, text in (("reason", reason), ("actor", actor)):
            if not isinstance(text, str):
                raise InvalidRecord(f"trading state: {name} must be a str, got {type(text).__name__}")
        _check_ts(ts, "ts", "trading state")
        record = TradingStateRecord(state=cast(TradingStateName, value), reason=reason, actor=actor, ts_ns=ts)
        async with self._write("save_trading_state") as connection:
            await connection.execute(TRADING_STATE.insert().values(state=value, reason=reason, actor=actor, ts_ns=ts))
        level = logging.INFO if value == "active" else logging.WARNING
        log.log(level, "ledger.trading_state state=%s actor=%s reason=%s", value, actor, reason)
        return record

    async def load_trading_state(self) -> TradingStateRecord | None:
        """The trading state in force (the latest saved), or None when none was ever saved."""
        t = TRADING_STATE.c
        query = select(t.state, t.reason, t.actor, t.ts_ns).order_by(t.id.desc()).limit(1)
        rows = await self._read("load_trading_state", query)
        if not rows:
            return None
        row = rows[0]
        return TradingStateRecord(state=row.state, reason=row.reason, actor=row.actor, ts_ns=row.ts_ns)

    async def record_risk_event(
        self,
        kind: str,
        reason: str,
        ts: int,
        *,
        detail: str = "",
        execution_id: str | None = None,
        venue: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> RiskEventRecord:
        """Record a risk decision (a denial is an event, not an exception) and return it with its id. `data` keeps
        the rest of the decision's context (the order, the numbers) as JSON: e.g. `msgspec.to_builtins` of the risk
        engine's DenialRecord."""
        for name, text in (("kind", kind), ("reason", reason)):
            if not isinstance(text, str) or not text:
                raise InvalidRecord(f"risk event: {name} must be a non-empty str, got {text!r}")
        if not isinstance(detail, str):
            raise InvalidRecord(f"risk event: detail must be a str, got {type(detail).__name__}")
        for name, optional in (("execution_id", execution_id), ("venue", venue)):
            if optional is not None and not isinstance(optional, str):
                raise InvalidRecord(f"risk event: {name} must be a str or None, got {optional!r}")
        _check_ts(ts, "ts", "risk event")
        try:
            encoded = _JSON.encode(dict(data or {})).decode()
        except (TypeError, ValueError, msgspec.EncodeError) as e:
            raise InvalidRecord(f"risk event: data must be a JSON-encodable mapping ({e})") from None
        values: dict[str, Any] = {
            "ts_ns": ts,
            "kind": kind,
            "reason": reason,
            "detail": detail,
            "execution_id": execution_id,
            "venue": venue,
        }
        async with self._write("record_risk_event") as connection:
            statement = RISK_EVENTS.insert().values({**values, "data": encoded}).returning(RISK_EVENTS.c.id)
            event_id = (await connection.execute(statement)).scalar_one()
        return RiskEventRecord(id=event_id, data=_DATA.decode(encoded), **values)

    async def recent_risk_events(self, limit: int = 50) -> list[RiskEventRecord]:
        """The latest risk events first, at most `limit`."""
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be in [1, {MAX_LIMIT}], got {limit}")
        query = select(RISK_EVENTS).order_by(RISK_EVENTS.c.id.desc()).limit(limit)
        return [
            RiskEventRecord(**{**row._mapping, "data": _DATA.decode(row.data)})
            for row in await self._read("recent_risk_events", query)
        ]

    # -- plumbing ----------------------------------------------------------------------------------------------

    @staticmethod
    async def _locked(connection: AsyncConnection, key: Column[str], value: str, subject: str) -> RowMapping:
        """The row whose `key` is `value`, read under its write lock (see the module docstring): PostgreSQL locks it
        with SELECT ... FOR UPDATE; SQLite has no row locks, so a no-op UPDATE of the row takes the database's write
        lock before the read. RecordNotFound if there is no such row."""
        table = key.table
        if connection.dialect.name == "sqlite":
            await connection.execute(update(table).where(key == value).values(updated_ns=table.c.updated_ns))
            query = select(table).where(key == value)
        else:
            query = select(table).where(key == value).with_for_update()
        row = (await connection.execute(query)).first()
        if row is None:
            raise RecordNotFound(f"{subject} is not in the ledger")
        return row._mapping

    @contextlib.asynccontextmanager
    async def _write(self, operation: str) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back when it raises. A database failure becomes
        LedgerUnavailable, a constraint the database enforces InvalidRecord; the store's own refusals pass as they
        are."""
        self._ledger._check_open()
        with _mapped_errors(operation):
            async with self._ledger.engine.begin() as connection:
                if connection.dialect.name == "sqlite":
                    # Take SQLite's write lock before any read: a deferred transaction that reads (add_orders checks
                    # its intent) and then writes while another connection committed meanwhile fails at once with
                    # "database is locked" instead of waiting; a write first waits under the busy timeout.
                    await connection.exec_driver_sql("DELETE FROM execution_intents WHERE 0")
                yield connection

    async def _read(self, operation: str, query: Select[Any]) -> Sequence[Row[Any]]:
        self._ledger._check_open()
        try:
            async with self._ledger.engine.connect() as connection:
                rows: Sequence[Row[Any]] = (await connection.execute(query)).all()
                return rows
        except OUTAGE_ERRORS as e:
            raise LedgerUnavailable(operation, describe(e)) from e


def _insert_orders(
    connection: Connection, intent_id: str, rows: list[dict[str, Any]], *, check_clash: bool = True
) -> None:
    """New orders of an intent (and their `created` events); DuplicateOrder for a client id or leg already taken.
    Synchronous: run on a writer thread or through `AsyncConnection.run_sync`."""
    if not rows:
        return
    ids = [row["client_id"] for row in rows]
    if len(set(ids)) != len(ids) or len({row["leg"] for row in rows}) != len(rows):
        raise DuplicateOrder(f"intent {intent_id!r}: the orders repeat a client id or a leg number: {ids}")
    if check_clash:
        o = ORDERS.c
        clash = select(o.client_id, o.intent_id, o.leg).where(
            o.client_id.in_(ids) | ((o.intent_id == intent_id) & o.leg.in_([row["leg"] for row in rows]))
        )
        taken = connection.execute(clash).all()
        if taken:
            found = ", ".join(f"{r.client_id!r} (intent {r.intent_id!r} leg {r.leg})" for r in taken)
            raise DuplicateOrder(f"intent {intent_id!r}: already in the ledger: {found}")
    try:
        connection.execute(ORDERS.insert(), rows)
    except IntegrityError as e:  # a concurrent writer took one between the check and the insert
        raise DuplicateOrder(f"intent {intent_id!r}: orders {ids} clash with the ledger ({describe(e)})") from e
    connection.execute(
        ORDER_EVENTS.insert(),
        [
            {
                "client_id": row["client_id"],
                "from_status": None,
                "to_status": OrderStatus.NEW.value,
                "ts_ns": row["created_ns"],
                "detail": "created",
                "filled": Decimal(0),
            }
            for row in rows
        ],
    )


@contextlib.contextmanager
def _mapped_errors(operation: str) -> Iterator[None]:
    """A database failure becomes LedgerUnavailable, a constraint the database enforces InvalidRecord; the store's
    own refusals pass as they are."""
    try:
        yield
    except IntegrityError as e:
        raise InvalidRecord(f"ledger {operation}: refused by the database ({describe(e)})") from e
    except OUTAGE_ERRORS as e:
        raise LedgerUnavailable(operation, describe(e)) from e


# -- validation: bad input gets an error naming the record and the field, before anything is written ---------------


def _enum(kind: type[_E], value: object, field: str, subject: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        allowed = "/".join(str(m.value) for m in kind)
        raise InvalidRecord(f"{subject}: {field} must be one of {allowed}, got {value!r}") from None


def _check_ts(value: object, field: str, subject: str) -> None:
    if type(value) is not int or not 0 <= value <= _INT64_MAX:
        raise InvalidRecord(f"{subject}: {field} must be UTC nanoseconds (an int in [0, 2**63)), got {value!r}")


def _check_text(value: object, field: str, subject: str) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidRecord(f"{subject}: {field} must be a non-empty str, got {value!r}")


def _check_money(value: object, field: str, subject: str, *, positive: bool = True) -> None:
    """Booked money is a finite Decimal (an int is accepted), never a float: a float has already lost the value."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise InvalidRecord(f"{subject}: {field} must be a Decimal, got {type(value).__name__} {value!r}")
    if isinstance(value, Decimal) and not value.is_finite():
        raise InvalidRecord(f"{subject}: {field} must be a finite Decimal, got {value!r}")
    if positive and not value > 0:
        raise InvalidRecord(f"{subject}: {field} must be positive, got {value}")


def _check_intent(intent: object) -> None:
    if not isinstance(intent, ExecutionIntent):
        raise InvalidRecord(f"write_intent: expected an ExecutionIntent, got {type(intent).__name__}")
    _check_text(intent.id, "id", "execution intent")
    subject = f"execution intent {intent.id!r}"
    for field in ("opportunity_id", "instrument"):
        _check_text(getattr(intent, field), field, subject)
    if intent.mode not in ("paper", "live"):
        raise InvalidRecord(f"{subject}: mode must be paper or live, got {intent.mode!r}")
    for field in ("predicted_net_edge_bps", "predicted_profit"):
        value = getattr(intent, field)
        if isinstance(value, bool) or not isinstance(value, float | int) or not math.isfinite(value):
            raise InvalidRecord(f"{subject}: {field} must be a finite number, got {value!r}")
    _check_ts(intent.ts, "ts", subject)
    if not isinstance(intent.legs, tuple) or not intent.legs:
        raise InvalidRecord(f"{subject}: legs must be a non-empty tuple of Leg")
    for i, leg in enumerate(intent.legs):
        if not isinstance(leg, Leg):
            raise InvalidRecord(f"{subject}: legs[{i}] must be a Leg, got {type(leg).__name__}")
        for field in ("venue", "instrument", "symbol"):
            _check_text(getattr(leg, field), f"legs[{i}].{field}", subject)
        _enum(Side, leg.side, f"legs[{i}].side", subject)
        _check_money(leg.amount, f"legs[{i}].amount", subject)
        _check_money(leg.limit_price, f"legs[{i}].limit_price", subject)


def _order_row(intent_id: str, leg: int, order: object, field: str) -> dict[str, Any]:
    """The `orders` row of a new order, checked: a new order is status new, nothing filled, timestamped."""
    subject = f"intent {intent_id!r} {field}"
    if not isinstance(order, Order):
        raise InvalidRecord(f"{subject}: expected an Order, got {type(order).__name__}")
    _check_text(order.client_id, "client_id", subject)
    subject = f"order {order.client_id!r}"
    if type(leg) is not int or leg < 0:
        raise InvalidRecord(f"{subject}: leg number must be an int >= 0, got {leg!r}")
    for name in ("venue", "symbol"):
        _check_text(getattr(order, name), name, subject)
    side = _enum(Side, order.side, "side", subject)
    kind = _enum(OrderType, order.type, "type", subject)
    tif = _enum(TimeInForce, order.time_in_force, "time_in_force", subject)
    _check_money(order.amount, "amount", subject)
    if order.price is not None:
        _check_money(order.price, "price", subject)
    elif kind == OrderType.LIMIT:
        raise InvalidRecord(f"{subject}: a limit order needs a price")
    if order.status != OrderStatus.NEW:
        raise InvalidRecord(f"{subject}: a new order must have status new, got {order.status!r}")
    if order.filled != 0 or order.average_price is not None:
        raise InvalidRecord(f"{subject}: a new order has nothing filled, got filled {order.filled}")
    if order.venue_order_id is not None:
        _check_text(order.venue_order_id, "venue_order_id", subject)
    _check_ts(order.ts_created, "ts_created", subject)
    if order.ts_created == 0:
        raise InvalidRecord(f"{subject}: ts_created must be set (UTC nanoseconds)")
    return {
        "client_id": order.client_id,
        "intent_id": intent_id,
        "leg": leg,
        "venue": order.venue,
        "symbol": order.symbol,
        "side": side.value,
        "type": kind.value,
        "time_in_force": tif.value,
        "amount": order.amount,
        "price": order.price,
        "status": OrderStatus.NEW.value,
        "venue_order_id": order.venue_order_id,
        "filled": Decimal(0),
        "average_price": None,
        "created_ns": order.ts_created,
        "updated_ns": order.ts_created,
    }


def _check_filled(client_id: str, status: OrderStatus, old: Decimal, new: Decimal, amount: Decimal) -> None:
    """The filled amount only grows, never past the amount, and agrees with the status (FAULTS E7)."""
    if new < old:
        raise IllegalFillUpdate(client_id, "the filled amount never decreases", old=old, new=new, amount=amount)
    if new > amount:
        raise IllegalFillUpdate(client_id, "overfill: filled exceeds the order amount", old=old, new=new, amount=amount)
    subject = f"order {client_id!r}"
    if status == OrderStatus.FILLED and new != amount:
        raise InvalidRecord(f"{subject}: status filled needs filled == amount {amount}, got {new}")
    if status == OrderStatus.PARTIALLY_FILLED and not 0 < new < amount:
        raise InvalidRecord(f"{subject}: status partially_filled needs 0 < filled < {amount}, got {new}")
    if status == OrderStatus.REJECTED and new != 0:
        raise InvalidRecord(f"{subject}: a rejected order cannot have fills, got filled {new}")


def _check_fill(fill: object) -> None:
    if not isinstance(fill, Fill):
        raise InvalidRecord(f"book_fill: expected a Fill, got {type(fill).__name__}")
    for name in ("venue", "trade_id"):
        _check_text(getattr(fill, name), name, "fill")
    subject = f"fill {fill.venue}/{fill.trade_id}"
    if not isinstance(fill.client_id, str):
        raise InvalidRecord(f"{subject}: client_id must be a str, got {fill.client_id!r}")
    _check_text(fill.symbol, "symbol", subject)
    try:
        _assets(fill.symbol)
    except ValueError as e:
        raise InvalidRecord(f"{subject}: {e}") from None
    _enum(Side, fill.side, "side", subject)
    _check_money(fill.price, "price", subject)
    _check_money(fill.amount, "amount", subject)
    _check_money(fill.fee, "fee", subject, positive=False)  # a rebate is a negative fee
    if not isinstance(fill.fee_currency, str) or (fill.fee and not fill.fee_currency):
        raise InvalidRecord(f"{subject}: fee_currency must name the currency of fee {fill.fee}")
    _check_ts(fill.ts, "ts", subject)


def _assets(symbol: str) -> tuple[str, str]:
    """(base, quote) of a ccxt unified symbol: `BTC/USDT` and `BTC/USDT:USDT` are both BTC and USDT."""
    base, slash, rest = symbol.partition("/")
    quote = rest.partition(":")[0]
    if not (slash and base and quote):
        raise ValueError(f"symbol must be BASE/QUOTE (a ccxt unified symbol), got {symbol!r}")
    return base, quote


def _sum(values: Iterable[Decimal]) -> Decimal:
    with decimal.localcontext(_MONEY):
        return sum(values, Decimal(0))


# -- rows to records -----------------------------------------------------------------------------------------------


def _intent_record(row: Mapping[Any, Any]) -> IntentRecord:
    try:
        legs = _LEGS_DECODER.decode(row["legs"])
    except msgspec.MsgspecError as e:
        raise CorruptRecord(f"execution intent {row['id']!r}: its legs do not decode: {e}") from e
    intent = ExecutionIntent(
        id=row["id"],
        opportunity_id=row["opportunity_id"],
        instrument=row["instrument"],
        mode=row["mode"],
        legs=legs,
        predicted_net_edge_bps=row["predicted_net_edge_bps"],
        predicted_profit=row["predicted_profit"],
        ts=row["created_ns"],
    )
    return IntentRecord(
        intent=intent,
        status=IntentStatus(row["status"]),
        updated_ns=row["updated_ns"],
        realized_pnl=row["realized_pnl"],
        realized_ns=row["realized_ns"],
        final_ns=row["final_ns"],
    )


def _order_record(row: Mapping[Any, Any]) -> OrderRecord:
    order = Order(
        client_id=row["client_id"],
        venue=row["venue"],
        symbol=row["symbol"],
        side=Side(row["side"]),
        type=OrderType(row["type"]),
        amount=row["amount"],
        price=row["price"],
        time_in_force=TimeInForce(row["time_in_force"]),
        status=OrderStatus(row["status"]),
        venue_order_id=row["venue_order_id"],
        filled=row["filled"],
        average_price=row["average_price"],
        ts_created=row["created_ns"],
        ts_updated=row["updated_ns"],
    )
    return OrderRecord(order=order, intent_id=row["intent_id"], leg=row["leg"])


def _fill(row: Mapping[Any, Any]) -> Fill:
    return Fill(
        trade_id=row["trade_id"],
        client_id=row["client_id"],
        venue=row["venue"],
        symbol=row["symbol"],
        side=Side(row["side"]),
        price=row["price"],
        amount=row["amount"],
        fee=row["fee"],
        fee_currency=row["fee_currency"],
        ts=row["ts_ns"],
    )
