"""Positions and working orders on the local Capital.com: open -> confirm -> close, rejects, and FAULTS E17 (a session
that expires around an order: logged in again, and nothing is resent without a status check).

Each test ends on the venue's own books: exactly the positions the client reports exist, no more."""

from __future__ import annotations

from decimal import Decimal

import pytest

from arb.connectors.capital_com import CapitalComTrader, ClientOptions, PositionRequest, WorkingOrderRequest
from arb.executor.venue import OrderRejected, VenueRateLimited
from arb.sim.venues.capital_com import LocalCapitalCom
from tests.integration.connectors.capital_com_support import FEW, client_of, local_capital_com, requests_to


def venue_positions(local: LocalCapitalCom) -> dict[str, object]:
    account = local.protocol.default_account
    assert account is not None
    return dict(account.positions)


def touch(local: LocalCapitalCom, epic: str) -> tuple[Decimal, Decimal]:
    bid, _, ask, _ = local.venue.book_for_symbol(epic).top()
    return Decimal(repr(bid)), Decimal(repr(ask))


def lot(local: LocalCapitalCom, epic: str, n: int = 1) -> Decimal:
    return Decimal(repr(local.venue.book_for_symbol(epic).step)) * n


async def test_open_confirm_close_a_position_at_the_venues_touch() -> None:
    async with local_capital_com(FEW, run=False) as local, client_of(local) as client:
        trader = CapitalComTrader(client)
        bid, ask = touch(local, "GOLD")
        size = lot(local, "GOLD", 3)

        opened = await trader.open_position(PositionRequest(epic="GOLD", direction="BUY", size=size))

        assert (opened.status, opened.level, opened.size, opened.direction) == ("OPEN", ask, size, "BUY")
        assert list(venue_positions(local)) == [opened.deal_id]  # the position's id, from affectedDeals
        assert opened.deal_reference.startswith("o_")

        closed = await trader.close_position(opened.deal_id)

        assert (closed.status, closed.level, closed.direction) == ("CLOSED", bid, "SELL")
        assert closed.profit == (bid - ask) * size  # bought at the offer, sold at the bid: the spread lost
        assert venue_positions(local) == {}
        assert len(requests_to(local, "POST", "/api/v1/positions")) == 1


async def test_a_sell_with_stop_and_profit_levels_is_opened_with_them() -> None:
    async with local_capital_com(FEW, run=False) as local, client_of(local) as client:
        bid, _ = touch(local, "EURUSD")
        req = PositionRequest(
            epic="EURUSD", direction="SELL", size=lot(local, "EURUSD"), stop_level=bid * 2, profit_level=bid / 2
        )

        deal = await CapitalComTrader(client).open_position(req)
        [entry] = await client.positions()

        assert deal.level == bid
        assert (entry.position.stopLevel, entry.position.profitLevel) == (bid * 2, bid / 2)


@pytest.mark.parametrize(
    ("setup", "reason"),
    [("close_market", "MARKET_CLOSED"), ("half_lot", "MINIMUM_ORDER_SIZE_ERROR"), ("stop_above", "ATTACHED_ORDER")],
)
async def test_a_rejected_confirm_raises_with_the_venues_reason_and_nothing_is_open(setup: str, reason: str) -> None:
    async with local_capital_com(FEW, run=False) as local, client_of(local) as client:
        size = lot(local, "US500")
        _, ask = touch(local, "US500")
        stop = None
        if setup == "close_market":
            local.protocol.set_market_status("US500", "CLOSED")
        elif setup == "half_lot":
            size = size / 2
        else:
            stop = ask * 2  # a BUY's stop above its fill

        with pytest.raises(OrderRejected, match=reason):
            await CapitalComTrader(client).open_position(
                PositionRequest(epic="US500", direction="BUY", size=size, stop_level=stop)
            )

        assert venue_positions(local) == {}


async def test_a_working_order_rests_below_the_market_and_cancel_deletes_it() -> None:
    async with local_capital_com(FEW, run=False) as local, client_of(local) as client:
        trader = CapitalComTrader(client)
        bid, _ = touch(local, "GOLD")
        req = WorkingOrderRequest(epic="GOLD", direction="BUY", size=lot(local, "GOLD"), level=bid * Decimal("0.9"))

        order = await trader.create_working_order(req)
        [resting] = await trader.working_orders()
        deleted = await trader.cancel_working_order(order.deal_id)

        assert resting.workingOrderData.dealId == order.deal_id
        assert resting.workingOrderData.orderLevel == req.level
        assert deleted.status == "DELETED"
        assert await trader.working_orders() == []
        assert venue_positions(local) == {}


async def test_a_reject_fault_raises_order_rejected_and_a_rate_limit_fault_places_nothing() -> None:
    async with local_capital_com(FEW, run=False) as local, client_of(local) as client:
        trader = CapitalComTrader(client)
        req = PositionRequest(epic="GOLD", direction="BUY", size=lot(local, "GOLD"))
        local.venue.trading.faults.add("reject", code="RISK_CHECK", symbol="GOLD")
        local.venue.trading.faults.add("rate_limit", retry_after_s=1, symbol="GOLD")

        with pytest.raises(OrderRejected, match="RISK_CHECK"):
            await trader.open_position(req)
        with pytest.raises(VenueRateLimited):
            await trader.open_position(req)

        assert venue_positions(local) == {}


# ---------------------------------------------------------------------------------------------------- FAULTS E17


async def test_e17_session_expiring_after_the_order_relogins_and_confirms_the_same_reference() -> None:
    async with local_capital_com(FEW, run=False) as local, client_of(local) as client:
        local.protocol.expire_after("POST /api/v1/positions")

        deal = await CapitalComTrader(client).open_position(
            PositionRequest(epic="GOLD", direction="BUY", size=lot(local, "GOLD"))
        )

        assert len(requests_to(local, "POST", "/api/v1/positions")) == 1  # never resent
        assert len(requests_to(local, "GET", "/api/v1/confirms/")) == 2  # refused for the session, then answered
        assert client.stats.sessions_created == 2
        assert list(venue_positions(local)) == [deal.deal_id]
        assert not deal.recovered


async def test_e17_an_order_refused_for_its_session_is_checked_for_and_only_then_sent_again() -> None:
    async with local_capital_com(FEW, run=False) as local, client_of(local) as client:
        await client.ping()
        local.protocol.expire_sessions()  # the order arrives with a dead session: 401, nothing placed

        deal = await CapitalComTrader(client).open_position(
            PositionRequest(epic="GOLD", direction="BUY", size=lot(local, "GOLD"))
        )

        calls = [(m, p) for _, m, p in local.venue.requests if p.startswith("/api/v1/") and p != "/api/v1/ping"]
        assert calls == [
            ("POST", "/api/v1/session"),  # the first login (before the ping)
            ("POST", "/api/v1/positions"),  # 401 error.invalid.session.token
            ("POST", "/api/v1/session"),  # logged in again
            ("GET", "/api/v1/positions"),  # the status check: no position from it
            ("POST", "/api/v1/positions"),  # only then sent again
            ("GET", f"/api/v1/confirms/{deal.deal_reference}"),
        ]
        assert list(venue_positions(local)) == [deal.deal_id]


async def test_e17_an_order_placed_but_unanswered_while_the_session_expired_is_found_not_resent() -> None:
    async with local_capital_com(FEW, run=False) as local, client_of(local) as client:
        # Placed, then the connection is cut instead of the answer, and the session dies with it.
        local.venue.trading.faults.add("ghost", hold_s=0.3, symbol="GOLD")
        local.protocol.expire_after("POST /api/v1/positions")

        deal = await CapitalComTrader(client).open_position(
            PositionRequest(epic="GOLD", direction="BUY", size=lot(local, "GOLD"))
        )

        assert deal.recovered
        assert len(requests_to(local, "POST", "/api/v1/positions")) == 1
        assert list(venue_positions(local)) == [deal.deal_id]
        assert deal.level == touch(local, "GOLD")[1]
        assert client.stats.session_errors == 1  # the lookup met the dead session and logged in again


async def test_e17_two_equal_orders_lost_in_a_row_are_each_found_once() -> None:
    options = ClientOptions(timeout_s=1.0, keepalive_s=None)
    async with local_capital_com(FEW, run=False) as local, client_of(local, options) as client:
        trader = CapitalComTrader(client)
        req = PositionRequest(epic="GOLD", direction="BUY", size=lot(local, "GOLD"))
        local.venue.trading.faults.add("ghost", hold_s=1.2, symbol="GOLD", count=2)

        first = await trader.open_position(req)
        second = await trader.open_position(req)

        assert first.recovered
        assert second.recovered
        assert first.deal_id != second.deal_id  # the second lookup does not take the first's position
        assert set(venue_positions(local)) == {first.deal_id, second.deal_id}


async def test_e17_a_close_refused_for_its_session_checks_the_position_then_closes_it_once() -> None:
    async with local_capital_com(FEW, run=False) as local, client_of(local) as client:
        trader = CapitalComTrader(client)
        opened = await trader.open_position(PositionRequest(epic="GOLD", direction="BUY", size=lot(local, "GOLD")))
        local.protocol.expire_sessions()

        closed = await trader.close_position(opened.deal_id)

        deletes = requests_to(local, "DELETE", f"/api/v1/positions/{opened.deal_id}")
        checks = requests_to(local, "GET", f"/api/v1/positions/{opened.deal_id}")
        assert len(deletes) == 2  # refused for the session, then sent once more...
        assert len(checks) == 1  # ...only after the position was found still open
        assert deletes[0] < checks[0] < deletes[1]
        assert closed.status == "CLOSED"
        assert venue_positions(local) == {}
        assert len(local.protocol.default_account.closed) == 1  # type: ignore[union-attr]
