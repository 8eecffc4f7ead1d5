"""Wallet normalisation: what ccxt's currency / fee structures become, and how credentials stay out of sight.

The structures are made by the real ccxt `binance` parser from the documented `capital/config/getall` example
(https://developers.binance.com/docs/wallet/capital/all-coins-info; the LINK entry ccxt quotes in `parse_currency`),
so a ccxt upgrade that changes them shows up here.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import ccxt
import pytest

from arb.connectors.wallets import (
    credentials_from_env,
    env_name,
    pollers_for,
    redact,
    venue_codes,
    wallet_record,
    wallet_records,
)
from arb.model import WalletRecord
from tests.unit.scanner.support import settings

TS = 1_700_000_000_000_000_000


def network(
    name: str, fee: str, *, default: bool = False, deposit: bool = True, withdraw: bool = True
) -> dict[str, Any]:
    return {
        "network": name,
        "coin": "LINK",
        "withdrawIntegerMultiple": "0.00000001",
        "isDefault": default,
        "depositEnable": deposit,
        "withdrawEnable": withdraw,
        "depositDesc": "",
        "withdrawDesc": "",
        "name": name,
        "withdrawFee": fee,
        "withdrawMin": "1.1",
        "withdrawMax": "10000000000",
        "minConfirm": "12",
        "unLockConfirm": "0",
    }


LINK: dict[str, Any] = {
    "coin": "LINK",
    "depositAllEnable": True,
    "withdrawAllEnable": True,
    "name": "ChainLink",
    "free": "0",
    "locked": "0",
    "isLegalMoney": False,
    "trading": True,
    "networkList": [network("BSC", "0.012"), network("BNB", "0.003"), network("ETH", "0.55", default=True)],
}


def parsed(raw: dict[str, Any]) -> tuple[Any, Any]:
    """(ccxt currency structure, ccxt deposit-withdraw-fee structure) of one raw Binance coin entry."""
    exchange = ccxt.binance()
    return exchange.parse_currency(raw), exchange.parse_deposit_withdraw_fee(raw, {"code": "LINK"})


def with_networks(**changes: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(LINK)
    for entry in raw["networkList"]:
        entry.update(changes.get(entry["network"], {}))
    return raw


def test_an_open_coin_reports_its_default_network_and_that_network_s_fee() -> None:
    currency, fees = parsed(LINK)

    record = wallet_record(currency, fees, TS)

    # ETH is Binance's default (isDefault), ccxt calls it ERC20; the cheapest network (BEP2, 0.003) is not the default
    assert record == WalletRecord(deposit=True, withdraw=True, withdraw_fee=0.55, network="ERC20", ts_ns=TS)


def test_a_closed_default_network_falls_back_to_the_cheapest_open_one() -> None:
    currency, fees = parsed(with_networks(ETH={"withdrawEnable": False}, BNB={"withdrawEnable": False}))

    record = wallet_record(currency, fees, TS)

    assert record is not None
    assert (record.withdraw, record.network, record.withdraw_fee) == (True, "BEP20", 0.012)


def test_withdrawals_closed_on_every_network_read_as_withdraw_false_with_the_default_fee() -> None:
    closed = {"withdrawEnable": False}
    currency, fees = parsed(with_networks(ETH=closed, BNB=closed, BSC=closed))

    record = wallet_record(currency, fees, TS)

    assert record == WalletRecord(deposit=True, withdraw=False, withdraw_fee=0.55, network="ERC20", ts_ns=TS)


def test_deposits_closed_everywhere_read_as_deposit_false() -> None:
    closed = {"depositEnable": False}
    currency, fees = parsed(with_networks(ETH=closed, BNB=closed, BSC=closed))

    record = wallet_record(currency, fees, TS)

    assert record is not None
    assert (record.deposit, record.withdraw) == (False, True)


def test_a_fee_structure_alone_gives_the_default_fee_and_leaves_the_status_unknown() -> None:
    _, fees = parsed(LINK)

    record = wallet_record(None, fees, TS)

    # fetch_deposit_withdraw_fees says nothing about deposit/withdraw switches: unknown, not open
    assert record == WalletRecord(deposit=None, withdraw=None, withdraw_fee=0.55, network="ERC20", ts_ns=TS)


def test_an_inactive_currency_without_flags_is_closed_both_ways() -> None:
    # ccxt manual: `active` = "currency status (tradeable and withdrawable)"; this venue gives no per-way flags
    currency = {"code": "XYZ", "active": False, "deposit": None, "withdraw": None, "fee": 2.0, "networks": {}}

    record = wallet_record(currency, None, TS)

    assert record == WalletRecord(deposit=False, withdraw=False, withdraw_fee=2.0, network=None, ts_ns=TS)


def test_explicit_flags_win_over_an_inactive_currency() -> None:
    currency = {"code": "XYZ", "active": False, "deposit": True, "withdraw": None, "networks": {}}

    record = wallet_record(currency, None, TS)

    assert record is not None
    assert (record.deposit, record.withdraw) == (True, False)


@pytest.mark.parametrize("fee", ["abc", -1.0, float("nan"), float("inf"), True, None, [1]])
def test_an_unusable_fee_is_unknown_never_zero(fee: object) -> None:
    currency = {"code": "XYZ", "deposit": True, "withdraw": True, "networks": {"X": {"fee": fee, "withdraw": True}}}

    record = wallet_record(currency, None, TS)

    assert record is not None
    assert (record.withdraw_fee, record.network) == (None, "X")


def test_malformed_network_tables_are_ignored_not_fatal() -> None:
    record = wallet_record({"deposit": True, "withdraw": True, "networks": ["ETH"]}, {"networks": "ETH"}, TS)

    assert record == WalletRecord(deposit=True, withdraw=True, withdraw_fee=None, network=None, ts_ns=TS)


def test_only_the_asked_codes_get_records_and_unmentioned_ones_none() -> None:
    currency, fees = parsed(LINK)

    records = wallet_records({"LINK": currency}, {"LINK": fees}, ["LINK", "BTC"], TS)

    assert set(records) == {"LINK"}  # BTC: neither structure mentions it, so it stays unknown


def test_venue_codes_are_the_currencies_of_its_configured_symbols() -> None:
    s = settings({"a": 0.001, "b": 0.001}, {"BTC/USD": {"a": "BTC/USDT", "b": "BTC/USD"}, "ETH/BTC": {"a": "ETH/BTC"}})

    assert venue_codes(s, "a") == ["BTC", "USDT", "ETH"]
    assert venue_codes(s, "b") == ["BTC", "USD"]


def test_credentials_come_from_arb_venue_env_vars_and_never_show_in_repr() -> None:
    env = {"ARB_CAPITAL_COM_API_KEY": "key-123", "ARB_CAPITAL_COM_SECRET": "secret-456"}

    creds = credentials_from_env("capital_com", env)

    assert env_name("capital_com", "API_KEY") == "ARB_CAPITAL_COM_API_KEY"
    assert creds is not None
    assert creds.ccxt_config() == {"apiKey": "key-123", "secret": "secret-456"}
    assert "key-123" not in repr(creds)
    assert "secret-456" not in repr(creds)


def test_a_venue_with_half_its_credentials_gets_none_and_a_warning_naming_the_missing_variable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="arb.connectors.wallets"):
        creds = credentials_from_env("okx", {"ARB_OKX_API_KEY": "key-123"})

    assert creds is None
    assert "missing=ARB_OKX_SECRET" in caplog.text
    assert "key-123" not in caplog.text
    assert credentials_from_env("okx", {}) is None


def test_redact_masks_credentials_and_signatures_in_error_messages() -> None:
    message = 'binance GET http://127.0.0.1/sapi/v1/x?timestamp=1&signature=abc123def 401 {"key": "key-123"}'

    text = redact(message, ["key-123", "secret-456"])

    assert "abc123def" not in text
    assert "key-123" not in text
    assert "signature=***" in text


async def test_only_cex_venues_with_credentials_get_a_poller_reading_with_the_class_they_are_served_in() -> None:
    s = settings({"a": 0.001, "b": 0.001}, {"BTC/USD": {"a": "BTC/USDT", "b": "BTC/USDT", "uni": "WETH/USDC"}},
                 dex={"uni": 0.003}, scanner={"wallet_refresh_s": 60.0})  # fmt: skip
    env = {f"ARB_{v}_{what}": "x" for v in ("A", "UNI") for what in ("API_KEY", "SECRET")}

    async def publish(_: object) -> None:
        raise AssertionError("nothing is polled here")

    pollers = pollers_for(s, ["a", "b", "uni"], publish, ccxt_ids={"a": "binance"}, environ=env)
    try:
        assert [(p.venue_id, p.ccxt_id, p.refresh_s, p.codes) for p in pollers] == [
            ("a", "binance", 60.0, ["BTC", "USDT"])
        ]
        assert pollers_for(s, ["a", "b"], publish, ccxt_ids={"a": "binance"}, environ={}) == []  # no keys: as before
    finally:
        for p in pollers:
            await p.aclose()


async def test_a_venue_whose_ccxt_class_does_not_exist_gets_no_poller_and_the_others_still_do(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = settings({"a": 0.001, "b": 0.001})
    env = {f"ARB_{v}_{what}": "x" for v in ("A", "B") for what in ("API_KEY", "SECRET")}

    async def publish(_: object) -> None:
        raise AssertionError("nothing is polled here")

    with caplog.at_level(logging.WARNING, logger="arb.connectors.wallets"):
        pollers = pollers_for(s, ["a", "b"], publish, ccxt_ids={"a": "no_such_exchange", "b": "binance"}, environ=env)
    try:
        assert [p.venue_id for p in pollers] == ["b"]
        assert "wallets.unavailable venue=a ccxt_id=no_such_exchange" in caplog.text
    finally:
        for p in pollers:
            await p.aclose()
