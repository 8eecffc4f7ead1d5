"""The executor's fault-matrix fixture: two local venues, a real ledger, the risk engine, the hedger and the executor,
wired as `arb run` wires them (`arb.trading`), and THE invariant every fault-matrix test ends with.

- Venues: one `Market` (BTC, ETH, SOL) served by two `SimVenue`s in this process, "binance" in Binance's protocol and
  "okx" in OKX's, each trading through its private endpoints with the sim's default account (`DEFAULT_API_KEY`). The
  market does not run: books hold still unless a test moves them (`dislocate`), so every fill is read off a book.
- Orders: `CcxtGateway` (the real ccxt REST classes, pointed at the venues over loopback).
- Ledger: a real SQLite file in tmp_path (or any ledger URL, e.g. the PostgreSQL one of `tests/integration/ledger`).
- Risk: `RiskEngine` on `LedgerStateStore` / `LedgerEventSink`; the `RiskContext` has both venues connected and its
  PnL read from the ledger (`refresh_pnl`), its equity a fixed figure (no drawdown unless a test says so).
- Prices: `VenueBooks`, the venues' own books (the real price source here; no grid needed). A book's age is the time
  since the venue last refreshed it, on a clock the test can move (`VenueBooks.now_ns`).
- Opportunities: `Stack.opportunity()` walks the venues' actual books (buy at the buy venue's asks, sell at the sell
  venue's bids) as the scanner would; `Stack.recheck` is the same walk again at execute time (FAULTS E15), None when
  a quote is older than `risk.max_quote_age_ms`.

Timeouts are shrunk so a fault costs about a second: gateway timeout 1.5 s, resolve window 1 s, hedge TTL 5 s.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import msgspec
from pydantic import SecretStr
from sqlalchemy import select

from arb.config import Settings, load_settings
from arb.connectors.ccxt_pro import LocalEndpoint
from arb.connectors.orders import CcxtGateway
from arb.connectors.wallets import Credentials, ccxt_rest_factory
from arb.executor.engine import Executor, Outcome
from arb.executor.venue import Top
from arb.hedging.hedger import Hedger
from arb.ledger import Ledger, open_ledger
from arb.ledger.schema import INTENTS, ORDERS
from arb.model import FINAL_INTENT_STATUSES, FINAL_STATUSES, IntentStatus, Opportunity, OrderStatus
from arb.risk import RiskContext, RiskEngine
from arb.risk.ledger import LedgerEventSink, LedgerStateStore
from arb.sim.market import Market, MarketConfig
from arb.sim.server import SimVenue
from arb.sim.trading import DEFAULT_API_KEY, DEFAULT_PASSPHRASE, DEFAULT_SECRET
from arb.sim.venues.binance import BinanceProtocol
from arb.sim.venues.okx import OkxProtocol
from tests.integration.sim.support import SPECS, SYMBOLS

INSTRUMENT: Final = "BTC/USD"
SYMBOL: Final = "BTC/USDT"
BUY, SELL = "binance", "okx"
DISLOCATION_BPS: Final = 40.0
"""OKX's book shifted up this much: buy on Binance at its ask, sell on OKX at its bid (~20 bps net of taker fees)."""
EQUITY_USD: Final = Decimal(1_000_000)
STILL: Final = MarketConfig(seed=7)
ORDER_PATHS: Final = {
    "binance": ("POST /api/v3/order",),
    "okx": ("POST /api/v5/trade/batch-orders", "POST /api/v5/trade/order"),
}
"""The create-order request of each protocol (ccxt's okx sends a batch of one)."""
VENUE_STATUS: Final = {
    "new": OrderStatus.ACKED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "expired": OrderStatus.CANCELLED,
}
"""The venue's order status -> the ledger's (an IOC remainder expires on Binance, is `canceled` on OKX)."""
_opportunity_ids = itertools.count(1)


def make_settings(**sections: Mapping[str, Any]) -> Settings:
    """The shipped settings with the test timeouts, plus `sections` (`executor={...}`, `risk={...}`,
    `thresholds={...}`) merged over them."""
    base = load_settings()
    defaults: dict[str, dict[str, Any]] = {
        "thresholds": {"execution_timeout_s": 1.5},
        "executor": {"resolve_window_s": 1.0, "resolve_interval_s": 0.1, "hedge_ttl_s": 5.0},
        "risk": {"max_quote_age_ms": 30_000.0},
    }
    update: dict[str, Any] = {}
    for name in {*defaults, *sections}:
        section = getattr(base, name)
        merged = {**defaults.get(name, {}), **sections.get(name, {})}
        update[name] = type(section).model_validate({**section.model_dump(), **merged})
    return base.model_copy(update=update)


class VenueBooks:
    """`PriceView` on the venues' own books: top of book now, aged since the venue last refreshed the book."""

    def __init__(self, market: Market, now_ns: Callable[[], int] = time.time_ns) -> None:
        self.market = market
        self.now_ns = now_ns

    def top(self, instrument: str, venue: str) -> Top | None:
        try:
            book = self.market.book(venue, instrument)
        except KeyError:
            return None
        bid, _, ask, _ = book.top()
        return Top(bid, ask, (self.now_ns() - book.ts_ns) / 1e6)


def local_credentials(venue_id: str, secret: str = DEFAULT_SECRET) -> Credentials:
    """The sim's default account (public constants), as `arb.trading` trades the local venues."""
    password = SecretStr(DEFAULT_PASSPHRASE) if venue_id == "okx" else None
    return Credentials(SecretStr(DEFAULT_API_KEY), SecretStr(secret), password)


def totals(venue: SimVenue) -> dict[str, Decimal]:
    """The default account's balances on `venue`, free + locked, per asset."""
    account = venue.trading.account(DEFAULT_API_KEY)
    return {asset: bal.total for asset, bal in account.balances.items()}


def _walk(levels: Iterable[tuple[float, float]], size: float) -> float:
    """VWAP of taking `size` from `levels` (best first); the last level's price if they run out."""
    left, cost, price = size, 0.0, 0.0
    for price, qty in levels:
        take = min(left, qty)
        cost += take * price
        left -= take
        if left <= 1e-12:
            break
    return (cost + left * price) / size


@dataclass
class Stack:
    settings: Settings
    market: Market
    venues: dict[str, SimVenue]
    ledger: Ledger
    store: Any
    gateways: dict[str, CcxtGateway]
    risk: RiskEngine
    context: RiskContext
    prices: VenueBooks
    hedger: Hedger
    executor: Executor
    start_totals: dict[str, dict[str, Decimal]]
    ledger_url: str
    outcomes: list[Outcome] = field(default_factory=list)

    # -- market and opportunities ---------------------------------------------------------------------------------

    def dislocate(self, bps: float = DISLOCATION_BPS, venue: str = SELL, instrument: str = INSTRUMENT) -> None:
        """Shift `venue`'s book of `instrument` by `bps` for the rest of the test (a real edge between the venues)."""
        self.market.inject(venue, instrument, bps=bps, duration_ms=600_000)

    def opportunity(
        self,
        instrument: str = INSTRUMENT,
        buy: str = BUY,
        sell: str = SELL,
        *,
        size: float | None = None,
        opportunity_id: str | None = None,
    ) -> Opportunity:
        """The opportunity the venues' books show now: buy `size` (default: what both tops hold) on `buy` at its
        asks, sell it on `sell` at its bids, less both taker fees (same quote currency: no haircut, no gas)."""
        buy_book, sell_book = self.market.book(buy, instrument), self.market.book(sell, instrument)
        _, asks = buy_book.levels()
        bids, _ = sell_book.levels()
        if size is None:
            size = min(asks[0].size, bids[0].size)
        vwap_buy, vwap_sell = _walk(asks, size), _walk(bids, size)
        best_ask, best_bid = asks[0].price, bids[0].price
        fee_buy = self.settings.venues[buy].fees.taker
        fee_sell = self.settings.venues[sell].fees.taker
        gross = (best_bid - best_ask) / best_ask
        walked = (vwap_sell - vwap_buy) / vwap_buy
        net = walked - fee_buy - fee_sell
        now = self.prices.now_ns()
        profit = net * size * vwap_buy
        return Opportunity(
            id=opportunity_id or f"opp-{instrument}-{buy}-{sell}-{next(_opportunity_ids)}",
            instrument=instrument, buy_venue=buy, sell_venue=sell, quote_currency="USDT", size=size,
            notional=size * vwap_buy, best_ask_buy=best_ask, best_bid_sell=best_bid, vwap_buy=vwap_buy,
            vwap_sell=vwap_sell, gross_spread=gross, fee_buy=fee_buy, fee_sell=fee_sell, gas=0.0, haircut=0.0,
            slippage=gross - walked, net_edge=net, profit=profit, expected_profit=profit, liquidity_score=1.0,
            execution_time_s=0.1, risk_factor=1.0, priority=profit * 10,
            buy_quote_age_ms=(now - buy_book.ts_ns) / 1e6, sell_quote_age_ms=(now - sell_book.ts_ns) / 1e6, ts=now,
        )  # fmt: skip

    def recheck(self, opp: Opportunity) -> Opportunity | None:
        """The same opportunity on the books as they are now (FAULTS E15); None once a quote is too old."""
        fresh = self.opportunity(opp.instrument, opp.buy_venue, opp.sell_venue, size=opp.size, opportunity_id=opp.id)
        limit = self.settings.risk.max_quote_age_ms
        if fresh.buy_quote_age_ms > limit or fresh.sell_quote_age_ms > limit:
            return None
        return fresh

    async def execute(self, opp: Opportunity | None = None) -> Outcome:
        outcome = await self.executor.execute(opp or self.opportunity())
        self.outcomes.append(outcome)
        return outcome

    # -- what the venues saw --------------------------------------------------------------------------------------

    def venue_orders(self, venue: str) -> list[Any]:
        """Every order `venue` knows of the default account, oldest first."""
        return [o for o in self.venues[venue].trading.orders.values() if o.api_key == DEFAULT_API_KEY]

    def order_requests(self, venue: str) -> list[float]:
        """Monotonic times at which `venue` received a create-order request."""
        paths = ORDER_PATHS[venue]
        return [t for t, method, path in self.venues[venue].requests if f"{method} {path.partition('?')[0]}" in paths]

    def requests_after(self, venue: str, since: float) -> list[str]:
        """`METHOD /path` of every REST request `venue` received after monotonic time `since`."""
        return [f"{m} {p.partition('?')[0]}" for t, m, p in self.venues[venue].requests if t > since]

    # -- the ledger -----------------------------------------------------------------------------------------------

    async def refresh_pnl(self) -> None:
        """Today's realized PnL from the ledger into the risk context (as `arb.trading` keeps it)."""
        midnight = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        realized = await self.store.realized_pnl_since(int(midnight.timestamp() * 1e9))
        self.context.realized_pnl_today_usd = realized
        self.context.equity_usd = EQUITY_USD + realized
        self.context.peak_equity_usd = max(self.context.peak_equity_usd or EQUITY_USD, self.context.equity_usd)

    async def ledger_orders(self) -> list[Any]:
        """Every order row of the ledger (read straight from its table)."""
        async with self.ledger.engine.connect() as conn:
            return list((await conn.execute(select(ORDERS))).mappings().all())

    async def ledger_intents(self) -> dict[str, IntentStatus]:
        async with self.ledger.engine.connect() as conn:
            rows = (await conn.execute(select(INTENTS.c.id, INTENTS.c.status))).all()
        return {row.id: IntentStatus(row.status) for row in rows}


@contextlib.asynccontextmanager
async def executor_stack(
    tmp_path: Path,
    *,
    settings: Settings | None = None,
    ledger_url: str | None = None,
    factories: Mapping[str, Callable[[str, dict[str, Any]], Any]] | None = None,
    secrets: Mapping[str, str] | None = None,
    dislocate: bool = True,
) -> AsyncIterator[Stack]:
    """The whole trading stack on two local venues (module docstring); `factories` replace a venue's ccxt class
    factory (a skewed clock), `secrets` a venue's API secret (a wrong one), `dislocate` injects the default edge
    before the executor starts."""
    settings = settings or make_settings()
    market = Market(SPECS, STILL)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(market.close)
        venues = {
            BUY: await stack.enter_async_context(SimVenue(BUY, BinanceProtocol(), market, SYMBOLS)),
            SELL: await stack.enter_async_context(SimVenue(SELL, OkxProtocol(), market, SYMBOLS)),
        }
        start_totals = {vid: totals(v) for vid, v in venues.items()}
        ledger_url = ledger_url or f"sqlite+aiosqlite:///{tmp_path}/ledger.db"
        ledger = await stack.enter_async_context(open_ledger(ledger_url))
        store = ledger.execution()
        gateways: dict[str, CcxtGateway] = {}
        for vid, venue in venues.items():
            gw = CcxtGateway(
                vid, settings.venues[vid], local_credentials(vid, (secrets or {}).get(vid, DEFAULT_SECRET)),
                endpoint=LocalEndpoint(venue.http_url, venue.ws_url),
                timeout_s=settings.thresholds.execution_timeout_s,
                factory=(factories or {}).get(vid, ccxt_rest_factory), ccxt_id=vid,
            )  # fmt: skip
            gateways[vid] = await stack.enter_async_context(gw)
        risk = await stack.enter_async_context(
            RiskEngine(settings.risk, LedgerStateStore(store), LedgerEventSink(store))
        )
        context = RiskContext(venue_state=dict.fromkeys(venues, "connected"))
        prices = VenueBooks(market)
        hedger = Hedger(settings, gateways=gateways, prices=prices, risk=risk, context=context)
        s = Stack(
            settings=settings, market=market, venues=venues, ledger=ledger, store=store, gateways=gateways, risk=risk,
            context=context, prices=prices, hedger=hedger, executor=None,  # type: ignore[arg-type]
            start_totals=start_totals, ledger_url=ledger_url,
        )  # fmt: skip
        s.executor = Executor(
            settings, gateways=gateways, store=store, risk=risk, context=context, prices=prices, hedger=hedger,
            recheck=s.recheck,
        )  # fmt: skip
        if dislocate:
            s.dislocate()
        await s.executor.start()
        await s.refresh_pnl()
        yield s


# ---------------------------------------------------------------------------------------------------- the invariant


async def assert_accounted(s: Stack, *, escalated: bool = False) -> None:
    """THE invariant (FAULTS E1-E19). Venue truth against the ledger:

    1. every order a venue knows for the account is in the ledger, on that venue, with the venue's status, filled
       amount and order id; every order the ledger holds as reaching no venue (REJECTED) is on none;
    2. every venue trade is booked exactly once, with the venue's price, amount, side and fee;
    3. per venue and asset, the balance change since the start equals the ledger's `positions()`;
    4. per base asset, the amounts traded net out over the venues to less than one amount step (the hedger's dust),
       every order and intent is final, and trading is not halted; or, with `escalated`, an intent is ESCALATED
       with its residual still open and the kill switch (HALTED) is persisted in the ledger.
    """
    store = s.store
    fills = await store.fills()
    booked = Counter((f.venue, f.trade_id) for f in fills)
    assert all(n == 1 for n in booked.values()), f"a trade booked twice: {booked.most_common(3)}"
    positions = await store.positions()
    ledger_orders = {row["client_id"]: row for row in await s.ledger_orders()}
    net: dict[str, Decimal] = {}
    for vid, venue in s.venues.items():
        known = s.venue_orders(vid)
        for o in known:  # 1. venue -> ledger
            row = ledger_orders.get(o.client_id)
            assert row is not None, f"{vid} order {o.client_id} ({o.status}, filled {o.filled}) is not in the ledger"
            assert row["venue"] == vid
            assert (OrderStatus(row["status"]), row["filled"], row["venue_order_id"]) == (
                VENUE_STATUS[o.status],
                o.filled,
                str(o.id),
            ), f"{vid} order {o.client_id}: ledger {row['status']} {row['filled']}, venue {o.status} {o.filled}"
        on_venue = {o.client_id for o in known}
        for cid, row in ledger_orders.items():  # 1. ledger -> venue
            if row["venue"] == vid and row["status"] == OrderStatus.REJECTED.value:
                assert cid not in on_venue, f"{cid} is REJECTED in the ledger but exists on {vid}"
        trades = {str(t.id): t for t in venue.trading.trades if t.api_key == DEFAULT_API_KEY}
        mine = {f.trade_id: f for f in fills if f.venue == vid}
        assert mine.keys() == trades.keys(), f"{vid}: booked {sorted(mine)} but the venue traded {sorted(trades)}"
        for tid, t in trades.items():  # 2. each trade as the venue booked it
            f = mine[tid]
            assert (f.side.value, f.price, f.amount, f.fee, f.fee_currency, f.symbol) == (
                t.side,
                t.price,
                t.amount,
                t.fee,
                t.fee_asset,
                t.symbol,
            ), f"{vid} trade {tid}: ledger {f}, venue {t}"
            base = t.symbol.partition("/")[0]
            net[base] = net.get(base, Decimal(0)) + (t.amount if t.side == "buy" else -t.amount)
        now, start = totals(venue), s.start_totals[vid]
        for asset in {*now, *start, *(a for v, a in positions if v == vid)}:  # 3. balances
            change = now.get(asset, Decimal(0)) - start.get(asset, Decimal(0))
            assert change == positions.get((vid, asset), Decimal(0)), (
                f"{vid} {asset}: the venue's balance moved {change}, the ledger says {positions.get((vid, asset))}"
            )
    intents = await s.ledger_intents()
    state = await store.load_trading_state()
    open_orders = [cid for cid, row in ledger_orders.items() if OrderStatus(row["status"]) not in FINAL_STATUSES]
    open_intents = {i: st for i, st in intents.items() if st not in FINAL_INTENT_STATUSES}
    if escalated:  # 4. the residual is still there, and everything says so
        assert IntentStatus.ESCALATED in open_intents.values(), f"no escalated intent: {intents}"
        assert any(n != 0 for n in net.values()), f"escalated, yet the venues' trades net out: {net}"
        assert state is not None, "escalated, but no trading state was persisted"
        assert state.state == "halted", f"escalated, but the persisted state is {state}"
        return
    steps = {base: _coarsest_step(s, base) for base in net}
    unhedged = {base: n for base, n in net.items() if abs(n) >= steps[base]}
    assert not unhedged, f"net exposure left over the venues (traded amounts): {unhedged}"
    assert not open_orders, f"orders left open in the ledger: {open_orders}"
    assert not open_intents, f"intents left open in the ledger: {open_intents}"


def _coarsest_step(s: Stack, base: str) -> Decimal:
    steps = [gw.market(f"{base}/USDT").amount_step or Decimal(0) for gw in s.gateways.values()]
    return max(steps)


# ---------------------------------------------------------------------------------------------------- a child process


class ChildSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What `child` needs to trade on venues another process serves (FAULTS E8: it is SIGKILLed mid-execution)."""

    urls: dict[str, tuple[str, str]]
    """Venue id -> (http url, ws url)."""
    ledger_url: str
    opportunity: Opportunity
    tops: dict[str, tuple[float, float]]
    """Venue id -> (bid, ask) of the opportunity's instrument when it was built: the child's price view."""
    executor: dict[str, Any] = {}
    """Overrides of the executor settings."""


class StaticTops:
    """`PriceView` of a process that cannot see the venues' books: the tops it was handed, fresh."""

    def __init__(self, instrument: str, tops: Mapping[str, tuple[float, float]]) -> None:
        self.instrument = instrument
        self.tops = dict(tops)

    def top(self, instrument: str, venue: str) -> Top | None:
        if instrument != self.instrument or venue not in self.tops:
            return None
        bid, ask = self.tops[venue]
        return Top(bid, ask, 0.0)


def child_spec(s: Stack, opp: Opportunity, **executor: Any) -> str:
    """`child`'s argument (JSON) for trading `opp` on the stack's venues and ledger."""
    tops = {}
    for vid in s.venues:
        top = s.prices.top(opp.instrument, vid)
        assert top is not None
        tops[vid] = (top.bid, top.ask)
    spec = ChildSpec(
        urls={vid: (v.http_url, v.ws_url) for vid, v in s.venues.items()},
        ledger_url=s.ledger_url, opportunity=opp, tops=tops, executor=executor,
    )  # fmt: skip
    return msgspec.json.encode(spec).decode()


async def child(spec_json: str) -> None:
    """Run in a child process: the trading stack of `arb run` on the venues and ledger the spec names, executing its
    opportunity once (prints `ready` before and `finished` after, for the parent)."""
    spec = msgspec.json.decode(spec_json, type=ChildSpec)
    settings = make_settings(executor=spec.executor)
    opp = spec.opportunity
    async with contextlib.AsyncExitStack() as stack:
        ledger = await stack.enter_async_context(open_ledger(spec.ledger_url))
        store = ledger.execution()
        gateways = {}
        for vid, (http_url, ws_url) in spec.urls.items():
            gw = CcxtGateway(
                vid, settings.venues[vid], local_credentials(vid), endpoint=LocalEndpoint(http_url, ws_url),
                timeout_s=settings.thresholds.execution_timeout_s, ccxt_id=vid,
            )  # fmt: skip
            gateways[vid] = await stack.enter_async_context(gw)
        risk = await stack.enter_async_context(
            RiskEngine(settings.risk, LedgerStateStore(store), LedgerEventSink(store))
        )
        context = RiskContext(
            venue_state=dict.fromkeys(gateways, "connected"), realized_pnl_today_usd=Decimal(0),
            equity_usd=EQUITY_USD, peak_equity_usd=EQUITY_USD,
        )  # fmt: skip
        prices = StaticTops(opp.instrument, spec.tops)
        hedger = Hedger(settings, gateways=gateways, prices=prices, risk=risk, context=context)
        executor = Executor(
            settings, gateways=gateways, store=store, risk=risk, context=context, prices=prices, hedger=hedger
        )
        await executor.start()
        print("ready", flush=True)
        outcome = await executor.execute(opp)
        print(f"finished {outcome.status}", flush=True)
