"""Transfer-aware ranking: what moving the inventory of an opportunity costs, and whether the wallets are open.

Why: a cross-venue spot spread is captured by buying X on A and selling X on B; to do it again, X must move from A
to B (and the quote currency back from B to A). Where the connectors published wallet data (`arb.connectors.wallets`,
grid key `{prefix}:wallets`), each spot opportunity says:

    transfer_cost = withdraw_fee(X on A) * vwap_buy + withdraw_fee(quote on B)        (quote currency)
    wallet        = "suspended"  if X cannot be withdrawn on A or cannot be deposited on B (either known False)
                    "open"       if both are known open
                    "unknown"    otherwise (no keys, no data, a record older than `scanner.wallet_max_age_s`,
                                 or a DEX / CFD leg, which has no wallet here)
                    "not_needed" for derivatives (`BTC/USDT:USDT`: margin, nothing is delivered) and one-venue trades

A part of the cost that is unknown counts 0 (the Opportunity's documented "0 when unknown"); the quote fee is counted
at par with the opportunity's quote currency (USDT vs USD differ by a haircut, which is noise on a fee). The cost is
shown, not deducted from the net edge: inventory is held on both venues and rebalanced now and then, so one trade
does not pay a withdrawal; the user judges it against the edge.

A suspended opportunity stays visible but is flagged, and its priority is *multiplied* by
`scanner.wallet_suspended_priority_factor` (default 0: it ranks after every open or unknown one, whose priorities are
positive; its other factors are kept, so a user still sees what it would have been worth). Usually such a spread is
not arbitrage but a closed door.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

import msgspec

from arb.model import Opportunity, VenueWallets, WalletRecord, WalletStatus

if TYPE_CHECKING:
    from arb.config.schema import Settings
    from arb.grid.layout import GridLayout
    from arb.grid.store import PriceGrid

READ_EVERY_S: Final = 1.0
"""How often the scanner re-reads `{prefix}:wallets` (tables change every few minutes; reading is one HGETALL)."""

Codes = tuple[str, str] | None
"""(base, quote) currency codes of one cell on a venue with wallets; None where there are none (DEX, CFD)."""


def _cell_codes(symbol: str, base: str, quote: str) -> tuple[str, str] | None:
    """The currencies a venue symbol moves: `BTC/USDT` -> (BTC, USDT); derivatives (`...:USDT`) move none."""
    if ":" in symbol:
        return None
    if "/" in symbol:
        b, q = symbol.split("/", 1)
        return b, q
    return base, quote


class TransferBook:
    """Wallet records by venue, and the transfer cost and wallet status they give each opportunity."""

    def __init__(self, settings: Settings, layout: GridLayout, *, read_every_s: float = READ_EVERY_S) -> None:
        s = settings.scanner
        self.max_age_ns = int(s.wallet_max_age_s * 1e9)
        self.suspended_factor = s.wallet_suspended_priority_factor
        self.read_every_s = read_every_s
        self.venues = layout.venues
        self.has_wallets = [settings.venues[v].kind == "cex" for v in layout.venues]
        self.derivative: list[bool] = []
        self.codes: list[list[Codes]] = []
        for iid in layout.instruments:
            inst = settings.instruments[iid]
            row: list[Codes] = []
            for j, vid in enumerate(layout.venues):
                symbol = inst.venues.get(vid)
                row.append(_cell_codes(symbol, inst.base, inst.quote) if symbol and self.has_wallets[j] else None)
            self.codes.append(row)
            self.derivative.append(any(":" in sym for sym in inst.venues.values()))
        self.wallets: dict[str, VenueWallets] = {}
        self._next_read = 0.0

    def set_wallets(self, wallets: dict[str, VenueWallets]) -> None:
        self.wallets = wallets

    async def refresh(self, grid: PriceGrid, *, force: bool = False) -> None:
        """Re-read the wallet tables from the grid, at most every `read_every_s` (raises GridError like any read)."""
        now = time.monotonic()
        if not force and now < self._next_read:
            return
        self._next_read = now + self.read_every_s
        self.set_wallets(await grid.read_wallets())

    def record(self, venue: str, code: str, now_ns: int) -> WalletRecord | None:
        """The venue's record for `code`, unless it is missing or more than `wallet_max_age_s` away from `now_ns`
        (either way, as for quotes: a clock far off is as untrustworthy as an old record)."""
        table = self.wallets.get(venue)
        if table is None:
            return None
        rec = table.currencies.get(code)
        if rec is None or abs(now_ns - rec.ts_ns) > self.max_age_ns:
            return None
        return rec

    def assess(self, i: int, a: int, b: int, vwap_buy: float, now_ns: int) -> tuple[WalletStatus, float]:
        """(wallet status, transfer cost in quote currency) of buying row `i` on venue `a`, selling on `b`."""
        if a == b or self.derivative[i]:
            return "not_needed", 0.0
        buy, sell = self.codes[i][a], self.codes[i][b]
        if buy is None or sell is None:
            return "unknown", 0.0
        out = self.record(self.venues[a], buy[0], now_ns)
        into = self.record(self.venues[b], sell[0], now_ns)
        back = self.record(self.venues[b], sell[1], now_ns)
        withdraw = out.withdraw if out is not None else None
        deposit = into.deposit if into is not None else None
        status: WalletStatus
        if withdraw is False or deposit is False:
            status = "suspended"
        elif withdraw is True and deposit is True:
            status = "open"
        else:
            status = "unknown"
        cost = 0.0
        if out is not None and out.withdraw_fee is not None:
            cost += out.withdraw_fee * vwap_buy
        if back is not None and back.withdraw_fee is not None:
            cost += back.withdraw_fee
        return status, cost

    def apply(self, opp: Opportunity, i: int, a: int, b: int, now_ns: int) -> Opportunity:
        """`opp` with its wallet status and transfer cost, and its priority scaled down when suspended (see module).

        Returns `opp` itself when nothing changes (a spot pair without wallet data costs no copy). Basis opportunities
        are left as they are: the hedge leg is a derivative, nothing is delivered across venues."""
        status: WalletStatus
        if opp.kind == "triangular":
            status, cost = "not_needed", 0.0
        elif opp.kind != "spot":
            return opp
        else:
            status, cost = self.assess(i, a, b, opp.vwap_buy, now_ns)
        if status == opp.wallet and cost == opp.transfer_cost:
            return opp
        priority = opp.priority * self.suspended_factor if status == "suspended" else opp.priority
        return msgspec.structs.replace(opp, wallet=status, transfer_cost=cost, priority=priority)
