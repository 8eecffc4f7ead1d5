"""Faults on demand for one local venue: armed from Python or `POST /_sim/faults`, counted when they take effect.

Why a venue-level switchboard rather than per-test hacks: the fault rows of FAULTS.md (M1-M7, E10, E13) must be
reproducible against the *real* ccxt client over real sockets, so the venue itself misbehaves the way an exchange
does, and every test can assert both sides: what the venue injected (`Faults.injected`) and what the client did.

Faults and what the client sees:

| fault           | effect                                                                                        |
|-----------------|-----------------------------------------------------------------------------------------------|
| `drop`          | every open WebSocket is cut now (TCP abort, or a close frame with `code`)                     |
| `stall`         | for `seconds` nothing is sent on any WebSocket (sockets stay open; data, pings, pongs all stop; |
|                 | what the market produced meanwhile is lost, as on a venue whose feed hung)                     |
| `skip_sequence` | the next `count` updates of a sequenced stream are withheld, so the next one's first id jumps  |
|                 | (M3); the book behind it moved, so a client that ignores the gap holds a wrong book            |
| `bad_checksum`  | the next `count` checksummed messages carry a wrong checksum (venues with checksums, M6)       |
| `stale_snapshot`| the next `count` REST book snapshots carry an update id `lag` behind the stream (M4: a snapshot |
|                 | older than the first buffered update; a client must fetch again, never serve it)               |
| `malformed`     | the next `count` updates are replaced by a bad frame: invalid JSON, wrong types, a NaN price, |
|                 | or a level that crosses the book (M7); the update is lost, so a gap follows                   |
| `rate_limit`    | the next `requests` REST calls get 429 (or 418) with Retry-After; with `escalate`, a call    |
|                 | made before Retry-After has passed gets 418 for `ban_s` (Binance's documented IP ban, E10)    |
| `maintenance`   | REST answers 503 with the venue's maintenance body, open WebSockets are closed, new ones are  |
|                 | refused with 503 (E13), for `seconds` or until `end_maintenance`                              |
| `freeze_time`   | messages keep flowing but their venue event time stops advancing (M2)                         |

`injected` counts effects, not requests: `skip_sequence` counts withheld updates, `rate_limit` counts answers
(`http_429`, `http_418`), `drop` counts connections cut, `maintenance` counts `http_503` answers and
`ws_refused`/`ws_closed` connections; `stall`, `maintenance` and `freeze_time` also count once when they start.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from typing import Annotated, Any, Final, Literal, Protocol

import msgspec

log = logging.getLogger(__name__)

MalformedKind = Literal["invalid_json", "wrong_types", "nan_price", "crossed"]
MALFORMED_KINDS: Final[tuple[MalformedKind, ...]] = ("invalid_json", "wrong_types", "nan_price", "crossed")

PosFloat = Annotated[float, msgspec.Meta(gt=0.0)]
PosInt = Annotated[int, msgspec.Meta(ge=1)]
CloseCode = Annotated[int, msgspec.Meta(ge=1000, le=4999)]


class _Spec(msgspec.Struct, forbid_unknown_fields=True, tag_field="fault"):
    """A control request: `{"fault": "<tag>", ...fields}`."""


class Drop(_Spec, tag="drop"):
    code: CloseCode | None = None
    """None: abort the TCP connection (a network drop); a number: send a close frame with it."""


class Stall(_Spec, tag="stall"):
    seconds: PosFloat


class SkipSequence(_Spec, tag="skip_sequence"):
    count: PosInt = 1
    symbol: str | None = None


class BadChecksum(_Spec, tag="bad_checksum"):
    count: PosInt = 1
    symbol: str | None = None


class StaleSnapshot(_Spec, tag="stale_snapshot"):
    count: PosInt = 1
    symbol: str | None = None


class Malformed(_Spec, tag="malformed"):
    kind: MalformedKind = "invalid_json"
    count: PosInt = 1
    symbol: str | None = None


class RateLimit(_Spec, tag="rate_limit"):
    status: Literal[429, 418] = 429
    retry_after_s: Annotated[int, msgspec.Meta(ge=0, le=3600)] = 1
    """Whole seconds: Retry-After carries delta-seconds (RFC 9110)."""
    requests: PosInt = 1
    escalate: bool = True
    ban_s: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 5


class Maintenance(_Spec, tag="maintenance"):
    seconds: PosFloat | None = None


class EndMaintenance(_Spec, tag="end_maintenance"):
    pass


class FreezeTime(_Spec, tag="freeze_time"):
    seconds: PosFloat | None = None


class Clear(_Spec, tag="clear"):
    pass


FaultSpec = (
    Drop
    | Stall
    | SkipSequence
    | BadChecksum
    | StaleSnapshot
    | Malformed
    | RateLimit
    | Maintenance
    | EndMaintenance
    | FreezeTime
    | Clear
)
_SPEC_DECODER: Final = msgspec.json.Decoder(FaultSpec)


def decode_fault(data: bytes | str) -> FaultSpec:
    """Parse a control request body; raises `msgspec.ValidationError`/`DecodeError` naming the bad field."""
    spec: FaultSpec = _SPEC_DECODER.decode(data)
    return spec


class FaultTarget(Protocol):
    """What a fault needs the venue server to do at once."""

    venue_id: str

    def drop_connections(self, code: int | None) -> int: ...

    def close_for_maintenance(self) -> int: ...

    def discard_outbound(self) -> None: ...


class Faults:
    """One venue's fault switches. See the module docstring for the faults and how they are counted."""

    def __init__(
        self,
        target: FaultTarget,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._target = target
        self._clock = clock
        self._wall_ms = wall_ms
        self.injected: Counter[str] = Counter()
        self._armed: dict[str, dict[str | None, int]] = {"skip_sequence": {}, "bad_checksum": {}, "stale_snapshot": {}}
        self._malformed: list[list[Any]] = []  # [kind, symbol, remaining]
        self._stalled_until = -math.inf
        self._maintenance_until = -math.inf
        self._frozen_ms: int | None = None
        self._frozen_until = -math.inf
        self._limit_remaining = 0
        self._limit = RateLimit()
        self._window_until = -math.inf
        self._ban_until = -math.inf

    @property
    def venue(self) -> str:
        return self._target.venue_id

    def _armed_log(self, fault: str, **params: object) -> None:
        detail = " ".join(f"{k}={v}" for k, v in params.items())
        log.info("sim.fault_armed venue=%s fault=%s %s", self.venue, fault, detail)

    def count(self, fault: str, symbol: str | None = None, n: int = 1) -> None:
        """Record that `fault` took effect (`n` times); the server calls it for the effects it carries out."""
        self.injected[fault] += n
        log.info("sim.fault_injected venue=%s fault=%s symbol=%s n=%d", self.venue, fault, symbol, n)

    # ------------------------------------------------------------------ arming (Python API)

    def apply(self, spec: FaultSpec) -> None:
        """Arm a decoded control request (the HTTP endpoint's entry point)."""
        match spec:
            case Drop(code=code):
                self.drop(code=code)
            case Stall(seconds=seconds):
                self.stall(seconds)
            case SkipSequence(count=count, symbol=symbol):
                self.skip_sequence(count, symbol=symbol)
            case BadChecksum(count=count, symbol=symbol):
                self.bad_checksum(count, symbol=symbol)
            case StaleSnapshot(count=count, symbol=symbol):
                self.stale_snapshot(count, symbol=symbol)
            case Malformed(kind=kind, count=count, symbol=symbol):
                self.malformed(kind, count, symbol=symbol)
            case RateLimit():
                self.rate_limit(
                    status=spec.status,
                    retry_after_s=spec.retry_after_s,
                    requests=spec.requests,
                    escalate=spec.escalate,
                    ban_s=spec.ban_s,
                )
            case Maintenance(seconds=seconds):
                self.maintenance(seconds)
            case EndMaintenance():
                self.end_maintenance()
            case FreezeTime(seconds=seconds):
                self.freeze_time(seconds)
            case Clear():
                self.clear()

    def drop(self, *, code: int | None = None) -> int:
        """Cut every open WebSocket now; returns how many."""
        n = self._target.drop_connections(code)
        self.count("drop", n=n)
        return n

    def stall(self, seconds: float) -> None:
        """Send nothing on any WebSocket for `seconds` (the sockets stay open)."""
        _positive("seconds", seconds)
        self._stalled_until = self._clock() + seconds
        self._target.discard_outbound()
        self._armed_log("stall", seconds=seconds)
        self.count("stall")

    def skip_sequence(self, count: int = 1, *, symbol: str | None = None) -> None:
        """Withhold the next `count` updates of sequenced streams (of `symbol`, or of any symbol)."""
        self._arm_counted("skip_sequence", count, symbol)

    def bad_checksum(self, count: int = 1, *, symbol: str | None = None) -> None:
        """Give the next `count` checksummed messages a wrong checksum (a no-op on venues without checksums)."""
        self._arm_counted("bad_checksum", count, symbol)

    def stale_snapshot(self, count: int = 1, *, symbol: str | None = None) -> None:
        """Serve the next `count` REST book snapshots (of `symbol`, or of any) as of an update id the stream passed."""
        self._arm_counted("stale_snapshot", count, symbol)

    def malformed(self, kind: MalformedKind = "invalid_json", count: int = 1, *, symbol: str | None = None) -> None:
        """Replace the next `count` updates (of `symbol`, or of any) with a malformed frame of `kind`."""
        if kind not in MALFORMED_KINDS:
            raise ValueError(f"kind must be one of {', '.join(MALFORMED_KINDS)}, got {kind!r}")
        _count("count", count)
        self._malformed.append([kind, symbol, count])
        self._armed_log("malformed", kind=kind, count=count, symbol=symbol)

    def rate_limit(
        self,
        *,
        status: Literal[429, 418] = 429,
        retry_after_s: int = 1,
        requests: int = 1,
        escalate: bool = True,
        ban_s: int = 5,
    ) -> None:
        """Answer the next `requests` REST calls with `status` and `Retry-After: retry_after_s`.

        With `escalate`, a call that comes back before Retry-After has passed is banned: 418 for `ban_s`.
        """
        self._limit = RateLimit(
            status=status, retry_after_s=retry_after_s, requests=requests, escalate=escalate, ban_s=ban_s
        )
        _count("requests", requests)
        self._limit_remaining = requests
        self._armed_log("rate_limit", status=status, retry_after_s=retry_after_s, requests=requests, escalate=escalate)

    def maintenance(self, seconds: float | None = None) -> None:
        """Go into maintenance for `seconds` (None: until `end_maintenance`): REST 503, WebSockets closed/refused."""
        if seconds is not None:
            _positive("seconds", seconds)
        self._maintenance_until = math.inf if seconds is None else self._clock() + seconds
        self._armed_log("maintenance", seconds=seconds)
        self.count("maintenance")
        closed = self._target.close_for_maintenance()
        if closed:
            self.count("ws_closed", n=closed)

    def end_maintenance(self) -> None:
        self._maintenance_until = -math.inf
        self._armed_log("end_maintenance")

    def freeze_time(self, seconds: float | None = None) -> None:
        """Stop the venue's event time where it is now, for `seconds` (None: until `clear`)."""
        if seconds is not None:
            _positive("seconds", seconds)
        self._frozen_ms = self._wall_ms()
        self._frozen_until = math.inf if seconds is None else self._clock() + seconds
        self._armed_log("freeze_time", seconds=seconds, at_ms=self._frozen_ms)
        self.count("freeze_time")

    def clear(self) -> None:
        """Disarm everything (counts are kept)."""
        for armed in self._armed.values():
            armed.clear()
        self._malformed.clear()
        self._stalled_until = self._maintenance_until = self._frozen_until = -math.inf
        self._frozen_ms = None
        self._limit_remaining = 0
        self._window_until = self._ban_until = -math.inf
        self._armed_log("clear")

    def _arm_counted(self, fault: str, count: int, symbol: str | None) -> None:
        _count("count", count)
        armed = self._armed[fault]
        armed[symbol] = armed.get(symbol, 0) + count
        self._armed_log(fault, count=count, symbol=symbol)

    # ------------------------------------------------------------------ queries (the server and protocols)

    def message_faults_armed(self) -> bool:
        """Whether any per-message fault is armed (the fan-out's fast path skips the lookups when not)."""
        return bool(self._malformed or self._armed["skip_sequence"] or self._armed["bad_checksum"])

    def stalled(self) -> bool:
        return self._clock() < self._stalled_until

    def in_maintenance(self) -> bool:
        return self._clock() < self._maintenance_until

    def maintenance_retry_after(self) -> int | None:
        """Whole seconds until maintenance ends, when that is known."""
        left = self._maintenance_until - self._clock()
        return math.ceil(left) if math.isfinite(left) and left > 0 else None

    def take(self, fault: str, symbol: str) -> bool:
        """Consume one armed `fault` for `symbol` (a symbol-specific one first); True if the caller must inject it."""
        armed = self._armed[fault]
        for key in (symbol, None):
            left = armed.get(key, 0)
            if left > 0:
                if left == 1:
                    del armed[key]
                else:
                    armed[key] = left - 1
                self.count(fault, symbol)
                return True
        return False

    def take_malformed(self, symbol: str) -> MalformedKind | None:
        for entry in self._malformed:
            kind, target, left = entry
            if target is None or target == symbol:
                if left <= 1:
                    self._malformed.remove(entry)
                else:
                    entry[2] = left - 1
                self.count("malformed", symbol)
                self.injected[f"malformed_{kind}"] += 1
                return kind  # type: ignore[no-any-return]
        return None

    def rest_gate(self) -> tuple[int, int] | None:
        """(status, retry_after_s) a REST call must be answered with instead of its result, or None."""
        now = self._clock()
        if now < self._ban_until:
            self.count("http_418")
            return 418, math.ceil(self._ban_until - now)
        limit = self._limit
        if self._limit_remaining > 0:
            self._limit_remaining -= 1
            if limit.status == 418:
                self._ban_until = now + limit.retry_after_s
                self.count("http_418")
                return 418, limit.retry_after_s
            self._window_until = now + limit.retry_after_s
            self.count("http_429")
            return 429, limit.retry_after_s
        if limit.escalate and now < self._window_until:
            # Binance: "HTTP 418 return code is used when an IP has been auto-banned for continuing to send
            # requests after receiving 429 codes."
            self._window_until = -math.inf
            self._ban_until = now + limit.ban_s
            self.count("http_418")
            return 418, limit.ban_s
        return None

    def event_time_ms(self, true_ms: int) -> int:
        """The venue event time to put on a message: `true_ms`, or the frozen value while time is frozen."""
        if self._frozen_ms is not None:
            if self._clock() < self._frozen_until:
                return self._frozen_ms
            self._frozen_ms = None
        return true_ms

    def state(self) -> dict[str, Any]:
        """What is armed or active now, and the counts (the control endpoint's GET)."""
        now = self._clock()
        return {
            "stalled_s": max(0.0, self._stalled_until - now),
            "maintenance": self.in_maintenance(),
            "frozen_ms": self._frozen_ms if now < self._frozen_until else None,
            "rate_limit_requests_left": self._limit_remaining,
            "banned_s": max(0.0, self._ban_until - now),
            "armed": {fault: {str(k): v for k, v in armed.items()} for fault, armed in self._armed.items() if armed}
            | ({"malformed": [list(e) for e in self._malformed]} if self._malformed else {}),
            "injected": dict(self.injected),
        }


def _positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _count(name: str, value: int) -> None:
    if not (isinstance(value, int) and value >= 1):
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
