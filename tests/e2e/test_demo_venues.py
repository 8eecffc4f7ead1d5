"""`arb demo` with Capital.com and the DEX: the local Capital.com venue and the local chain (anvil, official Uniswap
bytecode) start with the stack, their connectors stream into the grid next to the CEX workers, and the report lists
them connected with quotes; everything stops with the demo."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_cli import arb
from tests.integration.connectors.dex.support import needs_anvil


@needs_anvil
def test_demo_lists_capital_com_and_the_dex_venues_connected_with_quotes(tmp_path: Path) -> None:
    from arb.config import load_settings

    keep = {"binance", "kraken", "capital_com", "uniswap_v2", "uniswap_v3", "sushiswap"}
    off = [v for v in load_settings().venues if v not in keep]
    config = tmp_path / "venues.yaml"
    config.write_text("venues:\n" + "".join(f"  {v}: {{enabled: false}}\n" for v in off))
    env = {"ARB_LOG_LEVEL": "INFO", "ARB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"}

    proc = arb("demo", "--config", str(config), "--seconds", "8", "--json", env=env, timeout=120)

    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(report["venues"]) == {"binance", "kraken", "capital_com", "uniswap_v2", "uniswap_v3", "sushiswap"}
    for vid in ("capital_com", "uniswap_v2", "uniswap_v3", "sushiswap"):
        venue = report["venues"][vid]
        assert venue["connected"] is True, (vid, venue)
        assert venue["updates"] > 0, (vid, venue)
        assert venue["last_error"] == "", (vid, venue)
    assert report["venues"]["uniswap_v3"]["symbols"] == 5  # WETH, WBTC, LINK, UNI, AAVE against USDC
    assert report["venues_connected"] == 6
    assert report["errors"] == 0
    assert "demo.dex_started" in proc.stderr
    assert "DEX venues skipped" not in proc.stderr
