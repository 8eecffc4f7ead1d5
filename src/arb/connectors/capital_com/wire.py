"""Capital.com's wire format: the REST and WebSocket payloads arb reads, decoded strictly, and their conversions.

Follows the public API documentation (https://open-api.capital.com/, and the API limits on
https://capital.com/api-general-information): REST bodies of `POST /api/v1/session`, `GET /api/v1/markets[/{epic}]`
(`instrument`, `dealingRules`, `snapshot`), `GET /api/v1/positions`, `GET /api/v1/workingorders`,
`GET /api/v1/confirms/{dealReference}`, `GET /api/v1/prices/{epic}` (historical bid/ask bars) and the
`{"errorCode": ...}` error body; streaming messages of
`wss://api-streaming-capital.backend-capital.com/connect` (`marketData.subscribe` replies, `ping` replies and
`quote` messages: `epic`, `product`, `bid`, `bidQty`, `ofr`, `ofrQty`, millisecond `timestamp`).

Why msgspec Structs without `forbid_unknown_fields`: the venue adds fields over time and a new one must not stop the
feed; the fields arb relies on are typed, so a missing or wrongly typed one is a decode error naming it. Money that is
booked (deal sizes and levels) is decoded straight to `Decimal` (msgspec reads a JSON number exactly); quote prices
are floats, as every Quote's are.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from arb.model import Quote, quote_is_sound, quote_problems

DOCS: Final = (
    "https://open-api.capital.com/",
    "https://capital.com/api-general-information",
)

Direction = Literal["BUY", "SELL"]
MarketStatus = str
"""`TRADEABLE` when the market deals; anything else (`CLOSED`, `EDITS_ONLY`, `OFFLINE`, `SUSPENDED`...) does not."""
TRADEABLE: Final = "TRADEABLE"

SESSION_ERRORS: Final = frozenset(
    {
        "error.invalid.session.token",
        "error.null.client.token",
        "error.null.account.token",
        "error.security.client-token-missing",
        "error.security.account-token-missing",
        "error.security.token-invalid",
        "error.security.account.token.invalid",
    }
)
"""401 error codes that mean the session tokens (CST / X-SECURITY-TOKEN) were refused: log in again."""
AUTH_ERRORS: Final = frozenset(
    {"error.invalid.api.key", "error.null.api.key", "error.invalid.details", "error.null.password"}
)
"""Error codes that mean the API key or the login itself was refused: logging in again cannot help."""
RATE_LIMIT_ERROR: Final = "error.too-many.requests"


# ---------------------------------------------------------------------------------------------------- REST


class ErrorBody(msgspec.Struct):
    errorCode: str


class SessionBody(msgspec.Struct, kw_only=True):
    """The body of `POST /api/v1/session` (the tokens come in its CST / X-SECURITY-TOKEN headers)."""

    currentAccountId: str = ""
    streamingHost: str = ""
    currencyIsoCode: str = ""


class DealingRule(msgspec.Struct):
    unit: str
    value: Decimal


class DealingRules(msgspec.Struct, kw_only=True):
    minStepDistance: DealingRule | None = None
    minDealSize: DealingRule | None = None
    maxDealSize: DealingRule | None = None
    minSizeIncrement: DealingRule | None = None


class InstrumentInfo(msgspec.Struct, kw_only=True):
    epic: str
    name: str = ""
    type: str = ""
    currency: str = ""
    lotSize: Decimal | None = None
    openingHours: dict[str, list[str] | str] | None = None


class Snapshot(msgspec.Struct, kw_only=True):
    marketStatus: MarketStatus
    bid: float | None = None
    offer: float | None = None
    updateTime: str = ""
    decimalPlacesFactor: int | None = None


class MarketDetails(msgspec.Struct, kw_only=True):
    """`GET /api/v1/markets/{epic}`, and each entry of `GET /api/v1/markets?epics=...`."""

    instrument: InstrumentInfo
    dealingRules: DealingRules = msgspec.field(default_factory=DealingRules)
    snapshot: Snapshot

    @property
    def epic(self) -> str:
        return self.instrument.epic

    @property
    def tradeable(self) -> bool:
        return self.snapshot.marketStatus == TRADEABLE


class MarketDetailsList(msgspec.Struct):
    marketDetails: list[MarketDetails]


class PositionData(msgspec.Struct, kw_only=True):
    dealId: str
    dealReference: str = ""
    direction: Direction
    size: Decimal
    level: Decimal
    currency: str = ""
    createdDateUTC: str = ""
    stopLevel: Decimal | None = None
    profitLevel: Decimal | None = None


class PositionMarket(msgspec.Struct, kw_only=True):
    epic: str
    marketStatus: MarketStatus = ""
    bid: float | None = None
    offer: float | None = None


class PositionEntry(msgspec.Struct):
    position: PositionData
    market: PositionMarket


class Positions(msgspec.Struct):
    positions: list[PositionEntry]


class WorkingOrderData(msgspec.Struct, kw_only=True):
    dealId: str
    direction: Direction
    epic: str
    orderSize: Decimal
    orderLevel: Decimal
    orderType: Literal["LIMIT", "STOP"]
    timeInForce: str = ""
    createdDateUTC: str = ""


class WorkingOrderEntry(msgspec.Struct):
    workingOrderData: WorkingOrderData


class WorkingOrders(msgspec.Struct):
    workingOrders: list[WorkingOrderEntry]


class DealReference(msgspec.Struct):
    dealReference: str


class AffectedDeal(msgspec.Struct):
    dealId: str
    status: str


class Confirm(msgspec.Struct, kw_only=True):
    """`GET /api/v1/confirms/{dealReference}`: the outcome of a position / working-order request.

    `dealStatus` is ACCEPTED or REJECTED (with `reason`); `status` what happened (OPEN, CLOSED, DELETED, ...). For a
    new position, `affectedDeals` names the position's own deal id (status OPENED): that id, not `dealId` (the
    order's), is the one a close refers to."""

    dealReference: str
    dealStatus: Literal["ACCEPTED", "REJECTED"]
    status: str = ""
    reason: str = ""
    epic: str = ""
    dealId: str = ""
    date: str = ""
    level: Decimal | None = None
    size: Decimal | None = None
    direction: Direction | None = None
    profit: Decimal | None = None
    affectedDeals: list[AffectedDeal] = msgspec.field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.dealStatus == "ACCEPTED"

    def affected(self, status: str) -> str | None:
        """The deal id of the first affected deal with `status` (e.g. OPENED, FULLY_CLOSED, DELETED)."""
        return next((d.dealId for d in self.affectedDeals if d.status == status), None)


class BidAsk(msgspec.Struct, kw_only=True):
    bid: float
    ask: float

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2


class PricePoint(msgspec.Struct, kw_only=True):
    """One bar of `GET /api/v1/prices/{epic}`: bid and ask OHLC, opening at `snapshotTimeUTC` (ISO, UTC, no zone)."""

    snapshotTime: str = ""
    snapshotTimeUTC: str
    openPrice: BidAsk
    closePrice: BidAsk
    highPrice: BidAsk
    lowPrice: BidAsk
    lastTradedVolume: float = 0.0


class Prices(msgspec.Struct, kw_only=True):
    """`GET /api/v1/prices/{epic}`: historical bars, oldest first (none for hours the market was closed)."""

    prices: list[PricePoint]
    instrumentType: str = ""


# ---------------------------------------------------------------------------------------------------- streaming


NO_PAYLOAD: Final = msgspec.Raw(b"null")


class StreamMessage(msgspec.Struct, kw_only=True):
    """Any message on the stream; `payload` is decoded by destination (a quote on the hot path)."""

    status: str = ""
    destination: str = ""
    correlationId: str | None = None
    payload: msgspec.Raw = NO_PAYLOAD
    """The undecoded payload; `NO_PAYLOAD` (JSON null) when the message has none."""


class QuotePayload(msgspec.Struct, kw_only=True):
    epic: str
    product: str = ""
    bid: float
    bidQty: float = 0.0
    ofr: float
    ofrQty: float = 0.0
    timestamp: int


class SubscribeResult(msgspec.Struct):
    subscriptions: dict[str, str]


STREAM_DECODER: Final = msgspec.json.Decoder(StreamMessage)
QUOTE_DECODER: Final = msgspec.json.Decoder(QuotePayload)
SUBSCRIBE_DECODER: Final = msgspec.json.Decoder(SubscribeResult)
ERROR_DECODER: Final = msgspec.json.Decoder(ErrorBody)


def quote_from_payload(venue: str, instrument: str, p: QuotePayload, ts_recv: int) -> Quote | str:
    """A grid Quote from a streamed quote (top of book only; sizes are the venue's `bidQty` / `ofrQty`), or why not.

    `sequence` is the venue's millisecond timestamp: the stream carries no update id, and the timestamp is what
    orders one epic's quotes."""
    q = Quote(
        venue=venue,
        instrument=instrument,
        bid=p.bid,
        bid_size=p.bidQty,
        ask=p.ofr,
        ask_size=p.ofrQty,
        ts_exchange=p.timestamp * 1_000_000,
        ts_recv=ts_recv,
        sequence=p.timestamp,
    )
    try:
        if quote_is_sound(q):
            return q
    except TypeError:
        return "invalid"
    problems = "; ".join(quote_problems(q))
    return "crossed" if "crossed" in problems else "invalid"


# ---------------------------------------------------------------------------------------------------- opening hours

_DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN: Final = re.compile(r"^\s*(\d{2}):(\d{2})\s*-\s*(\d{2}):(\d{2})\s*$")


class OpeningHours(msgspec.Struct, frozen=True):
    """An instrument's weekly dealing hours: per weekday (0 = Monday) the [start, end) minute spans, in `zone`.

    The wire form (`instrument.openingHours`) is `{"mon": ["00:00 - 22:00", "23:05 - 00:00"], ..., "zone": "UTC"}`;
    an end of `00:00` is midnight at the end of that day (24:00)."""

    spans: tuple[tuple[tuple[int, int], ...], ...]
    zone: str = "UTC"

    @classmethod
    def from_wire(cls, raw: Mapping[str, list[str] | str]) -> OpeningHours:
        """Parse the wire form; ValueError naming the day and span that cannot be read."""
        zone = raw.get("zone", "UTC")
        if not isinstance(zone, str):
            raise ValueError(f"openingHours.zone must be a string, got {zone!r}")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"openingHours.zone {zone!r} is not a known time zone") from None
        days = []
        for day in _DAYS:
            entries = raw.get(day, [])
            if not isinstance(entries, list):
                raise ValueError(f"openingHours.{day} must be a list of 'HH:MM - HH:MM', got {entries!r}")
            days.append(tuple(_span(day, e) for e in entries))
        return cls(tuple(days), zone)

    def to_wire(self) -> dict[str, list[str] | str]:
        out: dict[str, list[str] | str] = {
            day: [f"{_hhmm(a)} - {_hhmm(b % 1440)}" for a, b in spans]
            for day, spans in zip(_DAYS, self.spans, strict=True)
        }
        out["zone"] = self.zone
        return out

    def is_open(self, at: dt.datetime) -> bool:
        """Whether `at` (timezone-aware) falls inside a span; a span's start is open, its end closed."""
        if at.tzinfo is None:
            raise ValueError("is_open needs a timezone-aware datetime")
        local = at.astimezone(ZoneInfo(self.zone))
        minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
        return any(a <= minute < b for a, b in self.spans[local.weekday()])


def _span(day: str, text: str) -> tuple[int, int]:
    m = _SPAN.match(text)
    if m is None:
        raise ValueError(f"openingHours.{day}: {text!r} is not 'HH:MM - HH:MM'")
    h1, m1, h2, m2 = (int(x) for x in m.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"openingHours.{day}: {text!r} is not a time span")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    end = end or 1440
    if end <= start:
        raise ValueError(f"openingHours.{day}: {text!r} ends before it starts")
    return start, end


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
