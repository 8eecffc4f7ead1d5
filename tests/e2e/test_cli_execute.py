"""`arb execute OPPORTUNITY_ID` as a user runs it: `arb run --manual` trades the local venues on a shared Redis, a
second terminal picks an opportunity id off the stream and asks for it, and only that one is executed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from arb.config import load_settings
from arb.grid import GridLayout, PriceGrid
from arb.scanner.stream import read_events

from .test_cli import arb
from .test_cli_run import trading_config


async def opened_ids(url: str, config: Path, after: str, timeout_s: float) -> tuple[str, str]:
    """The id of the next cross-venue spot opportunity the running scanner opens after stream id `after`, and the
    stream id to continue from."""
    settings = load_settings(config)
    async with PriceGrid.from_url(url, GridLayout.from_settings(settings), settings.grid) as grid:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            after, events = await read_events(grid, after, block_ms=500)
            for e in events:
                if e.type == "opened" and e.opportunity.kind == "spot":
                    return e.opportunity.id, after
    raise AssertionError(f"no opportunity opened within {timeout_s} s")


@pytest.mark.timeout(240)
def test_arb_execute_runs_only_the_opportunity_asked_for(tmp_path: Path, redis_url: str) -> None:
    config = trading_config(tmp_path)
    env = {"ARB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}", "ARB_LOG_LEVEL": "WARNING",
           "ARB_REDIS_URL": redis_url}  # fmt: skip
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ARB_")} | env
    run = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "arb", "run", "--manual", "--config", str(config), "--seconds", "60", "--json",
         "--dislocation-ms", "10000", "15000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
    )  # fmt: skip
    try:
        # Under load the opportunity asked for may close before `arb run` serves the request: then it must be
        # refused as closed, and the next one is asked for.
        after, tried = "0-0", []
        for _ in range(4):
            oid, after = asyncio.run(opened_ids(redis_url, config, after, timeout_s=40))
            asked = arb("execute", oid, "--config", str(config), "--json", "--wait", "30", env=env, timeout=120)
            assert asked.stdout, asked.stderr
            answer = json.loads(asked.stdout)
            if answer["executed"]:
                break
            assert answer["reason"].startswith(f"opportunity {oid!r} closed"), answer
            assert asked.returncode == 1
            tried.append(oid)
        assert answer["executed"] is True, (answer, tried)
        assert answer["outcome"]["opportunity_id"] == oid
        assert answer["outcome"]["status"] in ("done", "hedged"), answer
        assert asked.returncode == 0

        again = json.loads(arb("execute", oid, "--config", str(config), "--json", env=env, timeout=120).stdout)
        assert again["executed"] is False  # the ledger refuses a second intent, or the opportunity has closed
        assert again["reason"].startswith(("duplicate", f"opportunity {oid!r} closed")), again

        unknown = arb("execute", "spot:BTC/USD:binance>okx:1", "--config", str(config), env=env, timeout=60)
        assert unknown.returncode == 1
        assert "unknown opportunity" in unknown.stdout
    except BaseException:
        run.kill()
        raise
    finally:
        out, err = run.communicate(timeout=150)
    assert run.returncode == 0, err[-3000:]
    report = json.loads(out.strip().splitlines()[-1])
    assert report["executions"] == 1, report  # --manual: nothing but the one asked for
    assert report["unaccounted_exposure"] == 0.0, report


def test_arb_execute_without_a_trading_process_says_so_and_sends_nothing(redis_url: str) -> None:
    proc = arb("execute", "spot:BTC/USD:binance>okx:1", "--wait", "1", env={"ARB_REDIS_URL": redis_url})
    assert proc.returncode == 1
    assert "no `arb run` took the request within 1 s; nothing was sent" in proc.stderr + proc.stdout


def test_a_malformed_id_is_refused_before_anything_is_asked() -> None:
    proc = arb("execute", "BTC/USD", env={"ARB_REDIS_URL": "redis://127.0.0.1:1"})
    assert proc.returncode == 2
    assert "'BTC/USD' is not an opportunity id" in proc.stderr + proc.stdout
