"""Inventory drift across venues, and the transfers that would put it back.

Why: a cross-venue pair buys the base on venue A and sells it on venue B. Each completed pair is flat in total, but
after many of them the base has piled up on A and the quote on B, until A cannot buy and B cannot sell any more. The
executor does not move funds between venues; this module makes the drift visible and says what fixing it costs, so a
person (or a later rebalancer) decides, instead of the engine quietly running dry.

For each asset whose balance moved on some venue (assets that moved nowhere are balanced by definition and only
counted), per venue: the start and current amounts, the drift (now - start) and that drift as a fraction of the asset's
total over all venues now. A venue is flagged for an asset when

* `drift`: |drift| > `executor.rebalance_drift` of that total, or
* `underfunded`: the venue lost some of the asset and what is left is worth less than one order of
  `risk.max_order_notional_usd` (it can no longer fund one more execution at full size; needs a USD price), or
* `withdraw_suspended` / `deposit_suspended`: the plan needed to move the asset out of / into it and the venue's
  wallet says that is closed (see `blocked`).

The plan brings every flagged venue back towards its start *share* of the asset's current total (fees and PnL change
the total, so the start amounts themselves may no longer add up): venues above their share give, venues below
receive, and every transfer has a flagged venue on at least one end. Greedy, largest first: the largest deficit is
filled from the largest surplus, then the next. A transfer is never from a venue to itself, never through a wallet
known to be closed (withdrawals on the sender, deposits on the receiver: those go to `blocked`, with what they would
have moved), and never of an amount not larger than its own withdrawal fee. `amount` is what leaves the sender; the
receiver gets `amount - fee`. Amounts are rounded down to 1e-8 (the wallet data carries no withdrawal precision).

Costs: the sender's withdrawal fee and network as the venue published them (`arb.connectors.wallets`); a fee the
venue did not publish, or an asset without a USD price, is unknown (None), and then so is the plan's total: an unknown
cost is never counted as 0.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Final, Literal

import msgspec

from arb.model import WalletRecord

if TYPE_CHECKING:
    from arb.config import Settings

log = logging.getLogger(__name__)

ZERO: Final = Decimal(0)
AMOUNT_QUANTUM: Final = Decimal("1e-8")

Balances = Mapping[tuple[str, str], Decimal]
"""(venue, asset) -> amount, as `RiskContext.balances` holds them."""
TransferWallet = Literal["open", "suspended", "unknown"]
Flag = Literal["drift", "underfunded", "withdraw_suspended", "deposit_suspended"]


class VenueInventory(msgspec.Struct, kw_only=True):
    """One asset on one venue over the run."""

    asset: str
    venue: str
    start: Decimal
    now: Decimal
    drift: Decimal
    """now - start, in units of the asset."""
    drift_fraction: float
    """drift / the asset's total over all venues now (signed; the start total if nothing is left anywhere)."""
    value_usd: float | None
    """What is on the venue now, in USD; None when the asset has no USD price."""
    flags: list[Flag] = msgspec.field(default_factory=list)


class Transfer(msgspec.Struct, frozen=True, kw_only=True):
    """One withdrawal from `from_venue` to `to_venue`."""

    asset: str
    from_venue: str
    to_venue: str
    amount: Decimal
    """Leaves `from_venue`; `to_venue` receives `amount - fee`."""
    network: str | None
    """The sender's (default) withdrawal network for the asset; None when it did not say."""
    fee: Decimal | None
    """Withdrawal fee in units of the asset; None when unknown."""
    fee_usd: float | None
    wallet: TransferWallet
    """`suspended` if the sender's withdrawals or the receiver's deposits are known closed, `open` if both are known
    open, `unknown` otherwise."""


class InventoryReport(msgspec.Struct, kw_only=True):
    drift_threshold: float
    """`executor.rebalance_drift`."""
    order_notional_usd: float
    """`risk.max_order_notional_usd`: what one more execution needs on each venue."""
    assets: dict[str, list[VenueInventory]]
    """Asset -> its venues, for every asset whose balance moved on some venue."""
    assets_unchanged: int
    """Assets held but moved nowhere (left out of `assets`)."""
    flagged: list[VenueInventory]
    """The entries of `assets` with at least one flag."""
    plan: list[Transfer]
    """Empty when balanced."""
    blocked: list[Transfer]
    """Transfers the plan needed that a closed wallet stops (`wallet` is `suspended`); not part of the cost."""
    total_cost_usd: float | None
    """Sum of the plan's `fee_usd`; None when any of them is unknown."""
    unknown_costs: int
    """Transfers of the plan whose fee (or its USD value) is unknown."""


def inventory_report(
    start: Balances,
    now: Balances,
    *,
    prices_usd: Mapping[str, float],
    wallets: Mapping[tuple[str, str], WalletRecord],
    settings: Settings,
) -> InventoryReport:
    """Drift of every asset over the venues between the `start` and `now` balances, the flagged venues and the
    transfer plan (see the module docstring). `prices_usd`: asset -> USD; `wallets`: (venue, asset) -> the venue's
    wallet record (a missing one is unknown). A venue with no balance at all in `start` or in `now` is left out: its
    balances are unknown there, not zero. Logs `inventory.drift` once per flagged venue and asset."""
    threshold = settings.executor.rebalance_drift
    notional = settings.risk.max_order_notional_usd
    venues = {v for v, _ in start} & {v for v, _ in now}
    for venue in sorted({v for v, _ in start} ^ {v for v, _ in now}):
        log.warning("inventory.venue_unknown venue=%s (balances missing at start or now; left out)", venue)
    by_asset: dict[str, set[str]] = {}
    for v, a in (*start, *now):
        if v in venues:
            by_asset.setdefault(a, set()).add(v)
    assets: dict[str, list[VenueInventory]] = {}
    plan: list[Transfer] = []
    blocked: list[Transfer] = []
    unchanged = 0
    for asset in sorted(by_asset):
        held = sorted(by_asset[asset])
        before = {v: start.get((v, asset), ZERO) for v in held}
        after = {v: now.get((v, asset), ZERO) for v in held}
        if before == after:
            unchanged += 1
            continue
        price = prices_usd.get(asset)
        rows = _rows(asset, before, after, price, threshold, notional)
        moves, stuck = _plan(asset, before, after, {r.venue for r in rows if r.flags}, price, wallets)
        _flag_blocked(rows, stuck, wallets)
        assets[asset] = rows
        plan += moves
        blocked += stuck
    flagged = [r for rows in assets.values() for r in rows if r.flags]
    for r in flagged:
        log.warning(
            "inventory.drift asset=%s venue=%s drift=%s fraction=%.4f flags=%s",
            r.asset, r.venue, r.drift, r.drift_fraction, ",".join(r.flags),
        )  # fmt: skip
    costs = [t.fee_usd for t in plan]
    known = [c for c in costs if c is not None]
    return InventoryReport(
        drift_threshold=threshold,
        order_notional_usd=notional,
        assets=assets,
        assets_unchanged=unchanged,
        flagged=flagged,
        plan=plan,
        blocked=blocked,
        total_cost_usd=sum(known) if len(known) == len(costs) else None,
        unknown_costs=len(costs) - len(known),
    )


def _rows(
    asset: str,
    before: Mapping[str, Decimal],
    after: Mapping[str, Decimal],
    price: float | None,
    threshold: float,
    notional: float,
) -> list[VenueInventory]:
    total = sum(after.values(), ZERO) or sum(before.values(), ZERO)
    rows = []
    for venue in sorted(after):
        drift = after[venue] - before[venue]
        fraction = float(drift / total) if total else 0.0
        value = float(after[venue]) * price if price is not None else None
        flags: list[Flag] = []
        if abs(fraction) > threshold:
            flags.append("drift")
        if drift < 0 and value is not None and value < notional:
            flags.append("underfunded")
        rows.append(
            VenueInventory(asset=asset, venue=venue, start=before[venue], now=after[venue], drift=drift,
                           drift_fraction=fraction, value_usd=value, flags=flags)
        )  # fmt: skip
    return rows


def _plan(
    asset: str,
    before: Mapping[str, Decimal],
    after: Mapping[str, Decimal],
    flagged: set[str],
    price: float | None,
    wallets: Mapping[tuple[str, str], WalletRecord],
) -> tuple[list[Transfer], list[Transfer]]:
    """(plan, blocked) for one asset: first through wallets not known closed, then what is left, blocked."""
    start_total, now_total = sum(before.values(), ZERO), sum(after.values(), ZERO)
    if not flagged or start_total <= 0 or now_total <= 0:
        return [], []  # nothing to fix, or no start share to go back to
    surplus: dict[str, Decimal] = {}
    deficit: dict[str, Decimal] = {}
    for venue in after:
        gap = after[venue] - before[venue] * now_total / start_total
        if gap > 0:
            surplus[venue] = gap
        elif gap < 0:
            deficit[venue] = -gap
    plan = _greedy(asset, surplus, deficit, flagged, price, wallets, suspended=False)
    blocked = _greedy(asset, surplus, deficit, flagged, price, wallets, suspended=True)
    return plan, blocked


def _greedy(
    asset: str,
    surplus: dict[str, Decimal],
    deficit: dict[str, Decimal],
    flagged: set[str],
    price: float | None,
    wallets: Mapping[tuple[str, str], WalletRecord],
    *,
    suspended: bool,
) -> list[Transfer]:
    """Largest deficit first, each from the largest surplus first, over the pairs whose wallet is (`suspended`) or is
    not known closed; consumes `surplus` and `deficit`."""
    out: list[Transfer] = []
    skipped: set[tuple[str, str]] = set()
    while True:
        pairs = [
            (d_amount, s_amount, dst, src)
            for dst, d_amount in deficit.items()
            for src, s_amount in surplus.items()
            if src != dst
            and d_amount > 0
            and s_amount > 0
            and (src in flagged or dst in flagged)
            and (src, dst) not in skipped
            and (_wallet(wallets, asset, src, dst) == "suspended") == suspended
        ]
        if not pairs:
            return out
        _, _, dst, src = min(pairs, key=lambda p: (-p[0], -p[1], p[2], p[3]))
        skipped.add((src, dst))
        amount = min(surplus[src], deficit[dst]).quantize(AMOUNT_QUANTUM, rounding=ROUND_DOWN)
        transfer = _transfer(asset, src, dst, amount, price, wallets)
        if amount <= 0 or (transfer.fee is not None and amount <= transfer.fee):
            continue  # dust, or a withdrawal that would deliver nothing
        surplus[src] -= amount
        deficit[dst] -= amount
        out.append(transfer)


def _wallet(wallets: Mapping[tuple[str, str], WalletRecord], asset: str, src: str, dst: str) -> TransferWallet:
    out, into = wallets.get((src, asset)), wallets.get((dst, asset))
    withdraw = out.withdraw if out is not None else None
    deposit = into.deposit if into is not None else None
    if withdraw is False or deposit is False:
        return "suspended"
    if withdraw is True and deposit is True:
        return "open"
    return "unknown"


def _transfer(
    asset: str,
    src: str,
    dst: str,
    amount: Decimal,
    price: float | None,
    wallets: Mapping[tuple[str, str], WalletRecord],
) -> Transfer:
    record = wallets.get((src, asset))
    fee = Decimal(repr(record.withdraw_fee)) if record is not None and record.withdraw_fee is not None else None
    fee_usd = float(fee) * price if fee is not None and price is not None else None
    return Transfer(
        asset=asset, from_venue=src, to_venue=dst, amount=amount, network=record.network if record else None,
        fee=fee, fee_usd=fee_usd, wallet=_wallet(wallets, asset, src, dst),
    )  # fmt: skip


def _flag_blocked(
    rows: list[VenueInventory], blocked: list[Transfer], wallets: Mapping[tuple[str, str], WalletRecord]
) -> None:
    """Mark the venues whose closed wallet stopped a transfer: the sender's withdrawals, the receiver's deposits."""
    by_venue = {r.venue: r for r in rows}
    for t in blocked:
        out, into = wallets.get((t.from_venue, t.asset)), wallets.get((t.to_venue, t.asset))
        marks: list[tuple[VenueInventory, Flag]] = []
        if out is not None and out.withdraw is False:
            marks.append((by_venue[t.from_venue], "withdraw_suspended"))
        if into is not None and into.deposit is False:
            marks.append((by_venue[t.to_venue], "deposit_suspended"))
        for row, flag in marks:
            if flag not in row.flags:
                row.flags.append(flag)
