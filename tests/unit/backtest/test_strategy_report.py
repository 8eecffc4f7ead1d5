"""The directional report on disk: deterministic JSON, an HTML page with the tables, a real PNG."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest

from arb.backtest.directional import Comparison, comparison
from arb.backtest.strategy_report import write
from arb.backtest.walkforward import WalkForwardResult, walk_forward
from arb.config import load_settings
from arb.config.schema import StrategySettings
from tests.support import random_bars

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking the signature and the chunk's CRC."""
    assert data[:8] == PNG_MAGIC
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    (crc,) = struct.unpack(">I", data[29:33])
    assert crc == zlib.crc32(data[12:29])
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def backtest() -> Comparison:
    settings = load_settings(None).strategy
    bars = random_bars(400, seed=11)
    return comparison(bars, lambda t, p: 1.0 if (t // 30) % 2 else -1.0, settings.rl, settings.risk)


@pytest.fixture(scope="module")
def walk() -> WalkForwardResult:
    base = load_settings(None).strategy
    strategy = StrategySettings.model_validate(
        base.model_dump() | {"walk_forward": {"train_bars": 200, "test_bars": 50}, "rl": {"window": 8}}
    )
    return walk_forward(random_bars(300, seed=12), strategy, timesteps=256)


def test_backtest_report_writes_json_html_and_a_valid_png(tmp_path: Path, backtest: Comparison) -> None:
    paths = write(backtest, tmp_path / "out")

    assert {k: p.name for k, p in paths.items()} == {"json": "report.json", "html": "report.html", "png": "equity.png"}
    doc = json.loads(paths["json"].read_text())
    assert doc["kind"] == "backtest"
    assert set(doc["baselines"]) == {"buy_and_hold", "sma_crossover"}
    assert doc["strategy"]["trades"] == len(backtest.strategy.trades)
    assert len(doc["curves"]["strategy"]) == len(doc["curves"]["ts"]) == len(backtest.strategy.equity)
    assert doc["curves"]["strategy"][-1] == pytest.approx(float(backtest.strategy.equity[-1]))
    assert png_size(paths["png"].read_bytes()) == (1000, 600)
    page = paths["html"].read_text()
    assert "<img src='equity.png'" in page
    assert "buy_and_hold" in page
    assert "sma_crossover" in page


def test_report_json_is_byte_identical_across_writes(tmp_path: Path, backtest: Comparison) -> None:
    a = write(backtest, tmp_path / "a")["json"].read_bytes()
    b = write(backtest, tmp_path / "b")["json"].read_bytes()

    assert a == b
    json.loads(a, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


def test_walk_forward_report_has_a_row_per_window(tmp_path: Path, walk: WalkForwardResult) -> None:
    paths = write(walk, tmp_path)

    doc = json.loads(paths["json"].read_text())
    assert doc["kind"] == "walk_forward"
    assert len(doc["windows"]) == 2
    # the curve: the starting capital, then one mark per out-of-sample bar
    assert len(doc["curves"]["ts"]) == len(doc["curves"]["strategy"]) == 100 + 1
    assert doc["curves"]["ts"][1] == walk.ts[0].isoformat()
    page = paths["html"].read_text()
    assert page.count("<tr>") == 13 + 1 + 2  # metrics table (header + 12) and windows table (header + 2)
    assert png_size(paths["png"].read_bytes()) == (1000, 600)
