"""Deposit/withdraw status and withdrawal fees per venue and currency, polled with ccxt and published to the grid.

Why: a cross-venue spread only pays if inventory can follow it. A spread that persists because a coin's withdrawals
are suspended on one venue is usually not arbitrage but a closed door, and the scanner (`arb.scanner.transfer`)
flags it and says what moving the inventory would cost. This module gives it the data: for each venue with API keys,
every `scanner.wallet_refresh_s` (300 s) it reads ccxt's `fetch_currencies` (per currency `active`, `deposit`,
`withdraw`, per network flags and fees) and, where that gives no fee, `fetch_deposit_withdraw_fees`, normalises them
into one `WalletRecord` per currency the venue's configured symbols use, and stores the venue's table under the grid
key `{prefix}:wallets`.

Credentials: both endpoints are private on most venues (Binance: `GET /sapi/v1/capital/config/getall`, signed).
They come only from the environment, `ARB_<VENUE>_API_KEY` and `ARB_<VENUE>_SECRET` (plus `ARB_<VENUE>_PASSWORD` for
venues with a passphrase), venue id upper-cased with anything but letters and digits as `_`; a venue without them
gets no poller. They are held as `SecretStr`, never logged: error messages are logged with every credential value
and any `signature=` parameter masked.

Failures (auth, network, a venue that is down, Redis) are logged as `wallets.poll_failed` and retried after
`retry_s`; nothing is published, so the venue's last table ages out in the scanner (`scanner.wallet_max_age_s`) and
its wallets become unknown, never guessed open. A poller never ends its worker.

Normalisation (`wallet_records`): `deposit` / `withdraw` are ccxt's currency-level flags (True when any network is
open); where ccxt gives none and the currency is not `active` (ccxt: "tradeable and withdrawable"), they are False.
`network` is the venue's default network (Binance's `isDefault`, else the one whose fee is the venue's default fee,
else the only one) unless its withdrawals are closed, then the cheapest open one; `withdraw_fee` is that network's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from pydantic import SecretStr

from arb.connectors.ccxt_pro import LocalEndpoint
from arb.connectors.polling import close_shielded, poll_forever, rest_exchange, running
from arb.model import VenueWallets, WalletRecord

if TYPE_CHECKING:
    from arb.config.schema import Settings
    from arb.grid.store import PriceGrid

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[VenueWallets]], Awaitable[None]]
ExchangeFactory = Callable[[str, dict[str, Any]], Any]

RETRY_S: Final = 30.0
"""After a failed poll, try again this soon (or at the refresh period, if shorter)."""
MAX_ERROR_CHARS: Final = 300
_SIGNATURE: Final = re.compile(r"(signature=)[^&\s\"']+", re.IGNORECASE)


@dataclass(frozen=True)
class Credentials:
    """A venue's API keys (repr masks them: `SecretStr`)."""

    api_key: SecretStr
    secret: SecretStr
    password: SecretStr | None = None

    def ccxt_config(self) -> dict[str, str]:
        config = {"apiKey": self.api_key.get_secret_value(), "secret": self.secret.get_secret_value()}
        if self.password is not None:
            config["password"] = self.password.get_secret_value()
        return config

    def values(self) -> list[str]:
        return [v for v in self.ccxt_config().values() if v]


def env_name(venue_id: str, what: str) -> str:
    """`ARB_<VENUE>_<WHAT>`: `env_name("capital_com", "API_KEY")` -> `ARB_CAPITAL_COM_API_KEY`."""
    return f"ARB_{re.sub(r'[^A-Z0-9]', '_', venue_id.upper())}_{what}"


def credentials_from_env(venue_id: str, environ: Mapping[str, str] | None = None) -> Credentials | None:
    """The venue's keys from `ARB_<VENUE>_API_KEY` / `_SECRET` (/ `_PASSWORD`); None unless both key and secret are
    set (a half-configured venue is logged, by variable name only)."""
    env = os.environ if environ is None else environ
    key, secret = env.get(env_name(venue_id, "API_KEY")), env.get(env_name(venue_id, "SECRET"))
    if not key and not secret:
        return None
    if not key or not secret:
        missing = env_name(venue_id, "API_KEY" if not key else "SECRET")
        log.warning("wallets.credentials_incomplete venue=%s missing=%s", venue_id, missing)
        return None
    password = env.get(env_name(venue_id, "PASSWORD"))
    return Credentials(SecretStr(key), SecretStr(secret), SecretStr(password) if password else None)


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret value and any `signature=` parameter masked, cut to `MAX_ERROR_CHARS`."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    text = _SIGNATURE.sub(r"\1***", text)
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


# --- normalisation ---------------------------------------------------------------------------------------------


def _flag(x: Any) -> bool | None:
    return x if isinstance(x, bool) else None


def _amount(x: Any) -> float | None:
    """A non-negative finite number from a ccxt field (float, int or numeric string), else None."""
    if isinstance(x, bool) or not isinstance(x, int | float | str):
        return None
    try:
        v = float(x)
    except ValueError:
        return None
    return v if math.isfinite(v) and v >= 0 else None


def _get(node: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _items(node: Any) -> list[tuple[str, Any]]:
    """(key, value) pairs of a mapping in a venue payload; nothing for anything else (never an AttributeError)."""
    return [(str(k), v) for k, v in node.items()] if isinstance(node, Mapping) else []


def _network_fees(currency: Any, fees: Any) -> dict[str, float | None]:
    """network code -> withdrawal fee, from the currency structure, else from the fee structure."""
    out: dict[str, float | None] = {}
    for code, net in _items(_get(fees, "networks")):
        out[code] = _amount(_get(net, "withdraw", "fee"))
    for code, net in _items(_get(currency, "networks")):
        fee = _amount(_get(net, "fee"))
        if fee is not None or code not in out:
            out[code] = fee
    return out


def _default_network(
    currency: Any, fees_by_network: Mapping[str, float | None], default_fee: float | None
) -> str | None:
    for code, net in _items(_get(currency, "networks")):
        if _get(net, "info", "isDefault") is True:  # Binance marks it; ccxt's unified structure has no such field
            return code
    if default_fee is not None:
        for code, fee in fees_by_network.items():
            if fee == default_fee:
                return code
    if len(fees_by_network) == 1:
        return next(iter(fees_by_network))
    return None


def wallet_record(currency: Any, fees: Any, ts_ns: int) -> WalletRecord | None:
    """One currency's record from ccxt's currency structure and/or its deposit-withdraw-fee structure (either may be
    None); None when neither says anything. See the module docstring for the rules."""
    if not isinstance(currency, Mapping) and not isinstance(fees, Mapping):
        return None
    deposit, withdraw = _flag(_get(currency, "deposit")), _flag(_get(currency, "withdraw"))
    if _get(currency, "active") is False:
        deposit = False if deposit is None else deposit
        withdraw = False if withdraw is None else withdraw
    by_network = _network_fees(currency, fees)
    default_fee = _amount(_get(fees, "withdraw", "fee"))
    network = _default_network(currency, by_network, default_fee)
    networks = dict(_items(_get(currency, "networks")))
    if network is not None and _get(networks.get(network), "withdraw") is False:
        open_fees = [
            (fee, code)
            for code, net in networks.items()
            if _get(net, "withdraw") is True and (fee := by_network.get(code)) is not None
        ]
        if open_fees:
            network = min(open_fees)[1]
    fee = by_network.get(network) if network is not None else None
    if fee is None and network is None:
        fee = default_fee if default_fee is not None else _amount(_get(currency, "fee"))
    if deposit is None and withdraw is None and fee is None and network is None:
        return None
    return WalletRecord(deposit=deposit, withdraw=withdraw, withdraw_fee=fee, network=network, ts_ns=ts_ns)


def wallet_records(
    currencies: Mapping[str, Any] | None, fees: Mapping[str, Any] | None, codes: Iterable[str], ts_ns: int
) -> dict[str, WalletRecord]:
    """Records for `codes` (unified currency codes) from ccxt's `fetch_currencies` and `fetch_deposit_withdraw_fees`
    results; a code neither mentions gets no record (unknown)."""
    out: dict[str, WalletRecord] = {}
    for code in codes:
        record = wallet_record((currencies or {}).get(code), (fees or {}).get(code), ts_ns)
        if record is not None:
            out[code] = record
    return out


def venue_codes(settings: Settings, venue_id: str) -> list[str]:
    """The currencies a venue's configured symbols use (`BTC/USDT` -> BTC, USDT; `BTC/USDT:USDT` -> BTC, USDT)."""
    codes: dict[str, None] = {}
    for inst in settings.instruments.values():
        symbol = inst.venues.get(venue_id)
        if symbol is None or "/" not in symbol:
            continue
        base, quote = symbol.split("/", 1)
        codes[base] = None
        codes[quote.split(":", 1)[0]] = None
    return list(codes)


# --- polling ---------------------------------------------------------------------------------------------------


def ccxt_rest_factory(ccxt_id: str, config: dict[str, Any]) -> Any:
    """The plain (REST) ccxt class: wallets need no WebSocket, and a separate instance keeps keys off the stream's."""
    import ccxt.async_support

    return getattr(ccxt.async_support, ccxt_id)(config)


class WalletPoller:
    """Reads one venue's wallets every `refresh_s` and publishes them (`run`), or once (`poll_once`)."""

    def __init__(
        self,
        venue_id: str,
        ccxt_id: str,
        codes: Iterable[str],
        credentials: Credentials,
        publish: Publish,
        *,
        endpoint: LocalEndpoint | None = None,
        refresh_s: float = 300.0,
        retry_s: float = RETRY_S,
        exchange_factory: ExchangeFactory = ccxt_rest_factory,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if refresh_s <= 0 or retry_s <= 0:
            raise ValueError("refresh_s and retry_s must be > 0")
        self.venue_id = venue_id
        self.ccxt_id = ccxt_id
        self.codes = list(codes)
        self.endpoint = endpoint
        self.refresh_s = refresh_s
        self.retry_s = retry_s
        self._credentials = credentials
        self._publish = publish
        self._factory = exchange_factory
        self._now_ns = now_ns
        self._exchange: Any = None
        self.polls = 0
        self.failures = 0
        self.last_error = ""

    def __repr__(self) -> str:
        return f"WalletPoller(venue={self.venue_id!r}, ccxt_id={self.ccxt_id!r}, codes={len(self.codes)})"

    def _open(self) -> Any:
        if self._exchange is None:
            config: dict[str, Any] = {
                **self._credentials.ccxt_config(),
                "enableRateLimit": True,
                # Margin pair lists are not wallet data; Binance would add two signed calls per read for them.
                "options": {"fetchMargins": False, "maxRetriesOnFailure": 0},
            }
            self._exchange = rest_exchange(self._factory, self.ccxt_id, config, self.endpoint)
        return self._exchange

    def supported(self) -> bool:
        """Whether ccxt can read wallets on this venue at all (`has` fetchCurrencies or fetchDepositWithdrawFees)."""
        has = self._open().has
        return has.get("fetchCurrencies") is True or has.get("fetchDepositWithdrawFees") is True

    async def poll_once(self) -> VenueWallets:
        """Read the venue's wallets now (raises what ccxt raises)."""
        exchange = self._open()
        has = exchange.has
        currencies: Mapping[str, Any] = {}
        if has.get("fetchCurrencies") is True:
            currencies = await exchange.fetch_currencies() or {}
        fees: Mapping[str, Any] | None = None
        fee_known = [c for c in self.codes if _get(currencies.get(c), "networks") or _get(currencies.get(c), "fee")]
        if len(fee_known) < len(self.codes) and has.get("fetchDepositWithdrawFees") is True:
            fees = await exchange.fetch_deposit_withdraw_fees(self.codes)
        now = self._now_ns()
        return VenueWallets(
            venue=self.venue_id, published_ns=now, currencies=wallet_records(currencies, fees, self.codes, now)
        )

    async def refresh(self) -> bool:
        """One poll and publish; a failure is logged and counted, never raised. True when a table was published."""
        try:
            wallets = await self.poll_once()
            await self._publish([wallets])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a venue, its keys or Redis failing must never end the worker
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {redact(str(exc), self._credentials.values())}"
            log.warning("wallets.poll_failed venue=%s error=%r", self.venue_id, self.last_error)
            return False
        self.polls += 1
        self.last_error = ""
        log.info("wallets.published venue=%s currencies=%d", self.venue_id, len(wallets.currencies))
        return True

    async def run(self) -> None:
        """Poll every `refresh_s` (after a failure: within `retry_s`) until cancelled; then close the exchange."""
        try:
            await poll_forever(self.refresh, self.refresh_s, self.retry_s)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        exchange, self._exchange = self._exchange, None
        if exchange is not None:
            await close_shielded(exchange, f"wallets-{self.venue_id}-close")


def pollers_for(
    settings: Settings,
    venues: Iterable[str],
    publish: Publish,
    *,
    endpoints: Mapping[str, LocalEndpoint] | None = None,
    ccxt_ids: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    exchange_factory: ExchangeFactory = ccxt_rest_factory,
) -> list[WalletPoller]:
    """A poller for each CEX venue in `venues` that has credentials in the environment and whose ccxt class can read
    wallets (`ccxt_ids` overrides the class, as for the connectors: a local venue served in another format)."""
    endpoints = endpoints or {}
    ccxt_ids = ccxt_ids or {}
    out: list[WalletPoller] = []
    for vid in venues:
        cfg = settings.venues.get(vid)
        if cfg is None or cfg.kind != "cex":
            continue
        credentials = credentials_from_env(vid, environ)
        if credentials is None:
            continue
        codes = venue_codes(settings, vid)
        if not codes:
            continue
        poller = WalletPoller(
            vid,
            ccxt_ids.get(vid) or cfg.ccxt_id or vid,
            codes,
            credentials,
            publish,
            endpoint=endpoints.get(vid),
            refresh_s=settings.scanner.wallet_refresh_s,
            exchange_factory=exchange_factory,
        )
        try:
            supported = poller.supported()
        except Exception as exc:  # an unknown ccxt id, a bad endpoint: no wallets for this venue, the worker goes on
            error = f"{type(exc).__name__}: {redact(str(exc), credentials.values())}"
            log.warning("wallets.unavailable venue=%s ccxt_id=%s error=%r", vid, poller.ccxt_id, error)
            continue
        if not supported:
            log.info("wallets.unsupported venue=%s ccxt_id=%s", vid, poller.ccxt_id)
            continue
        out.append(poller)
    return out


@contextlib.asynccontextmanager
async def polling_wallets(
    settings: Settings,
    grid: PriceGrid,
    venues: Iterable[str],
    *,
    endpoints: Mapping[str, LocalEndpoint] | None = None,
    ccxt_ids: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> AsyncIterator[list[WalletPoller]]:
    """Run a wallet poller (publishing to `grid`) for every venue in `venues` that has credentials; stop them on exit.

    With no credentials anywhere this starts nothing: a worker without keys behaves exactly as before."""
    pollers = pollers_for(settings, venues, grid.write_wallets, endpoints=endpoints, ccxt_ids=ccxt_ids, environ=environ)
    async with running("wallets", pollers):
        yield pollers
