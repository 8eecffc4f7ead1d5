"""Transfer cost and wallet status of an opportunity, on hand-made wallet tables (numbers computed by hand)."""

from __future__ import annotations

from typing import Any

import pytest

from arb.model import Opportunity, VenueWallets, WalletRecord
from arb.scanner.transfer import TransferBook

from .support import layout_of, settings

NOW = 1_700_000_000_000_000_000
S = 1_000_000_000
SETTINGS = settings(
    {"a": 0.001, "b": 0.001},
    {"BTC/USD": {"a": "BTC/USDT", "b": "BTC/USDC", "uni": "WETH/USDC"}},
    dex={"uni": 0.003},
)
BTC, A, B, UNI = 0, 0, 1, 2


def book(**over: Any) -> TransferBook:
    s = SETTINGS if not over else SETTINGS.model_copy(update={"scanner": SETTINGS.scanner.model_copy(update=over)})
    return TransferBook(s, layout_of(s))


def table(venue: str, ts: int = NOW, **records: WalletRecord) -> VenueWallets:
    return VenueWallets(venue=venue, published_ns=ts, currencies=records)


def rec(ts: int = NOW, **fields: Any) -> WalletRecord:
    return WalletRecord(ts_ns=ts, **fields)


def opportunity(priority: float = 40.0, **over: Any) -> Opportunity:
    fields: dict[str, Any] = {
        "id": "x", "instrument": "BTC/USD", "buy_venue": "a", "sell_venue": "b", "size": 0.5, "vwap_buy": 60_000.0,
        "vwap_sell": 60_300.0, "gross_spread": 0.005, "fee_buy": 0.001, "fee_sell": 0.001, "gas": 0.0,
        "haircut": 0.0007, "slippage": 0.0, "net_edge": 0.0023, "expected_profit": 69.0, "liquidity_score": 1.0,
        "execution_time_s": 0.05, "risk_factor": 1.0, "priority": priority, "buy_quote_age_ms": 1.0,
        "sell_quote_age_ms": 1.0,
    }  # fmt: skip
    fields.update(over)
    return Opportunity(**fields)


def open_tables() -> dict[str, VenueWallets]:
    """BTC leaves a for 0.0005 BTC; b takes BTC in and sends USDC back for 1.5 USDC."""
    return {
        "a": table("a", BTC=rec(withdraw=True, deposit=True, withdraw_fee=0.0005, network="BTC")),
        "b": table(
            "b",
            BTC=rec(withdraw=True, deposit=True, withdraw_fee=0.0004, network="BTC"),
            USDC=rec(withdraw=True, deposit=True, withdraw_fee=1.5, network="ERC20"),
        ),
    }


def test_moving_the_inventory_costs_the_base_withdraw_fee_at_the_buy_price_plus_the_quote_fee_back() -> None:
    t = book()
    t.set_wallets(open_tables())

    status, cost = t.assess(BTC, A, B, 60_000.0, NOW)

    assert status == "open"
    assert cost == pytest.approx(0.0005 * 60_000.0 + 1.5)  # 30 + 1.5 = 31.5 USD


def test_the_other_direction_uses_the_other_venue_s_fees() -> None:
    t = book()
    t.set_wallets(
        {**open_tables(), "a": table("a", BTC=open_tables()["a"].currencies["BTC"], USDT=rec(withdraw_fee=1.0))}
    )

    status, cost = t.assess(BTC, B, A, 50_000.0, NOW)  # buy on b (BTC/USDC), sell on a (BTC/USDT)

    assert status == "open"
    assert cost == pytest.approx(0.0004 * 50_000.0 + 1.0)  # 20 + 1 = 21


def test_a_closed_withdrawal_on_the_buy_venue_or_deposit_on_the_sell_venue_is_suspended() -> None:
    t = book()
    tables = open_tables()
    t.set_wallets({**tables, "a": table("a", BTC=rec(withdraw=False, deposit=True, withdraw_fee=0.0005))})
    assert t.assess(BTC, A, B, 60_000.0, NOW)[0] == "suspended"

    b_closed = table("b", BTC=rec(withdraw=True, deposit=False), USDC=tables["b"].currencies["USDC"])
    t.set_wallets({**tables, "b": b_closed})
    assert t.assess(BTC, A, B, 60_000.0, NOW)[0] == "suspended"

    # closing the *other* ways (deposit on the buy venue, withdraw on the sell venue) does not block this route
    t.set_wallets(
        {
            "a": table("a", BTC=rec(withdraw=True, deposit=False, withdraw_fee=0.0005)),
            "b": table("b", BTC=rec(withdraw=False, deposit=True), USDC=tables["b"].currencies["USDC"]),
        }
    )
    assert t.assess(BTC, A, B, 60_000.0, NOW)[0] == "open"


def test_without_data_the_wallet_is_unknown_and_an_unknown_fee_counts_zero() -> None:
    t = book()
    assert t.assess(BTC, A, B, 60_000.0, NOW) == ("unknown", 0.0)

    t.set_wallets({"a": table("a", BTC=rec(withdraw=True, withdraw_fee=None))})  # b said nothing
    assert t.assess(BTC, A, B, 60_000.0, NOW) == ("unknown", 0.0)


def test_a_known_closed_door_is_suspended_even_when_the_other_side_is_unknown() -> None:
    t = book()
    t.set_wallets({"a": table("a", BTC=rec(withdraw=False, withdraw_fee=0.0005))})

    assert t.assess(BTC, A, B, 60_000.0, NOW) == ("suspended", pytest.approx(30.0))


def test_records_older_than_the_max_age_are_unknown_on_both_sides_of_the_boundary() -> None:
    t = book(wallet_max_age_s=600.0)
    t.set_wallets(open_tables())

    assert t.assess(BTC, A, B, 60_000.0, NOW + 600 * S)[0] == "open"  # exactly 600 s old: still trusted
    assert t.assess(BTC, A, B, 60_000.0, NOW + 600 * S + 1) == ("unknown", 0.0)
    assert t.assess(BTC, A, B, 60_000.0, NOW - 600 * S - 1) == ("unknown", 0.0)  # dated 600 s ahead: a clock off


def test_a_dex_leg_has_no_wallet_here() -> None:
    t = book()
    t.set_wallets(open_tables())

    assert t.assess(BTC, A, UNI, 60_000.0, NOW) == ("unknown", 0.0)


def test_a_suspended_opportunity_stays_but_its_priority_drops_by_the_configured_factor() -> None:
    closed = {**open_tables(), "a": table("a", BTC=rec(withdraw=False, withdraw_fee=0.0005))}
    default, quarter = book(), book(wallet_suspended_priority_factor=0.25)
    default.set_wallets(closed)
    quarter.set_wallets(closed)

    out = default.apply(opportunity(priority=40.0), BTC, A, B, NOW)
    out_q = quarter.apply(opportunity(priority=40.0), BTC, A, B, NOW)

    assert (out.wallet, out.priority, out.transfer_cost) == ("suspended", 0.0, pytest.approx(31.5))
    assert out.expected_profit == 69.0  # the other factors are kept: the user still sees what it was worth
    assert out_q.priority == pytest.approx(10.0)


def test_an_open_opportunity_keeps_its_priority_and_carries_the_cost() -> None:
    t = book()
    t.set_wallets(open_tables())

    out = t.apply(opportunity(priority=40.0), BTC, A, B, NOW)

    assert (out.wallet, out.priority, out.transfer_cost) == ("open", 40.0, pytest.approx(31.5))


def test_without_wallet_data_the_opportunity_is_passed_through_untouched() -> None:
    opp = opportunity()

    assert book().apply(opp, BTC, A, B, NOW) is opp


def test_one_venue_trades_need_no_transfer() -> None:
    t = book()
    t.set_wallets(open_tables())

    out = t.apply(opportunity(kind="triangular", sell_venue="a"), BTC, A, A, NOW)

    assert (out.wallet, out.transfer_cost) == ("not_needed", 0.0)
