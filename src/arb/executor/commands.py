"""Manual execution by id: `arb execute OPPORTUNITY_ID` asks the running `arb run` to execute one opportunity.

Why a command stream and not an executor of its own: the opportunity (the scanner's current view of it), the venues'
sessions, the executor and the risk engine's state (reservations, order rate, concurrent executions) all live in the
process that trades. A second process with its own executor would race it for the same balances and ledger rows. So
`arb execute` puts a request on the Redis stream `{prefix}:execute` (the grid's Redis: ARB_REDIS_URL, the same for
both) and waits for the answer on the list `{prefix}:execute:<request id>`. `arb run` (`--manual` to execute only
what is asked) reads the stream and executes the opportunity if its scanner still has it open, through the same
path as every execution (re-check, sizing, risk, write-ahead, both legs, hedging), and answers with the `Outcome`
(`status`, `reason`, PnL...) or with why nothing was sent: an unknown id, a closed opportunity, a request that
waited past its deadline (answered "expired", never executed late). Asking twice for one opportunity executes it
once: the ledger refuses a second intent of the same opportunity (FAULTS E4).

Requests are read from the stream's start when `arb run` starts: one made while it was starting up is served if its
deadline has not passed; older ones are answered `expired` (the stream keeps the last 1000).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, cast

import msgspec

from arb import tasks
from arb.grid.errors import GridError
from arb.grid.store import redis_errors, stream_entries
from arb.model import parse_opportunity_id

if TYPE_CHECKING:
    from arb.config import Settings
    from arb.executor.engine import Outcome
    from arb.grid.store import PriceGrid

log = logging.getLogger(__name__)

ANSWER_TTL_S: Final = 300
"""An answer nobody collected is deleted after this."""
STREAM_MAXLEN: Final = 1000


class ExecuteRequest(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    opportunity_id: str
    deadline_ns: int
    """Wall clock (UTC ns) after which the request is answered `expired` instead of executed."""
    max_amount: str | None = None
    """Cap on the base amount (a decimal string; the API's `max_amount`): the opportunity is executed at most this
    size, sized below it by the executor as always."""


class ExecuteAnswer(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    opportunity_id: str
    executed: bool
    """True when orders were sent (the outcome says how it ended); False: `reason` says why nothing was sent."""
    reason: str = ""
    outcome: dict[str, Any] | None = None
    """The execution's `Outcome`, as plain values."""


Handler = Callable[[str, "Decimal | None"], Awaitable["Outcome | str"]]
"""Executes one opportunity by id (at most the given base amount): its Outcome, or the reason nothing was sent."""

_REQ_DECODER: Final = msgspec.json.Decoder(ExecuteRequest)
_ANSWER_DECODER: Final = msgspec.json.Decoder(ExecuteAnswer)
_FIELD: Final = b"r"
_ACK: Final = b"ack"
EXECUTION_BOUND_S: Final = 300.0
"""How long an asker waits for the answer once a trading process took the request (an execution with hedging and
its retries ends well within this; past it the asker says so and points at `arb orders`)."""


def answer_key(grid: PriceGrid, request_id: str) -> str:
    return f"{grid.keys.execute}:{request_id}"


class CommandServer:
    """`async with CommandServer(grid, handler):` serves execute requests until the block exits (one at a time, in
    order: each is a real execution, which the risk engine also bounds)."""

    def __init__(self, grid: PriceGrid, handler: Handler, *, block_ms: int = 500) -> None:
        self.grid, self.handler, self.block_ms = grid, handler, block_ms
        self.served = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> CommandServer:
        self._task = tasks.spawn(self._run(), name="execute-commands")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            await tasks.cancel_and_wait(self._task)
            self._task = None

    async def _run(self) -> None:
        key, last = self.grid.keys.execute, "0-0"  # a request from before we started is served if still in time
        while True:
            try:
                with redis_errors("read_execute_requests"):
                    raw: Any = await self.grid.client.xread({key: last}, count=10, block=self.block_ms)
            except GridError as exc:
                log.error("execute.requests_unreadable error=%r", str(exc))
                await asyncio.sleep(1.0)
                continue
            if not raw:
                continue
            for entry_id, fields in stream_entries(raw):
                last = entry_id.decode()
                await self._serve(last, fields.get(_FIELD, b""))

    async def _serve(self, entry_id: str, payload: bytes) -> None:
        try:
            req = _REQ_DECODER.decode(payload)
        except msgspec.MsgspecError as exc:
            log.error("execute.request_unreadable entry=%s error=%r", entry_id, str(exc))
            return
        log.info("execute.requested request=%s opportunity=%s", req.request_id, req.opportunity_id)
        await self._push(req.request_id, _ACK)  # the asker knows a trading process has it (see request_execution)
        if time.time_ns() > req.deadline_ns:
            expired = "expired: the request waited past its deadline; nothing was sent"
            answer = ExecuteAnswer(request_id=req.request_id, opportunity_id=req.opportunity_id, executed=False,
                                   reason=expired)  # fmt: skip
        else:
            try:
                cap = Decimal(req.max_amount) if req.max_amount is not None else None
                result = await self.handler(req.opportunity_id, cap)
            except Exception as exc:  # the command server must outlive one bad execution; its orders are in the ledger
                log.exception("execute.handler_failed opportunity=%s", req.opportunity_id)
                result = f"failed: {type(exc).__name__}: {exc}"
            if isinstance(result, str):
                answer = ExecuteAnswer(request_id=req.request_id, opportunity_id=req.opportunity_id, executed=False,
                                       reason=result)  # fmt: skip
            else:
                answer = ExecuteAnswer(
                    request_id=req.request_id, opportunity_id=req.opportunity_id, executed=result.status != "aborted",
                    reason=result.reason, outcome=msgspec.to_builtins(result),
                )  # fmt: skip
        self.served += 1
        log.info("execute.answered request=%s executed=%s reason=%r", req.request_id, answer.executed, answer.reason)
        await self._push(req.request_id, msgspec.json.encode(answer))

    async def _push(self, request_id: str, value: bytes) -> None:
        key = answer_key(self.grid, request_id)
        try:
            with redis_errors("answer_execute_request"):
                pipe = self.grid.client.pipeline(transaction=True)
                pipe.rpush(key, value)
                pipe.expire(key, ANSWER_TTL_S)
                await pipe.execute()
        except GridError as exc:
            log.error("execute.answer_unwritten request=%s error=%r", request_id, str(exc))


def opportunity_id_problem(settings: Settings, oid: str) -> str | None:
    """Why `oid` cannot be an opportunity id of these settings (scanner ids: kind:instrument:buy>sell:data_ns), checked
    before a request is made (`arb execute`, `POST /arbitrage/execute`); None when it can."""
    try:
        _, instrument, buy, sell, _ = parse_opportunity_id(oid)
    except ValueError as exc:
        return str(exc)
    if instrument not in settings.instruments:
        return f"{oid!r}: unknown instrument {instrument!r}"
    unknown = [v for v in (buy, sell) if v not in settings.venues]
    if unknown:
        return f"{oid!r}: unknown venue {unknown[0]!r}"
    return None


class NoTradingProcess(Exception):
    """No `arb run` took the request in time; it expires unexecuted."""


class AnswerOverdue(Exception):
    """A trading process took the request but gave no answer within EXECUTION_BOUND_S."""


async def request_execution(
    grid: PriceGrid, opportunity_id: str, *, timeout_s: float, max_amount: Decimal | None = None
) -> ExecuteAnswer:
    """Ask the running `arb run` to execute `opportunity_id` and wait for its answer. Raises NoTradingProcess when
    none took the request within `timeout_s` (it expires then, unexecuted), AnswerOverdue when one took it but did
    not answer within EXECUTION_BOUND_S, GridError when Redis fails."""
    request_id = secrets.token_hex(8)
    deadline_ns = time.time_ns() + int(timeout_s * 1e9)
    cap = None if max_amount is None else str(max_amount)
    req = ExecuteRequest(request_id=request_id, opportunity_id=opportunity_id, deadline_ns=deadline_ns, max_amount=cap)
    with redis_errors("request_execution"):
        await grid.client.xadd(grid.keys.execute, {_FIELD: msgspec.json.encode(req)}, maxlen=STREAM_MAXLEN,
                               approximate=True)  # fmt: skip
        # the deadline bounds when an execution may *start*; one that started answers when it ends
        key = answer_key(grid, request_id)
        got = await _pop(grid, key, timeout_s)
        if got is None:
            raise NoTradingProcess(f"no `arb run` took the request within {timeout_s:g} s; nothing was sent")
        if got == _ACK:
            got = await _pop(grid, key, EXECUTION_BOUND_S)
        if got is None:
            raise AnswerOverdue(
                f"`arb run` took the request but gave no answer within {EXECUTION_BOUND_S:g} s; see `arb orders`"
            )
    return _ANSWER_DECODER.decode(got)


async def _pop(grid: PriceGrid, key: str, within_s: float) -> bytes | None:
    """The first value pushed on `key` within `within_s`, waiting in short BLPOPs (each well inside the client's
    socket timeout, which a long blocking call would trip)."""
    deadline = time.monotonic() + within_s
    while (left := deadline - time.monotonic()) > 0:
        got = await grid.client.blpop([key], timeout=min(left, 0.5))
        if got is not None:
            return cast(bytes, got[1])
    return None
