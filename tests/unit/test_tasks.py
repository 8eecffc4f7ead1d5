"""Background task helpers: a task given up on never surfaces later as "exception was never retrieved"."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from arb.tasks import cancel_and_wait, spawn


async def test_cancel_and_wait_retrieves_the_exception_a_finished_task_ended_with(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fails() -> None:
        raise ConnectionError("dropped")

    task = spawn(fails(), name="stream-2", report=False)
    await asyncio.sleep(0)
    assert task.done()

    with caplog.at_level(logging.DEBUG, logger="arb.tasks"):
        await cancel_and_wait(task)
        del task
        gc.collect()

    assert "task.ended_with name=stream-2 error=ConnectionError('dropped')" in caplog.text
    assert "never retrieved" not in caplog.text


async def test_cancel_and_wait_cancels_a_running_task_and_waits_for_it() -> None:
    cleaned = asyncio.Event()

    async def runs() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cleaned.set()

    task = spawn(runs(), name="runner")
    await asyncio.sleep(0)

    await cancel_and_wait(task)

    assert task.cancelled()
    assert cleaned.is_set()
