"""Inventory drift across venues: what many completed pairs do to the balances, which venues get flagged, and the
transfer plan (with its fees) that puts them back. Wallet records come from ccxt-shaped currency structures through
the connectors' own normalisation (`arb.connectors.wallets.wallet_records`), and the trading side reads them from a
real Redis grid the way the scanner does."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from arb.config import Settings, load_settings
from arb.config.schema import GridSettings
from arb.connectors.wallets import wallet_records
from arb.grid import GridLayout, PriceGrid
from arb.hedging.inventory import InventoryReport, Transfer, inventory_report
from arb.model import VenueWallets, WalletRecord
from arb.trading import read_wallet_records

D = Decimal
PRICES = {"BTC": 60_000.0, "USDT": 1.0}
TS = time.time_ns()
Balances = dict[tuple[str, str], Decimal]


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


def currency(*networks: tuple[str, float], withdraw: bool = True, deposit: bool = True) -> dict[str, Any]:
    """ccxt's unified currency structure (`fetch_currencies`); the first network is the venue's default."""
    return {
        "deposit": deposit,
        "withdraw": withdraw,
        "networks": {
            name: {"fee": fee, "withdraw": withdraw, "deposit": deposit, "info": {"isDefault": i == 0}}
            for i, (name, fee) in enumerate(networks)
        },
    }


def wallets(tables: Mapping[str, Mapping[str, Any]], ts: int = TS) -> dict[tuple[str, str], WalletRecord]:
    """venue -> {code: currency structure} through the connectors' normalisation, keyed (venue, code)."""
    out: dict[tuple[str, str], WalletRecord] = {}
    for venue, currencies in tables.items():
        for code, record in wallet_records(currencies, None, list(currencies), ts).items():
            out[(venue, code)] = record
    return out


OPEN = {
    "binance": {"BTC": currency(("BTC", 0.0002), ("BSC", 0.00001)), "USDT": currency(("TRX", 1.0), ("ETH", 5.0))},
    "okx": {"BTC": currency(("Bitcoin", 0.0001)), "USDT": currency(("TRC20", 1.5), ("ERC20", 4.0))},
}


def completed_pairs(start: Balances, n: int, *, buy: str, sell: str, qty: str = "0.01") -> Balances:
    """`n` arbitrage pairs: buy `qty` BTC on `buy` at 60 000, sell it on `sell` at 60 060, 0.1 % taker fee in USDT."""
    b = dict(start)
    q, fee = D(qty), D("0.001")
    for _ in range(n):
        b[(buy, "BTC")] += q
        b[(buy, "USDT")] -= q * D(60_000) * (1 + fee)
        b[(sell, "BTC")] -= q
        b[(sell, "USDT")] += q * D(60_060) * (1 - fee)
    return b


START: Balances = {
    ("binance", "BTC"): D(2),
    ("binance", "USDT"): D(120_000),
    ("binance", "ETH"): D(30),
    ("okx", "BTC"): D(2),
    ("okx", "USDT"): D(120_000),
    ("okx", "ETH"): D(30),
}


def report(start: Balances, now: Balances, settings: Settings, **kw: Any) -> InventoryReport:
    kw.setdefault("prices_usd", PRICES)
    kw.setdefault("wallets", wallets(OPEN))
    return inventory_report(start, now, settings=settings, **kw)


def moves(rep: InventoryReport | list[Transfer]) -> list[tuple[str, str, str, Decimal]]:
    plan = rep.plan if isinstance(rep, InventoryReport) else rep
    return [(t.asset, t.from_venue, t.to_venue, t.amount) for t in plan]


def test_balanced_venues_give_an_empty_plan_at_no_cost(settings: Settings) -> None:
    now = completed_pairs(START, 5, buy="binance", sell="okx")  # 0.05 of 4 BTC moved: well under the threshold

    same = report(START, dict(START), settings)
    small = report(START, now, settings)

    assert (same.assets, same.assets_unchanged, same.plan, same.flagged) == ({}, 3, [], [])
    assert same.total_cost_usd == 0.0
    assert small.plan == []
    assert small.flagged == []
    assert small.blocked == []
    assert set(small.assets) == {"BTC", "USDT"}  # what moved is still shown, ETH only counted
    btc = {r.venue: r for r in small.assets["BTC"]}
    assert (btc["binance"].drift, btc["okx"].drift) == (D("0.05"), D("-0.05"))
    assert btc["binance"].drift_fraction == pytest.approx(0.05 / 4)


def test_many_pairs_one_way_plan_base_back_to_the_seller_and_quote_back_to_the_buyer(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    now = completed_pairs(START, 120, buy="binance", sell="okx")  # 1.2 BTC of 4 piled up on binance

    with caplog.at_level(logging.WARNING, logger="arb.hedging.inventory"):
        rep = report(START, now, settings)

    usdt_total = now[("binance", "USDT")] + now[("okx", "USDT")]
    usdt_back = (now[("okx", "USDT")] - usdt_total / 2).quantize(D("1e-8"), rounding=ROUND_DOWN)
    assert moves(rep) == [("BTC", "binance", "okx", D("1.2")), ("USDT", "okx", "binance", usdt_back)]
    btc, usdt = rep.plan
    assert (btc.network, btc.fee, btc.fee_usd, btc.wallet) == ("BTC", D("0.0002"), pytest.approx(12.0), "open")
    assert (usdt.network, usdt.fee, usdt.fee_usd, usdt.wallet) == ("TRC20", D("1.5"), pytest.approx(1.5), "open")
    assert rep.total_cost_usd == pytest.approx(13.5)
    assert rep.unknown_costs == 0
    assert {(r.asset, r.venue, tuple(r.flags)) for r in rep.flagged} == {
        ("BTC", "binance", ("drift",)), ("BTC", "okx", ("drift",)),
        ("USDT", "binance", ("drift",)), ("USDT", "okx", ("drift",)),
    }  # fmt: skip
    assert rep.assets["BTC"][0].drift_fraction == pytest.approx(0.3)
    assert "inventory.drift asset=BTC venue=binance drift=1.20" in caplog.text
    assert caplog.text.count("inventory.drift ") == 4


def test_largest_deficit_is_filled_first_and_nothing_moves_to_itself(settings: Settings) -> None:
    start = {("a", "BTC"): D(2), ("b", "BTC"): D(2), ("c", "BTC"): D(2)}
    now = {("a", "BTC"): D("4.4"), ("b", "BTC"): D("0.4"), ("c", "BTC"): D("1.2")}

    rep = report(start, now, settings, wallets={})

    assert moves(rep) == [("BTC", "a", "b", D("1.6")), ("BTC", "a", "c", D("0.8"))]
    assert {r.venue for r in rep.flagged} == {"a", "b"}  # c moved 0.8 of 6 (13 %): under 25 %, still topped up
    assert all(t.from_venue != t.to_venue for t in rep.plan)


def test_only_transfers_with_a_flagged_venue_at_one_end_are_planned(settings: Settings) -> None:
    start = {(v, "BTC"): D(2) for v in "abcd"}
    now = {("a", "BTC"): D("4.2"), ("b", "BTC"): D(0), ("c", "BTC"): D("2.3"), ("d", "BTC"): D("1.5")}

    rep = report(start, now, settings, wallets={})

    assert [(r.venue, r.flags) for r in rep.flagged] == [("a", ["drift"]), ("b", ["underfunded"])]
    assert moves(rep) == [("BTC", "a", "b", D(2)), ("BTC", "a", "d", D("0.2"))]  # c -> d: neither end is flagged


def test_suspended_withdrawals_are_flagged_and_not_planned_through(settings: Settings) -> None:
    tables = {**OPEN, "binance": {**OPEN["binance"], "BTC": currency(("BTC", 0.0002), withdraw=False)}}
    now = completed_pairs(START, 120, buy="binance", sell="okx")

    rep = report(START, now, settings, wallets=wallets(tables))

    assert [t.asset for t in rep.plan] == ["USDT"]
    [stuck] = rep.blocked
    assert (stuck.asset, stuck.from_venue, stuck.to_venue, stuck.amount) == ("BTC", "binance", "okx", D("1.2"))
    assert stuck.wallet == "suspended"
    flags = {(r.asset, r.venue): r.flags for r in rep.flagged}
    assert flags[("BTC", "binance")] == ["drift", "withdraw_suspended"]
    assert flags[("BTC", "okx")] == ["drift"]  # its deposits are open
    assert rep.total_cost_usd == pytest.approx(1.5)  # a blocked transfer costs nothing: it is not in the plan


def test_a_suspended_venue_is_routed_around_when_another_has_surplus(settings: Settings) -> None:
    tables = {
        **OPEN,
        "binance": {"BTC": currency(("BTC", 0.0002), withdraw=False)},
        "gate": {"BTC": currency(("BTC", 0.0003))},
    }
    start = {("binance", "BTC"): D(2), ("okx", "BTC"): D(2), ("gate", "BTC"): D(2)}
    now = {("binance", "BTC"): D(3), ("okx", "BTC"): D("0.4"), ("gate", "BTC"): D("2.6")}

    rep = report(start, now, settings, wallets=wallets(tables))

    assert moves(rep) == [("BTC", "gate", "okx", D("0.6"))]
    assert moves(rep.blocked) == [("BTC", "binance", "okx", D(1))]


def test_unknown_fees_leave_the_cost_unknown_never_zero(settings: Settings) -> None:
    now = completed_pairs(START, 120, buy="binance", sell="okx")
    only_btc_fee = wallets({"binance": {"BTC": currency(("BTC", 0.0002))}})

    none = report(START, now, settings, wallets={})
    partial = report(START, now, settings, wallets=only_btc_fee)
    unpriced = report(START, now, settings, prices_usd={"USDT": 1.0})

    assert [(t.fee, t.fee_usd, t.network, t.wallet) for t in none.plan] == [(None, None, None, "unknown")] * 2
    assert (none.total_cost_usd, none.unknown_costs) == (None, 2)
    assert (partial.total_cost_usd, partial.unknown_costs) == (None, 1)
    assert partial.plan[0].fee_usd == pytest.approx(12.0)
    assert unpriced.plan[0].fee == D("0.0002")
    assert unpriced.plan[0].fee_usd is None
    assert unpriced.total_cost_usd is None


def test_a_venue_that_cannot_fund_one_more_order_is_flagged_and_topped_up(settings: Settings) -> None:
    start = {("binance", "USDT"): D(1_500), ("okx", "USDT"): D(1_000_000)}
    now = {("binance", "USDT"): D(800), ("okx", "USDT"): D(1_000_700)}  # 0.07 % of the total moved

    rep = report(start, now, settings)

    [row] = rep.flagged
    assert (row.venue, row.flags, row.value_usd) == ("binance", ["underfunded"], 800.0)
    assert settings.risk.max_order_notional_usd == 1_000.0
    assert moves(rep) == [("USDT", "okx", "binance", D(700))]


def test_a_transfer_not_larger_than_its_fee_is_not_planned(settings: Settings) -> None:
    start = {("binance", "BTC"): D(10), ("okx", "BTC"): D("0.0101")}
    now = {("binance", "BTC"): D("10.0001"), ("okx", "BTC"): D("0.01")}  # okx needs 0.0001; binance charges 0.0002

    rep = report(start, now, settings)

    assert [(r.venue, r.flags) for r in rep.flagged] == [("okx", ["underfunded"])]
    assert rep.plan == []


def test_a_venue_whose_balances_are_missing_is_left_out_not_read_as_empty(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    start = {**START, ("gate", "BTC"): D(5)}

    with caplog.at_level(logging.WARNING, logger="arb.hedging.inventory"):
        rep = report(start, dict(START), settings)

    assert rep.assets == {}
    assert rep.plan == []
    assert "inventory.venue_unknown venue=gate" in caplog.text


def test_threshold_comes_from_the_settings(settings: Settings, tmp_path: Path) -> None:
    user = tmp_path / "user.yaml"
    user.write_text("executor:\n  rebalance_drift: 0.01\n")
    now = completed_pairs(START, 5, buy="binance", sell="okx")  # 0.05 of 4 BTC: 1.25 %

    rep = report(START, now, load_settings(user))

    assert rep.drift_threshold == 0.01
    assert moves(rep)[0] == ("BTC", "binance", "okx", D("0.05"))


async def test_the_trading_side_reads_fresh_wallet_records_from_the_grid(settings: Settings, redis_url: str) -> None:
    layout = GridLayout.from_lists(["BTC/USD"], ["binance", "okx"])
    stamp = time.time_ns()  # read against the wall clock: stamped now, not at import (the suite runs for minutes)
    fresh = wallets(OPEN, stamp)
    stale = msgspec.structs.replace(
        fresh[("okx", "USDT")], ts_ns=stamp - int((settings.scanner.wallet_max_age_s + 60) * 1e9)
    )
    tables = [
        VenueWallets(venue="binance", published_ns=stamp, currencies={"BTC": fresh[("binance", "BTC")]}),
        VenueWallets(venue="okx", published_ns=stamp, currencies={"USDT": stale}),
    ]
    keys = {("binance", "BTC"), ("binance", "USDT"), ("okx", "BTC"), ("okx", "USDT")}
    async with PriceGrid.from_url(redis_url, layout, GridSettings()) as grid:
        await grid.write_wallets(tables)

        read = await read_wallet_records(grid, settings, keys)

    assert read == {
        ("binance", "BTC"): fresh[("binance", "BTC")]
    }  # the stale okx record is unknown, like the scanner's
    assert await read_wallet_records(None, settings, keys) == {}
    now = completed_pairs(START, 120, buy="binance", sell="okx")
    rep = report(START, now, settings, wallets=read)
    assert [t.fee for t in rep.plan] == [D("0.0002"), None]  # okx's USDT fee aged out: unknown, not 0
    assert rep.total_cost_usd is None
