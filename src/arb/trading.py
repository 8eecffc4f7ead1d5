"""`arb run`'s trading side, composed: gateways, risk engine, hedger, executor and the loop, on a running stack.

Why a module of its own: this is the one place that knows every room the trading path needs (connectors for the
venues' order gateways, the grid mirror for prices, the scanner for re-checks, risk, executor, hedging, ledger) and
wires them; the rooms themselves only know the interfaces they are handed (DESIGN: data flows one way).

Against the local venues every venue's gateway uses the sim's default account (`arb.sim.trading.DEFAULT_*`); against
real venues keys come only from `ARB_<VENUE>_API_KEY` / `_SECRET` / `_PASSWORD` and a venue without them is not
traded. Nothing is sent to a real venue unless the settings say `mode: live` and the caller passed `live=True`.

The run's summary (`TradingReport`) holds what a user judges an executor by: executions and how they ended, the
success rate (executions that ended flat: both legs equal, or the residual hedged), realized vs predicted PnL, and
`unaccounted_exposure` (USD): per asset, the change of the venues' balances over the run minus the change the ledger's
fills account for, valued in USD and summed in absolute value (zero when every fill is booked exactly once); and
`inventory`: how each asset drifted across the venues over the run, the venues flagged for it, and a transfer plan
with its withdrawal fees (`arb.hedging.inventory`; wallet data from the grid, as the scanner reads it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import msgspec
import numpy as np
from pydantic import SecretStr

from arb import tasks

if TYPE_CHECKING:
    from arb.config import Settings
    from arb.connectors.dex.orders import DexOrderGateway
    from arb.executor.engine import Executor, Outcome
    from arb.executor.loop import TradingLoop
    from arb.executor.prices import GridPrices
    from arb.executor.venue import VenueGateway
    from arb.grid import PriceGrid
    from arb.grid.mirror import GridMirror
    from arb.hedging.inventory import InventoryReport
    from arb.ledger import Ledger
    from arb.model import Opportunity, WalletRecord
    from arb.risk import RiskEngine
    from arb.scanner.engine import Scanner

log = logging.getLogger(__name__)
HEALTH_EVERY_S: Final = 0.5
TRADED_PROTOCOLS: Final = frozenset({"binance", "okx", "bybit", "kraken", "coinbase"})
"""Local venues served in these formats have private endpoints the gateway is proven against; venues served in
other formats are streamed and scanned but not traded (logged), until their order paths are."""


class TradingReport(msgspec.Struct, kw_only=True):
    mode: str
    offered: int
    """Opportunities the scanner opened while the loop ran."""
    executions: int
    """Executions that sent orders (aborted ones are counted in `aborted`)."""
    done: int
    hedged: int
    failed: int
    escalated: int
    aborted: dict[str, int]
    """Reason (its first word) -> count: nothing was sent for these."""
    success_rate: float | None
    realized_pnl_usd: float
    predicted_pnl_usd: float
    realized_vs_predicted: float | None
    """Mean of realized / predicted PnL over the executions that completed as a pair (DONE)."""
    send_latency_ms: dict[str, float]
    unaccounted_exposure: float
    """USD, summed over assets: |venues' balance change - ledger position change| (see the module docstring)."""
    exposure_by_asset: dict[str, float]
    """Asset -> venues' balance change minus the ledger's, in units of the asset (only nonzero ones)."""
    reconciled: dict[str, int]
    trading_state: str
    inventory: dict[str, Any]
    """`arb.hedging.inventory.InventoryReport` as plain values: drift per asset and venue, flagged venues, and the
    rebalancing `plan` (empty when balanced) with its `total_cost_usd` (None when a fee is unknown)."""


@dataclass
class TradingSession:
    executor: Executor
    loop: TradingLoop
    risk: RiskEngine
    gateways: dict[str, VenueGateway]
    prices: GridPrices
    start_balances: dict[tuple[str, str], Decimal]
    reconciled: dict[str, int]
    grid: PriceGrid | None = None
    """Where the connectors publish wallet data (withdrawal fees, open/suspended); None: fees unknown."""

    def offer(self, event: Any) -> None:
        self.loop.offer(event)


def local_credentials(venue_id: str, protocol: str) -> Any:
    """The sim's default account for a local venue (public constants, not secrets)."""
    from arb.connectors.wallets import Credentials
    from arb.sim.trading import DEFAULT_API_KEY, DEFAULT_PASSPHRASE, DEFAULT_SECRET

    password = SecretStr(DEFAULT_PASSPHRASE) if protocol == "okx" else None
    return Credentials(SecretStr(DEFAULT_API_KEY), SecretStr(DEFAULT_SECRET), password)


@contextlib.asynccontextmanager
async def trading(
    settings: Settings,
    *,
    grid: PriceGrid,
    mirror: GridMirror,
    scanner: Scanner,
    ledger: Ledger,
    venues: Mapping[str, Mapping[str, Any]],
    max_concurrent: int = 2,
    live: bool = False,
) -> AsyncIterator[TradingSession]:
    """Gateways for `venues` (venue id -> `{"http_url", "ws_url", "protocol"}`: the sim's ready line for a local
    venue, traded with the sim's default account; or `arb.demo.configured_venues` (`configured: true`) for a
    configured venue, traded only when `live`, with the keys from its environment variables), the risk engine on the
    ledger, reconciliation, then the trading loop; yields the session, whose `offer` is the scanner sink. Leaving
    waits for executions in flight."""
    from arb.connectors.ccxt_pro import LocalEndpoint
    from arb.connectors.orders import CcxtGateway
    from arb.connectors.wallets import credentials_from_env
    from arb.executor.engine import Executor
    from arb.executor.loop import TradingLoop
    from arb.executor.prices import GridPrices
    from arb.executor.reconcile import reconcile
    from arb.executor.venue import GatewayError
    from arb.hedging.hedger import Hedger
    from arb.risk import RiskContext, RiskEngine
    from arb.risk.ledger import LedgerEventSink, LedgerStateStore

    if settings.mode == "live" and not live:
        raise ValueError("settings say mode: live but live trading was not asked for (arb run --live)")
    store = ledger.execution()
    async with contextlib.AsyncExitStack() as stack:
        dexes = {v for v in venues if v in settings.venues and settings.venues[v].kind == "dex"}
        gateways: dict[str, VenueGateway] = await open_dex_gateways(
            stack, settings, {v: venues[v] for v in dexes}, live=live
        )
        for vid, info in sorted((v, i) for v, i in venues.items() if v not in dexes):
            protocol = str(info.get("protocol") or "")
            paper = bool(info.get("configured")) and not live  # paper on a venue's real market data: no venue call
            if protocol not in TRADED_PROTOCOLS and not paper:
                log.info("trading.venue_not_traded venue=%s protocol=%s reason=order_path_not_proven", vid, protocol)
                continue
            endpoint = LocalEndpoint(str(info["http_url"]), str(info["ws_url"])) if info.get("http_url") else None
            if paper:
                try:
                    gateways[vid] = await paper_gateway(vid, settings, mirror, endpoint=endpoint, ccxt_id=protocol)
                except GatewayError as exc:
                    log.error("trading.venue_unavailable venue=%s error=%r", vid, str(exc))
                continue
            if info.get("configured"):  # a venue from the settings: real orders, the user's keys
                creds = credentials_from_env(vid)
                if creds is None:
                    log.warning("trading.venue_without_keys venue=%s (streamed, not traded)", vid)
                    continue
            elif endpoint is None or live:
                raise ValueError(f"venue {vid}: a local venue needs its http_url, and is never traded live")
            else:
                creds = local_credentials(vid, protocol)
            gw = CcxtGateway(vid, settings.venues[vid], creds, endpoint=endpoint,
                             timeout_s=settings.thresholds.execution_timeout_s, ccxt_id=protocol)  # fmt: skip
            try:
                gateways[vid] = await stack.enter_async_context(gw)
            except GatewayError as exc:  # that venue is not traded; the others are
                log.error("trading.venue_unavailable venue=%s error=%r", vid, str(exc))
        if not gateways:
            hint = (" (live trading needs ARB_<VENUE>_API_KEY and ARB_<VENUE>_SECRET, plus ARB_<VENUE>_PASSWORD "
                    "where the venue uses a passphrase)") if live else ""  # fmt: skip
            raise GatewayError("all", "no venue's trading gateway could be opened" + hint)
        risk = await stack.enter_async_context(
            RiskEngine(settings.risk, LedgerStateStore(store), LedgerEventSink(store))
        )
        context = RiskContext()
        prices = GridPrices(mirror)
        hedger = Hedger(settings, gateways=gateways, prices=prices, risk=risk, context=context)
        executor = Executor(
            settings, gateways=gateways, store=store, risk=risk, context=context, prices=prices, hedger=hedger,
            recheck=lambda opp: current(scanner, opp),
        )  # fmt: skip
        await executor.start()
        health = tasks.spawn(_follow_health(grid, context, store, executor, settings), name="trading-health")
        stack.push_async_callback(tasks.cancel_and_wait, health)
        await _refresh_pnl(context, store, executor, settings)
        start_balances = dict(context.balances)
        result = await reconcile(executor)
        reconciled = {
            "orders_checked": result.orders_checked,
            "orders_never_placed": result.orders_never_placed,
            "intents_settled": len(result.intents_settled),
        }
        loop = await stack.enter_async_context(TradingLoop(executor, max_concurrent=max_concurrent))
        yield TradingSession(executor, loop, risk, gateways, prices, start_balances, reconciled, grid)


async def open_dex_gateways(
    stack: contextlib.AsyncExitStack, settings: Settings, venues: Mapping[str, Mapping[str, Any]], *, live: bool
) -> dict[str, VenueGateway]:
    """The DEX venues' gateways (`dex_gateway` decides which are traded), opened on `stack`; one that cannot be
    opened (node unreachable, no pool, a chain id that differs from the config) is logged and left out."""
    from arb.executor.venue import GatewayError

    nonces: dict[str, Any] = {}  # account address -> its one NonceManager, shared by its DEX venues
    out: dict[str, VenueGateway] = {}
    for vid, info in sorted(venues.items()):
        gateway = dex_gateway(vid, settings, info, live=live, nonces=nonces)
        if gateway is None:
            continue
        try:
            out[vid] = await stack.enter_async_context(gateway)
        except (GatewayError, ValueError) as exc:  # DexConfigError is a ValueError
            log.error("trading.venue_unavailable venue=%s error=%r", vid, str(exc))
    return out


def dex_gateway(
    venue_id: str, settings: Settings, info: Mapping[str, Any], *, live: bool, nonces: dict[str, Any]
) -> DexOrderGateway | None:
    """A `DexOrderGateway` (unopened) for a DEX venue, or None (logged) when it is not traded. Real transactions are
    signed, so which chain they go to decides:

    - `info["local"]` (the local chain of `arb.sim.chain`, its RPC in the venue's `urls.rpc`): traded in paper / demo
      mode with `info["dex_key"]` (the local chain's executor key, a public test key) or else `ARB_DEX_PRIVATE_KEY`;
      never with `live` (raises, like a local CEX venue);
    - a configured chain (no `local`): traded only with `live`, signing with `ARB_DEX_PRIVATE_KEY`; without `live`
      it is streamed and scanned, not traded (a swap on a real chain is a real trade: there is no paper DEX account);
    - no key, or no `urls.rpc`: not traded.

    DEX venues of one account share one nonce sequence (`nonces`: address -> `NonceManager`)."""
    from eth_account import Account

    from arb.connectors.dex.execution import KEY_ENV, NonceManager, account_from_env
    from arb.connectors.dex.orders import DexOrderGateway
    from arb.connectors.dex.pools import DexConfigError, RpcEndpoint

    venue = settings.venues[venue_id]
    local = bool(info.get("local"))
    if local and live:
        raise ValueError(f"venue {venue_id}: a local chain is never traded live")
    if not local and not live:
        log.info("trading.venue_not_traded venue=%s reason=dex_on_a_real_chain_needs_live", venue_id)
        return None
    try:
        endpoint = RpcEndpoint.from_venue(venue_id, venue)
        key = info.get("dex_key") if local else None
        account = Account.from_key(str(key)) if key else account_from_env(KEY_ENV)
    except DexConfigError as exc:
        log.warning("trading.venue_without_keys venue=%s error=%r (streamed, not traded)", venue_id, str(exc))
        return None
    symbols = {inst.venues[venue_id]: iid for iid, inst in settings.instruments.items() if venue_id in inst.venues}
    chain = settings.chains[venue.chain or ""]
    shared = nonces.setdefault(account.address, NonceManager(account.address))
    log.info("trading.dex_gateway venue=%s local=%s account=%s", venue_id, local, account.address)
    return DexOrderGateway(venue_id, venue, chain, account, symbols, endpoint=endpoint, nonces=shared)


PAPER_WARMUP_S: Final = 60.0
"""How long paper funding waits for the grid to price the venue's currencies (books are snapshotted at start)."""


async def paper_gateway(
    venue_id: str, settings: Settings, mirror: GridMirror, *, endpoint: Any = None, ccxt_id: str | None = None
) -> VenueGateway:
    """A paper account on a configured venue: its real trading rules (public market data, no keys), funded with
    `executor.paper_funding_usd` of each currency at the grid's first prices, filling against the grid's depth after
    the venue's configured `latency_ms` (`arb.executor.paper`)."""
    from arb.connectors.orders import public_markets
    from arb.executor.paper import PaperGateway

    by_symbol = {inst.venues[venue_id]: iid for iid, inst in settings.instruments.items() if venue_id in inst.venues}
    markets = await public_markets(venue_id, settings.venues[venue_id], by_symbol, endpoint=endpoint, ccxt_id=ccxt_id)
    instruments = {s: by_symbol[s] for s in markets}
    balances = await paper_funding(settings, mirror, venue_id, instruments, markets)
    log.info("trading.paper_account venue=%s markets=%d funded=%s", venue_id, len(markets), ",".join(sorted(balances)))
    return PaperGateway(venue_id, mirror=mirror, markets=markets, instruments=instruments, balances=balances,
                        latency_ms=settings.venues[venue_id].latency_ms)  # fmt: skip


async def paper_funding(
    settings: Settings, mirror: GridMirror, venue_id: str, instruments: Mapping[str, str], markets: Mapping[str, Any]
) -> dict[str, Decimal]:
    """`arb.executor.paper.paper_balances` at the grid's mids (each instrument's first venue with a quote); waits
    up to `PAPER_WARMUP_S` for every currency to have a price, and logs the ones still unfunded after it."""
    from arb.executor.paper import paper_balances

    funding = Decimal(repr(settings.executor.paper_funding_usd))
    rows = {iid: mirror.layout.instrument_index(iid) for iid in set(instruments.values())}

    def value() -> dict[str, Decimal]:
        mids: dict[str, float] = {}
        for iid, row in rows.items():
            row_mids = (mirror.bid[row] + mirror.ask[row]) / 2
            priced = row_mids[~np.isnan(row_mids)]
            if len(priced):
                mids[iid] = float(priced[0])
        return paper_balances(settings, markets, instruments, mids, funding)

    deadline = time.monotonic() + PAPER_WARMUP_S
    wanted = {m.base for m in markets.values()} | {m.quote for m in markets.values()}
    funded = value()
    while set(funded) != wanted and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        funded = value()
    missing = sorted(wanted - set(funded))
    if missing:
        log.warning("trading.paper_unfunded venue=%s currencies=%s reason=no_price", venue_id, ",".join(missing))
    return funded


def current(scanner: Scanner, opp: Opportunity) -> Opportunity | None:
    """The scanner's latest version of `opp` if it is still open (the scanner rescans on every grid change, so an
    opportunity still open is one the current grid still shows above the threshold); None once it closed."""
    for state in scanner.open.values():
        if state.id == opp.id:
            return state.last
    return None


async def _follow_health(grid: PriceGrid, context: Any, store: Any, executor: Executor, settings: Settings) -> None:
    """Keep the risk context's venue states in step with the connectors' published health, and its PnL and equity
    with the ledger (a ledger that cannot be read leaves PnL unknown, which halts new orders: fail closed)."""
    from arb.grid import GridError
    from arb.ledger import LedgerError

    started_ns, start_equity = time.time_ns(), None
    while True:
        try:
            await _refresh_pnl(context, store, executor, settings)
        except LedgerError as exc:
            log.error("trading.pnl_unknown error=%r", str(exc))
            context.realized_pnl_today_usd = None
        try:
            health = await grid.read_health()
        except GridError as exc:
            log.warning("trading.health_unreadable error=%r", str(exc))
            context.venue_state.clear()  # unknown health: no venue takes new orders
        else:
            context.venue_state.clear()
            context.venue_state.update({v: h.state for v, h in health.items()})
        if start_equity is None and context.equity_usd is not None:
            start_equity = float(context.equity_usd)
        try:
            await publish_snapshot(grid, snapshot(context, executor, settings, (started_ns, start_equity)))
        except GridError as exc:
            log.warning("trading.snapshot_unpublished error=%r", str(exc))
        await asyncio.sleep(HEALTH_EVERY_S)


class BalanceLine(msgspec.Struct, frozen=True, kw_only=True):
    venue: str
    asset: str
    total: str
    reserved: str
    usd: float | None


class TraderSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """What the trading process knows of its portfolio and risk now, published for the API (`GET /portfolio/status`,
    `GET /risk/metrics`), which runs in another process: balances as decimal strings (booked money never goes
    through float), USD figures as estimates."""

    ts_ns: int
    started_ns: int
    """When the trading process started: realized PnL since then, and `start_equity_usd`, give its unrealized PnL."""
    mode: str
    start_equity_usd: float | None
    balances: list[BalanceLine]
    exposure_usd: dict[str, float]
    venue_notional_usd: dict[str, float]
    equity_usd: float | None
    peak_equity_usd: float | None
    drawdown: float | None
    realized_pnl_today_usd: float | None
    executions_in_flight: int
    venue_state: dict[str, str]


SNAPSHOT_TTL_S: Final = 10
"""A snapshot older than this is gone: the API then says no trading process is running, never shows stale money."""


def snapshot(context: Any, executor: Executor, settings: Settings, start: tuple[int, float | None]) -> TraderSnapshot:
    prices = asset_prices_usd(executor, {a for _, a in context.balances})
    balances = [
        BalanceLine(
            venue=venue, asset=asset, total=str(total), reserved=str(context.reserved.get((venue, asset), Decimal(0))),
            usd=float(total) * prices[asset] if asset in prices else None,
        )
        for (venue, asset), total in sorted(context.balances.items())
    ]  # fmt: skip
    equity, peak = context.equity_usd, context.peak_equity_usd
    drawdown = float((peak - equity) / peak) if equity is not None and peak else None
    pnl = context.realized_pnl_today_usd
    return TraderSnapshot(
        ts_ns=time.time_ns(), started_ns=start[0], mode=settings.mode, start_equity_usd=start[1], balances=balances,
        exposure_usd=dict(context.exposure_usd), venue_notional_usd=dict(context.venue_notional_usd),
        equity_usd=float(equity) if equity is not None else None, peak_equity_usd=float(peak) if peak else None,
        drawdown=drawdown, realized_pnl_today_usd=float(pnl) if pnl is not None else None,
        executions_in_flight=len(context.executions), venue_state=dict(context.venue_state),
    )  # fmt: skip


async def publish_snapshot(grid: PriceGrid, snap: TraderSnapshot) -> None:
    from arb.grid.store import redis_errors

    with redis_errors("publish_trader_snapshot"):
        await grid.client.set(grid.keys.trader, msgspec.json.encode(snap), ex=SNAPSHOT_TTL_S)


async def read_snapshot(grid: PriceGrid) -> TraderSnapshot | None:
    """The trading process's last snapshot, or None when none was published in the last `SNAPSHOT_TTL_S`."""
    from arb.grid.store import redis_errors

    with redis_errors("read_trader_snapshot"):
        raw = await grid.client.get(grid.keys.trader)
    return None if raw is None else msgspec.json.decode(raw, type=TraderSnapshot)


async def _refresh_pnl(context: Any, store: Any, executor: Executor, settings: Settings) -> None:
    """Today's realized PnL and the equity the drawdown limit is measured on, from the ledger and the balances."""
    import datetime as dt

    midnight = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    await refresh_pnl_since(context, store, executor, int(midnight.timestamp() * 1e9))


async def refresh_pnl_since(context: Any, store: Any, executor: Executor, since_ns: int) -> None:
    """The risk context's realized PnL (ledger, since `since_ns`), equity and peak equity; the replay calls it on
    its simulated clock, `arb run` from midnight UTC."""
    realized = await store.realized_pnl_since(since_ns)
    context.realized_pnl_today_usd = realized
    context.equity_usd = equity_usd(context.balances, executor) + realized
    context.peak_equity_usd = max(context.peak_equity_usd or context.equity_usd, context.equity_usd)


def equity_usd(balances: Mapping[tuple[str, str], Decimal], executor: Executor) -> Decimal:
    """Balances valued in USD: cash at its USD value, other assets at the grid's mid on that venue (or any venue);
    an asset priced nowhere is left out (and logged), never valued at a guess."""
    prices = {a: Decimal(repr(p)) for a, p in asset_prices_usd(executor, {a for _, a in balances}).items()}
    return sum((amount * prices[a] for (_, a), amount in balances.items() if a in prices), start=Decimal(0))


def asset_prices_usd(executor: Executor, assets: set[str]) -> dict[str, float]:
    """USD price per asset: cash currencies from the settings, others from the grid's mid of an instrument whose base
    it is (first venue with a quote)."""
    usd = executor.usd_per_currency
    out: dict[str, float] = {a: usd[a] for a in assets if a in usd}
    wanted = assets - set(out)
    for inst_id, inst in executor.settings.instruments.items():
        if inst.base not in wanted or inst.type != "spot":
            continue
        for venue in inst.venues:
            top = executor.prices.top(inst_id, venue)
            if top is not None and inst.quote in usd:
                out[inst.base] = (top.bid + top.ask) / 2 * usd[inst.quote]
                wanted.discard(inst.base)
                break
    return out


async def report(session: TradingSession) -> TradingReport:
    """The run's summary (see the module docstring): stops the loop taking opportunities and waits for executions in
    flight, then re-reads every venue's balances and the ledger's fills."""
    await session.loop.close()
    executor = session.executor
    await asyncio.gather(*(executor.refresh_balance(v) for v in session.gateways))
    outcomes: list[Outcome] = list(session.loop.outcomes)
    sent = [o for o in outcomes if o.status != "aborted"]
    by = {s: sum(o.status == s for o in sent) for s in ("done", "hedged", "failed", "escalated")}
    aborted: dict[str, int] = {}
    for o in outcomes:
        if o.status == "aborted":
            key = o.reason.split(":")[0].split(" ")[0]
            aborted[key] = aborted.get(key, 0) + 1
    ratios = [
        float(o.realized_pnl_usd) / o.predicted_pnl_usd
        for o in sent
        if o.status == "done" and o.realized_pnl_usd is not None and o.predicted_pnl_usd > 0
    ]
    lat = sorted(o.send_latency_us / 1e3 for o in sent if o.send_latency_us is not None)
    unaccounted, by_asset = await unaccounted_exposure(session)
    inventory = await inventory_of(session)
    return TradingReport(
        mode=executor.mode,
        offered=session.loop.offered,
        executions=len(sent),
        **by,
        aborted=aborted,
        success_rate=(by["done"] + by["hedged"]) / len(sent) if sent else None,
        realized_pnl_usd=float(sum((o.realized_pnl_usd or Decimal(0)) for o in sent)),
        predicted_pnl_usd=sum(o.predicted_pnl_usd for o in sent if o.status == "done"),
        realized_vs_predicted=statistics.fmean(ratios) if ratios else None,
        send_latency_ms={"p50": _pct(lat, 0.5), "p99": _pct(lat, 0.99)} if lat else {},
        unaccounted_exposure=unaccounted,
        exposure_by_asset=by_asset,
        reconciled=session.reconciled,
        trading_state=session.risk.state.value,
        inventory=msgspec.to_builtins(inventory),
    )


async def unaccounted_exposure(session: TradingSession) -> tuple[float, dict[str, float]]:
    """Sum over assets of |venues' balance change - ledger position| in USD, and the per-asset differences."""
    executor = session.executor
    now = executor.context.balances
    venue_change: dict[str, Decimal] = {}
    for (venue, asset), amount in now.items():
        if venue in session.gateways:
            venue_change[asset] = venue_change.get(asset, Decimal(0)) + amount
    for (venue, asset), amount in session.start_balances.items():
        if venue in session.gateways:
            venue_change[asset] = venue_change.get(asset, Decimal(0)) - amount
    ledger_change: dict[str, Decimal] = {}
    for (venue, asset), amount in (await executor.store.positions()).items():
        if venue in session.gateways:
            ledger_change[asset] = ledger_change.get(asset, Decimal(0)) + amount
    assets = set(venue_change) | set(ledger_change)
    prices = asset_prices_usd(executor, assets)
    diff = {a: venue_change.get(a, Decimal(0)) - ledger_change.get(a, Decimal(0)) for a in assets}
    nonzero = {a: float(d) for a, d in diff.items() if d != 0}
    total = 0.0
    for asset, d in nonzero.items():
        price = prices.get(asset)
        if price is None:
            log.error("trading.unpriced_exposure asset=%s difference=%s", asset, d)
            total = float("inf")
            continue
        total += abs(d) * price
    return total, nonzero


async def inventory_of(session: TradingSession) -> InventoryReport:
    """Drift of the traded venues' balances since the session started, with a transfer plan (see the module)."""
    from arb.hedging.inventory import inventory_report

    executor = session.executor
    start = {k: v for k, v in session.start_balances.items() if k[0] in session.gateways}
    now = {k: v for k, v in executor.context.balances.items() if k[0] in session.gateways}
    prices = asset_prices_usd(executor, {a for _, a in (*start, *now)})
    wallets = await read_wallet_records(session.grid, executor.settings, set(start) | set(now))
    return inventory_report(start, now, prices_usd=prices, wallets=wallets, settings=executor.settings)


async def read_wallet_records(
    grid: PriceGrid | None, settings: Settings, keys: set[tuple[str, str]]
) -> dict[tuple[str, str], WalletRecord]:
    """(venue, asset) -> the venue's published wallet record, read the way the scanner reads it (`TransferBook`: one
    read of the grid's wallet tables; a record older than `scanner.wallet_max_age_s` is unknown). No grid, or one
    that cannot be read: no records (every fee unknown, never 0)."""
    if grid is None:
        return {}
    from arb.grid import GridError
    from arb.scanner.transfer import TransferBook

    book = TransferBook(settings, grid.layout)
    try:
        await book.refresh(grid, force=True)
    except GridError as exc:
        log.warning("trading.wallets_unreadable error=%r", str(exc))
        return {}
    now_ns = time.time_ns()
    return {(v, a): rec for v, a in keys if (rec := book.record(v, a, now_ns)) is not None}


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]
