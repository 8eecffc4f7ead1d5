"""Background tasks: named, referenced, logged when they fail, cancelled *and awaited* on shutdown.

Why not a bare `asyncio.create_task`: the loop keeps only a weak reference (a task can be collected mid-flight), an
unnamed task is anonymous in every dump, and an exception in a task nobody awaits is reported late or never
(STYLE: async lifecycle). Every room starts its background work through `spawn`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


def _report(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("task.failed name=%s error=%r", task.get_name(), exc, exc_info=exc)


def spawn(coro: Coroutine[Any, Any, T], *, name: str, report: bool = True) -> asyncio.Task[T]:
    """Start `coro` as a named task whose failure is logged with its traceback; keep the returned reference.

    `report=False` for a task whose result the caller always awaits (and so handles its exception itself)."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    if report:
        task.add_done_callback(_report)
    return task


LET_RUN_TURNS = 3
"""Loop turns a freshly started redis-py command needs to put its request on the socket (two in redis-py 8.1: one to
start, one to check out a connection); one spare. Fewer only loses overlap, never correctness."""


async def let_run(task: asyncio.Task[Any]) -> None:
    """Give a just-started task a few turns of the loop, so its I/O is under way before we do CPU work."""
    for _ in range(LET_RUN_TURNS):
        if task.done():
            return
        await asyncio.sleep(0)


def raise_if_cancelling() -> None:
    """Re-raise a cancellation that an await below us swallowed.

    Python 3.11's `asyncio.wait_for` returns the result instead of raising when the awaited operation finishes in the
    same loop iteration as the cancel (CPython gh-86296, fixed in 3.12), and redis-py wraps every socket write in it.
    A loop that owns its task calls this once per iteration, so `cancel()` stops it for sure; `cancelling()` stays
    above zero until the cancellation is handled.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancel_and_wait(task: asyncio.Task[Any], timeout_s: float = 5.0) -> None:
    """Cancel `task` and wait for it to finish (up to `timeout_s`). Our own cancellation still propagates.

    An exception the task ended with (before or while being cancelled) is retrieved and logged at debug level: the
    caller gave up on its outcome, and asyncio would otherwise report it as "never retrieved" when it is collected
    (e.g. the second of two streams that failed on the same dropped connection)."""
    if not task.done():
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
        if not done:
            log.warning("task.cancel_timeout name=%s timeout_s=%s", task.get_name(), timeout_s)
            return
    if not task.cancelled():
        exc = task.exception()
        if exc is not None:
            log.debug("task.ended_with name=%s error=%r", task.get_name(), exc)
