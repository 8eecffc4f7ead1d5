"""Value types shared by every room.

Why msgspec Structs: they cost about as much as a tuple to create (the hot path builds tens of thousands of Quotes a
second), encode to msgpack/JSON without glue code, and validate types and numeric constraints *when decoded*. That
gives the split the design asks for: construction on the hot path is unchecked and cheap, every edge (venue message,
Redis entry, API payload) goes through `decode_*` or `quote_problems`, which reject bad data with a reason.

Prices and sizes in market data (Quote, Opportunity) are float64 because the scanner works on numpy arrays of them.
Money that is booked (Order, Fill, Leg) is `Decimal`, parsed from venue strings, never via float.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Final, Literal, get_args

import msgspec

VenueKind = Literal["cex", "cfd", "dex"]
AssetClass = Literal["crypto_major", "crypto_alt", "fx", "commodity", "index"]

MAX_DEPTH: Final = 20
_INF: Final = math.inf
"""Most levels per book side a Quote may carry (DESIGN: depth <= 20 levels each side)."""

NonNegFloat = Annotated[float, msgspec.Meta(ge=0.0)]
PosFloat = Annotated[float, msgspec.Meta(gt=0.0)]
Level = tuple[PosFloat, NonNegFloat]
"""One book level: (price, size)."""
Depth = Annotated[tuple[Level, ...], msgspec.Meta(max_length=MAX_DEPTH)]


class BookSide(StrEnum):
    BID = "bid"
    ASK = "ask"


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    LIMIT = "limit"
    MARKET = "market"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    POST_ONLY = "PO"


class OrderStatus(StrEnum):
    """The executor's order state machine; every transition is a ledger row.

    UNKNOWN is distinct from REJECTED: a request that timed out may still have reached the venue, so it is resolved by
    query (client id, open orders, trades), never by resending.
    """

    NEW = "new"
    SENT = "sent"
    ACKED = "acked"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


class IllegalTransition(ValueError):
    """A status change the state machine does not allow; the message names both states (and what changed)."""

    def __init__(self, old: str, new: str, *, subject: str = "order") -> None:
        super().__init__(f"illegal {subject} transition: {old} -> {new}")
        self.old = old
        self.new = new
        self.subject = subject


ORDER_TRANSITIONS: Final[Mapping[OrderStatus, frozenset[OrderStatus]]] = MappingProxyType(
    {
        OrderStatus.NEW: frozenset({OrderStatus.SENT, OrderStatus.REJECTED}),
        OrderStatus.SENT: frozenset(
            {
                OrderStatus.ACKED,
                OrderStatus.REJECTED,
                OrderStatus.UNKNOWN,
                OrderStatus.FILLED,
                OrderStatus.PARTIALLY_FILLED,
                OrderStatus.CANCELLED,
            }
        ),
        OrderStatus.ACKED: frozenset(
            {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED}
        ),
        OrderStatus.PARTIALLY_FILLED: frozenset(
            {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELLED}
        ),
        OrderStatus.UNKNOWN: frozenset(
            {
                OrderStatus.ACKED,
                OrderStatus.PARTIALLY_FILLED,
                OrderStatus.FILLED,
                OrderStatus.CANCELLED,
                OrderStatus.REJECTED,
            }
        ),
        OrderStatus.CANCELLED: frozenset({OrderStatus.CANCELLED, OrderStatus.FILLED}),
        OrderStatus.FILLED: frozenset(),
        OrderStatus.REJECTED: frozenset(),
    }
)
"""The order state machine: status -> the statuses it may move to.

    new ──> sent ──> acked ──> partially_filled ──> filled
     │       │         │            │  ↺ (more fills)  ↑
     │       │         └────────────┴──> cancelled ────┘ (fill after cancel: a correction, see below)
     └───────┴──> rejected          unknown (request timed out) ──> acked | partially_filled | filled |
                                                                    cancelled | rejected (resolved by query)

- new -> rejected: refused before sending (risk, precision, min notional); nothing reached a venue.
- sent -> filled / partially_filled / cancelled directly: an IOC order often comes back from `create_order` already
  done (filled, or partly filled with the rest expired, which venues and ccxt report as cancelled).
- sent -> unknown: the request timed out or the connection dropped; the order may or may not exist (FAULTS E2/E3).
  It is resolved by query (client id, open orders, recent trades), never by resending; "not found" after the venue's
  visibility window resolves it as rejected (never placed).
- partially_filled -> partially_filled: more fills, `filled` grows.
- cancelled -> filled and cancelled -> cancelled ("fill after cancel", FAULTS E6): a cancel races with matching. The
  venue may match the order between our cancel request and its processing, answer the cancel "order not found"
  (it is no longer open because it filled), or report "canceled" before its trade report reaches us. CANCELLED is
  final in the sense that the order no longer works on the venue (nothing will be sent for it, it is not
  reconciled as open), but the amount the venue filled before the cancel took effect can still be learnt later.
  The ledger then takes the venue's word: cancelled -> filled when the order turns out completely filled, and
  cancelled -> cancelled with a larger `filled` when it turns out partly filled. Nothing else leaves cancelled: a
  cancelled order never works again (no acked / partially_filled), and it cannot become rejected.
- filled and rejected are terminal: a rejected order never reached the book, a filled one has nothing left.
"""

FINAL_STATUSES: Final[frozenset[OrderStatus]] = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED}
)
"""No longer working on any venue: not reconciled on restart, not cancelled on shutdown (cancelled may still be
corrected upwards by a late fill, see ORDER_TRANSITIONS). NEW, SENT, ACKED, PARTIALLY_FILLED and UNKNOWN are open."""


def check_transition(old: OrderStatus, new: OrderStatus) -> None:
    """Raise IllegalTransition unless the order state machine allows `old -> new` (see ORDER_TRANSITIONS)."""
    if new not in ORDER_TRANSITIONS[OrderStatus(old)]:
        raise IllegalTransition(old, new)


class IntentStatus(StrEnum):
    """Where one execution (a pair of legs and whatever hedging it needed) stands; persisted in the ledger.

    PLANNED: written ahead of any order. SENDING: orders are leaving. DONE: legs ended equal (a completed pair).
    FAILED: nothing filled (both legs rejected, or nothing sent). HEDGING: legs ended unequal, the residual is
    being closed. HEDGED: the residual was closed. ESCALATED: it could not be closed; the kill switch is engaged and
    a person must look (not final: restart reconciliation reviews it again).
    """

    PLANNED = "planned"
    SENDING = "sending"
    DONE = "done"
    FAILED = "failed"
    HEDGING = "hedging"
    HEDGED = "hedged"
    ESCALATED = "escalated"


INTENT_TRANSITIONS: Final[Mapping[IntentStatus, frozenset[IntentStatus]]] = MappingProxyType(
    {
        IntentStatus.PLANNED: frozenset(
            {IntentStatus.SENDING, IntentStatus.FAILED, IntentStatus.DONE, IntentStatus.HEDGING, IntentStatus.ESCALATED}
        ),
        IntentStatus.SENDING: frozenset(
            {IntentStatus.DONE, IntentStatus.FAILED, IntentStatus.HEDGING, IntentStatus.ESCALATED}
        ),
        IntentStatus.HEDGING: frozenset({IntentStatus.HEDGED, IntentStatus.ESCALATED}),
        IntentStatus.ESCALATED: frozenset({IntentStatus.HEDGING, IntentStatus.HEDGED}),
        IntentStatus.DONE: frozenset({IntentStatus.HEDGING, IntentStatus.ESCALATED}),
        IntentStatus.FAILED: frozenset({IntentStatus.HEDGING, IntentStatus.ESCALATED}),
        IntentStatus.HEDGED: frozenset({IntentStatus.HEDGING, IntentStatus.ESCALATED}),
    }
)
"""The intent lifecycle: status -> the statuses it may move to (setting the current status again is always allowed:
a retried write, or a corrected realized PnL).

- planned -> done / failed / hedging / escalated without sending: restart reconciliation of a process killed after
  the write-ahead (FAULTS E8) finds out by query what, if anything, reached the venues.
- done / failed / hedged -> hedging: a late fill (fill after cancel, a ghost order found later) left a residual.
- Nothing goes back to planned or sending: an execution is never sent twice (FAULTS E4).
"""

FINAL_INTENT_STATUSES: Final[frozenset[IntentStatus]] = frozenset(
    {IntentStatus.DONE, IntentStatus.FAILED, IntentStatus.HEDGED}
)
"""Settled executions; the others (planned, sending, hedging, escalated) are reviewed by restart reconciliation."""


def check_intent_transition(old: IntentStatus, new: IntentStatus) -> None:
    """Raise IllegalTransition unless an intent may move `old -> new` (see INTENT_TRANSITIONS)."""
    if new != old and new not in INTENT_TRANSITIONS[IntentStatus(old)]:
        raise IllegalTransition(old, new, subject="intent")


class Venue(msgspec.Struct, frozen=True):
    id: str
    kind: VenueKind
    region: str


class Instrument(msgspec.Struct, frozen=True):
    """The economic thing compared across venues (e.g. `BTC/USD`), not one venue's symbol."""

    id: str
    asset_class: AssetClass
    base: str
    quote: str


class Quote(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Top of book (+ optional depth) of one instrument on one venue.

    `array_like` keeps the msgpack form compact (no field names on the wire to Redis); `gc=False` because a Quote
    holds no reference cycles and millions pass through the collector otherwise.
    Times are UTC nanoseconds: `ts_exchange` from the venue, `ts_recv` when we received it; staleness uses `ts_recv`.
    """

    venue: str
    instrument: str
    bid: PosFloat
    bid_size: NonNegFloat
    ask: PosFloat
    ask_size: NonNegFloat
    ts_exchange: int
    ts_recv: int
    sequence: int = 0
    bids: Depth = ()
    asks: Depth = ()


def quote_is_sound(q: Quote) -> bool:
    """`not quote_problems(q)` at a fraction of the cost (the hot path: every update of every venue passes here);
    `quote_problems` is only needed to say *why* when this is False. Raises TypeError for wrongly typed fields."""
    if not (0.0 < q.bid <= q.ask < _INF and 0.0 <= q.bid_size < _INF and 0.0 <= q.ask_size < _INF):
        return False
    if q.ts_exchange < 0 or q.ts_recv <= 0:
        return False
    bids, asks = q.bids, q.asks
    if not bids and not asks:
        return True
    if len(bids) > MAX_DEPTH or len(asks) > MAX_DEPTH:
        return False
    prev = _INF
    for price, size in bids:  # descending, positive, finite (NaN fails every comparison)
        if not (0.0 < price < prev and 0.0 <= size < _INF):
            return False
        prev = price
    prev = 0.0
    for price, size in asks:  # ascending
        if not (prev < price < _INF and 0.0 <= size < _INF):
            return False
        prev = price
    return True


def quote_problems(q: Quote) -> list[str]:
    """Reasons a Quote must not enter the grid; empty when it is sound.

    Catches what msgspec's decode-time constraints cannot: values built in code (not decoded), NaN/inf (NaN passes
    no comparison so decode rejects it, but direct construction does not), crossed books and unsorted depth.
    """
    problems: list[str] = []
    for name in ("bid", "ask"):
        v = getattr(q, name)
        if not (math.isfinite(v) and v > 0):
            problems.append(f"{name} must be a positive finite number, got {v!r}")
    for name in ("bid_size", "ask_size"):
        v = getattr(q, name)
        if not (math.isfinite(v) and v >= 0):
            problems.append(f"{name} must be a non-negative finite number, got {v!r}")
    if not problems and q.bid > q.ask:
        problems.append(f"crossed book: bid {q.bid} > ask {q.ask}")
    if q.ts_exchange < 0 or q.ts_recv <= 0:
        problems.append("timestamps must be positive UTC nanoseconds")
    for side_name, levels, descending in (("bids", q.bids, True), ("asks", q.asks, False)):
        if len(levels) > MAX_DEPTH:
            problems.append(f"{side_name} has {len(levels)} levels, at most {MAX_DEPTH} allowed")
        prev: float | None = None
        for price, size in levels:
            if not (math.isfinite(price) and price > 0 and math.isfinite(size) and size >= 0):
                problems.append(f"{side_name} level ({price!r}, {size!r}) is not a positive price and size")
                break
            if prev is not None and ((price >= prev) if descending else (price <= prev)):
                problems.append(f"{side_name} are not sorted {'descending' if descending else 'ascending'}")
                break
            prev = price
    return problems


OpportunityKind = Literal["spot", "basis", "triangular"]
WalletStatus = Literal["open", "suspended", "unknown", "not_needed"]
OPPORTUNITY_KINDS: tuple[OpportunityKind, ...] = get_args(OpportunityKind)


def opportunity_id(kind: str, instrument: str, buy_venue: str, sell_venue: str, data_ns: int) -> str:
    """The scanner's id of an opportunity: `kind:instrument:buy>sell:data_ns`, `data_ns` being the receive time of
    the newest quote it was first seen on (so two openings of the same pair never share an id)."""
    return f"{kind}:{instrument}:{buy_venue}>{sell_venue}:{data_ns}"


def parse_opportunity_id(oid: str) -> tuple[str, str, str, str, int]:
    """(kind, instrument, buy venue, sell venue, data_ns) of an `opportunity_id`; ValueError saying the shape when
    `oid` is not one (instruments may hold ':' and '/', venues may not)."""
    kind, _, rest = oid.partition(":")
    head, _, ns = rest.rpartition(":")
    instrument, _, pair = head.rpartition(":")
    buy, _, sell = pair.partition(">")
    if kind not in OPPORTUNITY_KINDS or not ns.isdigit() or not instrument or not buy or not sell:
        raise ValueError(f"{oid!r} is not an opportunity id (kind:instrument:buy>sell:ns, as `arb scan` prints them)")
    return kind, instrument, buy, sell, int(ns)


class Opportunity(msgspec.Struct, frozen=True, kw_only=True):
    """A fee-, gas- and slippage-adjusted spread, with every cost and every factor of its priority kept, so a user
    (CLI, API) can see why it ranks where it does.

    All edges are fractions of `vwap_buy` (0.001 = 10 bps):
        gross_spread = (best_bid_sell - best_ask_buy) / best_ask_buy        (top of book, before any cost)
        slippage     = gross_spread - (vwap_sell - vwap_buy) / vwap_buy    (walking both books to `size`)
        net_edge     = (vwap_sell - vwap_buy) / vwap_buy - fee_buy - fee_sell - gas - haircut
        profit       = net_edge * notional                                  (quote currency, notional = size*vwap_buy)
        expected_profit = profit * decay     (decay: quote age and both venues' order latency, see arb.scanner)
        priority     = expected_profit * liquidity_score / (execution_time_s * risk_factor)
    `kind="basis"`: buy spot, sell the linear perpetual (cash and carry); `funding` is the expected funding over the
    holding time (a cost when negative), included in net_edge. `kind="triangular"`: `legs` names the three symbols
    traded on `buy_venue` (== `sell_venue`), `fee_buy` is the sum of the three legs' fees.
    """

    id: str
    kind: OpportunityKind = "spot"
    instrument: str
    buy_venue: str
    sell_venue: str
    quote_currency: str = ""
    size: float
    notional: float = 0.0
    best_ask_buy: float = 0.0
    best_bid_sell: float = 0.0
    vwap_buy: float
    vwap_sell: float
    gross_spread: float
    fee_buy: float
    fee_sell: float
    gas: float
    haircut: float
    slippage: float
    funding: float = 0.0
    net_edge: float
    profit: float = 0.0
    expected_profit: float
    decay: float = 1.0
    liquidity_score: float
    execution_time_s: float
    risk_factor: float
    priority: float
    buy_quote_age_ms: float
    sell_quote_age_ms: float
    depth_estimated: bool = False
    transfer_cost: float = 0.0
    """Quote currency it would cost to move the bought asset to the sell venue (ccxt withdraw fee); 0 when unknown."""
    wallet: WalletStatus = "unknown"
    """Deposit/withdraw status of the base asset on the two venues: a spread on a suspended wallet is usually not
    arbitrage but a closed door."""
    legs: tuple[str, ...] = ()
    ts: int = 0
    """When it was computed (UTC ns)."""

    @property
    def net_edge_bps(self) -> float:
        return self.net_edge * 1e4

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What identifies "the same" opportunity across scans: its lifecycle follows this key."""
        return (self.kind, self.instrument, self.buy_venue, self.sell_venue)


OpportunityEventType = Literal["opened", "updated", "closed"]


class OpportunityEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One lifecycle step of an opportunity (published to the `{prefix}:opportunities` stream and the ledger).

    `opportunity` is its latest state (on `closed`: the last state it had while open). `close_reason` says why it
    ended: "edge" (below threshold), "stale" (a quote aged out), "venue" (a venue went unhealthy), "paused", "gone"
    (a quote vanished), "shutdown".
    """

    type: OpportunityEventType
    opportunity: Opportunity
    opened_ns: int
    ts: int
    peak_net_edge: float
    updates: int = 0
    close_reason: str = ""

    @property
    def duration_ms(self) -> float:
        return (self.ts - self.opened_ns) / 1e6


class Order(msgspec.Struct, kw_only=True):
    """An order as the executor and ledger see it. Mutable on purpose: it walks the state machine."""

    client_id: str
    venue: str
    symbol: str
    side: Side
    type: OrderType
    amount: Decimal
    price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.IOC
    status: OrderStatus = OrderStatus.NEW
    venue_order_id: str | None = None
    filled: Decimal = Decimal(0)
    average_price: Decimal | None = None
    ts_created: int = 0
    ts_updated: int = 0


class Fill(msgspec.Struct, frozen=True, kw_only=True):
    """One execution reported by a venue; `trade_id` is what makes booking idempotent."""

    trade_id: str
    client_id: str
    venue: str
    symbol: str
    side: Side
    price: Decimal
    amount: Decimal
    fee: Decimal
    fee_currency: str
    ts: int


class Leg(msgspec.Struct, kw_only=True):
    """One side of a paired arbitrage: what we intend on one venue and the order that carries it out."""

    venue: str
    instrument: str
    symbol: str
    side: Side
    amount: Decimal
    limit_price: Decimal
    order: Order | None = None


ExecutionMode = Literal["paper", "live"]


class ExecutionIntent(msgspec.Struct, frozen=True, kw_only=True):
    """One planned execution, written to the ledger before any of its orders leaves (write-ahead, FAULTS E9).

    `id` is the deterministic execution id (the executor derives its orders' client ids from it): the ledger refuses
    a second intent of the same id, which is what stops an execution from being sent twice (FAULTS E4). `legs` are
    the planned legs (their `order` is not stored: orders have their own rows). The predictions are the scanner's
    float estimates (net edge in bps, profit in quote currency), kept to compare with the realized PnL.
    """

    id: str
    opportunity_id: str
    instrument: str
    mode: ExecutionMode = "paper"
    legs: tuple[Leg, ...]
    predicted_net_edge_bps: float
    predicted_profit: float
    ts: int
    """When it was planned (UTC ns)."""


LATENCY_EDGES_MS: Final[tuple[float, ...]] = tuple(round(0.1 * 1.25**k, 4) for k in range(48))
"""Upper edges of the latency histogram buckets (0.1 ms .. ~4.5 s, 25 % apart; one overflow bucket after them).

Why a fixed histogram: connector workers run in several processes; fixed buckets add up exactly across them, so the
demo and the API can give an overall p50/p99 without shipping samples around."""


class FeedCounters(msgspec.Struct, kw_only=True):
    """What a connector counts about one venue's feed (shared by its live status and the published health)."""

    symbols: int = 0
    updates: int = 0
    quotes: int = 0
    reconnects: int = 0
    gaps: int = 0
    resyncs: int = 0
    stalls: int = 0
    rejected: dict[str, int] = msgspec.field(default_factory=dict)
    last_update_ns: int = 0
    last_error: str = ""
    closed: list[str] = msgspec.field(default_factory=list)
    """Instruments whose market the venue reports closed now (Capital.com outside its opening hours): their quotes
    stop and age out of the grid as expected; that is no feed fault, so no watchdog or stale state follows from it."""


class VenueHealth(FeedCounters, kw_only=True):
    """One venue's feed health as its connector worker last published it (grid key `{prefix}:venues`).

    The scanner keeps a venue out while it is not `connected` or while this is older than its quote-age limit;
    the demo and the API show it. `latency_hist` counts exchange -> grid latencies over `LATENCY_EDGES_MS`.
    """

    venue: str
    state: str
    since_ns: int
    published_ns: int
    latency_hist: list[int] = msgspec.field(default_factory=list)
    recv_hist: list[int] = msgspec.field(default_factory=list)
    """exchange -> receive latencies (so exchange -> grid can be split into the network/venue and our part)."""
    taker_fees: dict[str, float] = msgspec.field(default_factory=dict)
    """Instrument -> taker fee from the venue's ccxt market data (`markets[symbol]['taker']`) at its last market
    load; the scanner uses them instead of the configured fee when `scanner.fees_from_markets` is on."""


class WalletRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One currency's wallet on one venue, as ccxt reported it (`fetch_currencies` / `fetch_deposit_withdraw_fees`).

    None means the venue did not say, which is not the same as False: a spread on a wallet known to be closed is
    flagged, one on an unknown wallet is not. `withdraw_fee` is in units of the currency, on `network` (the venue's
    default network when it names one). `ts_ns`: when it was read (UTC ns); old records age out in the scanner.
    """

    deposit: bool | None = None
    withdraw: bool | None = None
    withdraw_fee: float | None = None
    network: str | None = None
    ts_ns: int = 0


class VenueWallets(msgspec.Struct, frozen=True, kw_only=True):
    """Every polled currency's wallet on one venue (grid key `{prefix}:wallets`, one hash field per venue)."""

    venue: str
    published_ns: int
    currencies: dict[str, WalletRecord] = msgspec.field(default_factory=dict)


def latency_percentile_ms(hist: list[int], q: float) -> float:
    """The `q` quantile (0..1) of a `LATENCY_EDGES_MS` histogram, as its bucket's upper edge (0.0 if empty)."""
    total = sum(hist)
    if total == 0:
        return 0.0
    rank = q * total
    seen = 0
    for i, n in enumerate(hist):
        seen += n
        if seen >= rank and n:
            return LATENCY_EDGES_MS[min(i, len(LATENCY_EDGES_MS) - 1)]
    return LATENCY_EDGES_MS[-1]


def latency_bucket(latency_ms: float) -> int:
    return bisect.bisect_left(LATENCY_EDGES_MS, latency_ms)


def merge_histograms(hists: list[list[int]]) -> list[int]:
    out = [0] * (len(LATENCY_EDGES_MS) + 1)
    for h in hists:
        for i, n in enumerate(h[: len(out)]):
            out[i] += n
    return out


_QUOTE_DECODER: Final = msgspec.msgpack.Decoder(Quote)
_QUOTES_DECODER: Final = msgspec.msgpack.Decoder(list[Quote])
_ENCODER: Final = msgspec.msgpack.Encoder()


def encode_quote(q: Quote) -> bytes:
    return _ENCODER.encode(q)


def encode_quotes(qs: list[Quote]) -> bytes:
    return _ENCODER.encode(qs)


def decode_quote(data: bytes) -> Quote:
    """Decode and validate one msgpack Quote; raises `msgspec.ValidationError`/`DecodeError` naming the field."""
    return _QUOTE_DECODER.decode(data)


def decode_quotes(data: bytes) -> list[Quote]:
    return _QUOTES_DECODER.decode(data)
