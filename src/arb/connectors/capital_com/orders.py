"""Positions and working orders on Capital.com for the executor and hedger: open, confirm, close; never a blind resend.

Follows https://open-api.capital.com/ ("Trading > Positions", "Trading > Orders", "Trading > Confirms"):
`POST /api/v1/positions` (`direction`, `epic`, `size`, optional `stopLevel` / `profitLevel`, `guaranteedStop`) and
`POST /api/v1/workingorders` (plus `level` and `type` LIMIT / STOP) answer only a `dealReference`; the outcome
(ACCEPTED / REJECTED with a reason, the fill level, the new deal id) comes from `GET /api/v1/confirms/{ref}`. A
position is closed with `DELETE /api/v1/positions/{dealId}`, a working order with `DELETE /api/v1/workingorders/{id}`,
each again answered by a reference to confirm.

What it guarantees (FAULTS E2, E3, E17):

* **No request is sent twice without a status check.** A write refused for its session (`SessionExpired`: the
  client has logged in again) or without an answer (`RequestTimedOut`: the venue may have acted on it) is followed by
  a lookup: the open positions (working orders) for one this call created — same epic, direction and size, created
  since just before the request, and not already claimed by an earlier call of this trader (Capital.com takes no
  client order id, so that is the identity we have). Found: it is the result, nothing is resent. Not found after a
  session refusal (the venue refused before acting): sent once more. Not found after a timeout: `RequestTimedOut`
  is raised and nothing is resent; the caller resolves it later (`find_position`), as for any venue.
* **A confirm is a read**: a confirm refused for its session is asked again after the login, with the same deal
  reference (the reference belongs to the account, not to the session). A reference the venue does not know yet is
  asked again every `confirm_poll_s` up to `confirm_timeout_s`, then `RequestTimedOut`.
* **Rejections are final**: a REJECTED confirm raises `OrderRejected` with the venue's reason; a 4xx answer to the
  request itself too. Rate limits and 429s are the client's (`RequestGate`).

Amounts are `Decimal` and go on the wire as JSON numbers with exactly their digits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Final, Literal

import msgspec

from arb.connectors.capital_com.client import CapitalComClient, CapitalComError, CapitalComNotFound, SessionExpired
from arb.connectors.capital_com.wire import Confirm, Direction, PositionEntry, WorkingOrderEntry
from arb.executor.venue import OrderRejected, RequestTimedOut

log = logging.getLogger(__name__)

LOOKUP_SLACK: Final = dt.timedelta(seconds=5)
"""A deal counts as created by a request if the venue dated it at most this long before we sent it (clock skew)."""


def _positive(name: str, value: Decimal | None, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise ValueError(f"{name} must be a positive finite Decimal, got {value!r}")


class PositionRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A market position: `size` in the instrument's deal units, optional stop-loss and take-profit levels."""

    epic: str
    direction: Direction
    size: Decimal
    stop_level: Decimal | None = None
    profit_level: Decimal | None = None
    guaranteed_stop: bool = False

    def __post_init__(self) -> None:
        if not self.epic:
            raise ValueError("epic must not be empty")
        if self.direction not in ("BUY", "SELL"):
            raise ValueError(f"direction must be BUY or SELL, got {self.direction!r}")
        _positive("size", self.size)
        _positive("stop_level", self.stop_level, optional=True)
        _positive("profit_level", self.profit_level, optional=True)
        if self.guaranteed_stop and self.stop_level is None:
            raise ValueError("guaranteed_stop needs stop_level")

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"epic": self.epic, "direction": self.direction, "size": self.size}
        if self.guaranteed_stop:
            out["guaranteedStop"] = True
        if self.stop_level is not None:
            out["stopLevel"] = self.stop_level
        if self.profit_level is not None:
            out["profitLevel"] = self.profit_level
        return out


class WorkingOrderRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A LIMIT or STOP order resting at `level` until filled or cancelled."""

    epic: str
    direction: Direction
    size: Decimal
    level: Decimal
    type: Literal["LIMIT", "STOP"] = "LIMIT"
    stop_level: Decimal | None = None
    profit_level: Decimal | None = None

    def __post_init__(self) -> None:
        if not self.epic:
            raise ValueError("epic must not be empty")
        if self.direction not in ("BUY", "SELL"):
            raise ValueError(f"direction must be BUY or SELL, got {self.direction!r}")
        if self.type not in ("LIMIT", "STOP"):
            raise ValueError(f"type must be LIMIT or STOP, got {self.type!r}")
        _positive("size", self.size)
        _positive("level", self.level)
        _positive("stop_level", self.stop_level, optional=True)
        _positive("profit_level", self.profit_level, optional=True)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "epic": self.epic,
            "direction": self.direction,
            "size": self.size,
            "level": self.level,
            "type": self.type,
        }
        if self.stop_level is not None:
            out["stopLevel"] = self.stop_level
        if self.profit_level is not None:
            out["profitLevel"] = self.profit_level
        return out


class Deal(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one request: `deal_id` is the position's (or working order's) id that later calls use."""

    deal_reference: str
    deal_id: str
    epic: str
    status: str
    """OPEN (a position or working order now exists), CLOSED, DELETED."""
    direction: Direction | None = None
    size: Decimal | None = None
    level: Decimal | None = None
    profit: Decimal | None = None
    recovered: bool = False
    """True when the outcome was found by a lookup after a lost answer or refused session, not by its confirm."""


class CapitalComTrader:
    """Trading calls over one `CapitalComClient` (whose session, limits and errors it uses)."""

    def __init__(
        self,
        client: CapitalComClient,
        *,
        confirm_timeout_s: float = 5.0,
        confirm_poll_s: float = 0.1,
        wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (math.isfinite(confirm_timeout_s) and confirm_timeout_s > 0 and confirm_poll_s > 0):
            raise ValueError("confirm_timeout_s and confirm_poll_s must be positive")
        self.client = client
        self.venue = client.venue
        self.confirm_timeout_s = confirm_timeout_s
        self.confirm_poll_s = confirm_poll_s
        self._wall = wall
        self._sleep = sleep
        self._clock = clock
        self._claimed: set[str] = set()
        """Deal ids this trader has already returned: a later lookup never takes one of them for its own."""

    # ------------------------------------------------------------------ positions

    async def open_position(self, req: PositionRequest) -> Deal:
        """Open a position and confirm it. Raises OrderRejected (refused: nothing exists), RequestTimedOut (unknown:
        nothing was resent; `find_position` resolves it), or the client's other errors (nothing was sent)."""
        sent_at = self._wall()
        try:
            ref = await self.client.post_position(req.body())
        except SessionExpired:
            found = await self.find_position(req, since=sent_at)
            if found is not None:
                return self._claim(found)
            log.info("capital_com.resend venue=%s epic=%s reason=session_refused_and_not_found", self.venue, req.epic)
            sent_at = self._wall()
            ref = await self._resend(lambda: self.client.post_position(req.body()), what="position")
        except RequestTimedOut:
            found = await self.find_position(req, since=sent_at)
            if found is not None:
                return self._claim(found)
            raise
        except CapitalComError as exc:
            if exc.status < 500:
                raise OrderRejected(self.venue, str(exc.detail)) from None
            raise
        confirm = await self.confirm(ref)
        self._raise_if_rejected(confirm)
        deal_id = confirm.affected("OPENED") or confirm.dealId
        return self._claim(_deal(confirm, deal_id, "OPEN"))

    async def close_position(self, deal_id: str) -> Deal:
        """Close a position whole. After a refused session or a lost answer the position is looked up first: gone
        means closed (the deal says so, with `recovered`); still open after a session refusal, the close is sent
        once more; still open after a lost answer, RequestTimedOut."""
        try:
            ref = await self.client.delete_position(deal_id)
        except (SessionExpired, RequestTimedOut) as exc:
            entry = await self._position_or_none(deal_id)
            if entry is None:
                return Deal(deal_reference="", deal_id=deal_id, epic="", status="CLOSED", recovered=True)
            if isinstance(exc, RequestTimedOut):
                raise
            ref = await self._resend(lambda: self.client.delete_position(deal_id), what="close")
        except CapitalComNotFound:
            raise
        except CapitalComError as exc:
            if exc.status < 500:
                raise OrderRejected(self.venue, str(exc.detail)) from None
            raise
        confirm = await self.confirm(ref)
        self._raise_if_rejected(confirm)
        return _deal(confirm, deal_id, confirm.status or "CLOSED")

    async def find_position(self, req: PositionRequest, *, since: dt.datetime) -> Deal | None:
        """An open position this trader has not claimed that `req` sent at `since` would have created, or None."""
        candidates = [
            e.position
            for e in await self.client.positions()
            if e.market.epic == req.epic
            and e.position.direction == req.direction
            and e.position.size == req.size
            and e.position.dealId not in self._claimed
            and _created_since(e.position.createdDateUTC, since)
        ]
        if not candidates:
            return None
        if len(candidates) > 1:
            n = len(candidates)
            log.warning("capital_com.lookup_ambiguous venue=%s epic=%s matches=%d", self.venue, req.epic, n)
        p = min(candidates, key=lambda p: p.createdDateUTC)
        log.info("capital_com.found_after_uncertain_send venue=%s epic=%s deal_id=%s", self.venue, req.epic, p.dealId)
        return Deal(
            deal_reference=p.dealReference,
            deal_id=p.dealId,
            epic=req.epic,
            status="OPEN",
            direction=p.direction,
            size=p.size,
            level=p.level,
            recovered=True,
        )

    async def positions(self) -> list[PositionEntry]:
        return await self.client.positions()

    # ------------------------------------------------------------------ working orders

    async def create_working_order(self, req: WorkingOrderRequest) -> Deal:
        """Place a LIMIT / STOP order and confirm it (the same no-resend rules as `open_position`)."""
        sent_at = self._wall()
        try:
            ref = await self.client.post_working_order(req.body())
        except (SessionExpired, RequestTimedOut) as exc:
            found = await self.find_working_order(req, since=sent_at)
            if found is not None:
                return self._claim(found)
            if isinstance(exc, RequestTimedOut):
                raise
            ref = await self._resend(lambda: self.client.post_working_order(req.body()), what="working order")
        except CapitalComError as exc:
            if exc.status < 500:
                raise OrderRejected(self.venue, str(exc.detail)) from None
            raise
        confirm = await self.confirm(ref)
        self._raise_if_rejected(confirm)
        return self._claim(_deal(confirm, confirm.affected("OPENED") or confirm.dealId, "OPEN"))

    async def cancel_working_order(self, deal_id: str) -> Deal:
        """Delete a working order; after a lost answer or refused session, gone means deleted (or filled: the
        positions say which)."""
        try:
            ref = await self.client.delete_working_order(deal_id)
        except (SessionExpired, RequestTimedOut) as exc:
            still = any(o.workingOrderData.dealId == deal_id for o in await self.client.working_orders())
            if not still:
                return Deal(deal_reference="", deal_id=deal_id, epic="", status="DELETED", recovered=True)
            if isinstance(exc, RequestTimedOut):
                raise
            ref = await self._resend(lambda: self.client.delete_working_order(deal_id), what="cancel")
        confirm = await self.confirm(ref)
        self._raise_if_rejected(confirm)
        return _deal(confirm, deal_id, confirm.status or "DELETED")

    async def find_working_order(self, req: WorkingOrderRequest, *, since: dt.datetime) -> Deal | None:
        for entry in await self.client.working_orders():
            o = entry.workingOrderData
            if (
                o.epic == req.epic
                and o.direction == req.direction
                and o.orderSize == req.size
                and o.orderLevel == req.level
                and o.orderType == req.type
                and o.dealId not in self._claimed
                and _created_since(o.createdDateUTC, since)
            ):
                return Deal(
                    deal_reference="",
                    deal_id=o.dealId,
                    epic=o.epic,
                    status="OPEN",
                    direction=o.direction,
                    size=o.orderSize,
                    level=o.orderLevel,
                    recovered=True,
                )
        return None

    async def working_orders(self) -> list[WorkingOrderEntry]:
        return await self.client.working_orders()

    # ------------------------------------------------------------------ confirms

    async def confirm(self, deal_reference: str) -> Confirm:
        """The confirm of `deal_reference`, asked again while the venue does not know it yet (up to the timeout)."""
        deadline = self._clock() + self.confirm_timeout_s
        while True:
            try:
                return await self.client.confirm(deal_reference)
            except CapitalComNotFound:
                if self._clock() >= deadline:
                    raise RequestTimedOut(
                        self.venue, f"no confirm for {deal_reference} within {self.confirm_timeout_s}s"
                    ) from None
                await self._sleep(self.confirm_poll_s)

    # ------------------------------------------------------------------ helpers

    async def _resend(self, send: Callable[[], Awaitable[str]], *, what: str) -> str:
        """The one resend after a session refusal and a lookup that found nothing; a second refusal is final."""
        try:
            return await send()
        except SessionExpired as exc:
            detail = f"{what}: session refused twice; nothing more is sent ({exc.detail})"
            raise RequestTimedOut(self.venue, detail) from None

    async def _position_or_none(self, deal_id: str) -> PositionEntry | None:
        try:
            return await self.client.position(deal_id)
        except CapitalComNotFound:
            return None

    def _raise_if_rejected(self, confirm: Confirm) -> None:
        if not confirm.accepted:
            what = f"{confirm.epic or 'deal'} {confirm.dealReference}"
            raise OrderRejected(self.venue, f"{what} rejected: {confirm.reason or 'no reason'}")

    def _claim(self, deal: Deal) -> Deal:
        self._claimed.add(deal.deal_id)
        return deal


def _deal(confirm: Confirm, deal_id: str, status: str) -> Deal:
    return Deal(
        deal_reference=confirm.dealReference,
        deal_id=deal_id,
        epic=confirm.epic,
        status=status,
        direction=confirm.direction,
        size=confirm.size,
        level=confirm.level,
        profit=confirm.profit,
    )


def _created_since(created_utc: str, since: dt.datetime) -> bool:
    """Whether the venue's `createdDateUTC` (ISO, no zone: UTC) is at or after `since` minus the slack."""
    try:
        created = dt.datetime.fromisoformat(created_utc).replace(tzinfo=dt.UTC)
    except ValueError:
        return False
    return created >= since - LOOKUP_SLACK
