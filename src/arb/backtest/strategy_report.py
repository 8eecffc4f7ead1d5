"""The directional backtest's report on disk: `report.json`, `report.html` and `equity.png`.

    paths = write(result, out_dir)  # result: a `Comparison` (one backtest) or a `WalkForwardResult`

`report.json` is a pure function of the result (sorted keys, no wall-clock figures), so two runs of the same
backtest write byte-identical files. The HTML page is self-contained apart from `equity.png` beside it: a metrics
table (strategy against both baselines), the per-window table of a walk-forward, and the picture. The PNG is drawn
with matplotlib's Agg canvas directly (no pyplot: no global figure state, safe in a server process): equity of the
strategy and both baselines, and their drawdowns in a second panel.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np
import pandas as pd

from arb.backtest.directional import BASELINES, Comparison
from arb.backtest.metrics import drawdown
from arb.backtest.walkforward import WalkForwardResult

Result = Comparison | WalkForwardResult

FILES: Final = {"json": "report.json", "html": "report.html", "png": "equity.png"}
ROWS: Final = (
    ("total_return", "total return", "pct"),
    ("cagr", "CAGR", "pct"),
    ("sharpe", "Sharpe", "num"),
    ("sortino", "Sortino", "num"),
    ("calmar", "Calmar", "num"),
    ("max_drawdown", "max drawdown", "pct"),
    ("annual_vol", "annual volatility", "pct"),
    ("win_rate", "win rate", "pct"),
    ("profit_factor", "profit factor", "num"),
    ("trades", "trades", "int"),
    ("exposure", "exposure", "pct"),
    ("bars", "bars", "int"),
)
NAMES: Final = ("strategy", *BASELINES)
COLORS: Final = {"strategy": "#1f77b4", "buy_and_hold": "#7f7f7f", "sma_crossover": "#ff7f0e"}


def document(result: Result) -> dict[str, Any]:
    """What `report.json` holds: the result's summary, the strategy's trades and the equity curves."""
    doc = result.to_dict()
    ts, curves = _curves(result)
    doc["kind"] = "walk_forward" if isinstance(result, WalkForwardResult) else "backtest"
    if isinstance(result, WalkForwardResult):
        # each window's trades as that window booked them (on `initial_equity`, not scaled to the stitched curve)
        doc["trades"] = [
            {"window": w.index, **t} for w in result.windows for t in msgspec.to_builtins(w.strategy.trades)
        ]
    doc["curves"] = {"ts": [t.isoformat() for t in ts], **{k: [float(x) for x in v] for k, v in curves.items()}}
    return doc


def _curves(result: Result) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray]]:
    """Equity per bar close, oldest first; the first point is the starting capital (at the close before bar 1)."""
    if isinstance(result, WalkForwardResult):
        step = pd.Timedelta(seconds=365.0 * 86400.0 / result.periods_per_year)
        ts = pd.DatetimeIndex([result.ts[0] - step]).append(result.ts)
        return ts, {k: result.equity_with_start(k) for k in NAMES}
    runs = {"strategy": result.strategy, **result.baselines}
    return result.strategy.ts, {k: runs[k].equity for k in NAMES}


def write(result: Result, out_dir: Path | str) -> dict[str, Path]:
    """Write the three files into `out_dir` (created if needed); returns their paths by kind (json, html, png)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / name for k, name in FILES.items()}
    paths["json"].write_bytes(msgspec.json.format(msgspec.json.encode(document(result), order="sorted"), indent=1))
    _png(result, paths["png"])
    paths["html"].write_text(render_html(result), encoding="utf-8")
    return paths


# --- PNG -------------------------------------------------------------------------------------------------------------
def _png(result: Result, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ts, curves = _curves(result)
    x = ts.tz_convert(None).to_numpy()
    fig = Figure(figsize=(10, 6), dpi=100)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    for name in NAMES:
        top.plot(x, curves[name], label=name, color=COLORS[name], linewidth=1.2 if name == "strategy" else 0.9)
        bottom.plot(x, -100.0 * drawdown(curves[name]), color=COLORS[name], linewidth=0.9)
    if isinstance(result, WalkForwardResult):
        for w in result.windows[1:]:
            start = pd.Timestamp(w.times["test_start"]).tz_convert(None)
            top.axvline(start.to_numpy(), color="#cccccc", linewidth=0.6, zorder=0)
    title = "walk-forward (out-of-sample)" if isinstance(result, WalkForwardResult) else "backtest"
    top.set_title(f"{title}: equity")
    top.set_ylabel("equity")
    top.legend(loc="upper left", fontsize="small")
    top.grid(alpha=0.3)
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.savefig(path, format="png", metadata={"Software": None})


# --- HTML ------------------------------------------------------------------------------------------------------------
def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "unbounded"
    if kind == "pct":
        return f"{100.0 * value:.2f} %"
    if kind == "int":
        return str(int(value))
    return f"{value:.3f}"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _metrics_table(doc: dict[str, Any]) -> str:
    figures = {"strategy": doc["strategy"], **doc["baselines"]}
    rows = [[label, *(_fmt(figures[n][key], kind) for n in NAMES)] for key, label, kind in ROWS]
    return _table(["", *NAMES], rows)


def _windows_table(doc: dict[str, Any]) -> str:
    rows = []
    for w in doc["windows"]:
        s, b = w["strategy"], w["baselines"]
        rows.append(
            [
                str(w["index"]),
                f"{w['train']['start']} .. {w['train']['end']}",
                f"{w['test']['start']} .. {w['test']['end']}",
                _fmt(s["total_return"], "pct"),
                _fmt(s["sharpe"], "num"),
                _fmt(s["max_drawdown"], "pct"),
                _fmt(s["trades"], "int"),
                _fmt(b["buy_and_hold"]["total_return"], "pct"),
                _fmt(b["sma_crossover"]["total_return"], "pct"),
            ]
        )
    headers = ["#", "train", "test (out of sample)", "return", "Sharpe", "max DD", "trades", "B&H return", "SMA return"]
    return _table(headers, rows)


CSS: Final = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
    "th,td{border:1px solid #ccc;padding:4px 10px;text-align:right}th:first-child,td:first-child{text-align:left}"
    "img{max-width:100%}"
)


def render_html(result: Result) -> str:
    doc = result.to_dict()
    period = doc["period"]
    walk = isinstance(result, WalkForwardResult)
    title = "Walk-forward report (out-of-sample only)" if walk else "Directional backtest report"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(period['start'])} .. {html.escape(period['end'])} ({period['bars']} bars). "
        "Baselines trade the same bars with the same fees, slippage and leverage (no stops).</p>",
        "<h2>Strategy against baselines</h2>",
        _metrics_table(doc),
        "<img src='equity.png' alt='equity and drawdown'>",
    ]
    if walk:
        parts += ["<h2>Windows</h2>", _windows_table(doc)]
        cfg = doc["config"]
        parts.append(
            f"<p>train {cfg['train_bars']} bars, test {cfg['test_bars']}, step {cfg['step_bars']}; "
            f"{html.escape(str(cfg['algo']))}, {cfg['timesteps']} timesteps per window, seed {cfg['seed']}.</p>"
        )
    parts.append("</body></html>\n")
    return "\n".join(parts)
