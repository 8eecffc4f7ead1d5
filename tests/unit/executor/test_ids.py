"""Deterministic ids: the same opportunity always maps to the same execution and client order ids (FAULTS E4: the
ledger's intent row refuses a second execution; E2/E3/E8: an order is looked up by a name known before it was sent),
and every id is one each venue accepts as a client order id."""

from __future__ import annotations

import re

import pytest

from arb.executor.ids import client_id, execution_id

OKX_CLORDID = re.compile(r"^[A-Za-z0-9]{1,32}$")
BINANCE_CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")


def test_the_same_opportunity_always_gets_the_same_execution_id_and_a_deliberate_retry_another() -> None:
    first = execution_id("opp-BTC/USD-binance-okx-1")

    assert execution_id("opp-BTC/USD-binance-okx-1") == first
    assert execution_id("opp-BTC/USD-binance-okx-1", attempt=0) == first
    assert execution_id("opp-BTC/USD-binance-okx-1", attempt=1) != first
    assert execution_id("opp-BTC/USD-binance-okx-2") != first
    assert re.fullmatch(r"ex[a-z2-7]{20}", first)


def test_client_ids_are_distinct_per_order_number_and_valid_on_every_venue() -> None:
    ex = execution_id("opp-1")
    ids = [client_id(ex, leg) for leg in range(100)]

    assert len(set(ids)) == 100
    assert ids[0] == client_id(ex, 0)
    assert all(len(cid) == 29 and cid.startswith("arb") for cid in ids)
    assert all(OKX_CLORDID.match(cid) and BINANCE_CLIENT_ID.match(cid) for cid in ids)
    assert (ids[0][-2:], ids[12][-2:]) == ("00", "12")
    assert client_id(execution_id("opp-2"), 0) != ids[0]


@pytest.mark.parametrize("leg", [-1, 100])
def test_an_order_number_out_of_range_is_refused(leg: int) -> None:
    with pytest.raises(ValueError, match=r"leg must be in 0\.\.99"):
        client_id("ex", leg)


def test_a_negative_attempt_is_refused() -> None:
    with pytest.raises(ValueError, match="attempt must be >= 0"):
        execution_id("opp-1", attempt=-1)
