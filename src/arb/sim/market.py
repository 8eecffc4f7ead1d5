"""The market process behind the local venues: one true price per instrument, each venue's book around it.

Why one shared process: an arbitrage scanner is only testable if we know what the *right* answer is. Every venue's
book is the same true price (a seeded random walk) moved by that venue's own static offset and slow AR(1) noise, with
its own spread and depth; the only cross-venue gaps big enough to matter are the ones we inject on purpose
(`Market.inject`, or a random `DislocationSchedule`), and each of those is written to a `TruthLog` as ground truth
(venue, instrument, bps, start/end ns) so later checks can measure what the scanner found and what it missed.

Cost model (15+ venues x hundreds of instruments on 2 cores): each tick walks all true prices at once (numpy), then
for each venue picks the books to refresh this tick (each book about `book_update_hz` times a second, plus any book
whose dislocation starts or ends), computes their new top-of-book ticks in one vectorised pass, and only then drops to
Python for the per-book diff: the levels that appeared, vanished or changed size (a few per update, not a rebuild).
Venues receive those diffs (`BookUpdate`) and render them in their own wire format.

Books live on an integer tick grid (`price = tick_index * tick`), so prices are exact and two books compare exactly.
The best bid/ask move with the venue's price; deeper levels sit on a coarser grid (`level_gap_bps` apart) so a small
price move changes one or two levels, as on a real book. Deeper sizes are a deterministic function of the level's
price (a level that stays keeps its size), the best level's size is redrawn at every refresh, and now and then a
deeper level is resized. Bid and ask never cross: the ask is always at least one tick above the bid.

Time is injected (`now_ns`): tests step the market by hand with a fake clock; `Market.start()` runs it on the loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Final, NamedTuple

import msgspec
import numpy as np

from arb.tasks import cancel_and_wait, spawn

if TYPE_CHECKING:
    from arb.sim.truth import TruthLog

log = logging.getLogger(__name__)

NS_PER_S: Final = 1_000_000_000
NS_PER_MS: Final = 1_000_000

# Seed prices for the instruments people look at first; everything else is derived from its name (deterministic,
# plausible magnitude for its asset class). Crypto by base asset, the rest by instrument id.
SEED_PRICES: Final[dict[str, float]] = {
    "BTC": 65000.0, "ETH": 3200.0, "XRP": 0.55, "BNB": 580.0, "SOL": 150.0, "TRX": 0.12, "DOGE": 0.15, "ADA": 0.45,
    "HYPE": 25.0, "LINK": 14.0, "BCH": 380.0, "XLM": 0.11, "SUI": 1.5, "AVAX": 30.0, "HBAR": 0.08, "LTC": 75.0,
    "TON": 5.5, "SHIB": 0.000018, "DOT": 6.0, "XMR": 160.0, "UNI": 8.0, "PEPE": 0.000009, "APT": 8.0, "NEAR": 5.0,
    "AAVE": 95.0, "ICP": 9.0, "ETC": 25.0, "TAO": 350.0, "POL": 0.5, "ARB": 0.8, "ATOM": 7.0, "FIL": 5.0,
    "OP": 1.8, "TRUMP": 10.0, "BONK": 0.00002, "INJ": 22.0, "YFI": 6500.0, "MKR": 2300.0,
    "EUR/USD": 1.08, "GBP/USD": 1.27, "USD/JPY": 150.0, "USD/CHF": 0.9, "AUD/USD": 0.66, "USD/CAD": 1.36,
    "NZD/USD": 0.61, "EUR/GBP": 0.85, "EUR/JPY": 162.0, "USD/TRY": 32.0, "USD/ZAR": 18.5, "USD/MXN": 17.0,
    "USD/HKD": 7.82, "USD/CNH": 7.25, "USD/HUF": 360.0, "USD/CZK": 23.0,
    "XAU/USD": 2350.0, "XAG/USD": 28.0, "XPT/USD": 980.0, "XPD/USD": 1000.0, "WTI/USD": 78.0, "BRENT/USD": 82.0,
    "NATGAS/USD": 2.5, "COPPER/USD": 4.5,
    "US500": 5200.0, "US100": 18000.0, "US30": 39000.0, "US2000": 2050.0, "DE40": 18000.0, "UK100": 8000.0,
    "JP225": 38000.0, "HK50": 17000.0, "VIX": 14.0,
}  # fmt: skip

_SPREAD_BPS: Final[dict[str, float]] = {
    "crypto_major": 1.0,
    "crypto_alt": 4.0,
    "fx": 0.5,
    "commodity": 2.0,
    "index": 1.0,
}
"""Typical half-spread by asset class; each venue x instrument draws its own around it."""

USD_PER_UNIT: Final[dict[str, float]] = {"USD": 1.0, "USDT": 1.0, "USDC": 1.0, "DAI": 1.0, "EUR": 1.08, "GBP": 1.27}
"""Seed FX for crypto quoted in other money: what one unit of the quote currency is worth in USD."""

_PRICE_RANGE: Final[dict[str, tuple[float, float]]] = {
    "crypto_major": (0.5, 500.0),
    "crypto_alt": (0.01, 50.0),
    "fx": (0.5, 50.0),
    "commodity": (2.0, 2000.0),
    "index": (1000.0, 40000.0),
}


def stable_unit(text: str) -> float:
    """A stable number in [0, 1) from a string (Python's `hash` is salted per process, so not that)."""
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _decimals(value: float) -> int:
    exponent = Decimal(repr(value)).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _pow10_at_most(x: float) -> float:
    return 10.0 ** math.floor(math.log10(x))


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """One instrument the market prices: seed price, tick size, lot step (all venues share them)."""

    id: str
    price: float
    tick: float
    step: float
    asset_class: str = "crypto_alt"
    underlying: str | None = None
    """A perpetual: the instrument whose true price it follows (its own walk is replaced by the underlying's)."""
    basis_bps: float = 0.0
    """A perpetual's true price is the underlying's x (1 + basis_bps / 1e4): the basis the scanner's basis kind sees."""

    def __post_init__(self) -> None:
        for name in ("price", "tick", "step"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"instrument {self.id}: {name} must be a positive finite number, got {value!r}")
        if not (math.isfinite(self.basis_bps) and abs(self.basis_bps) < 1000):
            raise ValueError(f"instrument {self.id}: basis_bps must be finite and below 1000, got {self.basis_bps!r}")

    @classmethod
    def derive(
        cls,
        instrument_id: str,
        *,
        base: str | None = None,
        quote: str | None = None,
        asset_class: str = "crypto_alt",
        price: float | None = None,
    ) -> InstrumentSpec:
        """A spec with a plausible price, tick (1-10 ppm of price, within 1e-8..0.01) and lot step (~1 quote unit).

        Price: `price`, else the seed table (base asset for crypto, instrument id otherwise), else a deterministic
        log-uniform draw from the asset class's range, keyed by the same name so every run agrees. A crypto price is
        in USD and converted to `quote` (BTC/EUR is BTC/USD over EUR/USD), so one coin's books agree across quotes.
        """
        if price is None:
            crypto = asset_class.startswith("crypto") and base is not None
            key = base if crypto and base is not None else instrument_id
            price = SEED_PRICES.get(key)
            if price is None:
                lo, hi = _PRICE_RANGE.get(asset_class, (0.1, 100.0))
                u = stable_unit(key)
                raw = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
                price = float(f"{raw:.4g}")
            if crypto and quote is not None:
                if quote not in USD_PER_UNIT:
                    raise ValueError(f"instrument {instrument_id}: no USD rate for quote currency {quote!r}")
                price = float(f"{price / USD_PER_UNIT[quote]:.6g}")
        tick = min(0.01, max(1e-8, 10.0 ** (math.floor(math.log10(price)) - 5)))
        step = min(1.0, _pow10_at_most(1.0 / price))
        return cls(instrument_id, price, float(f"{tick:.0e}"), float(f"{step:.0e}"), asset_class)


def seeded_basis_bps(instrument_id: str, seed: int = 0) -> float:
    """A perp's basis over its underlying: 1-8 bps (contango, as perps mostly trade), stable per seed and instrument,
    so a run is reproducible and a cash-and-carry basis exists without any injected dislocation."""
    return round(1.0 + 7.0 * stable_unit(f"{seed}|{instrument_id}|basis"), 3)


class MarketConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the market moves. Defaults give a calm market where only injected dislocations are tradable."""

    seed: int = 0
    tick_hz: float = 10.0
    """Market steps per second (each step walks the true prices and refreshes some books)."""
    book_update_hz: float = 5.0
    """Mean refreshes per second of one book (so offered load = books x this); at most `tick_hz`, since a book
    refreshes at most once a step."""
    regular: bool = False
    """False: each book refreshes at random (a Bernoulli draw per step, so some books stay quiet for seconds, as an
    illiquid book does). True: every book refreshes exactly `book_update_hz` times a second at its own phase, so none
    goes quieter than 1/book_update_hz (the demo: every book stays within its venue's quote-age limit)."""
    depth: int = 20
    """Levels per side on every book (DESIGN: quotes carry up to 20)."""
    volatility_bps: float = 1.0
    """Standard deviation of the true price's log return over one second, in bps (1.0 ~ 56 % a year, BTC-like)."""
    venue_offset_bps: float = 1.0
    """Standard deviation of each venue x instrument's static offset from the true price."""
    venue_noise_bps: float = 0.5
    """Standard deviation of each book's slow AR(1) noise around its offset."""
    noise_half_life_s: float = 5.0
    spread_factor: float = 1.0
    """Multiplies every half-spread (asset class typical x a per-book lognormal draw)."""
    level_gap_bps: float = 0.5
    """Distance between the deeper levels, in bps of price (at least one tick)."""
    level_notional: float = 20_000.0
    """Mean size of one level in quote currency."""

    def __post_init__(self) -> None:
        if self.tick_hz <= 0 or self.book_update_hz < 0 or self.depth < 1 or self.noise_half_life_s <= 0:
            raise ValueError("tick_hz and noise_half_life_s must be > 0, book_update_hz >= 0, depth >= 1")
        if min(self.volatility_bps, self.venue_offset_bps, self.venue_noise_bps, self.level_gap_bps) < 0:
            raise ValueError("volatility, offsets, noise and level gap must be >= 0")


BookLevels = tuple[list[tuple[float, float]], list[tuple[float, float]]]


class BooksAt(msgspec.Struct, frozen=True, kw_only=True):
    """A later moment of dislocation `id`: every venue's book of its instrument at `ts_ns` (`Dislocation.moments`)."""

    id: int
    ts_ns: int
    books: dict[str, BookLevels]


class Dislocation(msgspec.Struct, frozen=True, kw_only=True):
    """Ground truth: venue X's book for `instrument` was shifted by `bps` from start_ns (incl.) to end_ns (excl.)."""

    id: int
    venue: str
    instrument: str
    symbol: str
    bps: float
    start_ns: int
    end_ns: int
    source: str = "manual"
    books: dict[str, BookLevels] = {}
    """Every venue's book of `instrument` right after the shift (bids, asks best first; in the truth log only), so a
    check can compute the true net edge of the dislocation from what the venues actually showed."""
    moments: list[BooksAt] = []
    """The same, each later time one of those books was refreshed while the dislocation lasted (truth log only): the
    other venues keep moving (price walk, venue noise), so the edge the venues offered changes during the
    dislocation, and a scanner is right to report it once it crosses the threshold later."""

    def active_at(self, ts_ns: int) -> bool:
        return self.start_ns <= ts_ns < self.end_ns


class DislocationSchedule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Random dislocations: a Poisson process of `rate_per_min`, magnitude and duration uniform in their ranges,
    sign random, on a random (venue, instrument) among `venues` (all venues when empty), never on an instrument that
    is already dislocated somewhere."""

    rate_per_min: float
    bps: tuple[float, float] = (20.0, 80.0)
    duration_ms: tuple[int, int] = (500, 3000)
    venues: tuple[str, ...] = ()


_SIZE_TABLE: Final = 61
"""Entries in each book's size tables (prime, so lattice strides do not alias onto a few entries)."""


class Level(NamedTuple):
    price: float
    size: float


class Book:
    """One venue's book for one instrument, on the instrument's tick grid. Mutated only by the market.

    Each side is its best level (`bid_top` / `ask_top`) plus a lattice of `depth - 1` deeper levels every `gap` ticks
    (bids: `bid_lo..bid_hi`, asks: `ask_lo..ask_hi`, multiples of `gap`, strictly behind the best level). Keeping the
    lattice as an interval makes a refresh cost what changed: the levels the interval gained or lost, not a rebuild.
    """

    __slots__ = (
        "_jitter",
        "_sizes",
        "ask_hi",
        "ask_lo",
        "ask_top",
        "asks",
        "bid_hi",
        "bid_lo",
        "bid_top",
        "bids",
        "instrument",
        "price_decimals",
        "row",
        "size_decimals",
        "step",
        "symbol",
        "tick",
        "ts_ns",
        "update_id",
        "venue",
    )

    def __init__(self, venue: str, instrument: InstrumentSpec, symbol: str, row: int, *, level_notional: float) -> None:
        self.venue = venue
        self.instrument = instrument.id
        self.symbol = symbol
        self.row = row
        self.tick = instrument.tick
        self.step = instrument.step
        self.price_decimals = _decimals(instrument.tick)
        self.size_decimals = _decimals(instrument.step)
        self.bids: dict[int, float] = {}
        self.asks: dict[int, float] = {}
        self.bid_top = self.ask_top = 0
        self.bid_lo = self.ask_lo = 1
        self.bid_hi = self.ask_hi = 0  # lo > hi: empty lattice
        self.update_id = 0
        self.ts_ns = 0
        # Sizes come from two small per-book tables (deterministic by level, and "random" for order flow at the
        # touch) so the hot path never rounds: a refresh is dict updates and table lookups.
        base_qty = max(instrument.step, level_notional / instrument.price)
        phase = stable_unit(f"{venue}|{instrument.id}")
        self._sizes = [self._round_size(base_qty * (0.2 + 1.8 * ((k * 0.6180339887498949 + phase) % 1.0)))
                       for k in range(_SIZE_TABLE)]  # fmt: skip
        self._jitter = [self._round_size(base_qty * (0.05 + 1.45 * ((k * 0.7548776662466927 + phase) % 1.0)))
                        for k in range(_SIZE_TABLE)]  # fmt: skip

    def price(self, tick: int) -> float:
        """The level's price, rounded to the tick's decimals (so it equals what a client parses from the wire)."""
        return round(tick * self.tick, self.price_decimals)

    def _round_size(self, qty: float) -> float:
        return round((int(qty / self.step + 0.5) or 1) * self.step, self.size_decimals)

    def top(self) -> tuple[float, float, float, float]:
        """(bid, bid_size, ask, ask_size)."""
        return (
            self.price(self.bid_top),
            self.bids[self.bid_top],
            self.price(self.ask_top),
            self.asks[self.ask_top],
        )

    def levels(self, depth: int | None = None) -> tuple[list[Level], list[Level]]:
        """Bids best-first (descending), asks best-first (ascending), at most `depth` each."""
        bid_ticks = sorted(self.bids, reverse=True)[:depth]
        ask_ticks = sorted(self.asks)[:depth]
        return (
            [Level(self.price(t), self.bids[t]) for t in bid_ticks],
            [Level(self.price(t), self.asks[t]) for t in ask_ticks],
        )

    def _apply(
        self, bid_top: int, ask_top: int, gap: int, depth: int, rng: random.Random, ts_ns: int, bump: int
    ) -> BookUpdate:
        old_bid = (self.bid_top, self.bids.get(self.bid_top))
        old_ask = (self.ask_top, self.asks.get(self.ask_top))
        span = (depth - 2) * gap
        bid_hi = ((bid_top - 1) // gap) * gap
        ask_lo = -((-(ask_top + 1)) // gap) * gap
        bids = self._move(self.bids, self.bid_top, self.bid_lo, self.bid_hi, bid_top, bid_hi - span, bid_hi, gap)
        asks = self._move(self.asks, self.ask_top, self.ask_lo, self.ask_hi, ask_top, ask_lo, ask_lo + span, gap)
        self.bid_top, self.bid_lo, self.bid_hi = bid_top, bid_hi - span, bid_hi
        self.ask_top, self.ask_lo, self.ask_hi = ask_top, ask_lo, ask_lo + span
        # Order flow at the touch: the best level's size moves on every refresh; now and then a deeper one does too.
        jitter = self._jitter
        for side, changes, top, lo in ((self.bids, bids, bid_top, bid_hi - span), (self.asks, asks, ask_top, ask_lo)):
            size = jitter[int(rng.random() * _SIZE_TABLE)]
            if size != side[top]:
                side[top] = changes[top] = size
            if depth > 1 and rng.random() < 0.3:
                t = lo + int(rng.random() * (depth - 1)) * gap
                size = jitter[int(rng.random() * _SIZE_TABLE)]
                if size != side[t]:
                    side[t] = changes[t] = size
        first = self.update_id + 1
        self.update_id += bump
        self.ts_ns = ts_ns
        top_changed = old_bid != (bid_top, self.bids[bid_top]) or old_ask != (ask_top, self.asks[ask_top])
        return BookUpdate(self, first, self.update_id, list(bids.items()), list(asks.items()), ts_ns, top_changed)

    def _move(
        self, side: dict[int, float], top0: int, lo0: int, hi0: int, top1: int, lo1: int, hi1: int, gap: int
    ) -> dict[int, float]:
        """Move one side from (top0, lattice lo0..hi0) to (top1, lattice lo1..hi1); return {tick: size, 0 = gone}.

        Both lattices are multiples of `gap` and the best level is never on its own lattice, so the levels that go
        are: the old best (unless it is on the new lattice or is the new best) and the old lattice points outside
        the new interval; the levels that come are the new lattice points outside the old interval and the new best.
        Levels that stay keep their size.
        """
        changes: dict[int, float] = {}
        sizes = self._sizes
        if top0 != top1 and top0 in side and not (lo1 <= top0 <= hi1 and top0 % gap == 0):
            del side[top0]
            changes[top0] = 0.0
        if hi0 >= lo0:
            for t in _outside(lo0, hi0, lo1, hi1, gap):
                if t != top1:
                    del side[t]
                    changes[t] = 0.0
        for t in _outside(lo1, hi1, lo0, hi0, gap) if hi0 >= lo0 else range(lo1, hi1 + 1, gap):
            if t not in side:
                side[t] = changes[t] = sizes[t % _SIZE_TABLE]
        if top1 not in side:
            side[top1] = changes[top1] = sizes[top1 % _SIZE_TABLE]
        return changes


def _outside(lo: int, hi: int, lo_other: int, hi_other: int, gap: int) -> Iterable[int]:
    """Lattice points of lo..hi (step `gap`) that are not inside lo_other..hi_other (the same lattice)."""
    if hi_other < lo or lo_other > hi:
        return range(lo, hi + 1, gap)
    return itertools.chain(range(lo, lo_other, gap), range(hi_other + gap, hi + 1, gap))


class BookUpdate(NamedTuple):
    """One refresh of one book, as a diff: `bids`/`asks` hold (tick, new size), size 0.0 removes the level.

    Update ids `first_id..last_id` continue the book's chain (the next update's first_id is this last_id + 1), which
    is what sequenced protocols (Binance `U`/`u`) put on the wire. A refresh spans 1-3 ids, like a real engine whose
    internal events are batched into one message.
    """

    book: Book
    first_id: int
    last_id: int
    bids: list[tuple[int, float]]
    asks: list[tuple[int, float]]
    ts_ns: int
    top_changed: bool


Listener = Callable[[Sequence[BookUpdate]], None]


class VenueFeed:
    """One venue's books inside the market, as aligned arrays (rows) for the vectorised refresh."""

    def __init__(self, market: Market, venue: str, symbols: Mapping[str, str], rng: np.random.Generator) -> None:
        cfg = market.config
        self.venue = venue
        self.symbols: dict[str, str] = dict(symbols)
        self.books: list[Book] = []
        self.by_instrument: dict[str, Book] = {}
        self.by_symbol: dict[str, Book] = {}
        inst_rows: list[int] = []
        spread_typ: list[float] = []
        for row, (instrument_id, symbol) in enumerate(self.symbols.items()):
            spec = market.instrument(instrument_id)
            book = Book(venue, spec, symbol, row, level_notional=cfg.level_notional)
            if symbol in self.by_symbol:
                raise ValueError(f"venue {venue}: symbol {symbol} is mapped from two instruments")
            self.books.append(book)
            self.by_instrument[instrument_id] = book
            self.by_symbol[symbol] = book
            inst_rows.append(market.index[instrument_id])
            spread_typ.append(_SPREAD_BPS.get(spec.asset_class, 2.0))
        n = len(self.books)
        self.inst_idx = np.asarray(inst_rows, dtype=np.int64)
        self.tick = np.asarray([b.tick for b in self.books], dtype=np.float64)
        self.offset_bps = rng.normal(0.0, cfg.venue_offset_bps, n) if cfg.venue_offset_bps else np.zeros(n)
        self.noise_bps = rng.normal(0.0, cfg.venue_noise_bps, n) if cfg.venue_noise_bps else np.zeros(n)
        self.half_spread_bps = np.asarray(spread_typ) * cfg.spread_factor * rng.lognormal(0.0, 0.3, n)
        self.phase = rng.random(n)
        """Refresh phase of each book in a regular market (a fraction of the refresh period)."""
        self.shift = np.ones(n)
        """Product of (1 + bps/1e4) over this book's active dislocations."""
        prices = market.mid[self.inst_idx] if n else np.zeros(0)
        self.gap = np.maximum(1, np.round(prices * cfg.level_gap_bps / 1e4 / self.tick)).astype(np.int64)
        too_coarse = prices / self.tick < 4 * cfg.depth * self.gap
        if too_coarse.any():
            bad = [self.books[i].instrument for i in np.flatnonzero(too_coarse)]
            raise ValueError(f"venue {venue}: tick too coarse for {cfg.depth} levels a side: {', '.join(bad)}")
        self._gap_list: list[int] = self.gap.tolist()
        self.listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every batch of this venue's updates; returns the function that removes it."""
        self.listeners.append(listener)

        def remove() -> None:
            if listener in self.listeners:
                self.listeners.remove(listener)

        return remove

    def centers(self, mid: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Unrounded venue mid per row: true price x (1 + offset + noise) x dislocation shift."""
        if rows is None:
            rows = np.arange(len(self.books))
        out: np.ndarray = (
            mid[self.inst_idx[rows]] * (1.0 + (self.offset_bps[rows] + self.noise_bps[rows]) / 1e4) * self.shift[rows]
        )
        return out

    def _refresh(self, market: Market, rows: np.ndarray, ts_ns: int) -> list[BookUpdate]:
        if rows.size == 0:
            return []
        centers = self.centers(market.mid, rows)
        hs = self.half_spread_bps[rows] / 1e4
        tick = self.tick[rows]
        bid_t = np.floor(centers * (1.0 - hs) / tick).astype(np.int64)
        ask_t = np.maximum(np.ceil(centers * (1.0 + hs) / tick).astype(np.int64), bid_t + 1)
        bid_t = np.maximum(bid_t, 1)
        ask_t = np.maximum(ask_t, bid_t + 1)
        depth = market.config.depth
        rng = market._pyrng
        gaps = self._gap_list
        books = self.books
        return [
            books[r]._apply(b, a, gaps[r], depth, rng, ts_ns, 1 + int(rng.random() * 3))
            for r, b, a in zip(rows.tolist(), bid_t.tolist(), ask_t.tolist(), strict=True)
        ]

    def _emit(self, updates: list[BookUpdate]) -> None:
        if not updates:
            return
        for listener in list(self.listeners):
            try:
                listener(updates)
            except Exception:
                log.exception("sim.listener_failed venue=%s", self.venue)


class Market:
    """True prices, every venue's books, dislocations and their ground truth. See the module docstring.

        market = Market(specs, MarketConfig(seed=1), truth=TruthLog(path))
        feed = market.add_venue("binance", {"BTC/USD": "BTC/USDT"})
        async with market:                       # steps `tick_hz` times a second until closed
            market.inject("binance", "BTC/USD", bps=50, duration_ms=2000)

    Tests call `step(now_ns)` / `expire(now_ns)` with their own clock instead of running it.
    """

    def __init__(
        self,
        instruments: Iterable[InstrumentSpec],
        config: MarketConfig | None = None,
        *,
        truth: TruthLog | None = None,
        schedule: DislocationSchedule | None = None,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config or MarketConfig()
        self.specs: list[InstrumentSpec] = list(instruments)
        self.index: dict[str, int] = {}
        for i, spec in enumerate(self.specs):
            if spec.id in self.index:
                raise ValueError(f"instrument {spec.id} given twice")
            self.index[spec.id] = i
        self.mid = np.asarray([s.price for s in self.specs], dtype=np.float64)
        linked = [(i, s) for i, s in enumerate(self.specs) if s.underlying is not None]
        for _, s in linked:
            under = self.index.get(s.underlying or "")
            if under is None or self.specs[under].underlying is not None:
                raise ValueError(
                    f"instrument {s.id}: underlying {s.underlying!r} is not a spot instrument in the market"
                )
        self._linked = np.asarray([i for i, _ in linked], dtype=np.int64)
        self._under = np.asarray([self.index[s.underlying or ""] for _, s in linked], dtype=np.int64)
        self._basis = np.asarray([1.0 + s.basis_bps / 1e4 for _, s in linked], dtype=np.float64)
        self._follow()
        self.feeds: dict[str, VenueFeed] = {}
        self.truth = truth
        self.schedule = schedule
        self.active: list[Dislocation] = []
        self.steps = 0
        self.updates = 0
        self._now = now_ns
        self._rng = np.random.default_rng(self.config.seed)
        self._pyrng = random.Random(self.config.seed)  # noqa: S311 - simulation, not crypto
        self._last_ns: int | None = None
        self._next_dislocation_id = 1
        self._unrecorded: list[Dislocation] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # ---------------------------------------------------------------- structure

    def _follow(self) -> None:
        """Perps' true prices: their underlying's times (1 + basis)."""
        if self._linked.size:
            self.mid[self._linked] = self.mid[self._under] * self._basis

    def instrument(self, instrument_id: str) -> InstrumentSpec:
        try:
            return self.specs[self.index[instrument_id]]
        except KeyError:
            raise KeyError(f"instrument {instrument_id} is not in the market") from None

    def add_venue(self, venue: str, symbols: Mapping[str, str]) -> VenueFeed:
        """Give `venue` a book for each instrument in `symbols` (instrument id -> the venue's symbol).

        Adding a venue again with the same symbols returns its existing feed (a restarted server keeps its books and
        their update ids); different symbols are an error. New books are filled at once, so a snapshot is never empty.
        """
        existing = self.feeds.get(venue)
        if existing is not None:
            if existing.symbols != dict(symbols):
                raise ValueError(f"venue {venue} is already in the market with other symbols")
            return existing
        unknown = [i for i in symbols if i not in self.index]
        if unknown:
            raise KeyError(f"venue {venue}: instruments not in the market: {', '.join(sorted(unknown))}")
        feed = VenueFeed(self, venue, symbols, self._rng)
        self.feeds[venue] = feed
        feed._refresh(self, np.arange(len(feed.books)), self._now())
        return feed

    def feed(self, venue: str) -> VenueFeed:
        try:
            return self.feeds[venue]
        except KeyError:
            raise KeyError(f"venue {venue} is not in the market") from None

    def book(self, venue: str, instrument: str) -> Book:
        feed = self.feed(venue)
        try:
            return feed.by_instrument[instrument]
        except KeyError:
            raise KeyError(f"venue {venue} does not list {instrument}") from None

    def center(self, venue: str, instrument: str) -> float:
        """The venue's unrounded mid for `instrument` now (before tick rounding): what its book is built around."""
        feed = self.feed(venue)
        row = self.book(venue, instrument).row
        return float(feed.centers(self.mid, np.asarray([row]))[0])

    # ---------------------------------------------------------------- time

    def step(self, now_ns: int | None = None) -> int:
        """Advance to `now_ns`: walk the true prices, end due dislocations, start scheduled ones, refresh books.

        Returns the number of book updates emitted.
        """
        now = self._now() if now_ns is None else now_ns
        dt = 0.0 if self._last_ns is None else min(max((now - self._last_ns) / NS_PER_S, 0.0), 5.0)
        self._last_ns = now
        cfg = self.config
        if dt > 0 and cfg.volatility_bps > 0 and self.mid.size:
            sigma = cfg.volatility_bps / 1e4 * math.sqrt(dt)
            self.mid *= np.exp(sigma * self._rng.standard_normal(self.mid.size) - 0.5 * sigma * sigma)
            self._follow()
        forced = self._end_due(now)
        if self.schedule is not None and dt > 0:
            for d in self._draw_scheduled(now, dt):
                forced.setdefault(d.venue, set()).add(self.book(d.venue, d.instrument).row)
        phi = math.exp(-dt * math.log(2) / cfg.noise_half_life_s)
        p = min(1.0, cfg.book_update_hz * dt) if dt > 0 else 0.0
        emitted = 0
        refreshed: dict[str, np.ndarray] = {}
        # venues with a dislocation starting or ending go first: their update is the one a scanner is measured on
        for venue, feed in sorted(self.feeds.items(), key=lambda kv: kv[0] not in forced):
            n = len(feed.books)
            if n == 0:
                continue
            if cfg.venue_noise_bps and dt > 0:
                feed.noise_bps = phi * feed.noise_bps + math.sqrt(1 - phi * phi) * cfg.venue_noise_bps * (
                    self._rng.standard_normal(n)
                )
            if cfg.regular:
                # Book i refreshes when t * hz - phase_i crosses an integer during (t - dt, t].
                t1 = now / NS_PER_S * cfg.book_update_hz - feed.phase
                selected = np.floor(t1) > np.floor(t1 - dt * cfg.book_update_hz)
            else:
                selected = self._rng.random(n) < p
            for row in forced.get(venue, ()):
                selected[row] = True
            updates = feed._refresh(self, np.flatnonzero(selected), now)
            emitted += len(updates)
            feed._emit(updates)
            if self.truth is not None and self.active:
                refreshed[venue] = selected
        self.steps += 1
        self.updates += emitted
        self._record_moments(now, refreshed)
        self._record_started()
        return emitted

    def _books_of(self, instrument: str) -> dict[str, BookLevels]:
        books: dict[str, BookLevels] = {}
        for venue, feed in self.feeds.items():
            if instrument in feed.by_instrument:
                bids, asks = self.book(venue, instrument).levels()
                books[venue] = ([(p, q) for p, q in bids], [(p, q) for p, q in asks])
        return books

    def _record_moments(self, now: int, refreshed: dict[str, np.ndarray]) -> None:
        """Record every venue's book of each running dislocation's instrument when one of them was refreshed now."""
        if self.truth is None or not refreshed:
            return
        starting = {d.id for d in self._unrecorded}  # recorded whole by `_record_started`
        for d in self.active:
            if d.id in starting:
                continue
            for venue, selected in refreshed.items():
                book = self.feeds[venue].by_instrument.get(d.instrument)
                if book is not None and selected[book.row]:
                    self.truth.record_moment(BooksAt(id=d.id, ts_ns=now, books=self._books_of(d.instrument)))
                    break

    def _record_started(self) -> None:
        """Write the dislocations started since the last call to the truth log, with every venue's book as shifted."""
        if self.truth is None or not self._unrecorded:
            return
        for d in self._unrecorded:
            self.truth.record(msgspec.structs.replace(d, books=self._books_of(d.instrument)))
        self._unrecorded.clear()

    def expire(self, now_ns: int | None = None) -> int:
        """End the dislocations due by `now_ns` and refresh their books at once (no price walk); returns updates."""
        now = self._now() if now_ns is None else now_ns
        emitted = 0
        for venue, rows in self._end_due(now).items():
            feed = self.feeds[venue]
            updates = feed._refresh(self, np.asarray(sorted(rows), dtype=np.int64), now)
            emitted += len(updates)
            feed._emit(updates)
        self.updates += emitted
        return emitted

    def next_end_ns(self) -> int | None:
        return min((d.end_ns for d in self.active), default=None)

    # ---------------------------------------------------------------- dislocations

    def inject(
        self,
        venue: str,
        instrument: str,
        bps: float,
        duration_ms: float,
        *,
        now_ns: int | None = None,
        source: str = "manual",
    ) -> Dislocation:
        """Shift `venue`'s book for `instrument` by `bps` (relative to where it would be) for `duration_ms`.

        Takes effect at once (the book is refreshed and its update emitted now) and is recorded in the truth log.
        Overlapping dislocations on one book multiply. Negative bps shift the book down.
        """
        if not (math.isfinite(bps) and bps != 0 and abs(bps) < 10_000):
            raise ValueError(f"bps must be a finite non-zero number of basis points below 10000, got {bps!r}")
        if not (math.isfinite(duration_ms) and duration_ms > 0):
            raise ValueError(f"duration_ms must be a positive number, got {duration_ms!r}")
        book = self.book(venue, instrument)
        now = self._now() if now_ns is None else now_ns
        d = Dislocation(
            id=self._next_dislocation_id,
            venue=venue,
            instrument=instrument,
            symbol=book.symbol,
            bps=float(bps),
            start_ns=now,
            end_ns=now + int(duration_ms * NS_PER_MS),
            source=source,
        )
        self._next_dislocation_id += 1
        self._start(d)
        feed = self.feeds[venue]
        feed._emit(feed._refresh(self, np.asarray([book.row], dtype=np.int64), now))
        self._record_started()
        return d

    def _start(self, d: Dislocation) -> None:
        feed = self.feeds[d.venue]
        feed.shift[feed.by_instrument[d.instrument].row] *= 1.0 + d.bps / 1e4
        self.active.append(d)
        if self.truth is not None:
            self._unrecorded.append(d)  # recorded once its book is refreshed (`_record_started`)
        log.info(
            "sim.dislocation_started id=%d venue=%s instrument=%s bps=%.2f duration_ms=%.0f source=%s",
            d.id,
            d.venue,
            d.instrument,
            d.bps,
            (d.end_ns - d.start_ns) / NS_PER_MS,
            d.source,
        )

    def _end_due(self, now: int) -> dict[str, set[int]]:
        """Remove dislocations with end_ns <= now from their books; returns the rows to refresh, by venue."""
        rows: dict[str, set[int]] = {}
        if not self.active:
            return rows
        due = [d for d in self.active if d.end_ns <= now]
        if not due:
            return rows
        self.active = [d for d in self.active if d.end_ns > now]
        still = {(d.venue, d.instrument) for d in self.active}
        for d in due:
            feed = self.feeds[d.venue]
            row = feed.by_instrument[d.instrument].row
            if (d.venue, d.instrument) in still:
                feed.shift[row] /= 1.0 + d.bps / 1e4
            else:
                feed.shift[row] = 1.0  # nothing left on this book: no float drift from multiply then divide
            rows.setdefault(d.venue, set()).add(row)
            log.info("sim.dislocation_ended id=%d venue=%s instrument=%s", d.id, d.venue, d.instrument)
        return rows

    def _draw_scheduled(self, now: int, dt: float) -> list[Dislocation]:
        sched = self.schedule
        if sched is None:
            return []
        venues = [v for v in (sched.venues or tuple(self.feeds)) if v in self.feeds and self.feeds[v].books]
        if not venues:
            return []
        out: list[Dislocation] = []
        busy = {d.instrument for d in self.active}
        for _ in range(int(self._rng.poisson(sched.rate_per_min / 60.0 * dt))):
            feed = self.feeds[venues[int(self._rng.integers(len(venues)))]]
            book = feed.books[int(self._rng.integers(len(feed.books)))]
            if book.instrument in busy:
                # One scheduled dislocation per instrument at a time: overlapping shifts would make the recorded true
                # edge of each one wrong once the other ends (the draw is skipped, so the rate is a shade lower).
                continue
            busy.add(book.instrument)
            magnitude = float(self._rng.uniform(*sched.bps))
            bps = magnitude if self._rng.random() < 0.5 else -magnitude
            duration = float(self._rng.uniform(*sched.duration_ms))
            d = Dislocation(
                id=self._next_dislocation_id,
                venue=feed.venue,
                instrument=book.instrument,
                symbol=book.symbol,
                bps=round(bps, 2),
                start_ns=now,
                end_ns=now + int(duration * NS_PER_MS),
                source="schedule",
            )
            self._next_dislocation_id += 1
            self._start(d)
            out.append(d)
        return out

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Run the market on the loop (`tick_hz` steps a second, dislocations ended on time) until `close()`."""
        if self._closed:
            raise RuntimeError("market is closed; make a new one")
        if self._task is not None:
            raise RuntimeError("market is already running")
        self._task = spawn(self._run(), name="sim.market")

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        if self.truth is not None:
            await self.truth.close()

    async def __aenter__(self) -> Market:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self) -> None:
        period_ns = int(NS_PER_S / self.config.tick_hz)
        next_tick = self._now()
        lag_warned = 0
        while True:
            now = self._now()
            if now >= next_tick:
                self.step(now)
                spent = self._now() - now
                if spent > period_ns and self.steps - lag_warned > 100:
                    lag_warned = self.steps
                    log.warning("sim.market_lagging step_ms=%.1f period_ms=%.1f", spent / 1e6, period_ns / 1e6)
                next_tick = max(next_tick + period_ns, self._now())
            else:
                self.expire(now)
            wake = next_tick
            end = self.next_end_ns()
            if end is not None and end < wake:
                wake = end
            await asyncio.sleep(max(0.0, (wake - self._now()) / NS_PER_S))
