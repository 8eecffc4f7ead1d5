"""`arb record` as a user runs it on a running stack's grid (ARB_REDIS_URL), and its refusals."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from arb.backtest.tape import read_entries
from arb.config import load_settings
from arb.grid import GridLayout, PriceGrid
from tests.support import MS, NS, quote

from .test_cli import arb


async def write_quotes(url: str, n: int) -> None:
    settings = load_settings()
    async with PriceGrid.from_url(url, GridLayout.from_settings(settings), settings.grid) as grid:
        for k in range(n):
            await grid.write([quote("kraken", "BTC/USD", sequence=k + 1, ts_recv=NS + k * MS)])


def test_arb_record_writes_what_the_grid_feed_carries_while_it_runs(tmp_path: Path, redis_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARB_")}
    env |= {"ARB_REDIS_URL": redis_url, "ARB_LOG_LEVEL": "INFO"}
    out = tmp_path / "tape"
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "arb", "record", "--out", str(out), "--seconds", "3", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stderr is not None
    for line in proc.stderr:  # wait until it follows the feed
        if "record.started" in line:
            break
    asyncio.run(write_quotes(redis_url, 25))
    stdout, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert (summary["entries"], summary["quotes"], summary["gaps"]) == (25, 25, [])
    assert [q.sequence for _, _, qs in read_entries(out) for q in qs] == list(range(1, 26))


def test_arb_record_refuses_without_a_grid_an_existing_tape_or_unknown_ids(tmp_path: Path) -> None:
    no_grid = arb("record", "--out", str(tmp_path / "a"), "--seconds", "1")
    assert no_grid.returncode == 2
    assert "set ARB_REDIS_URL" in no_grid.stderr

    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "manifest.json").write_text("{}")
    existing = arb("record", "--out", str(tmp_path / "b"), "--demo", "--seconds", "1")
    assert existing.returncode == 2
    assert "already holds a tape" in existing.stderr

    unknown = arb("record", "--out", str(tmp_path / "c"), "--demo", "--venues", "binance,nasdaq")
    assert unknown.returncode == 2
    assert "--venues: not in the settings: nasdaq" in unknown.stderr
