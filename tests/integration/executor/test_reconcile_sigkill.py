"""Restart reconciliation after a SIGKILL mid-execution (FAULTS E8), for real: a child Python process runs the
executor against the local venues this test serves and the ledger file it shares, and is killed with SIGKILL once the
ledger shows its first leg filled (or its hedge sent); a new executor in this process then runs `reconcile()`, and
THE invariant must hold: every order the venues know is in the ledger with their state, the intent is settled (both
legs found, or the residual hedged), and the venues' trades net out.

Each case holds the order the process dies on with a venue fault, so the kill lands where the case says:
- `ack_delay` on leg B: B was placed (and filled) at once but its answer never came back: both legs are found;
- `disconnect` (not placed) on leg B: B never reached the venue and the child was still looking it up: B is
  settled as never placed, leg A's fill is a residual and is hedged;
- leg B rejected and the unwind held by `ack_delay`: killed mid-hedge; the unwind is found filled and the intent
  ends HEDGED.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from arb.executor.ids import execution_id
from arb.executor.reconcile import reconcile
from arb.model import IntentStatus, OrderStatus

from .support import BUY, SELL, Stack, assert_accounted, child_spec, executor_stack

ROOT = Path(__file__).resolve().parents[3]
CHILD = "import asyncio, sys; from tests.integration.executor.support import child; asyncio.run(child(sys.argv[1]))"


async def wait_for(
    s: Stack, ex_id: str, kill_at: tuple[int, OrderStatus], placed: dict[str, int], child: asyncio.subprocess.Process
) -> None:
    """Poll the shared ledger until order number `leg` of `ex_id` has `status` and each venue in `placed` knows that
    many orders (the child is alive meanwhile)."""
    leg, status = kill_at
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert child.returncode is None, f"the child exited ({child.returncode}) before it could be killed"
        orders = await s.store.orders_of(ex_id)
        if (
            len(orders) > leg
            and orders[leg].order.status is status
            and all(len(s.venue_orders(v)) >= n for v, n in placed.items())
        ):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"order {leg} of {ex_id} never reached {status}: {await s.store.orders_of(ex_id)}")


CASES: dict[str, Any] = {
    "leg_b_placed_answer_lost": {
        "faults": [(SELL, "ack_delay", {"seconds": 30.0, "side": "sell"})],
        "kill_at": (0, OrderStatus.FILLED),
        "placed": {SELL: 1},
        "executor": {},
        "settled": IntentStatus.DONE,
    },
    "leg_b_never_placed": {
        "faults": [(SELL, "disconnect", {"placed": False, "side": "sell"})],
        "kill_at": (1, OrderStatus.UNKNOWN),
        "placed": {},
        "executor": {"resolve_window_s": 30.0},
        "settled": IntentStatus.HEDGED,
    },
    "killed_mid_hedge": {
        "faults": [(SELL, "reject", {"side": "sell"}), (BUY, "ack_delay", {"seconds": 30.0, "side": "sell"})],
        "kill_at": (2, OrderStatus.SENT),
        "placed": {BUY: 2},
        "executor": {"single_leg_policy": "reverse"},
        "settled": IntentStatus.HEDGED,
    },
}


@pytest.mark.parametrize("case", list(CASES))
async def test_a_process_killed_mid_execution_is_reconciled_on_restart(tmp_path: Path, case: str) -> None:
    spec = CASES[case]
    async with executor_stack(tmp_path) as s:
        opp = s.opportunity()
        ex_id = execution_id(opp.id)
        for venue, fault, fields in spec["faults"]:
            s.venues[venue].trading.faults.add(fault, **fields)
        with (tmp_path / "child.log").open("w") as log:
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CHILD, child_spec(s, opp, **spec["executor"]),
                cwd=ROOT, stdout=log, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            try:
                await wait_for(s, ex_id, spec["kill_at"], spec["placed"], child)
                os.kill(child.pid, signal.SIGKILL)
            finally:
                if child.returncode is None:
                    child.kill()
                await asyncio.wait_for(child.wait(), 10)
        before = await s.store.intent(ex_id)

        await s.executor.start()  # a restart: balances again, then reconciliation before any trading
        report = await reconcile(s.executor)

        after = await s.store.intent(ex_id)
        await assert_accounted(s)
    assert child.returncode == -signal.SIGKILL
    assert before is not None
    assert before.status not in (IntentStatus.DONE, IntentStatus.HEDGED)
    assert report.intents_settled == {ex_id: spec["settled"].value}
    assert after is not None
    assert after.status is spec["settled"]
