"""`arb scan` as a user runs it: the local stack when no grid is configured, the cost breakdown in JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_cli import arb, json_out, three_venue_config


def test_scan_json_ranks_opportunities_whose_costs_add_up(tmp_path: Path) -> None:
    config = three_venue_config(tmp_path)

    proc = arb("scan", "--config", str(config), "--warmup", "12", "--json", "--top", "50", timeout=90)

    assert proc.returncode == 0, proc.stderr
    assert "no ARB_REDIS_URL: running the local stack" in proc.stderr
    report = json_out(proc)
    assert report["count"] == len(report["opportunities"]) <= 50
    priorities = [o["priority"] for o in report["opportunities"]]
    assert priorities == sorted(priorities, reverse=True)
    for o in report["opportunities"]:
        assert {o["buy_venue"], o["sell_venue"]} <= {"binance", "kraken", "gate"}
        assert o["net_edge"] >= 0.001  # the shipped threshold: 10 bps after every cost
        realised = (o["vwap_sell"] - o["vwap_buy"]) / o["vwap_buy"]
        costs = o["fee_buy"] + o["fee_sell"] + o["gas"] + o["haircut"]
        assert o["net_edge"] == pytest.approx(realised - costs, abs=1e-12)
        assert o["slippage"] == pytest.approx(o["gross_spread"] - realised, abs=1e-12)
        assert o["slippage"] <= 2 * 0.0005 + 1e-12  # each leg within the 5 bps cap
        assert o["notional"] >= 1000 * 0.9  # min notional (EUR books are converted at ~1.08)
        assert o["notional"] <= 50_000 / 1.0 * 1.01
        # the local Binance-format venues (binance, gate) serve wallet status and fees, kraken's module does not
        if "kraken" in (o["buy_venue"], o["sell_venue"]):
            assert o["wallet"] == "unknown"  # (its transfer cost counts the parts that are known)
        else:
            assert o["wallet"] == "open"
            assert o["transfer_cost"] > 0


def test_scan_names_an_unknown_instrument() -> None:
    proc = arb("scan", "--instrument", "NOPE/USD")
    assert proc.returncode == 2
    assert "unknown instrument 'NOPE/USD'" in proc.stderr


def test_scan_refuses_once_with_follow() -> None:
    proc = arb("scan", "--once", "--follow")
    assert proc.returncode == 2
    assert "--once and --follow exclude each other" in proc.stderr
