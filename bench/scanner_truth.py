"""Ground truth for the scanner: recall, precision and detection latency on the local venues' injected dislocations.

Runs the demo stack (embedded Redis, `python -m arb.sim` with a dislocation schedule and a truth file, two connector
workers with the real ccxt.pro classes, the scanner in this process) on the five venues with full protocol modules,
then scores every opportunity event against the truth (`arb.scanner.truth`). Prints one JSON object with `recall`,
`precision`, `detection_latency_ms_p99` and the event counts.

    ./run bench truth            # the long run (>= 200 dislocations, 150 s)
    ./run bench truth --quick    # 40 s

Targets (issue 4): recall >= 99 % of the dislocations whose true net edge clears the threshold, precision 100 %,
detection latency (injection -> opportunity event) p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import msgspec

from arb.demo import measure_truth
from arb.logs import configure_logging

VENUES = ("binance", "okx", "bybit", "kraken", "coinbase")


async def run(seconds: float, rate_per_min: float, bps: tuple[float, float], warmup_s: float) -> dict[str, object]:
    run = await measure_truth(VENUES, seconds=seconds, warmup_s=warmup_s, rate_per_min=rate_per_min, bps=bps)
    out = msgspec.to_builtins(run.report)
    out.update(
        seconds=run.demo.seconds,
        warmup_s=run.demo.warmup_s,
        venues=list(VENUES),
        venues_connected=run.demo.venues_connected,
        updates_per_s=run.demo.updates_per_s,
        feed_latency_ms=run.demo.latency_ms,
        injected_total=run.injected,
        dislocation_bps=list(bps),
        work_dir=run.work_dir,
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="40 s instead of 150 s")
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--rate", type=float, default=100.0, help="dislocations per minute")
    args = p.parse_args()
    configure_logging("WARNING")
    seconds = args.seconds or (40.0 if args.quick else 150.0)
    result = asyncio.run(run(seconds, args.rate, (20.0, 140.0), warmup_s=10.0))
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")


if __name__ == "__main__":
    main()
