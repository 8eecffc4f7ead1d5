"""`arb scan`: the ranked opportunities with their cost breakdown, once or following the live grid.

Where the data comes from: with ARB_REDIS_URL set, the running grid (its connectors publish quotes and venue health
there); this process builds a depth mirror of it and scans with the configured limits. Without it there is no grid to
read, so, like `arb demo`, it starts the local stack (embedded Redis, local venues, connector workers, the scanner),
lets it warm up for `--warmup` seconds and shows what the live scanner has open.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live
from rich.table import Table

from arb.model import Opportunity

if TYPE_CHECKING:
    from arb.config.schema import Settings
    from arb.scanner.kernel import Limits


@dataclasses.dataclass(frozen=True)
class ScanFilter:
    instrument: str | None = None
    top: int = 20
    min_edge_bps: float | None = None

    def limits(self, settings: Settings) -> Limits:
        from arb.scanner.engine import limits_from

        base = limits_from(settings)
        if self.min_edge_bps is None:
            return base
        return dataclasses.replace(base, min_edge=self.min_edge_bps / 1e4)

    def apply(self, opps: list[Opportunity]) -> list[Opportunity]:
        kept = [o for o in opps if self.instrument in (None, o.instrument)]
        return sorted(kept, key=lambda o: -o.priority)[: self.top]


def _bps(x: float) -> str:
    return f"{x * 1e4:.1f}"


def opportunity_table(opps: list[Opportunity], title: str) -> Table:
    table = Table(title=title)
    cols = ("#", "instrument", "buy", "sell", "size", "notional", "gross", "fees", "haircut", "gas", "slippage",
            "net bps", "profit", "transfer", "priority", "age ms", "flags", "id (arb execute)")  # fmt: skip
    for c in cols:
        left = c in ("instrument", "buy", "sell", "flags") or c.startswith("id")
        table.add_column(c, justify="left" if left else "right", overflow="fold" if c.startswith("id") else "ellipsis")
    for k, o in enumerate(opps, 1):
        flags = ",".join(
            f
            for f, on in (
                (o.kind, o.kind != "spot"),
                (f"funding={o.funding * 1e4:+.1f}bps", o.kind == "basis"),
                ("depth=estimated", o.depth_estimated),
                (f"wallet={o.wallet}", o.wallet in ("suspended", "unknown")),
            )
            if on
        )
        transfer = f"{o.transfer_cost:,.2f}" if o.wallet in ("open", "suspended") else "-"
        table.add_row(
            str(k), o.instrument, o.buy_venue, o.sell_venue, f"{o.size:.6g}", f"{o.notional:,.0f} {o.quote_currency}",
            _bps(o.gross_spread), _bps(o.fee_buy + o.fee_sell), _bps(o.haircut), _bps(o.gas), _bps(o.slippage),
            f"[bold]{o.net_edge_bps:.1f}[/]", f"{o.profit:,.2f}", transfer, f"{o.priority:.4g}",
            f"{max(o.buy_quote_age_ms, o.sell_quote_age_ms):.0f}", flags, o.id,
        )  # fmt: skip
    table.caption = (
        "edges in bps of the buy VWAP; net = gross - slippage - fees - haircut - gas (+ funding for basis); transfer ="
        " cost of moving the inventory back (withdraw fees, quote currency), shown apart, not in net"
    )
    return table


async def scan_grid(
    settings: Settings,
    url: str,
    flt: ScanFilter,
    *,
    follow_s: float | None = None,
    on_result: Callable[[list[Opportunity]], None],
    refresh_s: float = 1.0,
) -> None:
    """Scan the running grid at `url`: once (follow_s None) or every `refresh_s` for `follow_s` seconds (inf: until
    cancelled). Raises GridError when Redis cannot be read."""
    from arb.grid import GridLayout, PriceGrid
    from arb.scanner.engine import Scanner

    async with PriceGrid.from_url(url, GridLayout.from_settings(settings), settings.grid) as grid:
        mirror = grid.mirror(depth=20)
        scanner = Scanner(settings, mirror, limits=flt.limits(settings))
        if follow_s is None:
            await mirror.rebuild()
            await scanner.refresh_inputs()
            on_result(flt.apply(scanner.scan_once()))
            return
        async with mirror.following(), scanner:
            deadline = time.monotonic() + follow_s
            while time.monotonic() < deadline:
                await asyncio.sleep(refresh_s)
                on_result(flt.apply(scanner.ranked()))


async def scan_local(
    settings: Settings, flt: ScanFilter, *, seconds: float, config_path: str | None, console: Console
) -> list[Opportunity]:
    """Run the local stack for `seconds` and return what its live scanner has open at the end."""
    from arb.demo import DemoOptions, run_stack

    if flt.min_edge_bps is not None:
        thresholds = settings.thresholds.model_copy(update={"min_net_spread": flt.min_edge_bps / 1e4})
        settings = settings.model_copy(update={"thresholds": thresholds})
    run = await run_stack(settings, console, DemoOptions(seconds=seconds, as_json=True, config_path=config_path))
    return flt.apply(run.open)


def live(console: Console) -> tuple[contextlib.AbstractContextManager[object], Callable[[Table], None]]:
    """A Live display on a terminal, plain prints otherwise."""
    if console.is_terminal:
        view = Live(console=console, auto_refresh=False)
        return view, lambda t: view.update(t, refresh=True)
    return contextlib.nullcontext(), console.print
