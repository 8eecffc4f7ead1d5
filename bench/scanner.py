"""Scanner benchmark: the vectorised spread matrix against the naive pairwise loop. Prints ONE JSON object on stdout
(`./run bench scanner`).

A synthetic market, seeded: 20 CEX venues (taker fees 0.05 %..0.2 %, symbols quoted in USDT or USD, so a pair across
the two currencies pays the USDT haircut and a same-currency pair none), 300 USD instruments each listed on
70 %..100 % of the venues, 20 levels a side per book (level gaps ~0.5 bp, ~$20k a level), every venue within ±1 bp of
the instrument's true price with a 1..5 bp half spread. That grid is calm (no pair clears the minimum net edge); then
~3 % of the rows get one venue's book shifted by 30..100 bps, so the scan also sizes real opportunities. Measured:

* full_scan_ms: `kernel.scan` over every listed cell of that grid (median of many, after warm-up);
* row_update_us: one incremental update: one cell's new book written into the arrays (top of book + 20 levels, what
  `GridMirror.apply` does per cell) then `kernel.scan_raw(..., rows=[i])` on a row that has opportunities (so the
  VWAP walks run), cycling over the dislocated rows; median of thousands, `time.perf_counter_ns`. Turning the result
  rows into Python `Candidate`s is the edge and is reported apart (`row_update_then_candidates_us_stats`);
* naive_full_scan_ms: `arb.scanner.reference.scan` (a dict of venues per instrument, a loop over every ordered pair)
  over the same books as `Quote`s: the baseline; speedup_vs_naive = naive / kernel;
* agree: kernel and naive found the same (instrument, buy venue, sell venue) set with net edges within 1e-9;
* for reference: the calm grid's full scan (reductions only), a calm-row update, and a "stressed" grid where every
  row has a dislocation (the kernel's worst case: every row goes to the pair stage).

Targets (issue): full scan <= 0.5 ms, one-row update <= 20 µs, >= 20x the naive scanner. Exit status 0 when the
benchmark ran and the two scanners agree (a missed target shows in `ok`, not in the exit status); 1 when they disagree.
Progress goes to stderr; the only stdout line is the JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from arb.config.schema import Settings
from arb.grid.layout import GridLayout
from arb.grid.mirror import write_levels
from arb.model import Quote
from arb.scanner import kernel, reference
from arb.scanner.costs import CostModel
from arb.scanner.engine import limits_from
from arb.scanner.kernel import Books, Candidate, Limits
from arb.scanner.reference import CellCost, Found

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
Cell = tuple[int, int, Quote, Quote]
"""(row, column, quote A, quote B): a cell the row-update loop rewrites, alternating A and B."""

N_INSTRUMENTS = 300
N_VENUES = 20
DEPTH = 20
DISLOCATED_FRACTION = 0.03
TARGET_FULL_SCAN_MS = 0.5
TARGET_ROW_UPDATE_US = 20.0
TARGET_SPEEDUP = 20.0
NET_TOLERANCE = 1e-9
USDT_HAIRCUT = 0.0005


def progress(msg: str) -> None:
    print(f"bench.scanner: {msg}", file=sys.stderr, flush=True)


# --- the market -------------------------------------------------------------------------------------------------------


def make_settings(rng: np.random.Generator) -> Settings:
    """20 CEX venues (fees spread over 5..20 bps; two thirds list USDT symbols, one third USD), 300 USD instruments,
    60 % of them on every venue and the rest on a random 14..19 of them."""
    venue_ids = [f"v{j:02d}" for j in range(N_VENUES)]
    fees = rng.permutation(np.linspace(0.0005, 0.002, N_VENUES))
    usdt = rng.permutation(np.arange(N_VENUES) < round(N_VENUES * 2 / 3))
    venues = {
        vid: {"kind": "cex", "name": vid, "region": "eu", "ccxt_id": vid,
              "fees": {"taker": float(fees[j]), "maker": float(fees[j]) / 2}, "quote_currencies": ["USD", "USDT"]}
        for j, vid in enumerate(venue_ids)
    }  # fmt: skip
    instruments: dict[str, Any] = {}
    for i in range(N_INSTRUMENTS):
        base = f"C{i:03d}"
        if rng.random() < 0.6:
            on = np.arange(N_VENUES)
        else:
            on = np.sort(rng.choice(N_VENUES, size=int(rng.integers(14, N_VENUES)), replace=False))
        listed = {venue_ids[j]: f"{base}/{'USDT' if usdt[j] else 'USD'}" for j in on.tolist()}
        instruments[f"{base}/USD"] = {"asset_class": "crypto_alt", "base": base, "quote": "USD", "venues": listed}
    return Settings(
        venues=venues,
        instruments=instruments,
        quote_equivalence={"USD": {"USD": 0.0, "USDT": USDT_HAIRCUT}},
    )


def empty_books(n_i: int, n_v: int, depth: int) -> Books:
    top, deep = (n_i, n_v), (n_i, n_v, depth)
    return Books(*(np.full(top, np.nan) for _ in range(4)), *(np.full(deep, np.nan) for _ in range(4)))


def copy_books(books: Books) -> Books:
    return Books(*(a.copy() for a in books))


def make_books(listed: BoolArray, rng: np.random.Generator) -> Books:
    """Calm books on every listed cell: true price × (1 ± 1 bp) ± a 1..5 bp half spread, 20 levels ~0.5 bp apart,
    each level worth ~$20k."""
    n_i, n_v = listed.shape
    books = empty_books(n_i, n_v, DEPTH)
    true = np.power(10.0, rng.uniform(-2.0, 4.5, n_i))
    mid = true[:, None] * (1.0 + rng.uniform(-1e-4, 1e-4, (n_i, n_v)))
    half = rng.uniform(1e-4, 5e-4, (n_i, n_v))
    gaps = rng.uniform(0.4e-4, 0.6e-4, (2, n_i, n_v, DEPTH))
    gaps[:, :, :, 0] = 0.0
    steps = np.cumsum(gaps, axis=3)  # 0 at the top, ~0.5 bp more per level
    bid_px = (mid * (1.0 - half))[:, :, None] * (1.0 - steps[0])
    ask_px = (mid * (1.0 + half))[:, :, None] * (1.0 + steps[1])
    level_usd = rng.uniform(10_000.0, 30_000.0, (2, n_i, n_v, DEPTH))
    bid_qty = level_usd[0] / bid_px
    ask_qty = level_usd[1] / ask_px
    cells = listed[:, :, None]
    books.bid_px[...] = np.where(cells, bid_px, np.nan)
    books.bid_qty[...] = np.where(cells, bid_qty, np.nan)
    books.ask_px[...] = np.where(cells, ask_px, np.nan)
    books.ask_qty[...] = np.where(cells, ask_qty, np.nan)
    for top, px in ((books.bid, books.bid_px), (books.ask, books.ask_px)):
        top[...] = px[:, :, 0]
    books.bid_size[...] = books.bid_qty[:, :, 0]
    books.ask_size[...] = books.ask_qty[:, :, 0]
    return books


def shift_cell(books: Books, i: int, j: int, factor: float) -> None:
    """Move one venue's whole book by `factor` (sizes in base units unchanged)."""
    for a in (books.bid_px, books.ask_px):
        a[i, j] *= factor
    books.bid[i, j] = books.bid_px[i, j, 0]
    books.ask[i, j] = books.ask_px[i, j, 0]


@dataclass(frozen=True, slots=True)
class Dislocation:
    row: int
    col: int
    factor: float


def dislocate(books: Books, listed: BoolArray, rows: IntArray, rng: np.random.Generator) -> list[Dislocation]:
    """Shift one listed venue's book in each of `rows` by 30..100 bps, up or down."""
    out = []
    for i in rows.tolist():
        j = int(rng.choice(np.flatnonzero(listed[i])))
        bps = rng.uniform(30.0, 100.0) * (1 if rng.random() < 0.5 else -1)
        factor = 1.0 + bps / 1e4
        shift_cell(books, i, j, factor)
        out.append(Dislocation(i, j, factor))
    return out


def cell_quote(books: Books, layout: GridLayout, i: int, j: int, ts: int) -> Quote:
    def levels(px: FloatArray, qty: FloatArray) -> tuple[tuple[float, float], ...]:
        p, q = px[i, j], qty[i, j]
        n = int(np.count_nonzero(p == p))
        return tuple(zip(p[:n].tolist(), q[:n].tolist(), strict=True))

    return Quote(
        venue=layout.venues[j],
        instrument=layout.instruments[i],
        bid=float(books.bid[i, j]),
        bid_size=float(books.bid_size[i, j]),
        ask=float(books.ask[i, j]),
        ask_size=float(books.ask_size[i, j]),
        ts_exchange=ts,
        ts_recv=ts,
        bids=levels(books.bid_px, books.bid_qty),
        asks=levels(books.ask_px, books.ask_qty),
    )


def as_quotes(books: Books, layout: GridLayout, usable: BoolArray) -> dict[str, dict[str, Quote]]:
    """The same books as the naive scanner's input: a dict of venues (usable cells only) per instrument."""
    ts = time.time_ns()
    return {
        iid: {layout.venues[j]: cell_quote(books, layout, i, j, ts) for j in np.flatnonzero(usable[i]).tolist()}
        for i, iid in enumerate(layout.instruments)
    }


def cell_costs(costs: CostModel) -> dict[tuple[str, str], CellCost]:
    layout = costs.layout
    out = {}
    for i, j in np.argwhere(costs.listed).tolist():
        out[layout.instruments[i], layout.venues[j]] = CellCost(
            float(costs.fee[i, j]), float(costs.haircut[i, j]), float(costs.gas_quote[i, j]),
            currency=costs.venue_quote(i, j),
        )  # fmt: skip
    return out


def pair_costs(costs: CostModel, i: int, cols: IntArray) -> FloatArray:
    """(buy × sell) fees plus the pair haircut of row `i` over venue columns `cols` (haircut only across currencies)."""
    fee, hc, code = costs.fee[i, cols], costs.haircut[i, cols], costs.quote_code[i, cols]
    haircut = np.where(code[:, None] == code[None, :], 0.0, hc[:, None] + hc[None, :])
    out: FloatArray = fee[:, None] + fee[None, :] + haircut
    return out


# --- the update path --------------------------------------------------------------------------------------------------


def write_cell(books: Books, i: int, j: int, q: Quote) -> None:
    """One cell's new quote into the arrays, as `GridMirror.apply` does it (top of book, then `write_levels`)."""
    books.bid[i, j] = q.bid
    books.bid_size[i, j] = q.bid_size
    books.ask[i, j] = q.ask
    books.ask_size[i, j] = q.ask_size
    write_levels(books.bid_px, books.bid_qty, i, j, q.bids)
    write_levels(books.ask_px, books.ask_qty, i, j, q.asks)


# --- measuring --------------------------------------------------------------------------------------------------------


def summary(values: list[float], digits: int = 4) -> dict[str, float]:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {
        "median": round(statistics.median(ordered), digits),
        "p90": round(p90, digits),
        "min": round(ordered[0], digits),
        "n": len(ordered),
    }


def timed_ms(fn: Callable[[], object], reps: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    gc.collect()
    out = []
    clock = time.perf_counter_ns
    for _ in range(reps):
        t0 = clock()
        fn()
        out.append((clock() - t0) / 1e6)
    return out


def row_updates(
    books: Books,
    costs: CostModel,
    usable: BoolArray,
    limits: Limits,
    cells: list[Cell],
    reps: int,
    objects: list[float] | None = None,
) -> tuple[list[float], list[float], list[list[float]], list[int]]:
    """`reps` updates cycling over `cells` (row, col, quote A, quote B; A and B alternate so every write changes the
    book): write the cell, scan its row to the kernel's result array (`scan_raw`; building a Python object per
    candidate is the edge, measured after). Returns total µs and write µs per update, scan µs per update of each
    cell, and candidates found per update; `objects` receives the µs of turning each result into `Candidate`s."""
    total: list[float] = []
    write: list[float] = []
    scan_us: list[list[float]] = [[] for _ in cells]
    found: list[int] = []
    objects = [] if objects is None else objects
    clock = time.perf_counter_ns
    scan = kernel.scan_raw
    gc.collect()
    for k in range(reps):
        i, j, qa, qb = cells[k % len(cells)]
        q = qa if (k // len(cells)) % 2 else qb
        t0 = clock()
        write_cell(books, i, j, q)
        t1 = clock()
        out = scan(books, costs, usable, limits, rows=np.array([i]))
        t2 = clock()
        total.append((t2 - t0) / 1e3)
        write.append((t1 - t0) / 1e3)
        scan_us[k % len(cells)].append((t2 - t1) / 1e3)
        n_found = len(kernel.candidates(out))
        objects.append((clock() - t2) / 1e3)
        found.append(n_found)
    for i, j, qa, _ in cells:  # leave the books as they were
        write_cell(books, i, j, qa)
    return total, write, scan_us, found


def pairs_to_size(books: Books, costs: CostModel, usable: BoolArray, i: int, limits: Limits) -> int:
    """Ordered pairs of row `i` whose top-of-book edge after fees and haircuts clears the minimum (each one is sized:
    a VWAP walk per leg)."""
    cols = np.flatnonzero(usable[i])
    bid, ask = books.bid[i, cols], books.ask[i, cols]
    edge = bid[None, :] / ask[:, None] - 1.0 - pair_costs(costs, i, cols)
    np.fill_diagonal(edge, -np.inf)
    return int(np.count_nonzero(edge > limits.min_edge))


def one_pair_row(
    books: Books, costs: CostModel, usable: BoolArray, limits: Limits, skip: set[int]
) -> Dislocation | None:
    """Shift one venue's book up in a calm row just enough that exactly one ordered pair clears the top-of-book
    bound and sizes into an opportunity (the smallest incremental update that runs a VWAP walk). Modifies `books`."""
    for i in range(books.bid.shape[0]):
        if i in skip:
            continue
        for v in np.flatnonzero(usable[i]).tolist():
            others = [a for a in np.flatnonzero(usable[i]).tolist() if a != v]
            fee = costs.fee[i]
            need = sorted(
                (1.0 + limits.min_edge + fee[a] + fee[v] + costs.pair_haircut(i, a, i, v))
                * books.ask[i, a] / books.bid[i, v]
                for a in others
            )  # fmt: skip
            if need[1] - need[0] < 4e-4:  # room for ~1 bp of slippage below the second pair's threshold
                continue
            factor = float(need[0] + 3e-4)
            shift_cell(books, i, v, factor)
            if (
                pairs_to_size(books, costs, usable, i, limits) == 1
                and len(kernel.scan_row(books, costs, usable, i, limits)) == 1
            ):
                return Dislocation(i, v, factor)
            shift_cell(books, i, v, 1.0 / factor)
    return None


def keyed_kernel(found: list[Candidate], layout: GridLayout) -> dict[tuple[str, str, str], float]:
    return {(layout.instruments[c.row], layout.venues[c.buy], layout.venues[c.sell]): c.net for c in found}


def keyed_naive(found: list[Found]) -> dict[tuple[str, str, str], float]:
    return {(f.instrument, f.buy_venue, f.sell_venue): f.net for f in found}


def agreement(kern: dict[tuple[str, str, str], float], naive: dict[tuple[str, str, str], float]) -> dict[str, Any]:
    same_keys = kern.keys() == naive.keys()
    worst = max((abs(kern[k] - naive[k]) for k in kern.keys() & naive.keys()), default=0.0)
    return {
        "agree": same_keys and worst <= NET_TOLERANCE,
        "only_kernel": len(kern.keys() - naive.keys()),
        "only_naive": len(naive.keys() - kern.keys()),
        "max_net_diff": worst,
    }


def update_cells(
    books: Books, layout: GridLayout, disl: list[Dislocation], rng: np.random.Generator, wiggle: float = 2e-4
) -> list[Cell]:
    """Per dislocated cell: its current quote and a variant up to `wiggle` further out (still an opportunity)."""
    ts = time.time_ns()
    out = []
    for d in disl:
        qa = cell_quote(books, layout, d.row, d.col, ts)
        alt = copy_books(books)
        shift_cell(alt, d.row, d.col, 1.0 + math.copysign(rng.uniform(0.0, wiggle), d.factor - 1.0))
        out.append((d.row, d.col, qa, cell_quote(alt, layout, d.row, d.col, ts)))
    return out


def calm_cells(books: Books, layout: GridLayout, usable: BoolArray, disl: list[Dislocation], n: int) -> list[Cell]:
    """`n` cells of rows without a dislocation, each rewritten with its own quote (the row screen rejects them)."""
    ts = time.time_ns()
    skip = {d.row for d in disl}
    out = []
    for i in [r for r in range(books.bid.shape[0]) if r not in skip][:n]:
        j = int(np.flatnonzero(usable[i])[0])
        q = cell_quote(books, layout, i, j, ts)
        out.append((i, j, q, q))
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    settings = make_settings(rng)
    layout = GridLayout.from_settings(settings)
    costs = CostModel(settings, layout)
    limits = limits_from(settings)
    usable = costs.listed.copy()
    n_i, n_v = layout.shape
    listed_cells = int(usable.sum())
    counts = usable.sum(axis=1)
    pairs = int((counts * (counts - 1)).sum())

    calm = make_books(usable, rng)
    calm_found = kernel.scan(calm, costs, usable, limits)
    calm_rows = kernel.screen_rows(calm.bid, calm.ask, costs.fee, usable, limits.min_edge)

    books = copy_books(calm)
    n_disl = max(1, round(DISLOCATED_FRACTION * n_i))
    disl = dislocate(books, usable, np.sort(rng.choice(n_i, n_disl, replace=False)), rng)
    stressed = copy_books(calm)
    dislocate(stressed, usable, np.arange(n_i), rng)
    progress(f"market built in {time.perf_counter() - started:.1f}s: {n_i}x{n_v}, {listed_cells} cells, {pairs} pairs")

    # full scan: kernel
    found = kernel.scan(books, costs, usable, limits)
    full_ms = timed_ms(lambda: kernel.scan(books, costs, usable, limits), args.reps, args.reps // 10 + 5)
    calm_ms = timed_ms(lambda: kernel.scan(calm, costs, usable, limits), args.reps, 5)
    stressed_found = kernel.scan(stressed, costs, usable, limits)
    stressed_ms = timed_ms(lambda: kernel.scan(stressed, costs, usable, limits), args.stressed_reps, 2)
    progress(f"kernel full scan {statistics.median(full_ms):.3f} ms, stressed {statistics.median(stressed_ms):.2f} ms")

    # one-row updates
    cells = update_cells(books, layout, disl, rng)
    row_objects: list[float] = []
    row_total, row_write, row_scan, row_found = row_updates(
        books, costs, usable, limits, cells, args.updates, row_objects
    )
    calm_total, _, _, calm_row_found = row_updates(
        books, costs, usable, limits, calm_cells(books, layout, usable, disl, 50), args.updates
    )
    per_row = []
    for d, scan_us in zip(disl, row_scan, strict=True):
        per_row.append({
            "row": d.row,
            "shift_bps": round((d.factor - 1.0) * 1e4, 1),
            "pairs_sized": pairs_to_size(books, costs, usable, d.row, limits),
            "opportunities": len(kernel.scan_row(books, costs, usable, d.row, limits)),
            "scan_us_median": round(statistics.median(scan_us), 2),
        })  # fmt: skip
    slope, intercept = np.polyfit([r["pairs_sized"] for r in per_row], [r["scan_us_median"] for r in per_row], 1)
    single = copy_books(books)
    one = one_pair_row(single, costs, usable, limits, {d.row for d in disl})
    one_total: list[float] = []
    if one is not None:
        one_cells = update_cells(single, layout, [one], rng, wiggle=0.5e-4)
        one_total, _, _, one_found = row_updates(single, costs, usable, limits, one_cells, args.updates)
        if set(one_found) != {1}:
            raise RuntimeError(f"the one-pair row found {sorted(set(one_found))} opportunities, not always 1")
    progress(
        f"row update {statistics.median(row_total):.1f} µs (one-pair row "
        f"{statistics.median(one_total) if one_total else float('nan'):.1f} µs, calm row "
        f"{statistics.median(calm_total):.1f} µs)"
    )

    # the naive baseline, and agreement
    quotes = as_quotes(books, layout, usable)
    ccosts = cell_costs(costs)
    usd = {iid: float(costs.usd_per_quote[i]) for i, iid in enumerate(layout.instruments)}
    naive_found = reference.scan(quotes, ccosts, usd, limits)
    naive_ms = timed_ms(lambda: reference.scan(quotes, ccosts, usd, limits), args.naive_reps, 1)
    agree = agreement(keyed_kernel(found, layout), keyed_naive(naive_found))
    progress(f"naive full scan {statistics.median(naive_ms):.1f} ms")
    stressed_agree = agreement(
        keyed_kernel(stressed_found, layout),
        keyed_naive(reference.scan(as_quotes(stressed, layout, usable), ccosts, usd, limits)),
    )
    calm_agree = agreement(
        keyed_kernel(calm_found, layout),
        keyed_naive(reference.scan(as_quotes(calm, layout, usable), ccosts, usd, limits)),
    )

    full = statistics.median(full_ms)
    row = statistics.median(row_total)
    naive = statistics.median(naive_ms)
    speedup = naive / full
    return {
        "bench": "scanner",
        "full_scan_ms": round(full, 4),
        "row_update_us": round(row, 2),
        "naive_full_scan_ms": round(naive, 2),
        "speedup_vs_naive": round(speedup, 1),
        "agree": agree["agree"] and stressed_agree["agree"] and calm_agree["agree"],
        "n_instruments": n_i,
        "n_venues": n_v,
        "depth": DEPTH,
        "listed_cells": listed_cells,
        "pairs": pairs,
        "limits": {
            "min_edge": limits.min_edge,
            "max_slippage": limits.max_slippage,
            "min_notional_usd": limits.min_notional_usd,
            "max_notional_usd": limits.max_notional_usd,
        },
        "dislocated_rows": len(disl),
        "screened_rows": int(kernel.screen_rows(books.bid, books.ask, costs.fee, usable, limits.min_edge).size),
        "opportunities_kernel": len(found),
        "opportunities_naive": len(naive_found),
        "agreement": agree,
        "full_scan_ms_stats": summary(full_ms),
        "naive_full_scan_ms_stats": summary(naive_ms, 2),
        "row_update_us_stats": summary(row_total, 2),
        "row_update_write_us_stats": summary(row_write, 2),
        "row_update_scan_us_stats": summary([x for xs in row_scan for x in xs], 2),
        "row_update_then_candidates_us_stats": summary(row_objects, 2),
        "row_update_found_every_time": min(row_found) > 0,
        "row_update_rows": per_row,
        "row_scan_fit_us": {"per_sized_pair": round(float(slope), 2), "fixed": round(float(intercept), 2)},
        "row_update_one_pair_us": summary(one_total, 2) if one_total else None,
        "calm": {
            "opportunities": len(calm_found),
            "screened_rows": int(calm_rows.size),
            "full_scan_ms": summary(calm_ms),
            "row_update_us": summary(calm_total, 2),
            "row_update_found": sum(calm_row_found),
            "agreement": calm_agree,
        },
        "stressed": {
            "dislocated_rows": n_i,
            "opportunities": len(stressed_found),
            "full_scan_ms": summary(stressed_ms, 3),
            "agreement": stressed_agree,
        },
        "targets": {
            "full_scan_ms": TARGET_FULL_SCAN_MS,
            "row_update_us": TARGET_ROW_UPDATE_US,
            "speedup_vs_naive": TARGET_SPEEDUP,
        },
        "ok": {
            "full_scan_ms": full <= TARGET_FULL_SCAN_MS,
            "row_update_us": row <= TARGET_ROW_UPDATE_US,
            "speedup_vs_naive": speedup >= TARGET_SPEEDUP,
            "agree": agree["agree"],
        },
        "seed": args.seed,
        "quick": args.quick,
        "elapsed_s": round(time.perf_counter() - started, 1),
        "env": {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a few seconds)")
    parser.add_argument("--seed", type=int, default=20240607)
    parser.add_argument("--reps", type=int, default=None, help="full-scan repetitions (default 500, quick 100)")
    parser.add_argument("--updates", type=int, default=None, help="one-row updates (default 5000, quick 1000)")
    parser.add_argument("--naive-reps", type=int, default=None, help="naive scans (default 5, quick 2)")
    parser.add_argument("--stressed-reps", type=int, default=None, help="stressed-grid scans (default 20, quick 5)")
    args = parser.parse_args()
    defaults = (("reps", 500, 100), ("updates", 5000, 1000), ("naive_reps", 5, 2), ("stressed_reps", 20, 5))
    for name, full, quick in defaults:
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    result = run(args)
    result["ok"]["all"] = all(result["ok"].values())
    print(json.dumps(result))
    return 0 if result["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
