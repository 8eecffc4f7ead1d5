"""CFD dealing on the local Capital.com venue: accounts, positions, working orders and deal confirms.

No HTTP here (`arb.sim.venues.capital_com` serves it); this is what a deal *does*, in Capital.com's terms
(https://open-api.capital.com/, "Trading > Positions", "Trading > Orders", "Trading > Confirms"):

- A position request is answered with a deal reference only (`o_...`); the outcome is its confirm: ACCEPTED with the
  fill level and the new position's deal id in `affectedDeals` (status OPENED), or REJECTED with a reason. A market
  position fills whole at the touch of the venue's current book (a BUY at the offer, a SELL at the bid); CFDs have no
  partial fills.
- Checks, in order (each a REJECTED confirm with the reason in brackets): market open (MARKET_CLOSED), size at least
  the minimum deal size and on its increment (MINIMUM_ORDER_SIZE_ERROR / INVALID_SIZE), stop and profit levels on the
  right side of the fill (ATTACHED_ORDER_LEVEL_ERROR). Reasons follow the IG-family names Capital.com's API shares;
  its documentation lists no table of them.
- Closing (`DELETE /positions/{dealId}`) fills the whole position at the other side of the touch, with the profit
  in the quote currency; its confirm has status CLOSED and the affected deal FULLY_CLOSED.
- Working orders (LIMIT / STOP, good till cancelled) rest until the book reaches their level: a BUY LIMIT when the
  offer is at or below it, a SELL LIMIT when the bid is at or above it, a BUY STOP when the offer is at or above it,
  a SELL STOP when the bid is at or below it; they then become a position filled at the touch. A position's stop and
  profit levels are checked on every book update the same way and close it when reached.

Deviations, on purpose: no margin or balance checks (the account is a deal register, not a margin model), no
guaranteed-stop premium, no trailing stops, no overnight funding. Everything booked is `Decimal`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from arb.sim.market import Book, BookUpdate

log = logging.getLogger(__name__)

Direction = Literal["BUY", "SELL"]
DEFAULT_BALANCE: Final = Decimal(100_000)


class DealError(Exception):
    """A request the API refuses outright (HTTP 4xx with `{"errorCode": code}`): nothing is placed."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code


@dataclass
class Position:
    deal_id: str
    deal_reference: str
    epic: str
    direction: Direction
    size: Decimal
    level: Decimal
    created: dt.datetime
    stop_level: Decimal | None = None
    profit_level: Decimal | None = None


@dataclass
class WorkingOrder:
    deal_id: str
    deal_reference: str
    epic: str
    direction: Direction
    size: Decimal
    level: Decimal
    type: Literal["LIMIT", "STOP"]
    created: dt.datetime
    stop_level: Decimal | None = None
    profit_level: Decimal | None = None


@dataclass
class CfdAccount:
    """One client: its login (API key, identifier, password) and its deals."""

    api_key: str
    identifier: str
    password: str
    account_id: str
    currency: str = "USD"
    balance: Decimal = DEFAULT_BALANCE
    positions: dict[str, Position] = field(default_factory=dict)
    working: dict[str, WorkingOrder] = field(default_factory=dict)
    confirms: dict[str, dict[str, Any]] = field(default_factory=dict)
    closed: list[Position] = field(default_factory=list)
    """Positions closed (by request, stop or profit level), oldest first: for test invariants."""


def utc_text(t: dt.datetime) -> str:
    """Capital.com's UTC timestamps: ISO, milliseconds, no zone (`2022-04-05T09:46:01.872`)."""
    return t.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")


def parse_amount(value: object, name: str) -> Decimal:
    """A positive finite Decimal from a JSON number; DealError(400, error.invalid.<name>) otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise DealError(400, f"error.invalid.{name}")
    try:
        d = (
            value
            if isinstance(value, Decimal)
            else Decimal(repr(value))
            if isinstance(value, float)
            else Decimal(value)
        )
    except (InvalidOperation, ValueError):
        raise DealError(400, f"error.invalid.{name}") from None
    if not d.is_finite() or d <= 0:
        raise DealError(400, f"error.invalid.{name}")
    return d


def _optional_amount(body: Mapping[str, Any], key: str, name: str) -> Decimal | None:
    value = body.get(key)
    return None if value is None else parse_amount(value, name)


class CfdDesk:
    """Every account's deals on one venue; `book_of(epic)` gives the venue's live book, `is_open(epic)` its status."""

    def __init__(
        self,
        venue_id: str,
        book_of: Callable[[str], Book],
        is_open: Callable[[str], bool],
        *,
        wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.venue_id = venue_id
        self._book_of = book_of
        self._is_open = is_open
        self._wall = wall
        self.accounts: dict[str, CfdAccount] = {}
        self._ids = itertools.count(1)
        self._watching: dict[str, int] = {}
        """epic -> resting orders and positions with levels on it (the book listener skips every other epic)."""

    # ------------------------------------------------------------------ accounts

    def add_account(self, api_key: str, identifier: str, password: str, *, currency: str = "USD") -> CfdAccount:
        if api_key in self.accounts:
            raise ValueError(f"an account with this API key exists on {self.venue_id}")
        account = CfdAccount(api_key, identifier, password, f"{len(self.accounts) + 1:018d}", currency)
        self.accounts[api_key] = account
        return account

    def _new_id(self) -> str:
        n = next(self._ids)
        return f"{n:08x}-0001-54c4-0000-{n * 7919:012x}"

    # ------------------------------------------------------------------ rules

    def rules(self, epic: str) -> tuple[Decimal, Decimal]:
        """(minimum deal size, size increment): the book's lot step for both."""
        step = Decimal(repr(self._book_of(epic).step))
        return step, step

    def touch(self, epic: str) -> tuple[Decimal, Decimal]:
        """(bid, offer) now, as the venue quotes them."""
        bid, _, ask, _ = self._book_of(epic).top()
        return Decimal(repr(bid)), Decimal(repr(ask))

    def _size_problem(self, epic: str, size: Decimal) -> str | None:
        minimum, increment = self.rules(epic)
        if size < minimum:
            return "MINIMUM_ORDER_SIZE_ERROR"
        if size % increment != 0:
            return "INVALID_SIZE"
        return None

    @staticmethod
    def _levels_problem(direction: Direction, fill: Decimal, stop: Decimal | None, profit: Decimal | None) -> bool:
        if direction == "BUY":
            return (stop is not None and stop >= fill) or (profit is not None and profit <= fill)
        return (stop is not None and stop <= fill) or (profit is not None and profit >= fill)

    # ------------------------------------------------------------------ positions

    def open_position(self, account: CfdAccount, body: Mapping[str, Any], *, reject: str | None = None) -> str:
        """Handle `POST /positions`: a deal reference (the confirm says what happened). DealError for a request
        that cannot be read (nothing placed, no reference)."""
        epic, direction, size = self._deal_fields(body)
        stop = _optional_amount(body, "stopLevel", "stoplevel")
        profit = _optional_amount(body, "profitLevel", "profitlevel")
        ref = "o_" + self._new_id()
        now = self._wall()
        problem = reject or self._refusal(epic, size)
        bid, ask = self.touch(epic)
        fill = ask if direction == "BUY" else bid
        if problem is None and self._levels_problem(direction, fill, stop, profit):
            problem = "ATTACHED_ORDER_LEVEL_ERROR"
        if problem is not None:
            account.confirms[ref] = _rejected(ref, epic, now, problem, direction, size)
            log.info("sim.capital_com.rejected venue=%s epic=%s reason=%s", self.venue_id, epic, problem)
            return ref
        position = Position(self._new_id(), ref, epic, direction, size, fill, now, stop, profit)
        account.positions[position.deal_id] = position
        if stop is not None or profit is not None:
            self._watch(epic, 1)
        account.confirms[ref] = {
            **_confirm_base(ref, epic, now, "OPEN", "ACCEPTED", direction, size, fill),
            "dealId": self._new_id(),
            "affectedDeals": [{"dealId": position.deal_id, "status": "OPENED"}],
        }
        log.info("sim.capital_com.opened venue=%s epic=%s deal_id=%s", self.venue_id, epic, position.deal_id)
        return ref

    def close_position(self, account: CfdAccount, deal_id: str) -> str:
        position = account.positions.get(deal_id)
        if position is None:
            raise DealError(404, "error.not-found.dealId")
        ref = "p_" + self._new_id()
        now = self._wall()
        if not self._is_open(position.epic):
            account.confirms[ref] = _rejected(
                ref, position.epic, now, "MARKET_CLOSED", position.direction, position.size
            )
            return ref
        account.confirms[ref] = self._close(account, position, now, ref)
        return ref

    def _close(self, account: CfdAccount, position: Position, now: dt.datetime, ref: str) -> dict[str, Any]:
        bid, ask = self.touch(position.epic)
        exit_level = bid if position.direction == "BUY" else ask
        sign = 1 if position.direction == "BUY" else -1
        profit = (exit_level - position.level) * position.size * sign
        account.balance += profit
        del account.positions[position.deal_id]
        account.closed.append(position)
        if position.stop_level is not None or position.profit_level is not None:
            self._watch(position.epic, -1)
        other: Direction = "SELL" if position.direction == "BUY" else "BUY"
        log.info("sim.capital_com.closed venue=%s deal_id=%s profit=%s", self.venue_id, position.deal_id, profit)
        return {
            **_confirm_base(ref, position.epic, now, "CLOSED", "ACCEPTED", other, position.size, exit_level),
            "dealId": position.deal_id,
            "affectedDeals": [{"dealId": position.deal_id, "status": "FULLY_CLOSED"}],
            "profit": profit,
            "profitCurrency": account.currency,
        }

    # ------------------------------------------------------------------ working orders

    def create_working_order(self, account: CfdAccount, body: Mapping[str, Any], *, reject: str | None = None) -> str:
        epic, direction, size = self._deal_fields(body)
        level = parse_amount(body.get("level"), "level")
        kind = body.get("type")
        if kind not in ("LIMIT", "STOP"):
            raise DealError(400, "error.invalid.type")
        ref = "o_" + self._new_id()
        now = self._wall()
        problem = reject or self._size_problem(epic, size)
        if problem is not None:
            account.confirms[ref] = _rejected(ref, epic, now, problem, direction, size)
            return ref
        stop = _optional_amount(body, "stopLevel", "stoplevel")
        profit = _optional_amount(body, "profitLevel", "profitlevel")
        order = WorkingOrder(self._new_id(), ref, epic, direction, size, level, kind, now, stop, profit)
        account.working[order.deal_id] = order
        self._watch(epic, 1)
        account.confirms[ref] = {
            **_confirm_base(ref, epic, now, "OPEN", "ACCEPTED", direction, size, level),
            "dealId": order.deal_id,
            "affectedDeals": [{"dealId": order.deal_id, "status": "OPENED"}],
        }
        return ref

    def delete_working_order(self, account: CfdAccount, deal_id: str) -> str:
        order = account.working.pop(deal_id, None)
        if order is None:
            raise DealError(404, "error.not-found.dealId")
        self._watch(order.epic, -1)
        ref = "o_" + self._new_id()
        now = self._wall()
        account.confirms[ref] = {
            **_confirm_base(ref, order.epic, now, "DELETED", "ACCEPTED", order.direction, order.size, order.level),
            "dealId": deal_id,
            "affectedDeals": [{"dealId": deal_id, "status": "DELETED"}],
        }
        return ref

    # ------------------------------------------------------------------ the book moves

    def on_updates(self, updates: Sequence[BookUpdate], epic_of: Callable[[Book], str]) -> None:
        """Fill working orders and trigger stop / profit levels the new tops reach (top-of-book changes only)."""
        if not self._watching:
            return
        for upd in updates:
            if not upd.top_changed:
                continue
            epic = epic_of(upd.book)
            if epic in self._watching and self._is_open(epic):
                self._match(epic)

    def _match(self, epic: str) -> None:
        bid, ask = self.touch(epic)
        now = self._wall()
        for account in self.accounts.values():
            for order in [o for o in account.working.values() if o.epic == epic]:
                price = ask if order.direction == "BUY" else bid
                up = order.direction == "BUY"
                hit = (price <= order.level) if (order.type == "LIMIT") == up else (price >= order.level)
                if hit:
                    del account.working[order.deal_id]
                    self._watch(epic, -1)
                    position = Position(
                        order.deal_id, order.deal_reference, epic, order.direction, order.size, price, now,
                        order.stop_level, order.profit_level,
                    )  # fmt: skip
                    account.positions[position.deal_id] = position
                    if position.stop_level is not None or position.profit_level is not None:
                        self._watch(epic, 1)
                    log.info("sim.capital_com.order_filled venue=%s deal_id=%s", self.venue_id, order.deal_id)
            for position in [p for p in account.positions.values() if p.epic == epic]:
                exit_price = bid if position.direction == "BUY" else ask
                long = position.direction == "BUY"
                stop, profit = position.stop_level, position.profit_level
                stopped = stop is not None and (exit_price <= stop if long else exit_price >= stop)
                took = profit is not None and (exit_price >= profit if long else exit_price <= profit)
                if stopped or took:
                    ref = "p_" + self._new_id()
                    account.confirms[ref] = self._close(account, position, now, ref)

    def _watch(self, epic: str, delta: int) -> None:
        n = self._watching.get(epic, 0) + delta
        if n > 0:
            self._watching[epic] = n
        else:
            self._watching.pop(epic, None)

    # ------------------------------------------------------------------ helpers

    def _deal_fields(self, body: Mapping[str, Any]) -> tuple[str, Direction, Decimal]:
        epic = body.get("epic")
        if not isinstance(epic, str) or not epic:
            raise DealError(400, "error.invalid.epic")
        try:
            self._book_of(epic)
        except KeyError:
            raise DealError(404, "error.not-found.epic") from None
        direction = body.get("direction")
        if direction not in ("BUY", "SELL"):
            raise DealError(400, "error.invalid.direction")
        return epic, direction, parse_amount(body.get("size"), "size")

    def _refusal(self, epic: str, size: Decimal) -> str | None:
        if not self._is_open(epic):
            return "MARKET_CLOSED"
        return self._size_problem(epic, size)

    # ------------------------------------------------------------------ JSON views

    def positions_json(self, account: CfdAccount, market: Callable[[str], dict[str, Any]]) -> list[dict[str, Any]]:
        return [position_json(p, account.currency, market(p.epic)) for p in account.positions.values()]

    def working_json(self, account: CfdAccount, market: Callable[[str], dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {
                "workingOrderData": {
                    "dealId": o.deal_id,
                    "direction": o.direction,
                    "epic": o.epic,
                    "orderSize": o.size,
                    "orderLevel": o.level,
                    "timeInForce": "GOOD_TILL_CANCELLED",
                    "createdDate": utc_text(o.created),
                    "createdDateUTC": utc_text(o.created),
                    "guaranteedStop": False,
                    "orderType": o.type,
                    "currencyCode": account.currency,
                    **({"stopLevel": o.stop_level} if o.stop_level is not None else {}),
                    **({"profitLevel": o.profit_level} if o.profit_level is not None else {}),
                },
                "marketData": market(o.epic),
            }
            for o in account.working.values()
        ]


def position_json(p: Position, currency: str, market: dict[str, Any]) -> dict[str, Any]:
    return {
        "position": {
            "contractSize": 1,
            "createdDate": utc_text(p.created),
            "createdDateUTC": utc_text(p.created),
            "dealId": p.deal_id,
            "dealReference": p.deal_reference,
            "size": p.size,
            "direction": p.direction,
            "level": p.level,
            "currency": currency,
            "guaranteedStop": False,
            **({"stopLevel": p.stop_level} if p.stop_level is not None else {}),
            **({"profitLevel": p.profit_level} if p.profit_level is not None else {}),
        },
        "market": market,
    }


def _confirm_base(
    ref: str, epic: str, now: dt.datetime, status: str, deal_status: str, direction: str, size: Decimal, level: Decimal
) -> dict[str, Any]:
    return {
        "date": utc_text(now),
        "status": status,
        "reason": "SUCCESS",
        "dealStatus": deal_status,
        "epic": epic,
        "dealReference": ref,
        "level": level,
        "size": size,
        "direction": direction,
        "guaranteedStop": False,
        "trailingStop": False,
    }


def _rejected(ref: str, epic: str, now: dt.datetime, reason: str, direction: str, size: Decimal) -> dict[str, Any]:
    return {
        "date": utc_text(now),
        "status": "REJECTED",
        "reason": reason,
        "dealStatus": "REJECTED",
        "epic": epic,
        "dealReference": ref,
        "dealId": "",
        "affectedDeals": [],
        "size": size,
        "direction": direction,
        "guaranteedStop": False,
        "trailingStop": False,
    }
