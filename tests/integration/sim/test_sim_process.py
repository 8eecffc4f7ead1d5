"""`python -m arb.sim` as its own process: it announces its venues, serves ccxt, records truth, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import ccxt.pro as ccxtpro
import orjson

from arb.config import load_settings
from arb.connectors.urls import point_at_local
from arb.sim.truth import read_truth_file


async def test_the_sim_process_serves_its_venues_until_sigterm(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "arb.sim", "--venues", "binance,coinbase", "--truth", str(truth),
        "--dislocations-per-min", "600", "--log-level", "WARNING",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready = orjson.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        served = ready["venues"]["coinbase"]
        exchange = getattr(ccxtpro, served["protocol"])({"rateLimit": 2})  # the class of the format it is served in
        point_at_local(exchange, served["http_url"], served["ws_url"])
        try:
            ob = await exchange.watch_order_book("BTC/USD")
        finally:
            await exchange.close()
        await asyncio.sleep(0.5)  # let the schedule inject a few

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    assert set(ready["venues"]) == {"binance", "coinbase"}
    settings = load_settings()
    assert ready["venues"]["binance"]["symbols"] == sum("binance" in i.venues for i in settings.instruments.values())
    assert ob["bids"][0][0] < ob["asks"][0][0]
    records = read_truth_file(truth)
    assert records
    assert {d.venue for d in records} <= {"binance", "coinbase"}
