"""Parameter sweeps: the same tape replayed over a grid of thresholds, in parallel processes, ranked by realized PnL.

Why processes: a replay is CPU-bound Python (mirror, scanner kernel, executor), so threads would serialise on the
GIL; each point runs in a worker process of its own (`concurrent.futures.ProcessPoolExecutor`, spawned so no parent
state leaks in), loading the settings the same way the CLI does and changing only the swept values. Points are
independent and every replay is deterministic, so the ranking does not depend on how many workers ran it.

Swept values (each validated by the settings' own schema before anything runs):
  `min_edge`     -> `thresholds.min_net_spread` (what the scanner opens and the executor still accepts)
  `max_slippage` -> `thresholds.max_slippage`
  `size`         -> `risk.max_order_notional_usd` (USD notional of one order: the execution size cap)

Ranking: realized PnL (higher first), then max drawdown of the PnL curve (smaller first), then executions that
escalated to the kill switch (fewer first): a setting that earns the same by taking more risk ranks below.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from pydantic import ValidationError

if TYPE_CHECKING:
    from arb.config import Settings

log = logging.getLogger(__name__)


class SweepPoint(msgspec.Struct, frozen=True, kw_only=True):
    min_edge: float
    max_slippage: float
    size: float


class SweepResult(msgspec.Struct, kw_only=True):
    point: SweepPoint
    rank: int = 0
    opportunities: int
    executed: int
    done: int
    hedged: int
    failed: int
    escalated: int
    realized_pnl_usd: float
    predicted_pnl_usd: float
    edge_capture: float | None
    max_drawdown_usd: float
    """Largest fall of the cumulative realized PnL from a previous peak (0: it never fell)."""


def points(min_edges: Sequence[float], max_slippages: Sequence[float], sizes: Sequence[float]) -> list[SweepPoint]:
    """Every combination, in a stable order; each list must be non-empty."""
    for name, values in (("min_edge", min_edges), ("max_slippage", max_slippages), ("size", sizes)):
        if not values:
            raise ValueError(f"{name}: give at least one value")
    return [
        SweepPoint(min_edge=e, max_slippage=s, size=n) for e, s, n in itertools.product(min_edges, max_slippages, sizes)
    ]


def apply_point(settings: Settings, point: SweepPoint) -> Settings:
    """`settings` with the point's values, validated by the schema (ValueError naming the swept value if refused)."""
    from arb.config.schema import RiskSettings, Thresholds

    try:
        thresholds = Thresholds.model_validate(
            settings.thresholds.model_dump() | {"min_net_spread": point.min_edge, "max_slippage": point.max_slippage}
        )
    except ValidationError as exc:
        raise ValueError(f"min_edge={point.min_edge} / max_slippage={point.max_slippage}: {_first(exc)}") from None
    try:
        risk = RiskSettings.model_validate(settings.risk.model_dump() | {"max_order_notional_usd": point.size})
    except ValidationError as exc:
        raise ValueError(f"size={point.size}: {_first(exc)}") from None
    return settings.model_copy(update={"thresholds": thresholds, "risk": risk})


def _first(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(map(str, err['loc']))}: {err['msg']}"


def max_drawdown(curve: Sequence[tuple[int, float]]) -> float:
    peak, worst = 0.0, 0.0
    for _, pnl in curve:
        peak = max(peak, pnl)
        worst = max(worst, peak - pnl)
    return worst


def run_point(tape_dir: str, config_path: str | None, point: SweepPoint, latency_ms: float) -> SweepResult:
    """One replay at `point` (in a worker process): settings as the CLI loads them, the point applied."""
    from arb.backtest.replay import replay
    from arb.config import load_settings

    settings = apply_point(load_settings(config_path), point)
    report = asyncio.run(replay(tape_dir, settings, latency_ms=latency_ms))
    return SweepResult(
        point=point, opportunities=report.opportunities, executed=report.executed, done=report.done,
        hedged=report.hedged, failed=report.failed, escalated=report.escalated,
        realized_pnl_usd=report.realized_pnl_usd, predicted_pnl_usd=report.predicted_pnl_usd,
        edge_capture=report.edge_capture, max_drawdown_usd=max_drawdown(report.pnl_curve),
    )  # fmt: skip


def rank(results: Sequence[SweepResult]) -> list[SweepResult]:
    ordered = sorted(
        results,
        key=lambda r: (-r.realized_pnl_usd, r.max_drawdown_usd, r.escalated,
                       r.point.min_edge, r.point.max_slippage, r.point.size),
    )  # fmt: skip
    return [msgspec.structs.replace(r, rank=k + 1) for k, r in enumerate(ordered)]


def run_sweep(
    tape_dir: Path | str,
    config_path: str | None,
    grid: Sequence[SweepPoint],
    *,
    latency_ms: float = 0.0,
    workers: int | None = None,
    progress: Callable[[int, int, SweepResult], None] | None = None,
) -> list[SweepResult]:
    """Replay the tape at every point of `grid` in up to `workers` processes (default: one per core, at most the
    number of points) and return the results ranked (module docstring). Every point is validated before any runs."""
    from arb.backtest.replay import open_tape
    from arb.config import load_settings

    if not grid:
        raise ValueError("the sweep grid is empty")
    open_tape(Path(tape_dir))  # a missing or unfinished tape fails here, not in every worker
    base = load_settings(config_path)
    for point in grid:
        apply_point(base, point)
    n = max(1, min(workers or os.cpu_count() or 1, len(grid)))
    results: list[SweepResult] = []
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=n, mp_context=context) as pool:
        futures = {pool.submit(run_point, str(tape_dir), config_path, p, latency_ms): p for p in grid}
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            log.info("sweep.point_done min_edge=%s max_slippage=%s size=%s realized_pnl=%.2f executed=%d",
                     result.point.min_edge, result.point.max_slippage, result.point.size, result.realized_pnl_usd,
                     result.executed)  # fmt: skip
            if progress is not None:
                progress(len(results), len(grid), result)
    return rank(results)


def as_rows(results: Sequence[SweepResult]) -> list[dict[str, Any]]:
    return [msgspec.to_builtins(r) for r in results]
