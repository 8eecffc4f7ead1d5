"""The fault switchboard without sockets: arming, consuming, timing (both sides of each deadline) and counting."""

from __future__ import annotations

import msgspec
import pytest

from arb.sim.faults import Faults, Malformed, RateLimit, Stall, decode_fault


class FakeVenue:
    venue_id = "binance"

    def __init__(self) -> None:
        self.dropped: list[int | None] = []
        self.maintenance_closes = 0
        self.discarded = 0

    def drop_connections(self, code: int | None) -> int:
        self.dropped.append(code)
        return 3

    def close_for_maintenance(self) -> int:
        self.maintenance_closes += 1
        return 2

    def discard_outbound(self) -> None:
        self.discarded += 1


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def venue() -> FakeVenue:
    return FakeVenue()


@pytest.fixture
def faults(venue: FakeVenue, clock: Clock) -> Faults:
    return Faults(venue, clock=clock, wall_ms=lambda: 1_700_000_000_000)


def test_a_429_is_answered_once_then_requests_pass_after_retry_after(faults: Faults, clock: Clock) -> None:
    faults.rate_limit(retry_after_s=2)

    assert faults.rest_gate() == (429, 2)
    clock.t += 2.0  # exactly Retry-After later: allowed again
    assert faults.rest_gate() is None
    assert faults.injected == {"http_429": 1}


def test_coming_back_before_retry_after_gets_the_ip_banned_with_418(faults: Faults, clock: Clock) -> None:
    faults.rate_limit(retry_after_s=2, ban_s=10)
    faults.rest_gate()

    clock.t += 1.999
    assert faults.rest_gate() == (418, 10)
    clock.t += 9.5
    assert faults.rest_gate() == (418, 1)  # still banned, Retry-After counts down
    clock.t += 0.5
    assert faults.rest_gate() is None
    assert faults.injected == {"http_429": 1, "http_418": 2}


def test_without_escalation_an_early_request_is_simply_served(faults: Faults, clock: Clock) -> None:
    faults.rate_limit(retry_after_s=5, requests=2, escalate=False)

    assert [faults.rest_gate(), faults.rest_gate(), faults.rest_gate()] == [(429, 5), (429, 5), None]


def test_a_symbol_specific_skip_is_used_before_an_any_symbol_one(faults: Faults) -> None:
    faults.skip_sequence(1)
    faults.skip_sequence(1, symbol="ETH/USDT")

    assert faults.take("skip_sequence", "ETH/USDT")  # the ETH one
    assert faults.take("skip_sequence", "BTC/USDT")  # the any-symbol one
    assert not faults.take("skip_sequence", "ETH/USDT")
    assert faults.injected["skip_sequence"] == 2
    assert not faults.message_faults_armed()


def test_malformed_frames_are_handed_out_in_order_and_counted_by_kind(faults: Faults) -> None:
    faults.malformed("nan_price", count=2, symbol="BTC/USDT")
    faults.malformed("crossed")

    assert faults.take_malformed("ETH/USDT") == "crossed"
    assert [faults.take_malformed("BTC/USDT") for _ in range(3)] == ["nan_price", "nan_price", None]
    assert faults.injected == {"malformed": 3, "malformed_nan_price": 2, "malformed_crossed": 1}


def test_a_stall_lasts_its_seconds_and_discards_what_was_queued(faults: Faults, venue: FakeVenue, clock: Clock) -> None:
    faults.stall(5.0)

    assert faults.stalled()
    assert venue.discarded == 1
    clock.t += 4.999
    assert faults.stalled()
    clock.t += 0.001
    assert not faults.stalled()


def test_maintenance_closes_connections_and_ends_on_time_or_on_demand(
    faults: Faults, venue: FakeVenue, clock: Clock
) -> None:
    faults.maintenance(3.0)

    assert faults.in_maintenance()
    assert faults.maintenance_retry_after() == 3
    assert faults.injected == {"maintenance": 1, "ws_closed": 2}
    clock.t += 3.0
    assert not faults.in_maintenance()
    assert faults.maintenance_retry_after() is None
    faults.maintenance()  # open-ended
    clock.t += 1e6
    assert faults.in_maintenance()
    assert faults.maintenance_retry_after() is None
    faults.end_maintenance()
    assert not faults.in_maintenance()


def test_a_time_freeze_holds_the_event_time_then_lets_it_run_again(faults: Faults, clock: Clock) -> None:
    faults.freeze_time(2.0)

    assert faults.event_time_ms(1_700_000_000_500) == 1_700_000_000_000
    clock.t += 1.999
    assert faults.event_time_ms(1_700_000_002_499) == 1_700_000_000_000
    clock.t += 0.001
    assert faults.event_time_ms(1_700_000_002_500) == 1_700_000_002_500


def test_drop_counts_the_connections_it_cut(faults: Faults, venue: FakeVenue) -> None:
    assert faults.drop(code=1011) == 3

    assert venue.dropped == [1011]
    assert faults.injected == {"drop": 3}


def test_clear_disarms_everything_but_keeps_the_counts(faults: Faults) -> None:
    faults.stall(10)
    faults.skip_sequence(5)
    faults.rate_limit(requests=3)
    faults.freeze_time()

    faults.clear()

    assert not faults.stalled()
    assert not faults.message_faults_armed()
    assert faults.rest_gate() is None
    assert faults.event_time_ms(123) == 123
    assert faults.injected == {"stall": 1, "freeze_time": 1}


def test_control_requests_decode_to_their_fault_and_apply(faults: Faults) -> None:
    spec = decode_fault(b'{"fault": "malformed", "kind": "crossed", "count": 2}')

    faults.apply(spec)

    assert spec == Malformed(kind="crossed", count=2)
    assert decode_fault('{"fault": "rate_limit", "status": 418}') == RateLimit(status=418)
    assert decode_fault('{"fault": "stall", "seconds": 1.5}') == Stall(seconds=1.5)
    assert faults.take_malformed("BTC/USDT") == "crossed"


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ('{"fault": "stall", "seconds": "soon"}', "$.seconds"),
        ('{"fault": "stall", "seconds": -1}', "$.seconds"),
        ('{"fault": "malformed", "kind": "emoji"}', "$.kind"),
        ('{"fault": "rate_limit", "retry_after_s": 0.5}', "$.retry_after_s"),
        ('{"fault": "drop", "code": 1000, "force": true}', "force"),
        ('{"fault": "explode"}', "explode"),
    ],
)
def test_a_bad_control_request_is_refused_naming_the_field(body: str, names: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=names.replace("$", r"\$")):
        decode_fault(body)
