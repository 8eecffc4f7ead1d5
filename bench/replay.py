"""Replay benchmark: quotes a second through the scanner and the paper executor. Prints ONE JSON object
(`./run bench replay [--quick] [--data TAPE]`).

Set-up: a tape of the embedded local-venue demo (recorded here with `arb record --demo`, 30 s, or 15 s with
`--quick`; or `--data DIR` for an existing tape), replayed as fast as possible through the same code as live
(`arb.backtest.replay`: offline mirror, `Scanner.step` where the live scanner stepped, the executor with paper
gateways on the simulated clock, a throw-away SQLite ledger run inline). Measured: `quotes_per_s`, the replay's own
figure (`ReplayReport.perf`: from the first chunk read to the last execution settled: tape decode, mirror, scanner,
executor, risk, ledger, paper funding; not the process's one-off start-up: imports, numba's cached kernels, the
ledger schema); target (issue 9) >= 200,000. Also: `end_to_end_quotes_per_s`, the whole call including that
start-up and the report (truth scoring re-reads the local venues' truth log and re-walks every dislocation's books:
a fixed cost per dislocation, not per quote); in the same run, the scan-only replay (`scan_only_quotes_per_s`,
execute=False) and the tape's live rate (`recorded_quotes_per_s`: quotes over the recorded span), whose ratio
`x_real_time` says how much faster than the market the replay runs. `live_opened` / `live_found`: the opportunities
the live scanner opened while recording and how many the replay opened with the same id; `ok.replay_matches_live`
is false when the tape does not replay what live saw (then the figure is not of the workload it claims to be).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from arb.backtest.replay import replay
from arb.backtest.tape import read_manifest
from arb.config import load_settings
from arb.logs import configure_logging


def progress(msg: str) -> None:
    sys.stderr.write(f"bench.replay: {msg}\n")


def record(seconds: int, hz: float) -> Path:
    out = Path(tempfile.mkdtemp(prefix="arb-bench-replay-")) / "tape"
    progress(f"recording {seconds} s of the local-venue demo at {hz} book updates/s -> {out}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARB_")} | {"ARB_LOG_LEVEL": "WARNING"}
    env["ARB_DATABASE_URL"] = f"sqlite+aiosqlite:///{out.parent / 'demo.db'}"
    subprocess.run(  # noqa: S603
        [sys.executable, "-m", "arb", "record", "--demo", "--out", str(out), "--seconds", str(seconds), "--json",
         "--book-update-hz", str(hz)],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tape = Path(args.data) if args.data else record(15 if args.quick else 30, args.book_update_hz)
    manifest = read_manifest(tape)
    settings = load_settings()
    span_s = ((manifest.last_recv_ns or 0) - (manifest.first_recv_ns or 0)) / 1e9
    progress(f"replaying {manifest.quotes} quotes ({manifest.entries} entries, {span_s:.1f} s recorded), scan only")
    scan = await replay(tape, settings, execute=False)
    progress("replaying with the paper executor")
    t0 = time.perf_counter()
    full = await replay(tape, settings, execute=True)
    full_s = time.perf_counter() - t0
    if full.perf is None or scan.perf is None:
        raise RuntimeError("the replay reported no timing")
    qps = full.perf.quotes_per_s
    recorded = manifest.quotes / span_s if span_s > 0 else None
    live_opened, live_found = (full.live.live_opened, full.live.found) if full.live is not None else (None, None)
    return {
        "quotes_per_s": round(qps),
        "scan_only_quotes_per_s": round(scan.perf.quotes_per_s),
        "end_to_end_quotes_per_s": round(manifest.quotes / full_s),
        "recorded_quotes_per_s": None if recorded is None else round(recorded),
        "x_real_time": None if recorded is None else round(qps / recorded, 1),
        "quotes": manifest.quotes,
        "entries": manifest.entries,
        "replay_s": round(full.perf.wall_s, 3),
        "end_to_end_s": round(full_s, 3),
        "opportunities": full.opportunities,
        "executed": full.executed,
        "realized_pnl_usd": round(full.realized_pnl_usd, 4),
        "scan_only_opportunities": scan.opportunities,
        "live_opened": live_opened,
        "live_found": live_found,
        "ok": {
            "quotes_per_s_ge_200k": qps >= 200_000,
            "replay_matches_live": bool(live_opened) and live_found == live_opened,
        },
        "quick": args.quick,
        "tape": str(tape),
        "env": {"python": platform.python_version()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="record 15 s instead of 30")
    parser.add_argument("--data", default=None, help="replay this tape instead of recording one")
    parser.add_argument("--book-update-hz", type=float, default=1.0, help="the recorded demo's book refresh rate")
    args = parser.parse_args()
    configure_logging("WARNING")
    print(json.dumps(asyncio.run(run(args))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
