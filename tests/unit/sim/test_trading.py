"""The venue-agnostic trading core without sockets: matching against a hand-built book, with fills, fees and
balances computed by hand; precision and notional checks; client ids; resting orders; order faults; control bodies."""

from __future__ import annotations

from decimal import Decimal as D

import msgspec
import orjson
import pytest

from arb.sim.market import Book, BookUpdate, InstrumentSpec
from arb.sim.trading import (
    DEFAULT_API_KEY,
    DEFAULT_FUNDING_USD,
    DEFAULT_PASSPHRASE,
    DEFAULT_SECRET,
    Account,
    GhostFault,
    NoSuchOrder,
    OrderClosed,
    OrderRequest,
    PartialThenCancelFault,
    Rejection,
    Trading,
    VenueLimits,
)

SPEC = InstrumentSpec("BTC/USD", price=100.0, tick=0.01, step=0.001, asset_class="crypto_major")
ASKS = {10000: 1.0, 10005: 2.0, 10010: 3.0}
"""100.00 x 1, 100.05 x 2, 100.10 x 3."""
BIDS = {9995: 1.5, 9990: 2.5}
"""99.95 x 1.5, 99.90 x 2.5."""


def make_book(asks: dict[int, float] = ASKS, bids: dict[int, float] = BIDS) -> Book:
    book = Book("sim", SPEC, "BTC/USDT", 0, level_notional=1000.0)
    set_levels(book, asks, bids)
    return book


def set_levels(book: Book, asks: dict[int, float], bids: dict[int, float]) -> None:
    book.asks, book.bids = dict(asks), dict(bids)
    book.ask_top, book.bid_top = min(asks), max(bids)


@pytest.fixture
def book() -> Book:
    return make_book()


@pytest.fixture
def venue(book: Book) -> Trading:
    return Trading(
        "sim",
        [book],
        taker_fee=D("0.001"),
        maker_fee=D("0.0005"),
        limits=VenueLimits(min_notional=D(5)),
        clock_ms=lambda: 1_000,
        default_account=False,
    )


@pytest.fixture
def acct(venue: Trading) -> Account:
    return venue.create_account("k", "s", balances={"USDT": D(1000), "BTC": D(5)})


def limit(side: str, amount: str, price: str, tif: str = "IOC", **kw: object) -> OrderRequest:
    return OrderRequest("BTC/USDT", side, "limit", amount=D(amount), price=D(price), time_in_force=tif, **kw)  # type: ignore[arg-type]


def balances(acct: Account) -> dict[str, tuple[D, D]]:
    return {a: (b.free, b.locked) for a, b in acct.balances.items()}


def test_an_ioc_buy_walks_the_asks_up_to_its_price_and_pays_price_times_amount_plus_the_fee_in_base(
    venue: Trading, acct: Account
) -> None:
    order = venue.place(acct, limit("buy", "2.5", "100.05"))

    assert [(t.price, t.amount) for t in order.trades] == [(D("100.00"), D("1.0")), (D("100.05"), D("1.5"))]
    assert (order.status, order.filled, order.cost) == ("filled", D("2.5"), D("250.075"))
    assert (order.fee, order.fee_asset) == (D("0.0025"), "BTC")  # 0.1 % of what was received
    assert balances(acct) == {"USDT": (D("749.925"), 0), "BTC": (D("7.4975"), 0)}
    assert all(not t.maker for t in order.trades)


def test_a_sell_pays_its_fee_in_quote(venue: Trading, acct: Account) -> None:
    order = venue.place(acct, limit("sell", "2", "99.90"))

    assert [(t.price, t.amount) for t in order.trades] == [(D("99.95"), D("1.5")), (D("99.90"), D("0.5"))]
    assert (order.cost, order.fee, order.fee_asset) == (D("199.875"), D("0.19987500"), "USDT")
    assert balances(acct) == {"USDT": (D("1199.675125"), 0), "BTC": (D(3), 0)}


def test_an_ioc_fills_partially_when_the_depth_within_its_price_runs_out_and_the_rest_expires(
    venue: Trading, acct: Account
) -> None:
    order = venue.place(acct, limit("buy", "5", "100.05"))

    assert (order.status, order.filled, order.cost) == ("expired", D(3), D("300.10"))
    assert balances(acct)["USDT"] == (D("699.90"), 0)  # nothing stays locked


def test_a_market_buy_walks_the_whole_book_and_expires_what_the_depth_cannot_fill(
    venue: Trading, acct: Account
) -> None:
    order = venue.place(acct, OrderRequest("BTC/USDT", "buy", "market", amount=D(7)))

    assert (order.status, order.filled, order.cost) == ("expired", D(6), D("600.40"))


def test_a_fok_that_the_book_cannot_fill_whole_trades_nothing(venue: Trading, acct: Account) -> None:
    before = balances(acct)

    missed = venue.place(acct, limit("buy", "3.5", "100.05", tif="FOK"))
    whole = venue.place(acct, limit("buy", "3", "100.05", tif="FOK"))

    assert (missed.status, missed.filled, missed.trades) == ("expired", 0, [])
    assert (whole.status, whole.filled) == ("filled", D(3))
    assert balances(acct)["USDT"][0] == before["USDT"][0] - D("300.10")


def test_a_market_sell_by_quote_amount_sells_whole_steps_until_the_quote_is_reached(
    venue: Trading, acct: Account
) -> None:
    order = venue.place(acct, OrderRequest("BTC/USDT", "sell", "market", quote_amount=D(150)))

    assert (order.status, order.amount, order.filled, order.cost) == ("filled", D("1.5"), D("1.5"), D("149.925"))
    assert balances(acct)["USDT"] == (D(1000) + D("149.925") - D("0.149925"), 0)


def test_a_post_only_order_that_would_cross_is_refused_and_one_that_does_not_rests_with_its_funds_locked(
    venue: Trading, acct: Account
) -> None:
    with pytest.raises(Rejection) as refused:
        venue.place(acct, limit("buy", "1", "100.00", tif="GTC", post_only=True))
    maker = venue.place(acct, limit("buy", "1", "99.99", tif="GTC", post_only=True))

    assert refused.value.reason == "post_only_would_take"
    assert (maker.status, maker.filled) == ("new", 0)
    assert balances(acct)["USDT"] == (D("900.01"), D("99.99"))


def test_a_venue_that_cancels_a_crossing_post_only_books_it_cancelled_with_nothing_traded(
    venue: Trading, acct: Account
) -> None:
    order = venue.place(acct, limit("buy", "1", "100.05", tif="GTC", post_only=True), cancel_crossing_post_only=True)

    assert (order.status, order.end_reason, order.filled, order.trades) == ("canceled", "post_only_would_take", 0, [])
    assert balances(acct)["USDT"] == (D(1000), 0)


def test_each_order_that_ends_short_of_filled_says_why(venue: Trading, acct: Account) -> None:
    ioc = venue.place(acct, limit("buy", "5", "100.05"))
    fok = venue.place(acct, limit("buy", "5", "100.05", tif="FOK"))
    gtc = venue.place(acct, limit("buy", "1", "99", tif="GTC"))
    venue.cancel(acct, "BTC/USDT", order_id=gtc.id)
    filled = venue.place(acct, limit("buy", "1", "100.05"))

    assert [o.end_reason for o in (ioc, fok, gtc, filled)] == ["ioc_remainder", "fok_unfilled", "by_user", None]


def test_a_resting_gtc_fills_at_its_own_price_as_maker_when_the_book_moves_through_it_and_a_cancel_frees_the_rest(
    venue: Trading, acct: Account, book: Book
) -> None:
    order = venue.place(acct, limit("buy", "2", "99.99", tif="GTC"))
    assert balances(acct)["USDT"] == (D("800.02"), D("199.98"))

    set_levels(book, {9998: 0.5, 9999: 1.0, 10005: 2.0}, {9990: 1.0})  # asks at 99.98 and 99.99 cross it
    venue.on_updates([BookUpdate(book, 2, 2, [], [], 0, True)])

    assert (order.status, order.filled, order.cost) == ("partially_filled", D("1.5"), D("149.985"))
    assert [(t.price, t.amount, t.maker, t.fee) for t in order.trades] == [(D("99.99"), D("1.5"), True, D("0.00075"))]
    assert balances(acct)["USDT"] == (D("800.02"), D("49.995"))
    assert balances(acct)["BTC"] == (D(5) + D("1.5") - D("0.00075"), 0)

    venue.cancel(acct, "BTC/USDT", order_id=order.id)

    assert order.status == "canceled"
    assert balances(acct)["USDT"] == (D("850.015"), 0)
    assert venue.open_orders(acct) == []


@pytest.mark.parametrize(
    ("req", "reason"),
    [
        (limit("buy", "1", "100.005"), "price_filter"),
        (limit("buy", "1.0005", "100"), "lot_size"),
        (limit("buy", "0.0005", "100"), "min_qty"),
        (limit("buy", "0.049", "100"), "min_notional"),
        (limit("buy", "100000", "100"), "max_notional"),
        (OrderRequest("BTC/USDT", "buy", "market", amount=D("0.05")), "min_notional"),  # 0.05 x mid 99.975
        (OrderRequest("ETH/USDT", "buy", "market", amount=D(1)), "unknown_symbol"),
    ],
)
def test_orders_off_the_venue_rules_are_refused_with_the_rule_they_break(
    venue: Trading, acct: Account, req: OrderRequest, reason: str
) -> None:
    with pytest.raises(Rejection) as refused:
        venue.place(acct, req)

    assert refused.value.reason == reason
    assert venue.orders == {}
    assert balances(acct) == {"USDT": (D(1000), 0), "BTC": (D(5), 0)}


def test_the_rules_are_the_books_tick_and_step_with_the_venues_notional_range(venue: Trading) -> None:
    rules = venue.rules("BTC/USDT")

    assert (rules.tick, rules.step, rules.min_qty, rules.min_price) == (D("0.01"), D("0.001"), D("0.001"), D("0.01"))
    assert (rules.min_notional, rules.base, rules.quote) == (D(5), "BTC", "USDT")


def test_funds_are_checked_at_the_limit_price_for_a_buy_and_the_amount_for_a_sell(venue: Trading) -> None:
    poor = venue.create_account("poor", "s", balances={"USDT": D(100), "BTC": D("0.5")})

    too_big = OrderRequest("BTC/USDT", "buy", "market", amount=D("1.001"))  # the walk costs 100.10005
    for req in (limit("buy", "1", "100.05"), limit("sell", "0.6", "99"), too_big):
        with pytest.raises(Rejection) as refused:
            venue.place(poor, req)
        assert refused.value.reason == "insufficient_balance"
    assert venue.place(poor, OrderRequest("BTC/USDT", "buy", "market", amount=D(1))).status == "filled"  # costs 100


def test_a_client_id_is_unique_among_open_orders_only_and_a_lookup_finds_the_newest(
    venue: Trading, acct: Account
) -> None:
    first = venue.place(acct, limit("buy", "1", "99", tif="GTC", client_id="abc"))
    with pytest.raises(Rejection) as dup:
        venue.place(acct, limit("buy", "1", "98", tif="GTC", client_id="abc"))
    venue.cancel(acct, "BTC/USDT", client_id="abc")
    second = venue.place(acct, limit("buy", "1", "100.00", client_id="abc"))

    assert dup.value.reason == "duplicate_client_id"
    assert venue.find(acct, "BTC/USDT", client_id="abc") is second
    assert venue.find(acct, "BTC/USDT", order_id=first.id, client_id="abc") is first
    with pytest.raises(NoSuchOrder):
        venue.find(acct, "BTC/USDT", order_id=first.id, client_id="other")


def test_cancelling_a_final_order_or_anothers_order_fails(venue: Trading, acct: Account) -> None:
    other = venue.create_account("other", "s", balances={"USDT": D(1000)})
    filled = venue.place(acct, limit("buy", "1", "100.00"))
    theirs = venue.place(other, limit("buy", "1", "99", tif="GTC"))

    with pytest.raises(OrderClosed):
        venue.cancel(acct, "BTC/USDT", order_id=filled.id)
    with pytest.raises(NoSuchOrder):
        venue.cancel(acct, "BTC/USDT", order_id=theirs.id)
    with pytest.raises(NoSuchOrder):
        venue.cancel(acct, "BTC/USDT", order_id=123)


def test_partial_then_cancel_fills_the_fraction_and_cancels_the_rest_even_for_a_gtc(
    venue: Trading, acct: Account
) -> None:
    order = venue.place(acct, limit("buy", "2", "100.05", tif="GTC"), PartialThenCancelFault(fraction=0.6))

    assert order.end_reason == "by_venue"
    assert (order.status, order.filled, order.cost, order.fault) == (
        "canceled",
        D("1.2"),
        D("120.01"),
        "partial_then_cancel",
    )
    assert balances(acct)["USDT"] == (D("879.99"), 0)
    assert venue.open_orders(acct) == []


def test_order_faults_match_symbol_and_side_and_are_used_up_in_arming_order(venue: Trading) -> None:
    faults = venue.faults
    faults.add("reject", symbol="ETH/USDT")
    faults.add("ghost", side="sell", count=2, hold_s=1.0)

    assert faults.take("BTC/USDT", "buy") is None
    assert isinstance(faults.take("BTC/USDT", "sell"), GhostFault)
    assert faults.take("ETH/USDT", "sell").kind == "reject"  # type: ignore[union-attr]
    assert faults.take("ETH/USDT", "sell").kind == "ghost"  # type: ignore[union-attr]
    assert faults.take("ETH/USDT", "sell") is None
    assert faults.state() == {"armed": [], "injected": {"ghost": 2, "reject": 1}}


def test_order_faults_from_json_name_a_bad_field_and_clear_disarms_them(venue: Trading) -> None:
    state = venue.arm_fault(b'{"fault": "ack_delay", "seconds": 2, "symbol": "BTC/USDT"}')
    assert state["armed"] == [
        {"fault": "ack_delay", "count": 1, "symbol": "BTC/USDT", "side": None, "seconds": 2.0, "remaining": 1}
    ]
    with pytest.raises(msgspec.ValidationError, match="fraction"):
        venue.arm_fault(b'{"fault": "partial_then_cancel", "fraction": 1.5}')
    with pytest.raises(ValueError, match="seconds"):
        venue.faults.add("ack_delay")

    venue.arm_fault(b'{"fault": "clear"}')

    assert venue.faults.take("BTC/USDT", "buy") is None


def test_accounts_are_created_funded_and_shown_without_their_secret(venue: Trading) -> None:
    with pytest.raises(ValueError, match="secret"):
        venue.apply_account_change(b'{"api_key": "new"}')

    venue.apply_account_change(b'{"api_key": "new", "secret": "hush", "balances": {"USDT": "100"}, "taker_fee": "0"}')
    shown = venue.apply_account_change(b'{"api_key": "new", "deposit": {"USDT": 50, "BTC": "0.25"}}')

    assert shown["balances"] == {"BTC": {"free": "0.25", "locked": "0"}, "USDT": {"free": "150", "locked": "0"}}
    assert (shown["taker_fee"], shown["maker_fee"]) == ("0", "0.0005")
    assert "hush" not in orjson.dumps(shown).decode()
    with pytest.raises(ValueError, match=r"deposit\.BTC"):
        venue.apply_account_change(b'{"api_key": "new", "deposit": {"BTC": "-1"}}')


def test_every_order_is_listed_with_its_trades_for_invariant_checks(venue: Trading, acct: Account) -> None:
    order = venue.place(acct, limit("buy", "1.5", "100.05", client_id="c1"))

    [listed] = venue.orders_json(api_key="k")["orders"]

    assert (listed["id"], listed["client_id"], listed["status"], listed["filled"]) == (order.id, "c1", "filled", "1.5")
    assert [t["amount"] for t in listed["trades"]] == ["1.0", "0.5"]
    assert venue.orders_json(api_key="nobody") == {"orders": []}


def test_every_venue_has_the_default_account_funded_with_every_listed_asset() -> None:
    venue = Trading("sim", [make_book()])

    account = venue.account(DEFAULT_API_KEY)

    assert (account.secret, account.passphrase) == (DEFAULT_SECRET, DEFAULT_PASSPHRASE)
    assert account.balances["USDT"].free == DEFAULT_FUNDING_USD
    assert account.balances["BTC"].free == D(DEFAULT_FUNDING_USD / D("99.975")).quantize(D("0.001"), "ROUND_DOWN")
