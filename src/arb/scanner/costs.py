"""Per-cell trading costs as (instruments × venues) arrays: taker fee, quote-currency haircut, DEX gas.

Why arrays built once: the scanner charges these on every pass over 300 instruments × 20 venues; looking them up in
the config per pair would cost more than the spread arithmetic itself. Fees come from config and can be overridden per
cell by what the venue's ccxt market data says (`market['taker']`, which knows VIP tiers and per-symbol promotions).
The haircut is the `quote_equivalence` entry of the venue symbol's quote currency (a BTC/USDT leg of a BTC/USD
instrument carries the USDT haircut): explicit, never a silent USDT == USD. A *pair* pays it only when its two legs'
venue quote currencies differ (`pair haircut = 0 if same currency else haircut_buy + haircut_sell`): buying and selling
the same base for USDT on two venues leaves the profit in USDT and moves no notional between currencies (what USDT is
worth in USD touches only that profit, noise next to it), while buying for USDT and selling for USD moves the whole
notional from one currency to the other. Hence `quote_code`, the venue quote currency of every cell, next to
`haircut`; every pair cost in the scanner (kernel, reference, basis, truth) applies this one rule.

Gas is a fixed quote-currency cost per swap (gas units × gas price × native token price), so as a fraction of the
trade it shrinks with size; the scanner divides it by the notional. A DEX venue whose native token has no price yet
has NaN gas, and NaN costs make no opportunity: an unpriced cost is never taken as zero. Where the DEX connector
publishes its per-block gas (`arb.grid.gas`, from the block's base fee + tip and the pool's own native price), that
live figure replaces the configured `gas_price_gwei` estimate cell by cell (`set_live_gas`); the estimate remains for
cells no connector prices (a replayed tape, a DEX fed by something else).

A DEX cell's taker fee is 0: a DEX quote is the pool's executable amounts with the LP fee already in them
(`arb.connectors.dex.quoting`), so charging `fees.taker` on top would count the 0.3 % twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from arb.config.schema import Settings
    from arb.grid.gas import GasCost
    from arb.grid.layout import GridLayout

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


class ScannerConfigError(ValueError):
    """The configuration cannot be scanned (names the instrument/venue/key at fault)."""


def symbol_quote(symbol: str) -> str | None:
    """`BTC/USDT` -> `USDT`, `BTC/USDT:USDT` -> `USDT`; None for an epic (`EURUSD`) that names no quote."""
    if "/" not in symbol:
        return None
    return symbol.split("/", 1)[1].split(":", 1)[0]


class CostModel:
    """Fee, haircut, venue quote currency and gas per cell, plus each instrument's quote currency and its USD value.

    `listed[i, j]`: venue j lists instrument i (only listed cells are ever compared).
    `quote_code[i, j]`: the venue quote currency of cell (i, j) as an index into `currencies` (-1 where not listed);
    codes are shared by all rows, so cells of different instruments (a basis pair's spot and perp) compare too.
    """

    def __init__(self, settings: Settings, layout: GridLayout) -> None:
        shape = layout.shape
        self.layout = layout
        self.listed: BoolArray = np.zeros(shape, np.bool_)
        self.fee: FloatArray = np.full(shape, np.nan)
        self.haircut: FloatArray = np.full(shape, np.nan)
        self.quote_code: IntArray = np.full(shape, -1, np.int64)
        self.gas_quote: FloatArray = np.zeros(shape)
        self.quote_currency: tuple[str, ...] = tuple(settings.instruments[x].quote for x in layout.instruments)
        usd = settings.scanner.usd_per_quote
        missing = sorted({q for q in self.quote_currency if q not in usd})
        if missing:
            raise ScannerConfigError(
                f"scanner.usd_per_quote has no rate for quote currency {', '.join(missing)}: the USD thresholds "
                "(min notional, max trade notional) cannot be applied to their instruments"
            )
        self.usd_per_quote: FloatArray = np.array([usd[q] for q in self.quote_currency])
        self._gas_units = np.zeros(len(layout.venues))
        self._gas_chain: dict[int, tuple[str, float]] = {}
        self.live_gas: BoolArray = np.zeros(shape, np.bool_)
        """Cells whose gas is the connector's live figure (`set_live_gas`), not the configured estimate."""
        self._live_gas_cost: FloatArray = np.full(shape, np.nan)
        for j, vid in enumerate(layout.venues):
            venue = settings.venues[vid]
            if venue.kind == "dex" and venue.gas_units_swap:
                chain = settings.chains[venue.chain or ""]
                self._gas_units[j] = venue.gas_units_swap
                self._gas_chain[j] = (chain.native, chain.gas_price_gwei)
        codes: dict[str, int] = {}
        for i, iid in enumerate(layout.instruments):
            inst = settings.instruments[iid]
            table = settings.quote_equivalence.get(inst.quote, {inst.quote: 0.0})
            for vid, symbol in inst.venues.items():
                if not layout.has_venue(vid):
                    continue
                j = layout.venue_index(vid)
                venue_quote = symbol_quote(symbol) or inst.quote  # an epic is quoted in the instrument's currency
                if venue_quote not in table:
                    raise ScannerConfigError(
                        f"instruments.{iid}.venues.{vid}: {symbol!r} is quoted in {venue_quote!r}, which "
                        f"quote_equivalence does not declare equivalent to {inst.quote!r}"
                    )
                self.listed[i, j] = True
                self.fee[i, j] = 0.0 if j in self._gas_chain else settings.venues[vid].fees.taker  # DEX: fee in price
                self.haircut[i, j] = table[venue_quote]
                self.quote_code[i, j] = codes.setdefault(venue_quote, len(codes))
                if j in self._gas_chain:
                    self.gas_quote[i, j] = np.nan  # unpriced until `price_gas` sees the native token
        self.currencies: tuple[str, ...] = tuple(codes)
        """Venue quote currencies by code (`quote_code`), in first-seen order."""

    def venue_quote(self, i: int, j: int) -> str:
        """The venue quote currency of listed cell (i, j) (`USDT` for a BTC/USDT leg of BTC/USD)."""
        code = int(self.quote_code[i, j])
        if code < 0:
            raise ScannerConfigError(f"{self.layout.instruments[i]} is not listed on {self.layout.venues[j]}")
        return self.currencies[code]

    def pair_haircut(self, i_buy: int, buy: int, i_sell: int, sell: int) -> float:
        """Haircut of buying cell (i_buy, buy) and selling cell (i_sell, sell): 0 when both legs are quoted in the same
        venue currency, else both cells' haircuts (see the module docstring). NaN if a cell is not listed."""
        if self.quote_code[i_buy, buy] == self.quote_code[i_sell, sell] >= 0:
            return 0.0
        return float(self.haircut[i_buy, buy] + self.haircut[i_sell, sell])

    def override_fees(self, taker: Mapping[tuple[str, str], float]) -> int:
        """Per-cell taker fees from the venues' market data, keyed (instrument, venue); returns how many applied.
        A negative or non-finite fee is refused (config refuses rebates too: never count on one): then none applies."""
        for (iid, vid), fee in taker.items():
            if not (np.isfinite(fee) and 0.0 <= fee < 1.0):
                raise ScannerConfigError(f"taker fee of {iid} on {vid} must be in [0, 1), got {fee!r}")
        applied = 0
        for (iid, vid), fee in taker.items():
            if not (self.layout.has_instrument(iid) and self.layout.has_venue(vid)):
                continue
            i, j = self.layout.instrument_index(iid), self.layout.venue_index(vid)
            if self.listed[i, j] and j not in self._gas_chain:  # a DEX's fee is in its quotes
                self.fee[i, j] = fee
                applied += 1
        return applied

    def price_gas(self, native_usd: Mapping[str, float]) -> None:
        """Charge each DEX venue's swap gas, in every instrument's quote currency, from the native tokens' USD
        prices (e.g. {"ETH": 3200.0}); a chain whose native price is missing keeps NaN gas (no opportunity)."""
        for j, (native, gwei) in self._gas_chain.items():
            price = native_usd.get(native)
            usd = self._gas_units[j] * gwei * 1e-9 * price if price and np.isfinite(price) and price > 0 else np.nan
            column = self.listed[:, j]
            self.gas_quote[column, j] = usd / self.usd_per_quote[column]
        self.gas_quote[self.live_gas] = self._live_gas_cost[self.live_gas]

    def set_live_gas(self, records: Mapping[tuple[str, str], GasCost], now_ns: int) -> int:
        """Charge DEX cells the gas their connector published (by (instrument, venue), as `PriceGrid.read_gas` returns
        them) instead of the configured estimate; returns how many cells are live.

        The record is in the pool's quote token (USDC for a WETH/USDC pool of ETH/USD): where that is not the
        instrument's quote currency it is charged at par grossed up by the token's haircut (conservative, and the same
        `quote_equivalence` entry the notional pays). A record that is unpriced (`quote_cost` None) or older than the
        venue's quote-age limit (its connector stopped) leaves the cell NaN: unknown gas, no opportunity."""
        self.live_gas[:] = False
        self._live_gas_cost[:] = np.nan
        max_age = self.layout.max_age_ns
        for (iid, vid), rec in records.items():
            if not (self.layout.has_instrument(iid) and self.layout.has_venue(vid)):
                continue
            i, j = self.layout.instrument_index(iid), self.layout.venue_index(vid)
            if not self.listed[i, j] or j not in self._gas_chain:
                continue
            self.live_gas[i, j] = True
            if rec.quote_cost is not None and now_ns - rec.ts_ns <= int(max_age[j]):
                self._live_gas_cost[i, j] = rec.quote_cost * (1.0 + self.haircut[i, j])
        self.gas_quote[self.live_gas] = self._live_gas_cost[self.live_gas]
        return int(self.live_gas.sum())

    @property
    def gas_natives(self) -> frozenset[str]:
        """Native tokens whose USD price the gas of some venue needs."""
        return frozenset(native for native, _ in self._gas_chain.values())
